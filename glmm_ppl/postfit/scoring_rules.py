"""Proper scoring rules of a fitted model's predictive distributions, for discrete responses.

For observation ``j`` with response ``y_j`` and subject-specific predictive pmf ``p_j(k)`` (the
family's pmf at the linear predictor ``Xβ̂ + Z b̂ + offset``, ``b̂`` the empirical Bayes modes):

- logarithmic: ``log p_j(y_j)``;
- quadratic: ``2 p_j(y_j) − Σ_k p_j(k)²``;
- spherical: ``p_j(y_j) / sqrt(Σ_k p_j(k)²)``.

All three are positively oriented (higher is better), as in GLMMadaptive's ``scoring_rules``.
The pmf is evaluated through the family's compiled log density
(:func:`glmm_ppl.engine.pointwise.pointwise_derivatives`) on a table of the support.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..design.newdata import ModelArrays, model_arrays, response_columns
from ..engine.pointwise import pointwise_derivatives
from ..families import FAMILIES, binomial, zi_binomial
from .factors import fitted_effects

__all__ = ["scoring_rules"]

_BINARY = (binomial, zi_binomial)  # 0/1 responses unless they count successes out of trials
_TABLE_SIZE = 1 << 20  # rows × support points evaluated at once
_MISSING_MASS = 1e-6  # probability beyond max_count that is reported


def _check_discrete(family) -> None:
    if not family.discrete:
        names = ", ".join(name for name, cls in FAMILIES.items() if cls.discrete)
        raise ValueError(
            f"scoring_rules: the {family.name} family is not discrete; scoring rules are for "
            f"discrete families ({names})"
        )


def _arrays(fit, newdata) -> ModelArrays:
    """The model's arrays on ``newdata``, which must hold the response."""
    arrays = model_arrays(fit.design, newdata)
    if arrays.y is None:
        raise ValueError(
            "scoring_rules: the response is needed; newdata must have "
            f"{response_columns(fit.design, arrays)} without missing values"
        )
    return arrays


def _linear_predictor(fit, arrays: ModelArrays) -> np.ndarray:
    """``(N, E)``: fixed part plus offsets plus ``Z b̂`` (``b = 0`` for groups the fit did not
    see)."""
    beta = fit.fixef().to_numpy()
    gamma = fit.fixef("zero_part").to_numpy() if fit.design.X_zi is not None else None
    eta = arrays.fixed_part(beta, gamma)
    return eta + np.einsum("neq,nq->ne", arrays.Z, fitted_effects(fit, arrays))


def _support_limits(family, Y: np.ndarray, max_count) -> np.ndarray:
    """The largest support point of each row: its trials, 1 for 0/1 responses, else
    ``max_count``."""
    if family.with_trials:
        return Y[:, 1 + family.aux_names.index("trials")].astype(np.int64)
    if family.categories:  # ordinal: the category codes 1 … K
        return np.full(len(Y), len(family.categories), dtype=np.int64)
    if isinstance(family, _BINARY):
        return np.ones(len(Y), dtype=np.int64)
    if max_count is None:
        max_count = max(100, 3 * int(np.max(Y[:, 0])))
    elif isinstance(max_count, bool) or not isinstance(max_count, (int, np.integer)):
        raise ValueError(f"max_count must be a non-negative integer, got {max_count!r}")
    elif max_count < 0:
        raise ValueError(f"max_count must be a non-negative integer, got {max_count}")
    return np.full(len(Y), int(max_count), dtype=np.int64)


