"""Generalized linear models without random effects (:func:`glm`): the null model of
likelihood-ratio tests, fitted by :func:`glmm_ppl.fitting.glm.fit_glm_arrays`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..design.matrices import (
    check_rank,
    complete_rows,
    model_matrix_of,
    offset_values,
    split_fixed,
    split_offsets,
)
from ..design.response import aux_values, bind_family, computed_columns, parse_response
from ..design.row_weights import add_row_weights, read_row_weights
from ..design.thresholds import drop_intercept
from ..families import Family, get_family
from ..fitting.glm import fit_glm_arrays
from .summary import wald_table

__all__ = ["glm", "GLMFit"]


@dataclass(frozen=True)
class GLMFit:
    """A fitted GLM without random effects (from :func:`glm`).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> m0 = gp.glm("y ~ time", gp.load_vignette("binary"), family="binomial")
    >>> m0.df, m0.summary().columns.tolist()
    (2, ['Estimate', 'Std.Err', 'z-value', 'p-value'])
    >>> m0
    <GLMFit y ~ time, binomial(link='logit'): logLik -465.6662, 800 observations>

    Attributes
    ----------
    coef, se : pandas.Series
        Estimates and standard errors, named by the design columns.
    phis : ndarray
        The family's extra parameters (natural scale); empty when it has none.
    loglik : float
        Log-likelihood at the estimates.
    df : int
        Number of estimated parameters.
    nobs : int
        Number of observations used (rows of row weight 0 are not counted).
    row_weights : ndarray or None
        The rows' weights (``row_weights=``), None without them.
    family : Family
        The family of the response.
    fixed : str
        The formula.
    """

    coef: pd.Series
    se: pd.Series
    phis: np.ndarray
    loglik: float
    df: int
    nobs: int
    family: Family
    fixed: str
    y: np.ndarray
    rows: np.ndarray
    offset: np.ndarray | None = None
    row_weights: np.ndarray | None = None

    def __repr__(self) -> str:
        return (
            f"<GLMFit {self.fixed}, {self.family!r}: logLik {self.loglik:.4f}, "
            f"{self.nobs} observations>"
        )

    @property
    def aic(self) -> float:
        """Akaike's information criterion ``−2 log L + 2 df``.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> round(gp.glm("y ~ sex * time", gp.load_vignette("binary"), "binomial").aic, 2)
        919.11
        """
        return -2.0 * self.loglik + 2.0 * self.df

    @property
    def bic(self) -> float:
        """Bayesian information criterion ``−2 log L + df log n`` with ``n`` the number of
        observations, as R's ``glm`` (mixed models use the number of groups).

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> m0 = gp.glm("y ~ sex * time", gp.load_vignette("binary"), "binomial")
        >>> round(float(m0.bic), 2)
        937.85
        """
        return float(-2.0 * self.loglik + np.log(self.nobs) * self.df)

    def fixef(self) -> pd.Series:
        """Estimated coefficients, named by the design columns.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> m0 = gp.glm("y ~ sex * time", gp.load_vignette("binary"), "binomial")
        >>> m0.fixef().round(3).tolist()
        [-1.439, -1.102, 0.159, 0.052]
        """
        return self.coef

    def summary(self) -> pd.DataFrame:
        """Coefficient table: estimate, standard error, z value and p-value.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> m0 = gp.glm("y ~ sex * time", gp.load_vignette("binary"), "binomial")
        >>> m0.summary().round(3)
                        Estimate  Std.Err  z-value  p-value
        (Intercept)       -1.439    0.201   -7.155    0.000
        sexfemale         -1.102    0.343   -3.216    0.001
        time               0.159    0.024    6.557    0.000
        sexfemale:time     0.052    0.037    1.386    0.166
        """
        return wald_table(self.coef, self.se.to_numpy())


def glm(
    fixed: str,
    data: pd.DataFrame,
    family="binomial",
    *,
    offset: str | None = None,
    row_weights=None,
) -> GLMFit:
    """Fit a generalized linear model without random effects by maximum likelihood.

    Used as the null model of a likelihood-ratio test against a mixed model.

    Parameters
    ----------
    fixed : str
        ``"y ~ terms"`` as in :func:`glmm_ppl.mixed_model` (``offset(...)`` terms,
        ``p(successes, trials)`` and ``cbind(...)`` responses included).
    data : pandas.DataFrame
    family : str or Family
        A family without a zero part.
    offset : str, optional
        Column added to the linear predictor.
    row_weights : str, pandas.Series or array-like, optional
        Non-negative weights multiplying the rows' log densities, as in
        :func:`glmm_ppl.mixed_model` (the null model of a test of a row-weighted mixed model
        needs the same weights).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> df = gp.load_vignette("binary")
    >>> m0 = gp.glm("y ~ sex * time", df, family="binomial")
    >>> round(m0.loglik, 4)
    -455.5535
    """
    family = get_family(family)
    lhs, rhs = split_fixed(fixed)
    response, second, form = parse_response(lhs)
    rhs, offsets = split_offsets(rhs)
    family, aux_columns = bind_family(family, second, form, None, None)
    data = computed_columns(data, aux_columns)
    if family.zero_part:
        raise ValueError(f"glm does not fit zero-part families such as {family.name}")
    columns = [response] + [c for c, _ in aux_columns.values()]
    columns += [] if offset is None else [offset]
    data, weight_column = read_row_weights(data, row_weights)
    columns += [weight_column] if weight_column else []
    data, _ = complete_rows(data, [rhs, *[f"~ {e}" for e in offsets]], columns, stacklevel=3)
    X, names, _ = model_matrix_of(rhs, data, "fixed-effects")
    family = family.bind_response(data[response], response)
    if family.intercept_free:  # thresholds take the intercept's place
        X, names = drop_intercept(X, names, rhs)
    check_rank(X, names)
    aux = aux_values(family, aux_columns, data, response)
    y = family.check_response(data[response], response, **aux)
    one = np.zeros(len(y), dtype=np.int64)  # a single group: the total weight is checked
    family, aux = add_row_weights(family, aux, data, weight_column, one, [None], "(all rows)")
    Y = np.column_stack([y] + [aux[n] for n in family.aux_names])
    total = offset_values(offsets, data, "fixed")
    if offset is not None:
        extra = data[offset].to_numpy(dtype=float)
        total = extra if total is None else total + extra
    beta, phis, ll, H = fit_glm_arrays([X], Y, family, None if total is None else total[:, None])
    se = np.sqrt(np.diag(np.linalg.inv(-H)))[: len(beta)]  # β's, with log φ estimated too
    return GLMFit(
        coef=pd.Series(beta, index=names),
        se=pd.Series(se, index=names),
        phis=phis,
        loglik=ll,
        df=len(beta) + family.n_phis,
        nobs=int(np.count_nonzero(aux["row_weight"])) if "row_weight" in aux else len(y),
        family=family,
        fixed=fixed,
        y=y,
        rows=data.index.to_numpy(),
        offset=None if total is None else total,
        row_weights=aux.get("row_weight"),
    )
