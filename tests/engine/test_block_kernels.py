"""The block functions (glmm_ppl.engine.block_kernels): a family's block function gives the
point function's values, and the quadrature and the sampler's density with blocks equal those
computed point by point, for one and two random effects."""

import numba
import numpy as np
import pytensor.tensor as pt
import pytest

import glmm_ppl as gp
from glmm_ppl.engine.block_kernels import address
from glmm_ppl.engine.pointwise import pointwise_derivatives
from glmm_ppl.families import binomial, custom_family, poisson
from glmm_ppl.fitting import MixedModelGraph

RNG = np.random.default_rng(3)


def poisson_logp(y, eta, phis):
    """A family defined outside the package: Poisson with the log link, written out."""
    return y * eta - pt.exp(eta) - pt.gammaln(y + 1.0)


FAMILIES = {
    "binomial logit": (binomial(), lambda n: (RNG.random(n) < 0.4).astype(float), None),
    "binomial probit": (binomial(link="probit"), lambda n: (RNG.random(n) < 0.4) * 1.0, None),
    "binomial cloglog": (binomial(link="cloglog"), lambda n: (RNG.random(n) < 0.4) * 1.0, None),
    "binomial trials": (binomial(), lambda n: RNG.integers(0, 6, n) * 1.0, 5.0),
    "poisson": (poisson(), lambda n: RNG.poisson(3.0, n) * 1.0, None),
    "custom": (custom_family("mine", poisson_logp), lambda n: RNG.poisson(2.0, n) * 1.0, None),
}


@numba.njit
def _call_block(points, y, eta, out, n):
    phis = np.zeros(1)
    points(address(y), address(eta), address(phis), address(out), n)


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("n", [1, 7, 8, 13, 88])
def test_block_function_gives_the_point_functions_values(name, n):
    family, draw, trials = FAMILIES[name]
    pw = pointwise_derivatives(family)
    assert pw.blocks
    y = draw(n)
    data = y[:, None] if trials is None else np.column_stack([y, np.full(n, trials)])
    rows = pw.rows(data, np.array([]))
    eta = np.concatenate([[-40.0, 40.0, 0.0], RNG.normal(0.0, 3.0, n)])[:n]
    out = np.empty(3 * n)
    _call_block(pw.points, np.ascontiguousarray(rows.T).ravel(), eta, out, n)
    lp, d1, d2 = pw.at_rows(rows, eta[:, None, None], np.array([]))
    for k, ref in enumerate((lp, d1, d2)):  # exp, log1p: within 2 ulp of the C library's
        np.testing.assert_allclose(out[k * n : (k + 1) * n], ref[:, 0], rtol=1e-13, atol=1e-14)


def test_families_with_extra_parameters_have_no_block_function():
    assert not pointwise_derivatives(gp.families.negative_binomial()).blocks
    assert not pointwise_derivatives(gp.families.zi_poisson()).blocks


MODELS = {
    "binary, random intercepts": ("y ~ sex * time", "~ 1 | id", "binary", "binomial"),
    "binary, correlated slopes": ("y ~ sex * time", "~ time | id", "binary", "binomial"),
    "counts, random intercepts": ("y ~ sex * time", "~ 1 | id", "poisson", "poisson"),
}


@pytest.fixture(scope="module", params=list(MODELS))
def model(request):
    fixed, random, data, family = MODELS[request.param]
    fit = gp.mixed_model(fixed, random, gp.load_vignette(data), family)
    graph = MixedModelGraph(fit.design, fit.family, fit.n_agq, fit.penalty)
    return fit, graph


def test_quadrature_with_blocks_equals_point_by_point(model):
    fit, graph = model
    results = []
    for blocks in (True, False):
        engine = graph.engine.copy()
        engine.blocks = blocks
        engine.modes[:] = 0.0  # the Newton search from the start
        theta = fit.theta + 0.05
        beta = theta[: graph.X.shape[1]]
        q = engine.q
        D = np.diag(np.full(q, 0.8)) + 0.1
        eta0 = graph.X @ beta
        evaluated = engine.evaluate(eta0, D, np.array([]))
        results.append((evaluated, engine.modes.copy(), engine.chol.copy()))
    (r1, m1, c1), (r0, m0, c0) = results
    np.testing.assert_allclose(m1, m0, rtol=0, atol=1e-9)
    np.testing.assert_allclose(c1, c0, rtol=1e-9)
    np.testing.assert_allclose(r1.per_group, r0.per_group, rtol=1e-12)
    np.testing.assert_allclose(r1.grad_eta, r0.grad_eta, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(r1.grad_D, r0.grad_D, rtol=1e-10)


def test_sampler_density_with_blocks_equals_point_by_point(model):
    fit, graph = model
    rng = np.random.default_rng(5)
    points = [fit.theta + rng.normal(0.0, 0.05, len(fit.theta)) for _ in range(5)]
    values = []
    for blocks in (True, False):
        density = graph.log_density(fit.modes)
        density.engine.blocks = blocks
        values.append([density(p) for p in points])  # along a path: predicted modes too
    # the two searches stop at modes within Newton's tolerance (1e-9) of each other: near the
    # correlated slopes' boundary (a correlation of 0.999, D⁻¹ of norm ~10³) the gradient in
    # θ_D moves with them by up to ~3e-8 (D⁻¹ S D⁻¹)
    for (v1, g1, pg1), (v0, g0, pg0) in zip(*values, strict=True):
        assert v1 == pytest.approx(v0, rel=1e-12)
        np.testing.assert_allclose(g1, g0, rtol=1e-9, atol=1e-7)
        np.testing.assert_allclose(pg1, pg0, rtol=1e-12)
