"""Wald tests of linear hypotheses ``L β = r`` on the fixed effects.

``W = (Lβ̂ − r)ᵀ (L V Lᵀ)⁻¹ (Lβ̂ − r)`` referred to ``χ²(rank L)``, with ``V`` the covariance
of the fixed effects (model-based, or the sandwich of :mod:`glmm_ppl.postfit.sandwich`), as
GLMMadaptive's ``anova(fit, L = ...)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .sandwich import sandwich_vcov

__all__ = ["wald_test"]


def _names_text(names) -> str:
    return ", ".join(map(repr, names))


def _contrasts(L, names: list[str]) -> np.ndarray:
    """``L`` as a 2-D float array with one column per fixed effect, in the order ``names``."""
    p = len(names)
    if isinstance(L, dict):
        try:
            L = pd.DataFrame({k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in L.items()})
        except ValueError as err:
            raise ValueError(
                f"L (a dict) must map names to numbers or equal-length rows: {err}"
            ) from None
    if isinstance(L, pd.Series):
        L = L.to_frame().T
    if isinstance(L, pd.DataFrame):
        unknown = [str(c) for c in L.columns if c not in names]
        if unknown:
            raise ValueError(
                f"unknown fixed effect(s) {_names_text(unknown)} in L; the fixed effects are "
                f"{_names_text(names)}"
            )
        if L.columns.duplicated().any():
            raise ValueError(f"L names a fixed effect twice: {_names_text(L.columns)}")
        try:
            L = L.reindex(columns=names, fill_value=0.0).to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise ValueError("L must hold numbers") from None
    else:
        try:
            L = np.asarray(L, dtype=float)
        except (TypeError, ValueError):
            raise ValueError("L must hold numbers") from None
        if L.ndim == 1:
            L = L[None, :]
        if L.ndim != 2:
            raise ValueError(f"L must be a row or a matrix (2-D), got {L.ndim} dimensions")
        if L.shape[1] != p:
            raise ValueError(
                f"L has {L.shape[1]} column(s) but the model has {p} fixed effect(s) "
                f"({_names_text(names)}): give one column per fixed effect, or name them "
                "(a DataFrame or dict keyed by fixed-effect name)"
            )
    if L.shape[0] == 0:
        raise ValueError("L has no rows: give at least one linear combination to test")
    if not np.all(np.isfinite(L)):
        raise ValueError("L must be finite")
    rank = np.linalg.matrix_rank(L)
    if rank < L.shape[0]:
        raise ValueError(
            f"L is rank deficient (rank {rank} < {L.shape[0]} rows): some rows are linear "
            "combinations of the others; drop the redundant rows"
        )
    return L


def wald_test(fit, L, rhs=None, sandwich: bool = False) -> pd.DataFrame:
    """Wald test of ``L β = rhs`` for the fixed effects.

    Parameters
    ----------
    fit : MixedModelFit
    L : array-like, pandas.DataFrame, pandas.Series or dict
        The linear combinations, one per row: a 2-D array with one column per fixed effect
        (in the order of ``fit.fixef()``), a 1-D array for a single row, or a DataFrame (or
        Series, or dict of name → value or list of values) whose columns are fixed-effect
        names; effects it does not name get 0.
    rhs : float or array-like, optional
        The hypothesised values, one per row of ``L`` (a scalar is repeated); 0 by default.
    sandwich : bool
        Use the robust covariance :func:`glmm_ppl.postfit.sandwich.sandwich_vcov` instead of
        ``fit.vcov()``.

    Returns
    -------
    pandas.DataFrame
        One row (``"L"``) with ``Chisq``, ``df`` (the rank of ``L``) and ``Pr(>|Chi|)``.

    Raises
    ------
    ValueError
        When ``L`` has the wrong number of columns, names unknown effects, is rank deficient
        or is not numeric, or ``rhs`` does not have one value per row.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.postfit.wald import wald_test
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> t = wald_test(fm1, {"sexfemale": [1, 0], "sexfemale:time": [0, 1]})
    >>> t.columns.tolist(), int(t.loc["L", "df"])
    (['Chisq', 'df', 'Pr(>|Chi|)'], 2)
    """
    names = list(fit.design.fixed_names)
    L = _contrasts(L, names)
    r = np.zeros(L.shape[0]) if rhs is None else np.asarray(rhs, dtype=float).reshape(-1)
    if r.size == 1:
        r = np.repeat(r, L.shape[0])
    if r.shape != (L.shape[0],):
        raise ValueError(f"rhs must have one value per row of L ({L.shape[0]}), got {r.size}")
    if sandwich:
        V = sandwich_vcov(fit, "fixed-effects").to_numpy()
    else:
        V = fit.vcov("fixed-effects").to_numpy()
    diff = L @ fit.fixef().to_numpy() - r
    middle = L @ V @ L.T
    try:
        W = float(diff @ np.linalg.solve(middle, diff))
    except np.linalg.LinAlgError:
        raise ValueError(
            "L V Lᵀ is singular: the covariance of these combinations cannot be inverted"
        ) from None
    df = L.shape[0]
    return pd.DataFrame(
        {"Chisq": [W], "df": [df], "Pr(>|Chi|)": [stats.chi2.sf(W, df)]}, index=["L"]
    )
