"""The AGQ engine and its PyTensor Op: gradients against finite differences, the integral
against scipy's adaptive quadrature and against the Laplace approximation."""

import subprocess
import sys
import textwrap

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import optimize, special, stats

from glmm_ppl.engine.agq import AGQ
from glmm_ppl.engine.covariance import D_to_theta, theta_to_D, theta_to_D_pt
from glmm_ppl.engine.ops import AGQLogLik
from glmm_ppl.families import binomial, poisson

N_GROUPS, PER_GROUP = 20, 5
NO_PHIS = np.zeros(0)


def simulate(family: str, q: int, seed: int):
    """Small longitudinal data: X = Z = [1, t] (Z = [1] when q = 1), groups of 5 rows."""
    rng = np.random.default_rng(seed)
    n = N_GROUPS * PER_GROUP
    t = rng.uniform(0.0, 3.0, size=n)
    X = np.column_stack([np.ones(n), t])
    Z = X[:, :q].copy()
    D = np.array([[0.8, 0.2], [0.2, 0.3]])[:q, :q]
    beta = np.array([-0.3, 0.4]) if family == "binomial" else np.array([0.5, 0.3])
    b = rng.multivariate_normal(np.zeros(q), D, size=N_GROUPS)
    group = np.repeat(np.arange(N_GROUPS), PER_GROUP)
    eta = X @ beta + np.sum(Z * b[group], axis=1)
    y = rng.binomial(1, special.expit(eta)) if family == "binomial" else rng.poisson(np.exp(eta))
    starts = np.arange(0, n + 1, PER_GROUP)
    fam = binomial() if family == "binomial" else poisson()
    return y.astype(float), X, Z, starts, fam, beta, D


CASES = {
    # name: (family, q, diagonal, n_agq, seed)
    "binomial-intercept+slope": ("binomial", 2, False, 7, 11),
    "binomial-independent": ("binomial", 2, True, 5, 12),
    "poisson-intercept": ("poisson", 1, False, 11, 13),
}


def frozen_engine(case):
    """An engine with its nodes centred at the true parameters, then held fixed."""
    fam_name, q, diagonal, n_agq, seed = CASES[case]
    y, X, Z, starts, fam, beta, D = simulate(fam_name, q, seed)
    if diagonal:
        D = np.diag(np.diag(D))
    engine = AGQ(y, Z, starts, fam, n_agq)
    engine.update_modes(X @ beta, D, NO_PHIS)
    engine.recenter = False
    return engine, X, beta, D_to_theta(D, diagonal), q, diagonal


def compiled_loglik(engine, X, q, diagonal):
    """``(β, θ_D) ↦ (log L, ∂/∂β, ∂/∂θ_D)`` through the Op, η⁰ = Xβ and the log-Cholesky map."""
    beta, theta_D = pt.dvector("beta"), pt.dvector("theta_D")
    D = theta_to_D_pt(theta_D, q, diagonal)
    ll = AGQLogLik(engine)(pt.dot(pt.constant(X), beta), D, pt.constant(NO_PHIS))[0]
    return pytensor.function([beta, theta_D], [ll, *pytensor.grad(ll, [beta, theta_D])])


def numpy_loglik(engine, X, q, diagonal, beta, theta_D):
    return engine.evaluate(X @ beta, theta_to_D(theta_D, q, diagonal), NO_PHIS, grad=False).loglik


def central_gradient(f, x, h=1e-6):
    g = np.empty_like(x)
    for k in range(len(x)):
        e = np.zeros_like(x)
        e[k] = h
        g[k] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("case", list(CASES))
def test_op_gradient_matches_finite_differences(case):
    engine, X, beta0, theta0, q, diagonal = frozen_engine(case)
    fn = compiled_loglik(engine, X, q, diagonal)
    # away from the point the nodes were centred at, so the gradient is not ~0
    rng = np.random.default_rng(5)
    beta = beta0 + rng.normal(scale=0.1, size=beta0.shape)
    theta = theta0 + rng.normal(scale=0.1, size=theta0.shape)
    ll, g_beta, g_theta = fn(beta, theta)

    assert ll == pytest.approx(numpy_loglik(engine, X, q, diagonal, beta, theta), rel=1e-13)
    fd_beta = central_gradient(lambda b: numpy_loglik(engine, X, q, diagonal, b, theta), beta)
    fd_theta = central_gradient(lambda t: numpy_loglik(engine, X, q, diagonal, beta, t), theta)
    assert np.max(np.abs(g_beta)) > 0.1  # a gradient worth checking
    # rtol 1e-5: central differences with h = 1e-6 on |log L| ~ 100 are good to ~1e-8 absolute
    np.testing.assert_allclose(g_beta, fd_beta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_theta, fd_theta, rtol=1e-5, atol=1e-6)


def test_op_gradient_verify_grad():
    engine, X, beta0, theta0, q, diagonal = frozen_engine("binomial-intercept+slope")

    def fun(beta, theta_D):
        D = theta_to_D_pt(theta_D, q, diagonal)
        return AGQLogLik(engine)(pt.dot(pt.constant(X), beta), D, pt.constant(NO_PHIS))[0]

    # PyTensor's own finite-difference check (float64 default tolerances ~1e-4)
    pytensor.gradient.verify_grad(
        fun, [beta0 + 0.05, theta0 - 0.05], n_tests=2, rng=np.random.default_rng(3)
    )


