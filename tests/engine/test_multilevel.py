"""Multilevel AGQ of nested random effects (:class:`glmm_ppl.engine.multilevel.MultilevelAGQ`).

References, each computed independently of the engine:

- brute force: nested non-adaptive Gauss–Hermite quadrature in NumPy, level by level, with a
  rule fine enough that doubling its points changes nothing beyond 1e-9 (checked);
- the Laplace approximation by a dense joint Newton iteration over all effects of a top group
  and ``slogdet`` of the dense negative Hessian;
- the one-level engine :class:`~glmm_ppl.engine.agq.AGQ`;
- central finite differences of the returned log-likelihood (fixed nodes);
- glmmTMB / lme4 and R's nested ``integrate`` on ``nested_schools.csv``
  (tests/reference/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.linalg import block_diag as scipy_block_diag
from scipy.special import logsumexp, roots_hermitenorm

from glmm_ppl.engine import agq as agq_module
from glmm_ppl.engine.agq import AGQ
from glmm_ppl.engine.multilevel import MultilevelAGQ
from glmm_ppl.engine.pointwise import pointwise_derivatives
from glmm_ppl.families import binomial, gaussian, negative_binomial, poisson, zi_poisson

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"
NO_PHIS = np.zeros(0)


# ---- simulated nested data -------------------------------------------------------------------
def nested_levels(sizes, rng):
    """Unit indices (N, L) of a random nested design, rows in order: ``sizes[0]`` = (n, n)
    top groups, then (min, max) children per unit of the level above, the last entry rows per
    innermost unit; units numbered 0, 1, … in row order at each level."""
    paths = [()]
    for lo, hi in sizes:
        paths = [(*p, c) for p in paths for c in range(rng.integers(lo, hi + 1))]
    paths = np.array(paths)[:, :-1]  # the last entry counts rows, not units
    levels = np.empty_like(paths)
    for lv in range(paths.shape[1]):
        _, inv = np.unique(paths[:, : lv + 1], axis=0, return_inverse=True)
        levels[:, lv] = inv.ravel()
    return levels


def simulate(family, sizes, q_levels, D_blocks, seed, slope_sd=1.0):
    """Rows, design and response of a nested model; level ``l``'s effects have columns
    ``[1, x, …]`` of ``Z`` (a random slope when ``q_l = 2``)."""
    rng = np.random.default_rng(seed)
    levels = nested_levels(sizes, rng)
    N = len(levels)
    x = rng.normal(0.0, slope_sd, N)
    Z = np.column_stack([np.ones(N) if c == 0 else x for ql in q_levels for c in range(ql)])
    eta0 = -0.2 + 0.4 * rng.normal(size=N)
    eta = eta0.copy()
    col = 0
    for lv, (ql, Dl) in enumerate(zip(q_levels, D_blocks, strict=True)):
        b = rng.multivariate_normal(np.zeros(ql), Dl, size=levels[:, lv].max() + 1)
        eta += np.sum(Z[:, col : col + ql] * b[levels[:, lv]], axis=1)
        col += ql
    if family == "binomial":
        y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta))).astype(float)
    elif family == "poisson":
        y = rng.poisson(np.exp(eta)).astype(float)
    elif family == "negative_binomial":
        mu = np.exp(eta)
        y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(float)
    else:
        y = eta + 0.7 * rng.normal(size=N)
    return y, Z, levels, eta0


def block_diag(blocks):
    return scipy_block_diag(*blocks)


def log_density(family):
    """``(ℓ, ℓ', ℓ'')`` of ``family`` on arrays (the compiled point function, applied
    elementwise)."""
    pw = pointwise_derivatives(family)

    def f(y, eta, phis):
        shape = np.shape(eta)
        Y = np.broadcast_to(y, shape).reshape(-1, 1)
        out = pw(Y, np.reshape(eta, (-1, 1)), phis)
        return [o.reshape(shape) for o in out[:3]]

    return f


# ---- brute-force references ------------------------------------------------------------------
def brute_force(y, Z, levels, q_levels, D_blocks, eta0, family, phis, n_points):
    """Per-top-group log-likelihoods by nested non-adaptive product Gauss–Hermite rules:
    ``log L_u(η partial) = logsumexp_k [log w_k + Σ_children log L_c]`` (or the rows' log
    density at the innermost level), vectorised over the node paths above."""
    ell = log_density(family)
    z1, w1 = roots_hermitenorm(n_points)
    lw1 = np.log(w1 / np.sqrt(2 * np.pi))
    L = len(q_levels)
    qoff = np.r_[0, np.cumsum(q_levels)]
    rules = []
    for ql, Dl in zip(q_levels, D_blocks, strict=True):
        grids = np.meshgrid(*([z1] * ql), indexing="ij")
        z = np.stack([g.ravel() for g in grids], axis=1)
        lw = np.sum(np.meshgrid(*([lw1] * ql), indexing="ij"), axis=0).ravel()
        rules.append((z @ np.linalg.cholesky(Dl).T, lw))

    def unit(rows, lv, eta_part):  # eta_part: (..., len(rows))
        b, lw = rules[lv]
        eta = eta_part[..., None, :] + b @ Z[rows, qoff[lv] : qoff[lv + 1]].T
        if lv == L - 1:
            vals = ell(y[rows], eta, phis)[0].sum(axis=-1)
        else:
            vals = 0.0
            for c in np.unique(levels[rows, lv + 1]):
                sub = levels[rows, lv + 1] == c
                vals = vals + unit(rows[sub], lv + 1, eta[..., sub])
        return logsumexp(vals + lw, axis=-1)

    tops = np.unique(levels[:, 0])
    return np.array([unit(np.flatnonzero(levels[:, 0] == i), 0, eta0[levels[:, 0] == i])
                     for i in tops])  # fmt: skip


def dense_laplace(y, Z, levels, q_levels, D_blocks, eta0, family, phis):
    """Laplace approximation per top group by a dense joint Newton iteration over all its
    effects: ``(log L_i, modes by level, posterior covariances by level, ℓ'' at the mode)``."""
    ell = log_density(family)
    L = len(q_levels)
    qoff = np.r_[0, np.cumsum(q_levels)]
    n_units = [levels[:, lv].max() + 1 for lv in range(L)]
    modes = [np.zeros((n, ql)) for n, ql in zip(n_units, q_levels, strict=True)]
    covs = [np.zeros((n, ql, ql)) for n, ql in zip(n_units, q_levels, strict=True)]
    d2_rows = np.zeros(len(y))
    out = []
    for i in np.unique(levels[:, 0]):
        rows = np.flatnonzero(levels[:, 0] == i)
        cols, prec, logdetD, units = [], [], 0.0, []
        for lv in range(L):
            Dinv = np.linalg.inv(D_blocks[lv])
            for u in np.unique(levels[rows, lv]):
                ind = (levels[rows, lv] == u).astype(float)
                cols += [ind * Z[rows, qoff[lv] + c] for c in range(q_levels[lv])]
                prec.append(Dinv)
                logdetD += np.linalg.slogdet(D_blocks[lv])[1]
                units.append((lv, u))
        Zi = np.column_stack(cols)
        Pr = block_diag(prec)
        b = np.zeros(Zi.shape[1])
        for _ in range(100):
            lp, d1, d2 = ell(y[rows], eta0[rows] + Zi @ b, phis)
            H = Zi.T @ (Zi * -d2[:, None]) + Pr
            step = np.linalg.solve(H, Zi.T @ d1 - Pr @ b)
            b += step
            if np.max(np.abs(step)) < 1e-13:
                break
        lp, d1, d2 = ell(y[rows], eta0[rows] + Zi @ b, phis)
        H = Zi.T @ (Zi * -d2[:, None]) + Pr
        Q = len(b)
        h = lp.sum() - 0.5 * b @ Pr @ b - 0.5 * (logdetD + Q * np.log(2 * np.pi))
        out.append(h + 0.5 * Q * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(H)[1])
        V = np.linalg.inv(H)
        o = 0
        for lv, u in units:
            ql = q_levels[lv]
            modes[lv][u] = b[o : o + ql]
            covs[lv][u] = V[o : o + ql, o : o + ql]
            o += ql
        d2_rows[rows] = d2
    return np.array(out), modes, covs, d2_rows


# ---- fixtures --------------------------------------------------------------------------------
D2 = [np.array([[0.8]]), np.array([[0.5]])]
D_SLOPE = [np.array([[0.3]]), np.array([[0.25, 0.05], [0.05, 0.15]])]
D3 = [np.array([[0.6]]), np.array([[0.4]]), np.array([[0.3]])]


@pytest.fixture(scope="module")
def binary2():
    """3 top groups × 2–3 classes × 3–5 rows, binary, random intercepts at both levels."""
    return simulate("binomial", [(3, 3), (2, 3), (3, 5)], (1, 1), D2, seed=11)


@pytest.fixture(scope="module")
def poisson_slope():
    """3 top groups × 2–3 classes × 4–6 rows, counts, intercept at level 0 and intercept and
    slope at level 1."""
    return simulate("poisson", [(3, 3), (2, 3), (4, 6)], (1, 2), D_SLOPE, seed=12, slope_sd=0.7)


@pytest.fixture(scope="module")
def binary3():
    """2 top groups × 2 × 2–3 units × 2–3 rows, binary, random intercepts at three levels."""
    return simulate("binomial", [(2, 2), (2, 2), (2, 3), (2, 3)], (1, 1, 1), D3, seed=13)


# ---- against brute-force integration ---------------------------------------------------------
def test_two_levels_binary_matches_nested_quadrature(binary2):
    """25 points per level agree with the nested integral to 1e-6 per top group; the Laplace
    approximation (1 point) is off by more than 1e-3 in total."""
    y, Z, levels, eta0 = binary2
    ref = brute_force(y, Z, levels, (1, 1), D2, eta0, binomial(), NO_PHIS, 150)
    ref_fine = brute_force(y, Z, levels, (1, 1), D2, eta0, binomial(), NO_PHIS, 300)
    assert_allclose(ref, ref_fine, rtol=0, atol=1e-10)  # the reference has converged
    D = block_diag(D2)
    res25 = MultilevelAGQ(y, Z, levels, (1, 1), binomial(), 25).evaluate(eta0, D, NO_PHIS)
    assert_allclose(res25.per_group, ref, rtol=0, atol=1e-6)
    assert res25.loglik == pytest.approx(ref.sum(), abs=1e-6)
    res1 = MultilevelAGQ(y, Z, levels, (1, 1), binomial(), 1).evaluate(eta0, D, NO_PHIS)
    assert abs(res1.loglik - ref.sum()) > 1e-3


def test_random_slope_poisson_matches_nested_quadrature(poisson_slope):
    """Poisson, q_levels = (1, 2): 15 points per dimension agree with a 1-D × 2-D nested
    grid to 1e-6 per top group."""
    y, Z, levels, eta0 = poisson_slope
    ref = brute_force(y, Z, levels, (1, 2), D_SLOPE, eta0, poisson(), NO_PHIS, 60)
    ref_fine = brute_force(y, Z, levels, (1, 2), D_SLOPE, eta0, poisson(), NO_PHIS, 90)
    assert_allclose(ref, ref_fine, rtol=0, atol=1e-9)
    res = MultilevelAGQ(y, Z, levels, (1, 2), poisson(), 15).evaluate(
        eta0, block_diag(D_SLOPE), NO_PHIS
    )
    assert_allclose(res.per_group, ref, rtol=0, atol=1e-6)


def test_three_levels_binary_matches_nested_quadrature(binary3):
    """Random intercepts at three levels: 21 points per level agree with a triply nested
    rule to 1e-6 per top group."""
    y, Z, levels, eta0 = binary3
    ref = brute_force(y, Z, levels, (1, 1, 1), D3, eta0, binomial(), NO_PHIS, 60)
    ref_fine = brute_force(y, Z, levels, (1, 1, 1), D3, eta0, binomial(), NO_PHIS, 90)
    assert_allclose(ref, ref_fine, rtol=0, atol=1e-10)
    res = MultilevelAGQ(y, Z, levels, (1, 1, 1), binomial(), 21).evaluate(
        eta0, block_diag(D3), NO_PHIS
    )
    assert_allclose(res.per_group, ref, rtol=0, atol=1e-6)
    assert res.unit_counts[:, 0].tolist() == [1, 1]
    assert res.unit_counts[:, 1].tolist() == [2, 2]


# ---- the Laplace approximation ---------------------------------------------------------------
@pytest.mark.parametrize(
    "case, family, q_levels, D_blocks",
    [
        ("binary2", binomial(), (1, 1), D2),
        ("poisson_slope", poisson(), (1, 2), D_SLOPE),
        ("binary3", binomial(), (1, 1, 1), D3),
    ],
)
def test_one_point_is_the_laplace_approximation(request, case, family, q_levels, D_blocks):
    """``n_agq = 1`` equals a dense Laplace approximation (joint Newton, ``slogdet``) to 1e-8;
    the modes to 1e-7 and the posterior covariances (diagonal blocks of the inverse negative
    Hessian) to 1e-7; ``hess_weights`` is ``ℓ''`` at the mode."""
    y, Z, levels, eta0 = request.getfixturevalue(case)
    ref, modes, covs, d2 = dense_laplace(y, Z, levels, q_levels, D_blocks, eta0, family, NO_PHIS)
    ml = MultilevelAGQ(y, Z, levels, q_levels, family, 1)
    res = ml.evaluate(eta0, block_diag(D_blocks), NO_PHIS, em=True)
    assert_allclose(res.per_group, ref, rtol=0, atol=1e-8)
    for got, want in zip(ml.modes_by_level(), modes, strict=True):
        assert_allclose(got, want, rtol=0, atol=1e-7)
    for got, want in zip(ml.posterior_covariance(), covs, strict=True):
        assert_allclose(got, want, rtol=0, atol=1e-7)
    assert_allclose(res.hess_weights[:, 0], d2, rtol=0, atol=1e-7)


# ---- fixed-node gradients --------------------------------------------------------------------
def central(f, x, h):
    x = np.asarray(x, dtype=float)
    g = np.empty(len(x))
    for k in range(len(x)):
        e = np.zeros(len(x))
        e[k] = h
        g[k] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def D_of(theta, q_levels):
    """Block-diagonal ``D`` from the lower Cholesky factors of its blocks, stacked."""
    blocks, k = [], 0
    for ql in q_levels:
        Lf = np.zeros((ql, ql))
        Lf[np.tril_indices(ql)] = theta[k : k + ql * (ql + 1) // 2]
        k += ql * (ql + 1) // 2
        blocks.append(Lf @ Lf.T)
    return block_diag(blocks)


@pytest.mark.parametrize(
    "family, phis, kind, weighted",
    [
        (negative_binomial(), np.array([2.0]), "negative_binomial", False),
        (gaussian(), np.array([0.7]), "gaussian", True),
    ],
)
def test_gradients_match_finite_differences(family, phis, kind, weighted):
    """With the nodes held (``recenter = False`` after one evaluation) ``grad_eta``, ``grad_D``
    (chained to the blocks' Cholesky factors) and ``grad_phis`` are central differences of
    ``loglik`` to 1e-5 relative; with top-group weights too."""
    q_levels = (1, 2)
    y, Z, levels, eta0 = simulate(kind, [(3, 3), (2, 3), (3, 4)], q_levels, D_SLOPE, seed=21)
    rng = np.random.default_rng(5)
    weights = rng.uniform(0.5, 2.0, 3) if weighted else None
    ml = MultilevelAGQ(y, Z, levels, q_levels, family, 5, weights=weights)
    theta = np.array([0.6, 0.5, 0.1, 0.4])
    res = ml.evaluate(eta0, D_of(theta, q_levels), phis)
    ml.recenter = False

    def ll(eta=eta0, th=theta, ph=phis):
        return ml.evaluate(eta, D_of(th, q_levels), ph, grad=False).loglik

    g_eta = central(lambda e: ll(eta=e), eta0, 1e-5)
    assert_allclose(res.grad_eta, g_eta, rtol=1e-5, atol=1e-8)
    g_theta = central(lambda t: ll(th=t), theta, 1e-5)
    chained = np.array(  # D is quadratic in θ: its central differences are exact
        [np.sum(res.grad_D * (D_of(theta + e, q_levels) - D_of(theta - e, q_levels)) / 2e-3)
         for e in 1e-3 * np.eye(len(theta))]
    )  # fmt: skip
    assert_allclose(chained, g_theta, rtol=1e-5)
    assert_allclose(res.grad_phis, central(lambda p: ll(ph=p), phis, 1e-5), rtol=1e-5)
    w = np.ones(3) if weights is None else weights
    assert res.loglik == pytest.approx(w @ res.per_group, rel=1e-14)
    assert_allclose(res.grad_phis, w @ res.grad_phis_groups, rtol=1e-12)
    assert_allclose(res.second_moment, np.einsum("i,irc->rc", w, res.second_moment_groups))


def test_gaussian_hess_weights_are_the_constant_curvature():
    """Gaussian ``ℓ'' = −1/σ²`` whatever the node: ``hess_weights`` sums it over paths whose
    posterior weights add up to one."""
    y, Z, levels, eta0 = simulate("gaussian", [(3, 3), (2, 3), (3, 4)], (1, 1), D2, seed=3)
    ml = MultilevelAGQ(y, Z, levels, (1, 1), gaussian(), 7)
    res = ml.evaluate(eta0, block_diag(D2), np.array([0.7]), em=True)
    assert_allclose(res.hess_weights, np.full((len(y), 1), -1 / 0.49), rtol=1e-12)


# ---- one level: the one-level engine ---------------------------------------------------------
@pytest.mark.parametrize("weighted", [False, True])
def test_one_level_equals_agq(weighted):
    """``L = 1`` (random intercept and slope, negative binomial) gives AGQ's log-likelihood,
    modes and gradients to 1e-10."""
    rng = np.random.default_rng(8)
    y, Z, levels, eta0 = simulate("negative_binomial", [(12, 12), (3, 7)], (2,), D_SLOPE[1:], 9)
    starts = np.r_[np.flatnonzero(np.r_[True, np.diff(levels[:, 0]) != 0]), len(y)]
    weights = rng.uniform(0.5, 2.0, 12) if weighted else None
    D, phis = D_SLOPE[1], np.array([1.5])
    ref = AGQ(y, Z, starts, negative_binomial(), 7, weights=weights)
    ml = MultilevelAGQ(y, Z, levels, (2,), negative_binomial(), 7, weights=weights)
    a, b = ref.evaluate(eta0, D, phis, em=True), ml.evaluate(eta0, D, phis, em=True)
    assert b.loglik == pytest.approx(a.loglik, rel=1e-12)
    for field in ("per_group", "grad_eta", "grad_D", "grad_phis", "second_moment",
                  "second_moment_groups", "grad_phis_groups", "hess_weights"):  # fmt: skip
        assert_allclose(getattr(b, field), getattr(a, field), rtol=1e-10, atol=1e-12)
    assert_allclose(ml.modes.reshape(-1, 2), ref.modes, rtol=1e-10, atol=1e-12)
    assert_allclose(ml.posterior_covariance()[0], ref.posterior_covariance(), rtol=1e-10)


# ---- the schools (lme4, glmmTMB, R's integrate) ---------------------------------------------
@pytest.fixture(scope="module")
def schools():
    d = pd.read_csv(REFERENCE_DIR / "nested_schools.csv", dtype={"class": str})
    d = d.sort_values(["school", "class"], kind="stable").reset_index(drop=True)
    school = pd.factorize(d["school"])[0]
    cls = pd.factorize(d["school"].astype(str) + ":" + d["class"])[0]  # (school, class) units
    X = np.column_stack([np.ones(len(d)), d["x"], d["ses"]])
    ref = json.loads((REFERENCE_DIR / "multilevel_reference.json").read_text())["schools_nested"]
    return d["y"].to_numpy(float), X, np.column_stack([school, cls]), ref


def _at(fit):
    return np.array(list(fit["fixef"].values())), np.diag(
        [fit["varcorr"]["school"][0][0], fit["varcorr"]["class:school"][0][0]]
    )


def test_schools_laplace(schools):
    """``n_agq = 1`` at glmmTMB's estimates is glmmTMB's Laplace log-likelihood to 1e-6. At
    lme4's estimates it is −1103.94656 (the dense Laplace approximation agrees to 1e-8): lme4
    reports −1103.95177 there, 5.2e-3 lower, and its own optimum lies below glmmTMB's under
    the same approximation, so lme4's printed value is checked to 1e-2 only."""
    y, X, levels, ref = schools
    ml = MultilevelAGQ(y, np.ones((len(y), 2)), levels, (1, 1), binomial(), 1)
    beta, D = _at(ref["glmmTMB"])
    assert ml.evaluate(X @ beta, D, NO_PHIS).loglik == pytest.approx(
        ref["glmmTMB"]["logLik"], abs=1e-6
    )
    beta, D = _at(ref["lme4"])
    got = ml.evaluate(X @ beta, D, NO_PHIS).loglik
    Zc = np.ones((len(y), 2))
    dense = dense_laplace(y, Zc, levels, (1, 1), [D[:1, :1], D[1:, 1:]], X @ beta, binomial(),
                          NO_PHIS)[0].sum()  # fmt: skip
    assert got == pytest.approx(dense, abs=1e-8)
    assert got == pytest.approx(ref["lme4"]["logLik"], abs=1e-2)


def test_schools_eleven_points_is_the_nested_integral(schools):
    """11 points per level at lme4's estimates: within 1e-5 of the exact nested integral
    (−1102.29019, 120-point nested rule; R's ``integrate`` gives −1102.29)."""
    y, X, levels, ref = schools
    beta, D = _at(ref["lme4"])
    res = MultilevelAGQ(y, np.ones((len(y), 2)), levels, (1, 1), binomial(), 11).evaluate(
        X @ beta, D, NO_PHIS
    )
    exact = ref["exact_ml"]["logLik_at_lme4_estimates"]
    assert abs(res.loglik - (-1102.2902)) < 0.01
    assert res.loglik == pytest.approx(exact, abs=1e-5)
    assert res.unit_counts.sum(axis=0).tolist() == [60, 240]


# ---- engine behaviour ------------------------------------------------------------------------
def test_unit_numbering_need_not_follow_the_rows(binary2):
    """Units numbered in another order than their rows: per-group results and modes follow
    the numbers, the log-likelihood is unchanged."""
    y, Z, levels, eta0 = binary2
    D = block_diag(D2)
    res = MultilevelAGQ(y, Z, levels, (1, 1), binomial(), 5)
    base = res.evaluate(eta0, D, NO_PHIS)
    perm = [np.array([2, 0, 1]), np.random.default_rng(0).permutation(levels[:, 1].max() + 1)]
    relabelled = np.column_stack([perm[lv][levels[:, lv]] for lv in range(2)])
    ml = MultilevelAGQ(y, Z, relabelled, (1, 1), binomial(), 5)
    new = ml.evaluate(eta0, D, NO_PHIS)
    assert new.loglik == pytest.approx(base.loglik, rel=1e-13)
    assert_allclose(new.per_group[perm[0]], base.per_group, rtol=1e-13)
    assert_allclose(new.grad_eta, base.grad_eta, rtol=1e-12)
    for lv in range(2):
        assert_allclose(ml.modes_by_level()[lv][perm[lv]], res.modes_by_level()[lv], rtol=1e-12)
        assert_allclose(
            ml.posterior_covariance()[lv][perm[lv]], res.posterior_covariance()[lv], rtol=1e-12
        )


def test_threaded_blocks_equal_one_block(monkeypatch):
    """Top groups split over threads give bit-identical results."""
    y, Z, levels, eta0 = simulate("poisson", [(40, 40), (2, 4), (2, 5)], (1, 2), D_SLOPE, 4)
    D = block_diag(D_SLOPE)
    one = MultilevelAGQ(y, Z, levels, (1, 2), poisson(), 4)
    one.threads = 1
    a = one.evaluate(eta0, D, NO_PHIS, em=True)
    monkeypatch.setattr(agq_module, "_PARALLEL_WORK", 0)
    many = MultilevelAGQ(y, Z, levels, (1, 2), poisson(), 4)
    many.threads = 3
    b = many.evaluate(eta0, D, NO_PHIS, em=True)
    assert_array_equal(a.per_group, b.per_group)
    assert_array_equal(a.grad_eta, b.grad_eta)
    assert_array_equal(a.second_moment_groups, b.second_moment_groups)
    assert_array_equal(a.hess_weights, b.hess_weights)
    assert_array_equal(one.modes, many.modes)


def test_modes_are_warm_started_and_copied(binary2):
    """A second re-centring at the same parameters takes one Newton step; a copy owns its
    modes; assigning ``modes`` moves the start."""
    y, Z, levels, eta0 = binary2
    D = block_diag(D2)
    ml = MultilevelAGQ(y, Z, levels, (1, 1), binomial(), 3)
    assert ml.update_modes(eta0, D, NO_PHIS) > 1
    assert ml.update_modes(eta0, D, NO_PHIS) == 1
    other = ml.copy()
    other.modes = np.zeros_like(ml.modes)
    assert np.all(ml.modes != 0)
    assert other.update_modes(eta0, D, NO_PHIS) > 1
    assert_allclose(other.modes, ml.modes, atol=1e-9)


def test_impossible_points_give_minus_infinity(binary2):
    """A singular block of ``D``: log-likelihood −∞ with zero gradients. A top group whose
    integrand is not finite: that group's ``log L_i`` is −∞, the others are unchanged."""
    y, Z, levels, eta0 = binary2
    ml = MultilevelAGQ(y, Z, levels, (1, 1), binomial(), 3)
    res = ml.evaluate(eta0, np.diag([0.5, 0.0]), NO_PHIS)
    assert res.loglik == -np.inf
    assert np.all(res.grad_eta == 0) and res.grad_eta.shape == eta0.shape
    good = ml.evaluate(eta0, block_diag(D2), NO_PHIS).per_group
    bad_eta = eta0.copy()
    bad_eta[levels[:, 0] == 1] = np.nan
    res = MultilevelAGQ(y, Z, levels, (1, 1), binomial(), 3).evaluate(
        bad_eta, block_diag(D2), NO_PHIS
    )
    assert res.per_group[1] == -np.inf and res.loglik == -np.inf
    assert_allclose(res.per_group[[0, 2]], good[[0, 2]], rtol=1e-12)


def test_eta_shape_is_kept(binary2):
    y, Z, levels, eta0 = binary2
    ml = MultilevelAGQ(y, Z, levels, (1, 1), binomial(), 3)
    ml.update_modes(eta0, block_diag(D2), NO_PHIS)
    ml.recenter = False
    a = ml.evaluate(eta0[:, None], block_diag(D2), NO_PHIS)
    b = ml.evaluate(eta0, block_diag(D2), NO_PHIS)
    assert a.grad_eta.shape == (len(y), 1) and b.grad_eta.shape == (len(y),)
    assert_array_equal(a.grad_eta[:, 0], b.grad_eta)


# ---- bad input ------------------------------------------------------------------------------
Y4, Z4 = np.array([1.0, 0.0, 1.0, 0.0]), np.ones((4, 2))


@pytest.mark.parametrize(
    "levels, message",
    [
        (
            [[0, 0], [1, 1], [0, 0], [1, 1]],
            "the rows of each unit must be contiguous: unit 0 of level 0 is split (sort the "
            "rows by the levels, outermost first)",
        ),
        (
            [[0, 0], [0, 1], [1, 0], [1, 1]],
            "the levels are not nested: unit 0 of level 1 lies in more than one unit of level 0",
        ),
        (
            [[0, 0], [0, 0], [0, 2], [0, 2]],
            "the units of level 1 must be numbered 0, ..., n - 1, each used",
        ),
        ([[0], [0], [1], [1]], "levels must have shape (N, 2), one column per level"),
    ],
    ids=["unsorted", "not-nested", "numbering", "shape"],
)
def test_bad_levels(levels, message):
    with pytest.raises(ValueError) as err:
        MultilevelAGQ(Y4, Z4, np.array(levels), (1, 1), binomial(), 3)
    assert str(err.value) == message


def test_zero_part_family_is_refused():
    with pytest.raises(ValueError) as err:
        MultilevelAGQ(Y4, Z4, np.array([[0, 0], [0, 0], [0, 1], [0, 1]]), (1, 1), zi_poisson(), 3)
    assert str(err.value) == "nested random effects are not available for families with a zero part"
