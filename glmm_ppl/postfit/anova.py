"""Likelihood-ratio tests between nested fits (:func:`anova`).

``LRT = 2 (log L₁ − log L₀)`` with ``df`` the difference in the number of parameters, referred
to χ²(df). Tests of variance components sit on the boundary of the parameter space, where
this p-value is conservative; like GLMMadaptive, no correction is made, but ``bootstrap=B``
adds the parametric bootstrap p-value (``glmm_ppl.postfit.bootstrap.bootstrap_lrt``),
which is valid there.
"""

from __future__ import annotations

import inspect
import warnings
from itertools import pairwise

import numpy as np
import pandas as pd
from scipy import stats

from ..design.dispersion import dispersion_design, other_data, within_span
from ..design.row_weights import row_weights_of
from ..engine.covariance import free_entries
from .bootstrap import bootstrap_lrt, check_nsim
from .glm import GLMFit
from .results import MixedModelFit
from .summary import format_pvalue
from .wald import wald_test

__all__ = ["anova", "format_anova"]


def _by_row(values, rows, all_columns: bool = False) -> np.ndarray | None:
    """Per-row values (the main predictor's offset, or every column with ``all_columns``) in
    the order of the data's row labels (None stays None). Where the labels repeat, the rows
    cannot be lined up by label: the values are sorted instead, so that two fits compare as
    sets of values."""
    if values is None:
        return None
    values = np.asarray(values, dtype=float).reshape(len(rows), -1)
    values = values if all_columns else values[:, 0]
    if not pd.Index(rows).is_unique:
        return np.sort(values, axis=0)
    return values[np.argsort(rows, kind="stable")]


def _row_weights(family, design) -> np.ndarray | None:
    """The design's row weights in its row order (None without them)."""
    return row_weights_of(design) if family.row_weighted else None


def _groups_by_row(design) -> dict:
    """Each grouping factor's name and each row's level of it (its index among the levels)
    in the order of the data's row labels (None where the labels repeat)."""
    if design.nested:
        index = {f.name: np.asarray(f.index) for f in design.factors}
    else:
        index = {design.group_name: np.repeat(np.arange(design.n_groups), np.diff(design.starts))}
    if not pd.Index(design.rows).is_unique:
        return dict.fromkeys(index)
    order = np.argsort(design.rows, kind="stable")
    return {name: codes[order] for name, codes in index.items()}


def _same_partition(a, b) -> bool:
    """Whether two labellings of the same rows put the same rows together."""
    if a is None or b is None:
        return True
    pairs = np.unique(np.column_stack([a, b]), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-12, atol=1e-12)


def _factors(design) -> list[tuple[str, list[str]]]:
    """``(factor, its random effects)`` of every grouping factor."""
    if design.nested:
        return [(f.name, list(f.random_names)) for f in design.factors]
    return [(design.group_name, list(design.random_names))]


def _random_effects(design) -> set:
    """The random effects as ``(factor, effect)`` pairs."""
    return {(g, name) for g, names in _factors(design) for name in names}


def _correlated(design) -> set:
    """The pairs of random effects whose covariance is free, ``(factor, a, b)``."""
    rows, cols = free_entries(design.q, design.diagonal)
    names = [(g, n) for g, effects in _factors(design) for n in effects]
    pairs = zip(rows, cols, strict=True)
    return {(names[r][0], names[r][1], names[c][1]) for r, c in pairs if r != c}


def _rows_of(m) -> dict:
    """A fit's rows, response and per-row data, in the order of the data's row labels."""
    d = m.design
    return {
        "y": _by_row(d.y, d.rows),
        "rows": np.sort(d.rows),
        "group_of_row": _groups_by_row(d),
        "dispersion": _by_row(dispersion_design(d), d.rows, all_columns=True),
        "offset": _by_row(d.offset, d.rows),
        "row_weights": _by_row(_row_weights(m.family, d), d.rows),
        "aux": _by_row(other_data(d), d.rows, all_columns=True),
    }