def test_op_gradient_wrt_eta_and_D_directly():
    # the raw outputs of the Op: ∂log L/∂η⁰ and ∂log L/∂D (symmetric D perturbed symmetrically)
    engine, X, beta0, theta0, q, diagonal = frozen_engine("binomial-intercept+slope")
    eta0 = X @ beta0 + 0.05
    D = theta_to_D(theta0, q, diagonal) * 1.1
    res = engine.evaluate(eta0, D, NO_PHIS)
    rng = np.random.default_rng(9)
    u = rng.normal(size=len(eta0))
    h = 1e-6
    fd = (
        engine.evaluate(eta0 + h * u, D, NO_PHIS, grad=False).loglik
        - engine.evaluate(eta0 - h * u, D, NO_PHIS, grad=False).loglik
    ) / (2 * h)
    assert res.grad_eta @ u == pytest.approx(fd, rel=1e-6, abs=1e-7)  # FD error ~1e-8
    E = np.array([[0.3, -0.2], [-0.2, 0.1]])  # symmetric direction
    fd_D = (
        engine.evaluate(eta0, D + h * E, NO_PHIS, grad=False).loglik
        - engine.evaluate(eta0, D - h * E, NO_PHIS, grad=False).loglik
    ) / (2 * h)
    assert np.sum(res.grad_D * E) == pytest.approx(fd_D, rel=1e-6, abs=1e-7)


# ---- the value of the integral ---------------------------------------------------------------
def test_poisson_per_group_equals_scipy_quad(quad_loglik_per_group, poisson_logpmf):
    y, X, Z, starts, fam, beta, D = simulate("poisson", 1, seed=21)
    engine = AGQ(y, Z, starts, fam, 21)
    res = engine.evaluate(X @ beta, D, NO_PHIS)
    expected = quad_loglik_per_group(y, X @ beta, Z[:, 0], starts, np.sqrt(D[0, 0]), poisson_logpmf)
    # rtol 1e-7: 21-point AGQ on these near-Gaussian posteriors; quad is run at epsrel 1e-12
    np.testing.assert_allclose(res.per_group, expected, rtol=1e-7)
    assert res.loglik == pytest.approx(expected.sum(), rel=1e-7)


def test_one_point_rule_is_laplace_approximation():
    # with n_agq = 1 AGQ is the Laplace approximation: h(b̂) + ½ log 2π − ½ log(−h''(b̂))
    y, X, Z, starts, fam, beta, D = simulate("poisson", 1, seed=22)
    eta0, sd = X @ beta, np.sqrt(D[0, 0])
    engine = AGQ(y, Z, starts, fam, 1)
    got = engine.evaluate(eta0, D, NO_PHIS).per_group
    expected = []
    for i in range(N_GROUPS):
        s = slice(starts[i], starts[i + 1])

        def h(b, s=s):
            return stats.poisson.logpmf(y[s], np.exp(eta0[s] + b)).sum() + stats.norm.logpdf(
                b, 0, sd
            )

        b_hat = optimize.minimize_scalar(lambda b: -h(b), bracket=(-1, 1), tol=1e-12).x
        curvature = np.exp(eta0[s] + b_hat).sum() + 1 / D[0, 0]
        expected.append(h(b_hat) + 0.5 * np.log(2 * np.pi) - 0.5 * np.log(curvature))
    # 1e-9: the mode from Brent's method is good to ~1e-8, h is flat there (error ~ Δb²)
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_more_points_converge():
    # the rule's error (against 41 points) falls quickly with the number of points
    y, X, Z, starts, fam, beta, _ = simulate("binomial", 1, seed=23)
    D = np.array([[1.0]])
    values = [
        AGQ(y, Z, starts, fam, n).evaluate(X @ beta, D, NO_PHIS).loglik for n in (3, 7, 15, 41)
    ]
    errors = np.abs(np.array(values[:-1]) - values[-1])
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-8  # measured 3e-10 at 15 points


def test_engine_returns_when_density_overflows():
    code = textwrap.dedent(
        """
        import numpy as np
        from glmm_ppl.engine.agq import AGQ
        from glmm_ppl.families import poisson
        y = np.array([1.0, 3.0, 0.0, 2.0])
        engine = AGQ(y, np.ones((4, 1)), np.array([0, 2, 4]), poisson(), 11)
        print(engine.evaluate(np.full(4, 800.0), np.eye(1), np.zeros(0)).loglik)
        """
    )
    # a child process: the hang is inside numba code, which no signal interrupts; the
    # evaluation itself takes milliseconds, the import and compilation ~3 s (with empty caches
    # on a loaded machine, up to a minute: the bound only has to end a hang)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired:
        pytest.fail("AGQ.evaluate did not return within 300 s")
    assert proc.returncode == 0, proc.stderr
    # exp(800) overflows: the group's likelihood is reported as 0, i.e. log-likelihood -inf
    assert float(proc.stdout.strip().splitlines()[-1]) == -np.inf
