"""Whether the random effects of several grouping factors can be estimated from the data.

Two designs have random-effects parameters that the data cannot pin down, whatever the
optimizer reports, and are refused before the fit with the numbers that show it:

- a random slope on a variable that is constant within every level of its factor (a person's
  gender in ``(Gender | id)``): within each level the slope's column is a multiple of the
  intercept's, so the two effects cannot be told apart;
- too many random effects for the observations, after lme4's ``check.nobs.vs.nRE``. For a
  family with a scale or dispersion parameter (``sigma``, a size…): at least as many random
  effects (levels × effects, all factors together) as observations, which can then
  reproduce every observation, so that their variances cannot be told apart from that
  parameter. For a family without one (Poisson, binomial): a factor with more random
  effects than observations; one random effect per observation is a model of its own
  (observation-level random effects for overdispersion, ``(1 | site) + (1 | obs)``), which
  stays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_factors"]


def check_factors(Z: np.ndarray, factors, family) -> None:
    """Refuse random effects of several grouping factors that the data cannot identify.

    Parameters
    ----------
    Z : ndarray (N, q)
        The random-effects design, each factor's columns in turn.
    factors : tuple of Factor
        The grouping factors (:class:`~glmm_ppl.design.nested.Factor`), in the order of
        ``Z``'s columns.
    family : Family
        The family (whether it has a scale or dispersion parameter).

    Raises
    ------
    ValueError
        Naming the factor and the effect, or the numbers of random effects and of
        observations.

    Examples
    --------
    >>> import pandas as pd
    >>> from glmm_ppl.design.nested import Factor
    >>> from glmm_ppl.families import binomial
    >>> rows = np.array([0, 0, 1, 1, 2, 2])  # each row's level of id
    >>> names = ["(Intercept)", "g"]
    >>> person = Factor("id", ("id",), "~ g", False, pd.Index([7, 8, 9]), rows, names)
    >>> Z = np.column_stack([np.ones(6), [0, 0, 1, 1, 0, 0]])  # g is constant within each id
    >>> check_factors(Z, (person,), binomial())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the random slope 'g' of 'id' is not identified: g does not vary within any ...
    """
    _check_count(factors, len(Z), family)
    start = 0
    for factor in factors:
        _check_slopes(factor, Z[:, start : start + factor.q])
        start += factor.q


def _check_count(factors, N: int, family) -> None:
    """lme4's ``check.nobs.vs.nRE``: with a scale or dispersion parameter, fewer random
    effects (all factors together) than observations; without one, no factor with more
    random effects than observations."""
    sizes = [f.n_units * f.q for f in factors]
    scale = tuple(family.phi_names)

    def effects(f) -> str:
        return f"{f.name} {f.n_units} levels × {f.q} effect{'s' * (f.q > 1)}"

    if scale and sum(sizes) >= N:
        raise ValueError(
            f"the grouping factors have {sum(sizes):,} random effects together "
            f"({'; '.join(effects(f) for f in factors)}) for {N:,} observations: with at "
            "least as many random effects as observations they can reproduce every "
            f"observation, so their variances cannot be told apart from the {family.name} "
            f"family's {', '.join(scale)}. Give the factors fewer random effects (drop slopes "
            "or a factor), or use factors with fewer levels"
        )
    for f, n_re in zip(factors, sizes, strict=True):
        if n_re > N:
            raise ValueError(
                f"the grouping factor {f.name!r} has {n_re:,} random effects ({effects(f)}) "
                f"for {N:,} observations: more random effects than observations, so their "
                f"variances are not identified (lme4 refuses this too). Give {f.name!r} "
                "fewer random effects (drop slopes from its term), or use a grouping factor "
                "with fewer levels"
            )


def _check_slopes(factor, block: np.ndarray) -> None:
    """Refuse a slope whose column is constant within every level of a factor that also has
    a random intercept."""
    names = list(factor.random_names)
    intercept = [j for j in range(factor.q) if np.all(block[:, j] == block[0, j]) and block[0, j]]
    if not intercept or factor.q < 2:
        return
    order = np.argsort(factor.index, kind="stable")
    codes = factor.index[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    sorted_block = block[order]
    low = np.minimum.reduceat(sorted_block, starts, axis=0)
    high = np.maximum.reduceat(sorted_block, starts, axis=0)
    size = np.maximum(np.max(np.abs(block), axis=0), 1e-300)
    constant = np.all(high - low <= 1e-12 * size, axis=0)
    for j in range(factor.q):
        if j in intercept or not constant[j]:
            continue
        variable = _variable_of(factor, j)
        raise ValueError(
            f"the random slope {names[j]!r} of {factor.name!r} is not identified: {variable} "
            f"does not vary within any level of {factor.name} (each level has a single value "
            f"of it), so its slope cannot be told apart from the random intercept of "
            f"{factor.name}; remove {variable} from the random-effects term of {factor.name} "
            "(it can stay among the fixed effects)"
        )


def _variable_of(factor, column: int) -> str:
    """The formula term that makes a column of the factor's random-effects design (``Gender``
    for ``GenderM``), or the column's name when the term is not known."""
    slices = getattr(factor.spec, "term_slices", None) or {}
    for term, sl in slices.items():
        if sl.start <= column < sl.stop:
            return str(term)
    return factor.random_names[column]
