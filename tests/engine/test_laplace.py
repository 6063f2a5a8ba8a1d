"""The joint Laplace approximation of crossed random effects
(:class:`glmm_ppl.engine.laplace.JointLaplace`).

References, each computed independently of the engine:

- brute force: the dense ``(N × Q)`` design of all units' effects, the conditional modes by a
  dense Newton iteration (the log density's derivatives in ``η`` written out per family here),
  ``H = ZᵀWZ + G⁻¹`` and ``slogdet``; the conditional log densities from ``scipy.stats``, so
  the normalising constants do not come from the package;
- central finite differences of the engine's own log-likelihood for the gradients;
- properties: a covariance that is not positive definite, warm starts, row order.

The fit of lme4's ``VerbAgg`` against lme4 and glmmTMB is in ``tests/test_crossed_reference.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import special, stats
from scipy.linalg import block_diag

from glmm_ppl.engine.laplace import JointLaplace
from glmm_ppl.families import get_family

# ---- the families: simulation, scipy log density, derivatives in η ---------------------------
# Each family's extra parameter on the natural scale, as the engine takes it: the negative
# binomial's size θ (Var y = μ + μ²/θ), the gaussian's σ, the gamma's shape k (scale μ/k) and
# the beta's precision φ (a = μφ, b = (1 − μ)φ); see glmm_ppl/families/*.py.
PHIS = {
    "binomial": [],
    "binomial_trials": [],
    "poisson": [],
    "negative_binomial": [2.5],
    "gaussian": [0.8],
    "gamma": [3.0],
    "beta": [6.0],
}
FAMILY_NAMES = list(PHIS)


def family_of(name: str):
    if name == "binomial_trials":
        return get_family("binomial").using_trials()
    return get_family(name)


def simulate_response(name: str, eta: np.ndarray, rng) -> np.ndarray:
    """``y`` (N,), or ``(N, 2)`` with the trials for the binomial with trials."""
    phi = PHIS[name][0] if PHIS[name] else None
    if name == "binomial":
        return (rng.random(len(eta)) < special.expit(eta)).astype(float)
    if name == "binomial_trials":
        trials = rng.integers(1, 7, len(eta)).astype(float)
        return np.column_stack([rng.binomial(trials.astype(int), special.expit(eta)), trials])
    if name == "poisson":
        return rng.poisson(np.exp(eta)).astype(float)
    if name == "negative_binomial":
        mu = np.exp(eta)
        return rng.negative_binomial(phi, phi / (phi + mu)).astype(float)
    if name == "gaussian":
        return eta + phi * rng.normal(size=len(eta))
    if name == "gamma":
        return rng.gamma(phi, np.exp(eta) / phi)
    mu = special.expit(eta)
    return np.clip(rng.beta(mu * phi, (1 - mu) * phi), 1e-6, 1 - 1e-6)


def scipy_logpdf(name: str, Y: np.ndarray, eta: np.ndarray, phis) -> np.ndarray:
    """``log p(y_r | η_r, φ)`` of every row, by scipy.stats."""
    y = Y[:, 0] if Y.ndim == 2 else Y
    phi = phis[0] if len(phis) else None
    if name == "binomial":
        return stats.bernoulli.logpmf(y, special.expit(eta))
    if name == "binomial_trials":
        return stats.binom.logpmf(y, Y[:, 1], special.expit(eta))
    if name == "poisson":
        return stats.poisson.logpmf(y, np.exp(eta))
    if name == "negative_binomial":
        return stats.nbinom.logpmf(y, phi, phi / (phi + np.exp(eta)))
    if name == "gaussian":
        return stats.norm.logpdf(y, eta, phi)
    if name == "gamma":
        return stats.gamma.logpdf(y, phi, scale=np.exp(eta) / phi)
    mu = special.expit(eta)
    return stats.beta.logpdf(y, mu * phi, (1 - mu) * phi)


def eta_derivatives(name: str, Y: np.ndarray, eta: np.ndarray, phis):
    """``∂ℓ/∂η`` and ``∂²ℓ/∂η²`` of every row, written out by hand."""
    y = Y[:, 0] if Y.ndim == 2 else Y
    phi = phis[0] if len(phis) else None
    if name in ("binomial", "binomial_trials"):
        n = Y[:, 1] if name == "binomial_trials" else 1.0
        p = special.expit(eta)
        return y - n * p, -n * p * (1 - p)
    if name == "poisson":
        mu = np.exp(eta)
        return y - mu, -mu
    if name == "negative_binomial":
        mu = np.exp(eta)
        return y - (y + phi) * mu / (phi + mu), -(y + phi) * mu * phi / (phi + mu) ** 2
    if name == "gaussian":
        return (y - eta) / phi**2, np.full_like(eta, -1 / phi**2)
    if name == "gamma":
        r = phi * y * np.exp(-eta)
        return r - phi, -r
    mu = special.expit(eta)
    m = mu * (1 - mu)  # dμ/dη
    a, b = mu * phi, (1 - mu) * phi
    s = special.digamma(b) - special.digamma(a) + np.log(y) - np.log1p(-y)
    d1 = phi * m * s
    trigamma = special.polygamma(1, a) + special.polygamma(1, b)
    d2 = phi * m * (1 - 2 * mu) * s - (phi * m) ** 2 * trigamma
    return d1, d2


# ---- seeded crossed designs --------------------------------------------------------------------
def _pairs(sizes, keep, rng):
    """Every combination of units of the given factor sizes, each kept with probability
    ``keep``, each kept one repeated 1–2 times: an ``(N, len(sizes))`` array of unit indices."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij"), -1)
    grid = grid.reshape(-1, len(sizes))
    grid = grid[rng.random(len(grid)) < keep]
    return np.repeat(grid, rng.integers(1, 3, len(grid)), axis=0)