def _rows_on_workers(m) -> dict:
    """What a fit on a dask DataFrame tells of its rows (they are on the workers): their
    number and the response's sums stand for the rows and the response."""
    d = m.design
    return {
        "y": np.asarray(d.response_sums, dtype=float),
        "rows": np.arange(d.nobs),
        "group_of_row": {d.group_name: None},
        "dispersion": None,
        "offset": None,
        "row_weights": None,
        "aux": None,
    }


def _describe(m) -> dict:
    if isinstance(m, MixedModelFit):
        rows = _rows_on_workers if getattr(m.design, "rows_on_workers", False) else _rows_of
        return {
            "fixed": set(m.design.fixed_names) | {f"zi_{n}" for n in m.design.zi_fixed_names},
            "random": _random_effects(m.design),
            "correlated": _correlated(m.design),
            "n_agq": m.n_agq,
            "crossed": m.design.crossed,
            "df": m.n_params,
            "family": m.family.without_dispersion(),
            "penalized": m.penalty is not None,
            "weights": m.design.weights,
            "converged": m.converged,
        } | rows(m)
    if isinstance(m, GLMFit):
        return {
            "fixed": set(m.coef.index),
            "random": set(),
            "correlated": set(),
            "y": _by_row(m.y, m.rows),
            "rows": np.sort(m.rows),
            "group_of_row": {},
            "n_agq": None,
            "crossed": False,
            "df": m.df,
            "family": m.family,
            "dispersion": np.ones((len(m.rows), 1)) if m.family.n_phis else None,
            "penalized": False,
            "offset": _by_row(m.offset, m.rows),
            "weights": None,
            "row_weights": _by_row(m.row_weights, m.rows),
            "aux": None,  # a GLM keeps no trials: not compared
            "converged": True,
        }
    raise TypeError(
        f"anova compares fits from glmm_ppl.mixed_model or glmm_ppl.glm, got {type(m).__name__}"
    )


#: Families that are special cases of others, at a limit of the larger one's parameters
#: (NB size → ∞, zero-part probability → 0).
_NESTED_FAMILIES = {
    ("poisson", "negative_binomial"),
    ("poisson", "zi_poisson"),
    ("poisson", "zi_negative_binomial"),
    ("negative_binomial", "zi_negative_binomial"),
    ("zi_poisson", "zi_negative_binomial"),
    ("hurdle_poisson", "hurdle_negative_binomial"),
    ("binomial", "zi_binomial"),
    ("binomial", "beta_binomial"),
}


def _family_nested(small, large) -> bool:
    return (
        (small.name, large.name) in _NESTED_FAMILIES
        and small.link == large.link
        and (small.aux_names == large.aux_names)
    )


class _AnovaTable(pd.DataFrame):
    """The numeric table of a likelihood-ratio :func:`anova`, shown as :func:`format_anova`
    prints it. Its slices and copies are plain DataFrames (pandas' ``_constructor``)."""

    def __repr__(self) -> str:
        return format_anova(self)

    def _repr_html_(self) -> str:
        note = format_anova(self).splitlines()[len(self) + 1 :]  # the bootstrap's, if any
        return _formatted(self).to_html() + "".join(f"<p>{line}</p>" for line in note)


def _formula_of(m) -> str:
    if isinstance(m, MixedModelFit):
        return f"{m.design.fixed}, {m.design.random}"
    return m.fixed


def _unique(names: list[str]) -> list[str]:
    """The names, a repeated one numbered: ``"a"``, ``"a (2)"``."""
    out: list[str] = []
    for name in names:
        label, k = name, 1
        while label in out:
            k += 1
            label = f"{name} ({k})"
        out.append(label)
    return out


def _caller_names(models, frame) -> list[str]:
    """The caller's variable names of the models (its locals before its globals; names that
    start with ``_`` are skipped), or for a model no variable holds, its formulas."""
    scopes = (frame.f_locals, frame.f_globals) if frame is not None else ()
    names = []
    for m in models:
        bound = (k for s in scopes for k, v in s.items() if v is m and not k.startswith("_"))
        names.append(next(bound, None) or _formula_of(m))
    return names


def _checked_names(names, n: int) -> list[str]:
    if not isinstance(names, list | tuple):
        raise TypeError(f"names must be a list or tuple of {n} row labels, got {names!r}")
    if len(names) != n:
        raise ValueError(f"names must give one name per model ({n}), got {len(names)}: {names!r}")
    return list(names)


