"""Families with extra parameters (``phi_names``), through a test-only Gaussian family.

The path ``φ`` takes (the point function's ``∂ℓ/∂φ``, the engine's ``grad_phis``, the Op's
third gradient, ``log φ`` in ``θ``, ``phis``/``vcov("extra")``/``confint("extra")``/summary)
is tested with the linear mixed model, whose marginal likelihood is known in closed form: per
group
``y_i ~ N(X_i β, Z_i D Z_iᵀ + σ² I)``.

Why AGQ is exact here: with a Gaussian response and identity link ``h_i(b)`` is a quadratic in
``b``, so once the nodes are centred at the mode ``b̂_i`` and scaled by ``C_i`` with
``C_i C_iᵀ = (−∇²h_i)⁻¹`` we have ``h_i(b̂_i + C_i z) = h_i(b̂_i) − ½|z|²`` exactly, every term of
the rule's sum is ``w_k e^{h_i(b̂_i)} (2π)^{q/2}`` and the rule returns the integral for any
number of points (even 1, the Laplace approximation) up to rounding. The tests check the
premise (modes and curvature equal the analytic posterior mean and covariance) and that the
comparison is sensitive (nodes not centred at the mode give a visibly different value).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import optimize, stats

import glmm_ppl as gp
from glmm_ppl.engine.agq import AGQ
from glmm_ppl.engine.ops import AGQLogLik
from glmm_ppl.families import Family

_LOG_2PI = float(np.log(2.0 * np.pi))
# NumPy linker: no C compilation for the few graph nodes around the Op (as glmm_ppl.fitting.graph)
_MODE = pytensor.compile.mode.Mode(linker="py", optimizer="fast_run")


class gaussian(Family):
    """Normal response, identity link, extra parameter the residual standard deviation."""

    name = "gaussian"
    links = ("identity",)
    phi_names = ("sd",)

    def logp(self, y, eta, phis):
        sd = phis[0]
        return -0.5 * _LOG_2PI - pt.log(sd) - 0.5 * ((y - eta) / sd) ** 2

    def check_response(self, y: pd.Series, column: str) -> np.ndarray:
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise ValueError(f"gaussian: response column {column!r} must be numeric, got {y.dtype}")
        values = y.to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            raise self._not_allowed("gaussian", column, "finite numbers", bad, values)
        return values

    def initial_phis(self, y, mu):
        return np.array([np.std(y - mu)])

    def simulate(self, eta, phis, rng):
        return rng.normal(eta, phis[0])


# ---- the exact marginal likelihood of the linear mixed model -------------------------------
def exact_per_group(y, X, Z, starts, beta, D, sd) -> np.ndarray:
    """``log N(y_i; X_i β, Z_i D Z_iᵀ + σ² I)`` per group, by scipy."""
    out = np.empty(len(starts) - 1)
    for i in range(len(starts) - 1):
        s = slice(starts[i], starts[i + 1])
        cov = Z[s] @ D @ Z[s].T + sd**2 * np.eye(s.stop - s.start)
        out[i] = stats.multivariate_normal(X[s] @ beta, cov).logpdf(y[s])
    return out


def exact_posterior(y, X, Z, starts, beta, D, sd):
    """Posterior mean and covariance of each ``b_i`` (conjugate normal)."""
    Dinv = np.linalg.inv(D)
    means, covs = [], []
    for i in range(len(starts) - 1):
        s = slice(starts[i], starts[i + 1])
        V = np.linalg.inv(Z[s].T @ Z[s] / sd**2 + Dinv)
        means.append(V @ Z[s].T @ (y[s] - X[s] @ beta) / sd**2)
        covs.append(V)
    return np.array(means), np.array(covs)


def simulate_unbalanced(q: int, seed: int):
    """60 groups of 1 to 8 rows, X = [1, t], Z = X[:, :q]."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, size=60)
    starts = np.r_[0, np.cumsum(sizes)]
    n = starts[-1]
    t = rng.uniform(0.0, 3.0, n)
    X = np.column_stack([np.ones(n), t])
    Z = X[:, :q].copy()
    beta = np.array([1.0, -0.4])
    D = np.array([[0.7, -0.1], [-0.1, 0.2]])[:q, :q]
    sd = 0.9
    b = rng.multivariate_normal(np.zeros(q), D, size=len(sizes))
    y = gaussian().simulate(X @ beta + np.sum(Z * np.repeat(b, sizes, axis=0), axis=1), [sd], rng)
    return y, X, Z, starts, beta, D, sd


