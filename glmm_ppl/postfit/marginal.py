"""Fixed effects with a population-averaged (marginal) interpretation.

The coefficients ``β`` of a generalized linear mixed model are conditional on the random
effects: they describe the change of ``g(E[y | b])`` for a given group. With a non-identity
link the population-averaged mean ``E[y] = E_b[g⁻¹(xᵀβ + zᵀb)]`` is not ``g⁻¹(xᵀβ)``, and
the coefficients that describe it are different (attenuated towards zero for a logit link).
:func:`marginal_coefs` computes them as GLMMadaptive's ``marginal_coefs`` does (Hedeker,
du Toit, Demirtas & Gibbons, 2018), with Gauss–Hermite quadrature in place of Monte Carlo
integration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..design.newdata import model_arrays
from ..design.row_weights import row_weights_of
from ..engine.covariance import theta_to_D
from ..engine.quadrature import product_rule

__all__ = ["marginal_coefs", "marginal_fit"]

# open intervals inside which each link is finite; the marginal means are clipped into them
_EPS = 1e-12
_DOMAINS = {
    "logit": (_EPS, 1.0 - _EPS),
    "probit": (_EPS, 1.0 - _EPS),
    "cloglog": (_EPS, 1.0 - _EPS),
    "log": (1e-300, np.inf),
}
# quadrature nodes times rows evaluated at once (bounds the memory of large data)
_CHUNK = 2_000_000


def _default_n_agq(q: int) -> int:
    return 15 if q <= 2 else 7


def _check_n_agq(n_agq) -> int:
    if isinstance(n_agq, bool) or not isinstance(n_agq, (int, np.integer)) or n_agq < 1:
        raise ValueError(f"n_agq must be a positive integer, got {n_agq!r}")
    return int(n_agq)


def _sqrt_cov(D: np.ndarray) -> np.ndarray:
    """A square root ``L`` of ``D = L Lᵀ``: the Cholesky factor, or from the eigenvalues (clipped
    at zero) when ``D`` is numerically singular."""
    try:
        return np.linalg.cholesky(D)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(D)
        return vectors * np.sqrt(np.clip(values, 0.0, None))


def _marginal_means(eta0, Z, D, inverse, n_agq: int) -> np.ndarray:
    """``μ_i = ∫ g⁻¹(η⁰_i + z_iᵀ b) N(b; 0, D) db`` by the product Gauss–Hermite rule.

    Parameters
    ----------
    eta0 : ndarray (N,)
        Fixed part of the linear predictor, offsets included.
    Z : ndarray (N, q)
        Random-effects design.
    D : ndarray (q, q)
        Covariance matrix of ``b``.
    inverse : callable
        The inverse link (numpy).
    n_agq : int
        Points per random effect.
    """
    eta0 = np.asarray(eta0, dtype=float)
    Z = np.asarray(Z, dtype=float).reshape(len(eta0), -1)
    q = Z.shape[1]
    if q == 0:
        return inverse(eta0)
    nodes, log_w = product_rule(n_agq, q)
    b = nodes @ _sqrt_cov(np.asarray(D, dtype=float)).T  # (K, q): b_k = L z_k
    w = np.exp(log_w)
    out = np.empty(len(eta0))
    step = max(1, _CHUNK // len(w))
    for start in range(0, len(eta0), step):
        s = slice(start, start + step)
        out[s] = inverse(eta0[s, None] + Z[s] @ b.T) @ w
    return out


class _MarginalProblem:
    """The fitted data and the map from ``(β, θ_D)`` to the marginal coefficients."""

    def __init__(self, fit, n_agq: int | None):
        design = fit.design
        arrays = model_arrays(design)
        self.X = np.asarray(arrays.X, dtype=float)
        self.offset = np.asarray(arrays.offset, dtype=float)[:, 0]
        self.q_main = design.q_main
        self.Z = np.asarray(arrays.Z, dtype=float)[:, 0, : self.q_main]
        self.q, self.diagonal = design.q, design.diagonal
        self.link = fit.family.link
        self.n_agq = _default_n_agq(self.q_main) if n_agq is None else _check_n_agq(n_agq)
        names = list(fit.names)
        self.fixed_names = list(fit.vcov("fixed-effects").index)
        self.D_names = list(fit.vcov("var-cov").index)
        self.positions = [names.index(n) for n in self.fixed_names + self.D_names]
        self.p = len(self.fixed_names)
        self.theta = np.asarray(fit.theta, dtype=float)[self.positions]
        self.w = row_weights_of(design)  # the rows' frequency weights (ones without)
        self.gram = self.X.T @ (self.w[:, None] * self.X)

    def coefs(self, theta: np.ndarray) -> np.ndarray:
        """``β_M`` at ``θ = (β, θ_D)``."""
        beta, theta_D = theta[: self.p], theta[self.p :]
        D = theta_to_D(theta_D, self.q, self.diagonal)[: self.q_main, : self.q_main]
        eta0 = self.X @ beta + self.offset
        mu = _marginal_means(eta0, self.Z, D, self.link.inverse, self.n_agq)
        low, high = _DOMAINS.get(self.link.name, (-np.inf, np.inf))
        eta_m = self.link.link(np.clip(mu, low, high)) - self.offset
        return np.linalg.solve(self.gram, self.X.T @ (self.w * eta_m))

    def jacobian(self, rel_step: float = 1e-5) -> np.ndarray:
        """``∂β_M/∂θ`` by central differences."""
        theta = self.theta
        cols = []
        for j in range(len(theta)):
            h = rel_step * max(1.0, abs(theta[j]))
            up, down = theta.copy(), theta.copy()
            up[j] += h
            down[j] -= h
            cols.append((self.coefs(up) - self.coefs(down)) / (2.0 * h))
        return np.column_stack(cols)


def marginal_fit(fit, std_errors: bool, n_agq: int | None):
    """``(names, β_M, V_M or None)``."""
    if fit.family.categories:
        raise ValueError(
            f"marginal coefficients are not defined for the {fit.family.name} family (its "
            "categories' probabilities are not the inverse link of one linear predictor); "
            "predict(newdata, type_pred='response', type='marginal') gives the marginal "
            "category probabilities"
        )
    problem = _MarginalProblem(fit, n_agq)
    beta_m = problem.coefs(problem.theta)
    if not std_errors:
        return problem.fixed_names, beta_m, None
    V_all = np.asarray(fit.vcov("all"), dtype=float)
    V = V_all[np.ix_(problem.positions, problem.positions)]
    J = problem.jacobian()
    V_m = J @ V @ J.T
    return problem.fixed_names, beta_m, 0.5 * (V_m + V_m.T)


def marginal_coefs(fit, std_errors: bool = False, n_agq: int | None = None) -> pd.DataFrame:
    """Fixed effects with a marginal (population-averaged) interpretation.

    For every row ``i`` of the fitted data the marginal mean integrates the conditional mean
    over the random effects,

    .. math::

        \\mu_i = \\int g^{-1}(x_i^\\top \\beta + o_i + z_i^\\top b)\\, N(b; 0, D)\\, db
              \\approx \\sum_k w_k\\, g^{-1}(x_i^\\top \\beta + o_i + z_i^\\top L u_k),

    with ``D = L Lᵀ``, ``o_i`` the offset and ``(u_k, w_k)`` the product Gauss–Hermite rule
    for the standard normal (``n_agq`` points per random effect). The marginal coefficients
    are the least-squares fit of the link of these means on the fixed-effects design,

    .. math::

        \\beta_M = (X^\\top X)^{-1} X^\\top \\{g(\\mu) - o\\},

    GLMMadaptive's definition (Hedeker, du Toit, Demirtas & Gibbons, 2018, *Biometrics* 74,
    354–361); GLMMadaptive integrates by Monte Carlo, here the rule is exact to quadrature
    error. With row weights (``row_weights=``) the least squares are weighted by them, as
    for the data with each row repeated by its weight. ``μ`` is clipped into the domain of
    the link (``[1e-12, 1 − 1e-12]`` for the logit, probit and cloglog links, at least
    ``1e-300`` for the log link) before ``g`` is applied.

    Standard errors come from the delta method: ``V_M = J V Jᵀ`` with ``V`` the covariance
    matrix of the fixed effects and the parameters of ``D`` (``fit.vcov("all")``) and
    ``J = ∂β_M/∂θ`` by central differences.

    For zero-inflated and hurdle families only the main part enters: ``μ`` is the mean of the
    main part's inverse link (its random effects only), without the zero part or the
    truncation. For an identity link ``β_M = β``.

    Parameters
    ----------
    fit : MixedModelFit
    std_errors : bool
        Add the columns ``"Std.Err"``, ``"z-value"`` and ``"p-value"`` (Wald test of zero).
    n_agq : int, optional
        Quadrature points per random effect of the main part; 15 with at most two random
        effects, else 7.

    Returns
    -------
    pandas.DataFrame
        Indexed by the fixed-effect names, with the column ``"Estimate"`` (and the standard
        error columns). With ``std_errors=True`` its ``attrs["vcov"]`` holds ``V_M`` as a
        DataFrame.

    Raises
    ------
    TypeError
        If ``std_errors`` is not a bool.
    ValueError
        For an invalid ``n_agq``, or (with standard errors) when the fit has no covariance
        matrix (singular Hessian).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.postfit.marginal import marginal_coefs
    >>> df = gp.load_vignette("binary")
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
    >>> mc = marginal_coefs(fm1, std_errors=True)
    >>> mc.columns.tolist()
    ['Estimate', 'Std.Err', 'z-value', 'p-value']
    >>> mc["Estimate"].round(2).tolist()
    [-1.59, -0.89, 0.17, 0.03]
    """
    if not isinstance(std_errors, (bool, np.bool_)):
        raise TypeError(f"std_errors must be True or False, got {type(std_errors).__name__}")
    names, beta_m, V_m = marginal_fit(fit, bool(std_errors), n_agq)
    out = pd.DataFrame({"Estimate": beta_m}, index=names)
    if V_m is not None:
        se = np.sqrt(np.diag(V_m))
        z = beta_m / se
        out["Std.Err"] = se
        out["z-value"] = z
        out["p-value"] = 2.0 * stats.norm.sf(np.abs(z))
        out.attrs["vcov"] = pd.DataFrame(V_m, index=names, columns=names)
    return out