def _check_pair(a: dict, b: dict, names: tuple[str, str]) -> None:
    """Raise if the smaller fit ``a`` and the larger ``b`` are not comparable, or ``a`` is not
    nested in ``b``; warn if the test is on the boundary of a family's range."""
    if len(a["y"]) != len(b["y"]) or not np.array_equal(a["rows"], b["rows"]):
        raise ValueError(
            f"the models were fitted to different rows of the data ({len(a['y'])} and "
            f"{len(b['y'])} observations): refit both to the same rows"
        )
    if not _same(a["y"], b["y"]):
        differ = int(np.sum(~np.isclose(a["y"], b["y"], rtol=1e-12, atol=1e-12)))
        raise ValueError(
            f"the models were fitted to different responses ({differ} of {len(a['y'])} rows "
            "differ): their log-likelihoods are not comparable"
        )
    shared = [g for g in a["group_of_row"] if g in b["group_of_row"]]
    if not all(_same_partition(a["group_of_row"][g], b["group_of_row"][g]) for g in shared):
        raise ValueError(
            "the models group the rows differently (their grouping columns put different rows "
            "together): their random effects are not nested"
        )
    if not _same(a["offset"], b["offset"]):
        raise ValueError("the models use different offsets: they are not nested")
    if not _same(a["row_weights"], b["row_weights"]):
        raise ValueError(
            "the models use different row weights (row_weights=; one may have none), so their "
            "log-likelihoods are not comparable: fit both with the same row weights"
        )
    if a["aux"] is not None and b["aux"] is not None and not _same(a["aux"], b["aux"]):
        raise ValueError(
            "the models use different per-row data (trials or censoring), so their "
            "log-likelihoods are not comparable"
        )
    if not _same(a["weights"], b["weights"]):
        raise ValueError(
            "the models use different group weights, so their log-likelihoods are not comparable"
        )
    if a["family"] != b["family"] and not _family_nested(a["family"], b["family"]):
        raise ValueError(
            f"the models use different families: {a['family']!r} and {b['family']!r}, and "
            "the first is not a special case of the second"
        )
    if a["dispersion"] is not None and not within_span(a["dispersion"], b["dispersion"]):
        raise ValueError(
            f"{names[0]} is not nested in {names[1]}: its dispersion sub-model (disp_fixed; none "
            "is a constant dispersion) is not within the larger model's"
        )
    if any(g not in b["group_of_row"] for g in a["group_of_row"]):
        raise ValueError(
            f"the models group by different columns: {_names(a['group_of_row'])} and "
            f"{_names(b['group_of_row'])}"
        )
    # a correlation of the smaller model must exist in the larger one
    nested = (
        a["fixed"] <= b["fixed"]
        and a["random"] <= b["random"]
        and a["correlated"] <= b["correlated"]
    )
    if not nested:
        raise ValueError(
            f"{names[0]} is not nested in {names[1]}: its fixed effects or random effects are not "
            "a subset of the larger model's"
        )
    if a["family"] != b["family"]:
        warnings.warn(
            f"{a['family'].name} is {b['family'].name} with a parameter at the boundary of its "
            "range (a dispersion at its limit or a zero-part probability of 0): the χ² reference "
            "is approximate — conservative for one dispersion parameter, and unreliable when "
            "the zero part has covariates or random effects, which the smaller model leaves "
            "unidentified",
            UserWarning,
            stacklevel=3,
        )


def _names(groups: dict) -> str:
    return ", ".join(map(repr, groups))