# ---- a. the AGQ value is the exact marginal likelihood --------------------------------------
@pytest.mark.parametrize("q", [1, 2])
@pytest.mark.parametrize("n_agq", [1, 3, 11])
def test_loglik_equals_exact_lmm(q, n_agq):
    y, X, Z, starts, beta, D, sd = simulate_unbalanced(q, seed=11 + q)
    # evaluate away from the simulation values (any parameters give an exact Gaussian integral)
    beta_e, D_e, sd_e = beta + np.array([0.1, 0.05]), 1.2 * D, 1.1 * sd
    engine = AGQ(y, Z, starts, gaussian(), n_agq)
    res = engine.evaluate(X @ beta_e, D_e, np.array([sd_e]))
    exact = exact_per_group(y, X, Z, starts, beta_e, D_e, sd_e)
    # the premise: nodes centred at the exact mode, scaled by the exact posterior covariance.
    # Newton lands on the mode of a quadratic in one step; what is left is rounding of
    # O(1e-16 × condition number), so 1e-10 is loose.
    mean, cov = exact_posterior(y, X, Z, starts, beta_e, D_e, sd_e)
    np.testing.assert_allclose(engine.modes, mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(engine.posterior_covariance(), cov, rtol=1e-10, atol=1e-14)
    # exact for any number of points up to rounding: per-group values are O(1-10) and come
    # from sums of ≤ 8 terms and ≤ 11² exponentials, errors O(1e-14) relative, so rtol 1e-10
    np.testing.assert_allclose(res.per_group, exact, rtol=1e-10)
    np.testing.assert_allclose(res.loglik, exact.sum(), rtol=1e-10)


@pytest.mark.parametrize("q", [1, 2])
def test_uncentred_nodes_are_not_exact(q):
    """The sensitivity of the check above: the same rule with nodes left at b = 0 and unit
    scale (not adapted) misses the integral by far more than 1e-10."""
    y, X, Z, starts, beta, D, sd = simulate_unbalanced(q, seed=11 + q)
    engine = AGQ(y, Z, starts, gaussian(), 3)
    engine.recenter = False  # modes 0, C = I
    res = engine.evaluate(X @ beta, D, np.array([sd]))
    exact = exact_per_group(y, X, Z, starts, beta, D, sd)
    assert abs(res.loglik - exact.sum()) > 1e-6 * abs(exact.sum())


# ---- b. the gradient in the extra parameter --------------------------------------------------
@pytest.fixture(scope="module")
def fixed_node_engine():
    """An engine centred once at (β, D, σ), then with its nodes held (``recenter`` off)."""
    y, X, Z, starts, beta, D, sd = simulate_unbalanced(2, seed=5)
    engine = AGQ(y, Z, starts, gaussian(), 11)
    # centre at parameters off the simulation values so that the gradient is far from 0
    beta, D, sd = beta + np.array([0.2, -0.1]), 0.8 * D, 1.25 * sd
    engine.evaluate(X @ beta, D, np.array([sd]))
    engine.recenter = False
    return engine, y, X, Z, starts, beta, D, sd


def _central(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


def test_grad_phis_matches_finite_difference(fixed_node_engine):
    engine, y, X, Z, starts, beta, D, sd = fixed_node_engine
    eta0 = X @ beta
    res = engine.evaluate(eta0, D, np.array([sd]))
    assert res.grad_phis.shape == (1,)
    h = 1e-5 * sd
    fd = _central(lambda s: engine.evaluate(eta0, D, np.array([s]), grad=False).loglik, sd, h)
    # central difference: truncation h² f'''/6 ~ 1e-10 × |f'''|, rounding ~ 1e-16 |log L| / h
    # ~ 1e-9; the gradient is O(10-100), so rtol 1e-6 holds with a wide margin
    assert abs(res.grad_phis[0]) > 1.0  # not trivially zero
    np.testing.assert_allclose(res.grad_phis[0], fd, rtol=1e-6)
    # With nodes at the mode the fixed-node gradient is E_post[∂ log f/∂σ], a quadratic in b,
    # which an 11-point Gauss–Hermite rule integrates exactly: it is also the derivative of
    # the exact marginal log-likelihood (finite difference of scipy's MVN, same error budget).
    fd_exact = _central(lambda s: exact_per_group(y, X, Z, starts, beta, D, s).sum(), sd, h)
    np.testing.assert_allclose(res.grad_phis[0], fd_exact, rtol=1e-6)


def test_op_gradient_in_phis(fixed_node_engine):
    engine, y, X, Z, starts, beta, D, sd = fixed_node_engine
    eta0_v, D_v, log_phis = pt.dvector("eta0"), pt.dmatrix("D"), pt.dvector("log_phis")
    phis_v = pt.exp(log_phis)
    ll = AGQLogLik(engine)(eta0_v, D_v, phis_v)[0]
    f = pytensor.function(
        [eta0_v, D_v, log_phis],
        [ll, *pytensor.grad(ll, [phis_v, log_phis])],
        mode=_MODE,
    )
    eta0 = X @ beta
    value, g_phi, g_log = f(eta0, D, np.log([sd]))
    direct = engine.evaluate(eta0, D, np.array([sd]))
    # the Op returns the engine's numbers; only exp/log rounding separates them (1e-12)
    np.testing.assert_allclose(value, direct.loglik, rtol=1e-12)
    np.testing.assert_allclose(g_phi, direct.grad_phis, rtol=1e-12)
    # chain rule through φ = exp(log φ)
    np.testing.assert_allclose(g_log, sd * direct.grad_phis, rtol=1e-12)
    h = 1e-5 * sd
    fd = _central(lambda s: engine.evaluate(eta0, D, np.array([s]), grad=False).loglik, sd, h)
    np.testing.assert_allclose(g_phi[0], fd, rtol=1e-6)  # budget as in the test above


# ---- c. a full fit ---------------------------------------------------------------------------
N_GROUPS, PER = 200, 5
BETA, SD_B, SD = np.array([1.0, 0.5]), 0.8, 1.3


@pytest.fixture(scope="module")
def lmm_data():
    rng = np.random.default_rng(20240612)
    n = N_GROUPS * PER
    g = np.repeat(np.arange(N_GROUPS), PER)
    x = rng.normal(0.0, 1.0, n)
    b = rng.normal(0.0, SD_B, N_GROUPS)
    y = gaussian().simulate(BETA[0] + BETA[1] * x + b[g], np.array([SD]), rng)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:03d}" for i in g]})


@pytest.fixture(scope="module")
def lmm_fit(lmm_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a convergence or singular-fit warning fails the test
        return gp.mixed_model("y ~ x", "~ 1 | g", lmm_data, family=gaussian())


def _exact_balanced(df, beta0, beta1, sd_b, sd) -> float:
    """Exact marginal log-likelihood of the balanced random-intercept model (groups of PER
    consecutive rows): one MVN with covariance σ_b² 11ᵀ + σ² I for all groups."""
    R = (df["y"].to_numpy() - beta0 - beta1 * df["x"].to_numpy()).reshape(N_GROUPS, PER)
    cov = sd_b**2 * np.ones((PER, PER)) + sd**2 * np.eye(PER)
    return float(stats.multivariate_normal(np.zeros(PER), cov).logpdf(R).sum())


@pytest.fixture(scope="module")
def exact_mle(lmm_data):
    """Maximum of the exact likelihood, found by scipy independently of the package:
    β profiled out by generalized least squares, (log σ_b, log σ) by Nelder–Mead."""
    X = np.column_stack([np.ones(N_GROUPS * PER), lmm_data["x"].to_numpy()])
    y = lmm_data["y"].to_numpy()
    Xg, yg = X.reshape(N_GROUPS, PER, 2), y.reshape(N_GROUPS, PER)

    def gls(par):
        sd_b, sd = np.exp(par)
        Vinv = np.linalg.inv(sd_b**2 * np.ones((PER, PER)) + sd**2 * np.eye(PER))
        A = np.einsum("gri,rs,gsj->ij", Xg, Vinv, Xg)
        c = np.einsum("gri,rs,gs->i", Xg, Vinv, yg)
        return np.linalg.solve(A, c)

    def negll(par):
        return -_exact_balanced(lmm_data, *gls(par), *np.exp(par))

    res = optimize.minimize(
        negll,
        np.log([SD_B, SD]),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000},
    )
    assert res.success
    beta = gls(res.x)
    return beta, np.exp(res.x), -res.fun


def test_fit_converges(lmm_fit):
    assert lmm_fit.converged
    assert lmm_fit.phis.index.tolist() == ["sd"]
    assert lmm_fit.names[-1] == "log(sd)"


def test_fit_sd_near_truth(lmm_fit):
    se_log = float(np.sqrt(lmm_fit.vcov("extra").iloc[0, 0]))
    # 3 standard errors of log σ̂ (Wald, from the fit's own Hessian): a correct estimator
    # lands outside with probability ~0.3%, and the seed is fixed
    assert 0.0 < se_log < 0.1
    assert abs(np.log(lmm_fit.phis["sd"]) - np.log(SD)) < 3 * se_log


def test_fit_loglik_is_exact(lmm_fit, lmm_data):
    b0, b1 = lmm_fit.fixef().to_numpy()
    sd_b = float(np.sqrt(lmm_fit.D.iloc[0, 0]))
    exact = _exact_balanced(lmm_data, b0, b1, sd_b, lmm_fit.phis["sd"])
    # AGQ is exact for this model (see the module docstring): only rounding, rtol 1e-9
    np.testing.assert_allclose(lmm_fit.loglik, exact, rtol=1e-9)


def test_fit_is_exact_mle(lmm_fit, exact_mle):
    beta, (sd_b, sd), ll_max = exact_mle
    # The fit stops at Newton decrement < 1e-6 (newton_tol), i.e. within ~sqrt(2e-6) ≈ 1.4e-3
    # standard errors of the optimum; SEs here are ≲ 0.07, so ≲ 1e-4 on β and ≲ 1e-4 relative
    # on the variances. Nelder–Mead with xatol 1e-10 adds nothing at this scale.
    np.testing.assert_allclose(lmm_fit.fixef().to_numpy(), beta, rtol=0, atol=1e-4)
    np.testing.assert_allclose(lmm_fit.phis["sd"], sd, rtol=1e-3)
    np.testing.assert_allclose(lmm_fit.D.iloc[0, 0], sd_b**2, rtol=1e-3)
    # and no higher point exists: the fit's log-likelihood is not below the maximum
    # (up to 1e-6, the decrement bound)
    assert lmm_fit.loglik >= ll_max - 1e-6


def test_fit_hessian_matches_exact(lmm_fit, lmm_data):
    """The covariance of θ = (β, log σ_b, log σ) equals the inverse of the negative Hessian of
    the exact log-likelihood (by second differences with step 1e-4: truncation O(h²) ~ 1e-8
    relative, rounding ~ 1e-16 |log L| / h² ~ 2e-5 absolute against entries of O(10-1000)),
    so rtol 1e-3 covers both finite-difference schemes."""
    theta = lmm_fit.theta.copy()
    assert lmm_fit.names == ["(Intercept)", "x", "D_11", "log(sd)"]

    def f(t):
        return _exact_balanced(lmm_data, t[0], t[1], np.exp(t[2]), np.exp(t[3]))

    k, h = len(theta), 1e-4
    H = np.empty((k, k))
    for a in range(k):
        for b in range(k):
            ea, eb = np.eye(k)[a] * h, np.eye(k)[b] * h
            H[a, b] = (
                f(theta + ea + eb) - f(theta + ea - eb) - f(theta - ea + eb) + f(theta - ea - eb)
            ) / (4 * h * h)
    V_exact = np.linalg.inv(-H)
    np.testing.assert_allclose(lmm_fit.vcov("all").to_numpy(), V_exact, rtol=1e-3, atol=1e-9)


def test_fit_extra_tables(lmm_fit):
    V = lmm_fit.vcov("extra")
    assert V.index.tolist() == ["log(sd)"] and V.columns.tolist() == ["log(sd)"]
    ci = lmm_fit.confint("extra")
    assert ci.index.tolist() == ["sd"]
    lo, est, hi = ci.loc["sd"].to_numpy()
    assert 0 < lo < est < hi
    assert est == pytest.approx(lmm_fit.phis["sd"], rel=1e-12)
    # Wald interval on the log scale, back-transformed: symmetric in log
    se_log = float(np.sqrt(V.iloc[0, 0]))
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose([lo, hi], est * np.exp([-z * se_log, z * se_log]), rtol=1e-12)
    assert "sd" in lmm_fit.confint("all").index
    text = str(lmm_fit.summary())
    assert "sd:" in text
    assert f"sd: {lmm_fit.phis['sd']:.4f}" in text


def test_fit_from_user_initial_phis(lmm_fit, lmm_data):
    """``initial_values={"phis": ...}`` (natural scale) starts there and reaches the same
    optimum (same Newton-decrement budget as test_fit_is_exact_mle: 1e-4)."""
    fit = gp.mixed_model(
        "y ~ x", "~ 1 | g", lmm_data, family=gaussian(), initial_values={"phis": [3.0]}
    )
    assert fit.opt_summary.initial[-1] == pytest.approx(np.log(3.0), rel=1e-12)
    assert fit.converged
    np.testing.assert_allclose(fit.theta, lmm_fit.theta, rtol=0, atol=1e-4)


def test_glm_with_extra_parameter(lmm_data):
    """``gp.glm`` with the Gaussian family is least squares: β̂ = OLS, σ̂² = RSS/n (the MLE),
    log L = Σ log N(y; Xβ̂, σ̂²), SE = σ̂ √diag((XᵀX)⁻¹). σ̂ comes from L-BFGS-B at its default
    ftol 2.2e-9: |Δ log L| ≲ 2.2e-9 × 1,800 = 4e-6, and with curvature 2n = 2,000 in log σ,
    |Δ log σ| ≲ √(2 × 4e-6 / 2,000) ≈ 6e-5: hence rtol 1e-4 on σ and SE, atol 1e-5 on log L
    and β."""
    m0 = gp.glm("y ~ x", lmm_data, family=gaussian())
    X = np.column_stack([np.ones(len(lmm_data)), lmm_data["x"].to_numpy()])
    y = lmm_data["y"].to_numpy()
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    sd = np.sqrt(np.mean((y - X @ beta) ** 2))
    np.testing.assert_allclose(m0.coef.to_numpy(), beta, rtol=0, atol=1e-5)
    np.testing.assert_allclose(m0.phis, [sd], rtol=1e-4)
    np.testing.assert_allclose(m0.loglik, stats.norm(X @ beta, sd).logpdf(y).sum(), atol=1e-5)
    se = sd * np.sqrt(np.diag(np.linalg.inv(X.T @ X)))
    np.testing.assert_allclose(m0.se.to_numpy(), se, rtol=1e-4)
    assert m0.df == 3  # two coefficients and σ


def test_check_response_rejects_non_finite():
    with pytest.raises(ValueError, match="finite"):
        gaussian().check_response(pd.Series([1.0, np.nan, 2.0]), "y")
    out = gaussian().check_response(pd.Series([1, 2, 3]), "y")
    assert out.dtype == np.float64 and out.tolist() == [1.0, 2.0, 3.0]