def _pmf_chunks(family, Y: np.ndarray, eta: np.ndarray, phis: np.ndarray, limits: np.ndarray):
    """Yield ``(rows, pmf)``: ``pmf[i, k] = p(k)`` for ``k = 0..max(limits)`` of the rows
    ``rows`` (a slice), zero beyond each row's limit; the table is evaluated by the family's
    compiled log density a block of rows at a time."""
    kernel = pointwise_derivatives(family)
    width = int(limits.max()) + 1 if len(limits) else 1
    k = np.arange(width, dtype=float)
    step = max(1, _TABLE_SIZE // width)
    for start in range(0, len(Y), step):
        rows = slice(start, min(start + step, len(Y)))
        n = len(Y[rows])
        inside = (k[None, :] <= limits[rows, None]) & (k[None, :] >= family.support_min)
        Ytab = np.repeat(Y[rows], width, axis=0)
        Ytab[:, 0] = np.minimum(k[None, :], limits[rows, None]).ravel()
        eta_tab = np.repeat(eta[rows], width, axis=0)[:, None, :]
        lp = kernel(Ytab, eta_tab, phis)[0].reshape(n, width)
        yield rows, np.where(inside, np.exp(lp), 0.0)


def _predictive_pmf(fit, newdata: pd.DataFrame | None = None, max_count: int | None = None):
    """The subject-specific predictive pmf of every row over its support table.

    Returns
    -------
    pandas.DataFrame
        One row per data row, one column per support point ``k`` (zero beyond a row's
        trials).
    """
    family = fit.family
    _check_discrete(family)
    arrays = _arrays(fit, newdata)
    eta = _linear_predictor(fit, arrays)
    limits = _support_limits(family, arrays.y, max_count)
    phis = np.exp(fit.theta[fit.layout.blocks["extra"]])  # the family makes them per row
    pmf = np.concatenate([p for _, p in _pmf_chunks(family, arrays.y, eta, phis, limits)])
    return pd.DataFrame(pmf, index=arrays.rows, columns=pd.RangeIndex(pmf.shape[1], name="k"))


def scoring_rules(fit, newdata: pd.DataFrame | None = None, max_count: int | None = None):
    """Logarithmic, quadratic and spherical scores of each observation (higher is better).

    With ``p(k)`` the subject-specific predictive pmf of an observation and ``y`` its
    response: logarithmic ``log p(y)``, quadratic ``2 p(y) − Σ_k p(k)²`` and spherical
    ``p(y) / sqrt(Σ_k p(k)²)``, the sums over the support (as GLMMadaptive's
    ``scoring_rules``). The pmf is the family's at the linear predictor
    ``Xβ̂ + Z b̂ + offset`` with ``b̂`` the fit's empirical Bayes modes for the groups the fit
    knows. Rows of groups the fit did not see (or of newdata without the grouping column) get
    ``b = 0``, the prediction of a typical group; the random effects are not re-estimated
    from ``newdata``.

    Parameters
    ----------
    fit : MixedModelFit
        A fit of a discrete family: binomial, poisson, negative_binomial, zi_poisson,
        zi_negative_binomial, zi_binomial, hurdle_poisson, hurdle_negative_binomial,
        beta_binomial, or a user-written family with ``discrete = True``.
    newdata : pandas.DataFrame, optional
        Data to score, with the response (and trials, for a count of successes); the fitted
        data by default.
    max_count : int, optional
        Largest count of the support of count families (Poisson, negative binomial and their
        zero-inflated and hurdle versions); ``max(100, 3 × the largest y scored)`` by default.
        The support is ``0..trials`` for a count of successes and ``0..1`` for 0/1 responses.
        ``log p(y)`` is exact whatever the support; the sums of ``p(k)²`` leave out the
        counts above ``max_count``.

    Returns
    -------
    pandas.DataFrame
        Columns ``id`` (the group), ``logarithmic``, ``quadratic`` and ``spherical``; indexed
        by the data rows, in the order of the fit (rows sorted by group) for the fitted data
        and in the order of ``newdata`` otherwise.

    Raises
    ------
    ValueError
        For a family that is not discrete, ``newdata`` without the response, or a
        ``max_count`` that is not a non-negative integer.

    Warns
    -----
    UserWarning
        When more than 1e-6 of some row's probability lies beyond ``max_count`` (the
        spherical score is NaN for a row with none of it at or below ``max_count``).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.postfit.scoring_rules import scoring_rules
    >>> fit = gp.mixed_model("y ~ sex * time", "~ 1 | id", gp.load_vignette("binary"),
    ...                      "binomial")
    >>> scores = scoring_rules(fit)
    >>> scores.columns.tolist()
    ['id', 'logarithmic', 'quadratic', 'spherical']
    >>> bool((scores["quadratic"] <= 1).all() and (scores["spherical"] <= 1).all())
    True
    """
    family = fit.family
    _check_discrete(family)
    arrays = _arrays(fit, newdata)
    Y = arrays.y
    eta = _linear_predictor(fit, arrays)
    phis = np.exp(fit.theta[fit.layout.blocks["extra"]])  # the family makes them per row
    limits = _support_limits(family, Y, max_count)
    log_py = pointwise_derivatives(family)(Y, eta[:, None, :], phis)[0][:, 0]
    py = np.exp(log_py)
    sum_sq = np.empty(len(Y))
    missing = np.empty(len(Y))
    for rows, pmf in _pmf_chunks(family, Y, eta, phis, limits):
        sum_sq[rows] = np.sum(pmf**2, axis=1)
        missing[rows] = 1.0 - np.sum(pmf, axis=1)
    if not (family.with_trials or isinstance(family, _BINARY)) and np.max(missing) > _MISSING_MASS:
        warnings.warn(
            f"scoring_rules: a row has {np.max(missing):.3g} of its predictive probability "
            f"above max_count = {int(limits[0])}; the quadratic and spherical scores leave "
            "it out (give a larger max_count)",
            UserWarning,
            stacklevel=2,
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        spherical = np.where(sum_sq > 0, py / np.sqrt(sum_sq), np.nan)
    return pd.DataFrame(
        {
            "id": arrays.groups,
            "logarithmic": log_py,
            "quadratic": 2.0 * py - sum_sq,
            "spherical": spherical,
        },
        index=arrays.rows,
    )