def _warn_approximations(names: tuple[str, str], a: dict, b: dict) -> None:
    """Say so when one mixed model's log-likelihood is the Laplace approximation and the
    other's is by adaptive quadrature with more points."""
    if a["n_agq"] is None or b["n_agq"] is None or (a["n_agq"] == 1) == (b["n_agq"] == 1):
        return
    (lap, lap_d), (agq, agq_d) = sorted(
        zip(names, (a, b), strict=True), key=lambda pair: pair[1]["n_agq"]
    )
    if lap_d["crossed"]:  # crossed factors have no other approximation
        why, fix = " (its grouping factors are crossed)", f"refit {agq} with n_agq=1"
    else:
        why, fix = "", "fit both with the same n_agq"
    warnings.warn(
        f"{lap} is fitted by the Laplace approximation{why} and {agq} by adaptive "
        f"Gauss-Hermite quadrature with {agq_d['n_agq']} points: their log-likelihoods carry "
        "different approximation errors (the Laplace approximation's can reach several units "
        "on binary data), which the likelihood-ratio statistic mixes with the difference "
        f"between the models; {fix} so that both are the same approximation",
        UserWarning,
        stacklevel=3,
    )


def _warn_boundary(names: list[str], described: list[dict]) -> None:
    """Say so when a test adds variances that the smaller model fixes at 0."""
    added = []
    for (small, large), (a, b) in zip(pairwise(names), pairwise(described), strict=True):
        new = sorted(f"{effect} ({factor})" for factor, effect in b["random"] - a["random"])
        if new:
            added.append(f"{large} adds the variance of {', '.join(new)} to {small}")
    if added:
        warnings.warn(
            f"{'; '.join(added)}: the smaller model fixes these variances at 0, on the boundary "
            "of the parameter space, where the χ² p-value is conservative (for one variance "
            "the null distribution is an equal mixture of χ²(0) and χ²(1): half the p-value)",
            UserWarning,
            stacklevel=3,
        )