def design(kind: str, seed: int = 0):
    """``levels (N, L)``, ``Z (N, q)``, ``q_levels`` and a covariance ``D`` of a small crossed
    design, rows shuffled; every unit of every factor has rows, and some pairs have none."""
    rng = np.random.default_rng(seed)
    if kind in ("intercepts", "subject_slope", "item_slope"):  # 12 subjects x 5 items
        levels = _pairs((12, 5), 0.8, rng)
    elif kind == "three":  # items (5) x subjects (12) x raters (4)
        levels = _pairs((5, 12, 4), 0.35, rng)
    else:  # "nested_crossed": 12 classes, 3 in each of 4 schools, crossed with 6 items
        ci = _pairs((12, 6), 0.75, rng)
        levels = np.column_stack([ci[:, 0] // 3, ci[:, 1], ci[:, 0]])  # school, item, class
    levels = levels[rng.permutation(len(levels))]
    N = len(levels)
    x = rng.normal(size=N)
    one = np.ones(N)
    if kind == "subject_slope":  # correlated intercept and slope by subject, intercept by item
        Z, q_levels = np.column_stack([one, x, one]), (2, 1)
        D = block_diag([[0.8, 0.3], [0.3, 0.5]], [[0.4]])
    elif kind == "item_slope":  # intercept by subject, correlated intercept and slope by item
        Z, q_levels = np.column_stack([one, one, x]), (1, 2)
        D = block_diag([[0.7]], [[0.5, -0.2], [-0.2, 0.3]])
    else:
        L = levels.shape[1]
        Z, q_levels = np.ones((N, L)), (1,) * L
        D = np.diag([0.9, 0.4, 0.6][:L])
    for k in range(levels.shape[1]):
        assert len(np.unique(levels[:, k])) == levels[:, k].max() + 1
    return levels, Z, q_levels, D


DESIGNS = ["intercepts", "subject_slope", "item_slope", "three", "nested_crossed"]


def dense_design(Z, levels, q_levels, D):
    """The dense ``(N × Q)`` design of all units' effects (factor after factor, unit after
    unit: the engine's order of the modes) and the prior covariance ``G``."""
    N = len(Z)
    n_units = levels.max(axis=0) + 1
    blocks, cols, qoff = [], [], 0
    for k, (n, q) in enumerate(zip(n_units, q_levels, strict=True)):
        Dk = D[qoff : qoff + q, qoff : qoff + q]
        Zk = np.zeros((N, n * q))
        for j in range(q):
            Zk[np.arange(N), levels[:, k] * q + j] = Z[:, qoff + j]
        cols.append(Zk)
        blocks += [Dk] * n
        qoff += q
    return np.hstack(cols), block_diag(*blocks)


def dense_laplace(name, Y, Z, levels, q_levels, eta0, D, phis):
    """Brute force: the Laplace log-likelihood, the modes and ``H⁻¹`` from dense matrices."""
    Zd, G = dense_design(Z, levels, q_levels, D)
    Ginv = np.linalg.inv(G)

    def h(b):
        return scipy_logpdf(name, Y, eta0 + Zd @ b, phis).sum() - 0.5 * b @ Ginv @ b

    b = np.zeros(Zd.shape[1])
    for _ in range(100):
        d1, d2 = eta_derivatives(name, Y, eta0 + Zd @ b, phis)
        step = np.linalg.solve(Zd.T @ (-d2[:, None] * Zd) + Ginv, Zd.T @ d1 - Ginv @ b)
        t = 1.0
        while h(b + t * step) < h(b) - 1e-12 * abs(h(b)) and t > 1e-6:
            t /= 2
        b = b + t * step
        if np.abs(step).max() < 1e-13:
            break
    d1, d2 = eta_derivatives(name, Y, eta0 + Zd @ b, phis)
    grad = Zd.T @ d1 - Ginv @ b
    assert np.abs(grad).max() < 1e-9, "the dense Newton iteration did not converge"
    H = Zd.T @ (-d2[:, None] * Zd) + Ginv
    np.linalg.cholesky(H)  # positive definite at the mode
    loglik = h(b) - 0.5 * np.linalg.slogdet(G)[1] - 0.5 * np.linalg.slogdet(H)[1]
    return loglik, b, np.linalg.inv(H)


def problem(kind: str, name: str, seed: int = 0):
    """A design with a response simulated from ``D`` and a fixed part ``η⁰``; the engine is
    evaluated at ``D`` scaled by 1.3 (not the simulated one)."""
    levels, Z, q_levels, D = design(kind, seed)
    rng = np.random.default_rng(seed + 100)
    N = len(levels)
    eta0 = -0.3 + 0.5 * rng.normal(size=N)
    Zd, G = dense_design(Z, levels, q_levels, D)
    b = np.linalg.cholesky(G) @ rng.normal(size=G.shape[0])
    Y = simulate_response(name, eta0 + Zd @ b, rng)
    return Y, Z, levels, q_levels, eta0, 1.3 * D, np.array(PHIS[name], dtype=float)


def engine(name, Y, Z, levels, q_levels) -> JointLaplace:
    return JointLaplace(Y, Z, levels, q_levels, family_of(name))


# ---- the reference itself ----------------------------------------------------------------------
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_reference_derivatives_match_scipy(name):
    # the hand-written ∂ℓ/∂η, ∂²ℓ/∂η² of the reference against central differences of the
    # scipy.stats log density (step 1e-4: truncation ~1e-8 · ℓ''', rounding ~1e-12)
    Y, *_, eta0, _, phis = problem("intercepts", name)
    d1, d2 = eta_derivatives(name, Y, eta0, phis)
    eps = 1e-4
    lp = [scipy_logpdf(name, Y, eta0 + s * eps, phis) for s in (-1, 0, 1)]
    assert_allclose(d1, (lp[2] - lp[0]) / (2 * eps), rtol=1e-6, atol=1e-7)
    assert_allclose(d2, (lp[2] - 2 * lp[1] + lp[0]) / eps**2, rtol=1e-5, atol=1e-5)


# ---- the log-likelihood, modes and covariances against brute force -----------------------------
@pytest.mark.parametrize("kind", DESIGNS)
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_matches_dense_laplace(kind, name):
    Y, Z, levels, q_levels, eta0, D, phis = problem(kind, name)
    loglik, b, Hinv = dense_laplace(name, Y, Z, levels, q_levels, eta0, D, phis)
    lap = engine(name, Y, Z, levels, q_levels)
    res = lap.evaluate(eta0, D, phis)
    assert res.loglik == pytest.approx(loglik, rel=1e-8)
    # the modes, factor after factor (the engine stops Newton's method at a step below 1e-8)
    assert_allclose(np.concatenate([m.ravel() for m in lap.modes_by_level()]), b, atol=1e-7)
    # each unit's block of H⁻¹ (1e-8 relative to the block's largest entry: an off-diagonal
    # entry can be much smaller than the variances)
    start = 0
    for (n, q), blocks in zip(
        zip(lap.n_units, q_levels, strict=True), lap.posterior_covariance(), strict=True
    ):
        assert blocks.shape == (n, q, q)
        for u in range(n):
            sl = slice(start + u * q, start + (u + 1) * q)
            expected = Hinv[sl, sl]
            assert_allclose(blocks[u], expected, rtol=0, atol=1e-8 * np.abs(expected).max())
        start += n * q


@pytest.mark.parametrize("factor", [0, 1])
@pytest.mark.parametrize("kind", ["intercepts", "subject_slope", "item_slope"])
def test_unit_without_rows(kind, factor):
    # a unit numbered but without rows keeps its prior: mode 0, no contribution to log L
    Y, Z, levels, q_levels, eta0, D, phis = problem(kind, "poisson")
    keep = levels[:, factor] != 2
    Y, Z, levels, eta0 = Y[keep], Z[keep], levels[keep], eta0[keep]
    loglik, b, _ = dense_laplace("poisson", Y, Z, levels, q_levels, eta0, D, phis)
    lap = engine("poisson", Y, Z, levels, q_levels)
    assert lap.evaluate(eta0, D, phis).loglik == pytest.approx(loglik, rel=1e-8)
    modes = lap.modes_by_level()
    assert_allclose(np.concatenate([m.ravel() for m in modes]), b, atol=1e-7)
    assert np.all(modes[factor][2] == 0.0)


# ---- gradients against finite differences ------------------------------------------------------
def five_point(f, h: float) -> float:
    """``f'(0)`` by the fourth-order central difference with step ``h``."""
    return (8.0 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12.0 * h)


@pytest.fixture
def exact_modes(monkeypatch):
    # The engine stops Newton's method once a step is below 1e-8, so the log-likelihood it
    # returns carries a rounding-like noise of about 1e-11 (the log-determinant is first order
    # in the modes' error); a finite difference divides that noise by the step and would
    # measure it instead of the derivative (up to 6e-5 relative with h = 1e-3). With the modes
    # to 1e-12 the difference sees the approximation at its exact modes, of which the returned
    # gradient is the derivative.
    from glmm_ppl.engine import laplace

    monkeypatch.setattr(laplace, "_STEP_TOL", 1e-12)


@pytest.mark.usefixtures("exact_modes")
@pytest.mark.parametrize("kind", DESIGNS)
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_gradient_matches_finite_differences(kind, name):
    # Fourth-order central differences with h = 1e-3 times the parameter's scale: truncation
    # ~h⁴ ≈ 1e-12 and rounding ~1e-16 · |log L| / h ≈ 1e-11, far below the tolerance (ordinary
    # central differences would need h ≈ 1e-5, where rounding dominates). Measured: at most
    # 1.3e-9 relative over all designs and families.
    Y, Z, levels, q_levels, eta0, D, phis = problem(kind, name)
    lap = engine(name, Y, Z, levels, q_levels)
    res = lap.evaluate(eta0, D, phis)
    assert lap.evaluate(eta0, D, phis, grad=False).loglik == pytest.approx(res.loglik, rel=1e-13)

    def loglik(eta=eta0, D_=D, phis_=phis):
        return lap.evaluate(eta, D_, phis_, grad=False).loglik

    h = 1e-3
    rng = np.random.default_rng(1)
    # η⁰: a random direction and three single rows
    direction = rng.normal(size=len(eta0))
    fd = five_point(lambda t: loglik(eta=eta0 + t * direction), h)
    assert fd == pytest.approx(res.grad_eta @ direction, rel=1e-6, abs=1e-8)
    for r in rng.choice(len(eta0), 3, replace=False):
        e = np.zeros(len(eta0))
        e[r] = 1.0
        fd = five_point(lambda t, e=e: loglik(eta=eta0 + t * e), h)
        assert fd == pytest.approx(res.grad_eta[r], rel=1e-6, abs=1e-8)
    # D: every entry of every block, perturbed symmetrically; d log L = Σ grad_D ⊙ dD
    G = res.grad_D
    assert_allclose(G, G.T, rtol=0, atol=1e-14)
    qoff = np.r_[0, np.cumsum(q_levels)]
    in_block = np.zeros(D.shape, dtype=bool)
    for k in range(len(q_levels)):
        in_block[qoff[k] : qoff[k + 1], qoff[k] : qoff[k + 1]] = True
    assert np.all(G[~in_block] == 0.0)  # the engine reads only the blocks
    for i, j in zip(*np.nonzero(np.triu(in_block)), strict=True):
        E = np.zeros(D.shape)
        E[i, j] = E[j, i] = 1.0
        scale = np.sqrt(D[i, i] * D[j, j])
        fd = five_point(lambda t, E=E, s=scale: loglik(D_=D + t * s * E), h) / scale
        assert fd == pytest.approx(np.sum(G * E), rel=1e-6, abs=1e-8), (i, j)
    # the family's extra parameter, on its natural scale
    assert res.grad_phis.shape == phis.shape
    for m in range(len(phis)):
        e = np.zeros(len(phis))
        e[m] = phis[m]
        fd = five_point(lambda t, e=e: loglik(phis_=phis + t * e), h) / phis[m]
        assert fd == pytest.approx(res.grad_phis[m], rel=1e-6, abs=1e-8)


# ---- behaviour -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        block_diag([[0.8, 0.3], [0.3, 0.5]], [[-0.4]]),  # a negative variance
        block_diag([[1.0, 1.2], [1.2, 1.0]], [[0.4]]),  # indefinite
        block_diag([[1.0, 1.0], [1.0, 1.0]], [[0.4]]),  # singular
        block_diag([[0.8, 0.3], [0.3, 0.5]], [[0.0]]),  # a zero variance
        block_diag([[np.nan, 0.3], [0.3, 0.5]], [[0.4]]),
    ],
)
def test_covariance_not_positive_definite(bad):
    Y, Z, levels, q_levels, eta0, D, phis = problem("subject_slope", "binomial")
    lap = engine("binomial", Y, Z, levels, q_levels)
    good = lap.evaluate(eta0, D, phis).loglik
    res = lap.evaluate(eta0, bad, phis)
    assert res.loglik == -np.inf
    assert np.all(np.isfinite(res.grad_eta)) and np.all(np.isfinite(res.grad_D))
    assert lap.evaluate(eta0, bad, phis, grad=False).loglik == -np.inf
    # the engine is still usable afterwards
    assert lap.evaluate(eta0, D, phis).loglik == pytest.approx(good, rel=1e-12)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_warm_start(name):
    Y, Z, levels, q_levels, eta0, D, phis = problem("three", name)
    lap = engine(name, Y, Z, levels, q_levels)
    first = lap.evaluate(eta0, D, phis).loglik
    assert name == "gaussian" or lap.newton_iterations > 1
    second = lap.evaluate(eta0, D, phis).loglik
    assert lap.newton_iterations <= 1
    assert second == pytest.approx(first, rel=1e-12)
    # a copy starts from the same modes
    other = lap.copy()
    assert other.evaluate(eta0, D, phis).loglik == pytest.approx(first, rel=1e-12)
    assert other.newton_iterations <= 1


@pytest.mark.parametrize("kind", DESIGNS)
def test_row_order_does_not_matter(kind):
    name = "negative_binomial"
    Y, Z, levels, q_levels, eta0, D, phis = problem(kind, name)
    res = engine(name, Y, Z, levels, q_levels).evaluate(eta0, D, phis)
    perm = np.random.default_rng(5).permutation(len(Y))
    lap = engine(name, Y[perm], Z[perm], levels[perm], q_levels)
    other = lap.evaluate(eta0[perm], D, phis)
    assert other.loglik == pytest.approx(res.loglik, rel=1e-12)
    assert_allclose(other.grad_eta, res.grad_eta[perm], rtol=1e-8, atol=1e-10)
    assert_allclose(other.grad_D, res.grad_D, rtol=1e-8, atol=1e-10)
    assert_allclose(other.grad_phis, res.grad_phis, rtol=1e-8)
    assert [m.shape for m in lap.modes_by_level()] == [
        (n, q) for n, q in zip(levels.max(axis=0) + 1, q_levels, strict=True)
    ]
