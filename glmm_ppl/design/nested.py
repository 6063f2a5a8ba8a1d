"""Several grouping factors: which factor lies within which, and the rows sorted by them.

A factor ``inner`` is nested in ``outer`` when every level of ``inner`` lies within one level
of ``outer`` (each class in one school). :func:`nest` orders the factors from the outermost
(fewest levels) in, checks that each lies within the one before, and sorts the rows so that
every unit of every factor is a contiguous block inside its parent's block — what the
multilevel quadrature (:class:`glmm_ppl.engine.multilevel.MultilevelAGQ`) reads. Factors that
are not nested are crossed (subjects × items): their model needs the Laplace approximation
over all random effects jointly (:class:`glmm_ppl.engine.laplace.JointLaplace`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .terms import Term

__all__ = ["Factor", "factor_labels", "nest", "nested_effects"]


@dataclass(frozen=True)
class Factor:
    """One grouping factor of a model with several (nested or crossed).

    Attributes
    ----------
    name : str
        ``"school"`` or ``"school:class"``.
    columns : tuple of str
        The grouping columns whose label combinations are its levels.
    terms : str
        Its random effects as a one-sided formula.
    diagonal : bool
        Independent effects (``||``).
    labels : pandas.Index
        The levels (units), in the order of the sorted rows (``"3:2"`` for class 2 of school
        3); with crossed factors, in sorted order.
    index : ndarray (N,)
        Each sorted row's unit.
    random_names : list of str
        The names of its random effects (``(Intercept)``, ``x``).
    spec : object
        The formulaic model spec of its random-effects design (for new data).
    """

    name: str
    columns: tuple[str, ...]
    terms: str
    diagonal: bool
    labels: pd.Index
    index: np.ndarray = field(repr=False)
    random_names: list[str] = field(default_factory=list)
    spec: object = field(default=None, repr=False, compare=False)

    @property
    def q(self) -> int:
        """Number of random effects."""
        return len(self.random_names)

    @property
    def n_units(self) -> int:
        """Number of levels."""
        return len(self.labels)


def factor_labels(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    """The factor's label of each row: the value of a single column, or the values of several
    joined by ``:`` (as lme4 labels ``school:class``).

    A number is written the same whether its column holds integers or floats (``3`` and
    ``3.0`` both give ``"3"``), so new data with another column type find the same levels.

    Examples
    --------
    >>> df = pd.DataFrame({"school": [3.0, 3.0], "class": ["2", "b"]})
    >>> factor_labels(df, ("school", "class")).tolist()
    ['3:2', '3:b']
    >>> df["class"] = df["class"].astype("category")  # categorical columns join the same way
    >>> factor_labels(df, ("school", "class")).tolist()
    ['3:2', '3:b']
    """
    if len(columns) == 1:
        return df[columns[0]]
    # as objects: a categorical column's map would stay categorical, which does not join
    parts = [df[c].astype(object).map(_plain_text) for c in columns]
    out = parts[0]
    for part in parts[1:]:
        out = out + ":" + part
    return out


def _plain_text(value) -> str:
    """A label as users write it: integral numbers without a decimal point."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def nest(df: pd.DataFrame, terms: list[Term]) -> tuple[pd.DataFrame, list[Term], list, bool]:
    """Order the factors from the outermost in, check whether they are nested and sort the
    rows.

    Returns
    -------
    df : pandas.DataFrame
        The rows sorted by the units of each factor, outermost first (stably).
    terms : list of Term
        The terms, the factor with the fewest levels first.
    units : list of (codes, labels)
        Each factor's unit code of every sorted row and its levels, in the order of the
        sorted rows (with crossed factors, in sorted order).
    crossed : bool
        Whether some factor is not nested in the one before it (then the rows of a unit need
        not be contiguous, and the model needs the Laplace approximation over all random
        effects jointly).

    Raises
    ------
    ValueError
        For a factor with a single level, or two nested factors with the same levels.
        (:func:`glmm_ppl.design.factor_checks.check_factors` then refuses random effects the
        data cannot identify.)

    Examples
    --------
    >>> from glmm_ppl.design.terms import random_terms
    >>> df = pd.DataFrame({"s": [2, 1, 2, 1], "c": ["a", "a", "b", "b"]})
    >>> out, terms, units, crossed = nest(df, random_terms("~ 1 | s/c"))
    >>> [t.name for t in terms], units[1][1].tolist(), units[1][0].tolist(), crossed
    (['s', 's:c'], ['1:a', '1:b', '2:a', '2:b'], [0, 1, 2, 3], False)
    >>> nest(df, random_terms("(1 | s) + (1 | c)"))[3]
    True
    """
    labels = {t.name: factor_labels(df, t.columns) for t in terms}
    codes = {}
    for t in terms:
        c, levels = pd.factorize(labels[t.name], sort=True)
        if len(levels) < 2:
            raise ValueError(
                f"grouping factor {t.name!r} has a single level ({_plain_text(levels[0])}); a "
                "random effect "
                "needs at least two"
            )
        codes[t.name] = c
    ordered = sorted(terms, key=lambda t: len(np.unique(codes[t.name])))
    crossed = False
    for outer, inner in zip(ordered[:-1], ordered[1:], strict=True):
        per_inner = pd.Series(codes[outer.name]).groupby(codes[inner.name]).nunique()
        if (per_inner > 1).any():
            crossed = True
        elif len(np.unique(codes[outer.name])) == len(np.unique(codes[inner.name])):
            raise ValueError(
                f"grouping factors {outer.name!r} and {inner.name!r} have the same levels: "
                "drop one of them"
            )
    keys = np.column_stack([codes[t.name] for t in ordered])
    order = np.lexsort(keys.T[::-1])
    df = df.iloc[order]
    units = []
    for t in ordered:
        # nested units are numbered in row order; crossed ones (only the outermost is
        # contiguous) by their sorted labels
        c, levels = pd.factorize(labels[t.name].iloc[order], sort=crossed)
        units.append((c, pd.Index(levels.astype(str) if len(t.columns) > 1 else levels)))
    return df, ordered, units, crossed


def nested_effects(df: pd.DataFrame, terms: list[Term], units: list, model_matrix_of, check_rank):
    """The random-effects design of every factor, side by side.

    Returns
    -------
    Z : ndarray (N, q)
        Each factor's columns in turn, outermost first.
    names : list of str
        ``<factor>.<effect>`` (``school.(Intercept)``).
    blocks : Blocks
        The structure of ``D``.
    factors : tuple of Factor
    """
    from ..engine.covariance import Blocks

    blocks, names, factors = [], [], []
    for term, (codes, labels) in zip(terms, units, strict=True):
        Z, effects, spec = model_matrix_of(term.terms, df, f"random-effects ({term.name})")
        if Z.shape[1] == 0:
            raise ValueError(f"the random-effects term of {term.name} has no effects")
        check_rank(Z, effects, f"random-effects ({term.name})")
        blocks.append(Z)
        names += [f"{term.name}.{e}" for e in effects]
        factors.append(
            Factor(term.name, term.columns, term.terms, term.diagonal, labels, codes, effects, spec)
        )
    structure = Blocks(
        tuple(f.name for f in factors),
        tuple(f.q for f in factors),
        tuple(t.diagonal for t in terms),
    )
    return np.column_stack(blocks), names, structure, tuple(factors)