def anova(
    *models,
    names: list[str] | tuple[str, ...] | None = None,
    L=None,
    rhs=None,
    sandwich=False,
    bootstrap: int | None = None,
    seed=None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Likelihood-ratio tests of nested fits of the same data, as R's ``anova(m1, m2, ...)``,
    or with ``L`` a Wald test of linear hypotheses ``Lβ = rhs`` on one fit's fixed effects.

    Parameters
    ----------
    *models : MixedModelFit or GLMFit
        Two or more nested fits, in any order: the rows are sorted by the number of parameters
        (fits with as many keep their order) and each is tested against the row above. A
        :class:`GLMFit` serves as a model without random effects. For a Wald test, one fit.
    names : list or tuple of str, optional
        Row labels, one per model in the order given. By default the names of the caller's
        variables that hold the models, as in R; a model no variable holds is labelled by its
        formulas (``"y ~ sex * time, ~ 1 | id"``). A label that repeats one above it is
        numbered (``" (2)"``).
    L : array-like, pandas.DataFrame, pandas.Series or dict, optional
        Wald test of the model's fixed effects: the linear combinations, one per row. A 2-D
        array with one column per fixed effect (in the order of ``fixef()``), a 1-D array for a
        single row, or a DataFrame (or Series, or dict of name → value or list of values)
        whose columns are fixed-effect names; effects it does not name get 0.
    rhs : float or array-like, optional
        The hypothesised values of the Wald test, one per row of ``L`` (a scalar is
        repeated); 0 by default.
    sandwich : bool
        Wald test with the robust covariance (``vcov(sandwich=True)``) instead of
        ``vcov()``.
    bootstrap : int, optional
        Two models only: also the parametric bootstrap p-value from this many data sets
        simulated from the smaller model, to which both are refitted (from their estimates):
        ``(1 + #{LRT* ≥ LRT}) / (1 + B)`` with ``B`` the data sets whose refits converged
        (column ``p.boot``; the replicates are in ``table.attrs["bootstrap"]``, a
        ``BootstrapLRT``). Unlike the χ² p-value it is
        valid for variances tested at 0. The smallest possible value is ``1/(B + 1)``.
    seed : int, numpy.random.Generator or None
        With ``bootstrap``: the same seed gives the same p-value.
    progress : bool or None
        With ``bootstrap``: show a progress bar (tqdm); None shows it from 100 data sets on.

    Returns
    -------
    pandas.DataFrame
        Likelihood-ratio tests: one row per model, smallest first, with numeric columns
        ``AIC``, ``BIC``, ``log.Lik``, ``LRT`` (``2 Δlog L`` from the row above), ``df`` (the
        difference in the number of parameters) and ``p.value`` (χ²(df)); the first row's
        test columns are empty (NaN). With ``bootstrap``, a column ``p.boot``. It prints as
        ``format_anova`` does. Wald test: one row (``"L"``) with ``Chisq``, ``df`` (the rank of
        ``L``) and ``Pr(>|Chi|)``.

    Raises
    ------
    ValueError
        If two successive fits use different data or families, or are not nested (with
        several grouping factors, the smaller model's factors must be among the larger
        one's, grouping the rows alike). Different
        families are accepted where one is a special case of the other (Poisson within the
        negative binomial or a zero-inflated model, binomial within the zero-inflated
        binomial…); the test is then on the boundary and a warning says its p-value is
        conservative. With ``bootstrap``: if it is not a positive integer, or given with
        more or fewer than two models or with ``L``, or a model is one the bootstrap cannot
        refit (see ``glmm_ppl.postfit.bootstrap.bootstrap``).

    Warns
    -----
    UserWarning
        When a test adds random-effects variances (the χ² p-value is conservative on the
        boundary; not with ``bootstrap``, whose p-value is valid there), a fit did not converge
        or is penalized, or one of two mixed models is the Laplace approximation
        (``n_agq=1``, which crossed grouping factors always are) and the other adaptive
        quadrature with more points: their log-likelihoods then differ by their approximation
        errors too; fit both with the same ``n_agq`` (1 when one has crossed factors). The
        table is still given. With ``bootstrap``, when refits did not converge: their data
        sets are dropped, and the warning counts them.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> df = gp.load_vignette("binary")
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
    >>> fm2 = gp.mixed_model("y ~ sex * time", "~ time || id", df, "binomial")
    >>> table = gp.anova(fm2, fm1, gp.glm("y ~ sex * time", df, "binomial"))
    >>> table
                       AIC     BIC    log.Lik       LRT df  p.value
    y ~ sex * time  919.11  937.85  -455.5535
    fm1             759.04  772.07  -374.5197  162.0676  1  < 1e-04
    fm2             730.94  746.57  -359.4715   30.0965  1  < 1e-04
    >>> round(float(table.loc["fm1", "LRT"]), 2)
    162.07
    >>> gp.anova(fm1, L={"sexfemale": [1, 0], "sexfemale:time": [0, 1]}).round(4)
        Chisq  df  Pr(>|Chi|)
    L  5.0069   2      0.0818

    The parametric bootstrap (here with few data sets; use hundreds): no simulated LRT comes
    near the observed one, so ``p.boot`` is its smallest possible value, ``1/(B + 1)``.

    >>> m0 = gp.glm("y ~ sex * time", df, "binomial")
    >>> gp.anova(m0, fm1, bootstrap=20, seed=1)
           AIC     BIC    log.Lik       LRT df  p.value  p.boot
    m0  919.11  937.85  -455.5535
    fm1 759.04  772.07  -374.5197  162.0676  1  < 1e-04  0.0476
    parametric bootstrap: 20 data sets simulated from m0, 0 dropped (refits not converged)
    """
    if bootstrap is not None:
        bootstrap = check_nsim(bootstrap, "bootstrap")
        if L is not None:
            raise ValueError("bootstrap is an option of the likelihood-ratio test, not of L's")
        if len(models) != 2:
            raise ValueError(
                f"the parametric bootstrap (bootstrap=) compares two nested models, got "
                f"{len(models)}: test them two at a time"
            )
    elif seed is not None or progress is not None:
        raise ValueError("seed and progress are options of bootstrap=: give bootstrap as well")
    if L is not None:
        if len(models) != 1 or names is not None:
            raise ValueError(
                f"a Wald test (L) takes one model and no names, got {len(models)} model(s) and "
                f"names={names!r}"
            )
        return wald_test(models[0], L, rhs=rhs, sandwich=sandwich)
    if rhs is not None or sandwich:
        raise ValueError("rhs and sandwich are options of the Wald test: give L as well")
    if len(models) < 2:
        raise ValueError(
            f"anova needs two or more models to compare, or one model and L for a Wald test, "
            f"got {len(models)} model(s)"
        )
    described = [_describe(m) for m in models]
    if names is None:
        names = _caller_names(models, inspect.currentframe().f_back)
    else:
        names = _checked_names(names, len(models))
    order = sorted(range(len(models)), key=lambda i: described[i]["df"])
    fits = [models[i] for i in order]
    described = [described[i] for i in order]
    names = _unique([names[i] for i in order])
    for pair, (a, b) in zip(pairwise(names), pairwise(described), strict=True):
        if a["df"] == b["df"]:
            raise ValueError(
                f"{pair[0]} and {pair[1]} have the same number of parameters ({a['df']}); a "
                "likelihood-ratio test needs one model nested in the other"
            )
        try:
            _check_pair(a, b, pair)
        except ValueError as error:
            if len(models) == 2:
                raise
            raise ValueError(f"{pair[0]} against {pair[1]}: {error}") from None
    for pair, (a, b) in zip(pairwise(names), pairwise(described), strict=True):
        _warn_approximations(pair, a, b)
    if bootstrap is None:  # the bootstrap p-value is the remedy the warning points to
        _warn_boundary(names, described)
    for name, d in zip(names, described, strict=True):
        if not d["converged"]:
            warnings.warn(
                f"{name} did not converge: its log-likelihood, and the test, are unreliable",
                UserWarning,
                stacklevel=2,
            )
    if any(d["penalized"] for d in described):
        warnings.warn(
            "a penalized fit's log-likelihood includes the penalty: the likelihood-ratio test "
            "is only approximate",
            UserWarning,
            stacklevel=2,
        )
    loglik = np.array([m.loglik for m in fits], dtype=float)
    lrt = np.concatenate([[np.nan], 2.0 * np.diff(loglik)])
    df = np.diff([d["df"] for d in described])
    p = np.concatenate([[np.nan], stats.chi2.sf(np.maximum(lrt[1:], 0.0), df)])
    table = _AnovaTable(
        {
            "AIC": [m.aic for m in fits],
            "BIC": [m.bic for m in fits],
            "log.Lik": loglik,
            "LRT": lrt,
            "df": pd.array([pd.NA, *df.tolist()], dtype="Int64"),
            "p.value": p,
        },
        index=names,
    )
    if bootstrap is not None:
        test = bootstrap_lrt(*fits, bootstrap, seed=seed, progress=progress, names=names)
        table["p.boot"] = [np.nan, test.p_value]
        table.attrs["bootstrap"] = test
    return table


def format_anova(table: pd.DataFrame) -> str:
    """An :func:`anova` table as text, with p-values printed as in the fit summaries.

    Examples
    --------
    >>> t = pd.DataFrame({"AIC": [10.0, 8.0], "BIC": [11.0, 9.5], "log.Lik": [-3.0, -1.0],
    ...                   "LRT": [np.nan, 4.0], "df": pd.array([pd.NA, 1], dtype="Int64"),
    ...                   "p.value": [np.nan, 0.0455]}, index=["m0", "m1"])
    >>> print(format_anova(t))
          AIC     BIC  log.Lik    LRT df p.value
    m0  10.00   11.00  -3.0000
    m1   8.00    9.50  -1.0000 4.0000  1  0.0455
    """
    text = _formatted(table).to_string()
    test = table.attrs.get("bootstrap")
    if test is not None:
        text += (
            f"\nparametric bootstrap: {test.nsim} data sets simulated from {test.names[0]}, "
            f"{test.n_failed} dropped (refits not converged)"
        )
    return text


def _formatted(table: pd.DataFrame) -> pd.DataFrame:
    """The columns of an :func:`anova` table as the text :func:`format_anova` prints."""
    out = pd.DataFrame(index=table.index)
    for col in ("AIC", "BIC"):
        out[col] = table[col].map(lambda v: f"{v:.2f}")
    out["log.Lik"] = table["log.Lik"].map(lambda v: f"{v:.4f}")
    out["LRT"] = table["LRT"].map(lambda v: "" if np.isnan(v) else f"{v:.4f}")
    out["df"] = table["df"].map(lambda v: "" if pd.isna(v) else str(v))
    out["p.value"] = table["p.value"].map(format_pvalue)
    if "p.boot" in table:
        out["p.boot"] = table["p.boot"].map(format_pvalue)
    return out
