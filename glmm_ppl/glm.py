"""Generalized linear models without random effects: starting values and the null model of
likelihood-ratio tests (:func:`glm`).

Newton's method on ``β`` with step-halving, using the family's compiled derivatives; the extra
parameters ``φ`` (if any) are then fitted jointly with ``β`` by L-BFGS on ``(β, log φ)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from .design import _check_rank, _matrix, complete_rows, split_fixed
from .families import Family, get_family
from .pointwise import pointwise_derivatives
from .summary import wald_table

__all__ = ["glm", "GLMFit", "fit_glm_arrays"]


def fit_glm_arrays(
    X: np.ndarray, y: np.ndarray, family: Family, max_iter: int = 100, tol: float = 1e-10
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Maximum-likelihood GLM on arrays.

    Returns
    -------
    beta, phis, loglik, hessian
        ``hessian`` is the Hessian of the log-likelihood in ``β``.
    """
    kernel = pointwise_derivatives(family)
    y2 = np.ascontiguousarray(y, dtype=float)[:, None]
    mu0 = np.full(len(y), np.clip(np.mean(y), 1e-3, None))
    phis = np.asarray(family.initial_phis(y, mu0), dtype=float)

    def parts(beta, phis):
        out = kernel(y2, (X @ beta)[:, None], phis)
        return out[0][:, 0].sum(), out[1][:, 0], out[2][:, 0], out

    beta = np.zeros(X.shape[1])
    ll, d1, d2, _ = parts(beta, phis)
    for _ in range(max_iter):
        H = X.T @ (d2[:, None] * X)
        step = np.linalg.lstsq(-H, X.T @ d1, rcond=None)[0]
        t = 1.0
        for _ in range(40):
            ll_new, d1_new, d2_new, _ = parts(beta + t * step, phis)
            if ll_new >= ll - 1e-12 * abs(ll):
                break
            t /= 2
        beta, ll, d1, d2 = beta + t * step, ll_new, d1_new, d2_new
        if np.max(np.abs(t * step)) < tol:
            break
    if family.n_phis:
        p = X.shape[1]

        def negll(par):
            ll, d1, _, out = parts(par[:p], np.exp(par[p:]))
            g_phi = np.array([o[:, 0].sum() for o in out[3:]]) * np.exp(par[p:])
            return -ll, -np.concatenate([X.T @ d1, g_phi])

        res = optimize.minimize(negll, np.r_[beta, np.log(phis)], jac=True, method="L-BFGS-B")
        beta, phis = res.x[:p], np.exp(res.x[p:])
        ll, d1, d2, _ = parts(beta, phis)
    return beta, phis, float(ll), X.T @ (d2[:, None] * X)


@dataclass(frozen=True)
class GLMFit:
    """A fitted GLM without random effects (from :func:`glm`).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> m0 = gp.glm("y ~ time", gp.load_vignette("binary"), family="binomial")
    >>> m0.df, m0.summary().columns.tolist()
    (2, ['Estimate', 'Std.Err', 'z-value', 'p-value'])

    Attributes
    ----------
    loglik, aic, bic : float
        ``bic`` uses the number of observations, as R's ``glm``.
    df : int
        Number of estimated parameters.
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

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.df

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.nobs) * self.df

    def fixef(self) -> pd.Series:
        """Estimated coefficients."""
        return self.coef

    def summary(self) -> pd.DataFrame:
        """Coefficient table: estimate, standard error, z value and p-value."""
        return wald_table(self.coef, self.se.to_numpy())


def glm(fixed: str, data: pd.DataFrame, family="binomial") -> GLMFit:
    """Fit a generalized linear model without random effects by maximum likelihood.

    Used as the null model of a likelihood-ratio test against a mixed model.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> df = gp.load_vignette("binary")
    >>> m0 = gp.glm("y ~ sex * time", df, family="binomial")
    >>> round(m0.loglik, 4)
    -455.5535
    """
    family = get_family(family)
    response, rhs = split_fixed(fixed)
    data, _ = complete_rows(data, [rhs], [response], stacklevel=3)
    X, names, _ = _matrix(rhs, data, "fixed-effects")
    _check_rank(X, names)
    y = family.check_response(data[response], response)
    beta, phis, ll, H = fit_glm_arrays(X, y, family)
    se = np.sqrt(np.diag(np.linalg.inv(-H)))
    return GLMFit(
        coef=pd.Series(beta, index=names),
        se=pd.Series(se, index=names),
        phis=phis,
        loglik=ll,
        df=len(beta) + family.n_phis,
        nobs=len(y),
        family=family,
        fixed=fixed,
        y=y,
        rows=data.index.to_numpy(),
    )
