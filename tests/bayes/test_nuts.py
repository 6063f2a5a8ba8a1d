"""NUTS by nutpie on the marginal model: its density is the PyMC model's, its draws agree with
PyMC's sampler, and its output has the layout of :func:`glmm_ppl.sample`."""

import threading

import arviz as az
import numpy as np
import pymc as pm
import pytest

import glmm_ppl as gp
from glmm_ppl.bayes import sample, to_pymc
from glmm_ppl.engine.log_density import LogDensity
from glmm_ppl.fitting.graph import MixedModelGraph

FIXED = "y ~ sex * time"


def _graph(fit) -> MixedModelGraph:
    return MixedModelGraph(fit.design, fit.family, fit.n_agq, fit.penalty, fit.priors)


@pytest.fixture(scope="module")
def models(binary, poisson):
    """Fits covering every block of θ: correlated random effects with sd and LKJ priors; a
    hurdle part with its own fixed effects, an extra parameter with a prior, and the penalty;
    a diagonal ``D`` with an offset and group weights."""
    corr = gp.mixed_model(
        FIXED,
        "~ time | id",
        binary,
        "binomial",
        priors={"sd": pm.HalfNormal.dist(3.0), "corr": 2.0, "time": pm.Normal.dist(0, 1)},
    )
    zero = gp.mixed_model(
        FIXED,
        "~ 1 | id",
        poisson,
        "hurdle_negative_binomial",
        zi_fixed="~ sex",
        penalized=True,
        priors={"size": pm.Gamma.dist(2.0, 0.5)},
        n_agq=7,
    )
    groups = np.sort(poisson["id"].unique())
    diag = gp.mixed_model(
        "y ~ sex + time",
        "~ time || id",
        poisson,
        "negative_binomial",
        offset=0.1 * poisson["time"].to_numpy(),
        weights=1.0 + (np.arange(len(groups)) % 3),
    )
    return {"corr": corr, "zero": zero, "diag": diag}


@pytest.mark.parametrize("name", ["corr", "zero", "diag"])
def test_log_density_is_the_pymc_models_density(models, name):
    """Value and gradient against PyTensor's compilation of :func:`to_pymc`'s model (its
    gradient by automatic differentiation), at points away from the estimates."""
    fit = models[name]
    graph = _graph(fit)
    density = graph.log_density(fit.modes)
    model = to_pymc(fit)
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    names = {"beta": "beta", "gamma": "gamma", "theta_D": "theta_D", "log_phis": "log_phi"}
    rng = np.random.default_rng(5)
    for _ in range(3):
        theta = fit.theta + 0.1 * rng.normal(size=len(fit.theta))
        point = {names[k]: v for k, v in graph.split(theta).items() if v.size}
        value, grad, per_group = density(theta)
        assert value == pytest.approx(float(logp(point)), abs=1e-8)
        np.testing.assert_allclose(grad, dlogp(point), rtol=1e-6, atol=1e-5)
        weights = graph.engine.weights
        total = per_group.sum() if weights is None else per_group @ weights
        assert total == pytest.approx(graph(theta)[1], abs=1e-7)


@pytest.mark.parametrize("name", ["corr", "zero", "diag"])
def test_modes_moved_from_the_last_point_save_newton_steps(models, name):
    """Along a path of nearby points, as a sampler's, the quadrature starts from the last
    point's modes moved to first order: the same density, with fewer Newton iterations than
    from the last point's modes as they are."""
    fit = models[name]
    graph = _graph(fit)
    rng = np.random.default_rng(3)
    path = fit.theta + np.cumsum(0.03 * rng.normal(size=(20, len(fit.theta))), axis=0)
    moved = graph.log_density(fit.modes)
    iterations = {"moved": [], "as they are": []}
    for theta in path:
        as_they_are = graph.log_density(moved.engine.modes)
        value, grad, _ = as_they_are(theta)
        iterations["as they are"].append(as_they_are.engine.newton_iterations.mean())
        value_moved, grad_moved, _ = moved(theta)
        iterations["moved"].append(moved.engine.newton_iterations.mean())
        assert value_moved == pytest.approx(value, abs=1e-9)
        np.testing.assert_allclose(grad_moved, grad, rtol=1e-7, atol=1e-8)
    mean = {k: np.mean(v[1:]) for k, v in iterations.items()}  # the first has no last point
    assert mean["moved"] < mean["as they are"] - 0.5, mean


def test_log_densities_in_threads_agree_with_one_alone(models):
    """Each LogDensity has its own modes: evaluated from two threads at once, each gives what
    it gives alone."""
    fit = models["corr"]
    graph = _graph(fit)
    rng = np.random.default_rng(8)
    points = [fit.theta + 0.2 * rng.normal(size=len(fit.theta)) for _ in range(2)]
    alone = [graph.log_density(fit.modes)(t)[0] for t in points]
    results = [[], []]

    def run(k):
        density = graph.log_density(fit.modes)
        for _ in range(20):
            results[k].append(density(points[k])[0])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2):
        np.testing.assert_allclose(results[k], alone[k], rtol=0, atol=1e-9)
    assert np.array_equal(graph.engine.modes, np.zeros_like(graph.engine.modes))


@pytest.fixture(scope="module")
def fm1_prior(binary):
    return gp.mixed_model(
        FIXED, "~ 1 | id", binary, "binomial", priors={"sd": pm.HalfNormal.dist(3)}
    )


def test_nutpie_and_pymc_sample_the_same_posterior(fm1_prior):
    """Posterior means of the two samplers differ by less than 4 Monte Carlo SEs."""
    draws = {
        sampler: sample(
            fm1_prior,
            draws=500,
            tune=300,
            chains=2,
            random_seed=4,
            progressbar=False,
            nuts_sampler=sampler,
        )
        for sampler in ("nutpie", "pymc")
    }
    summaries = {
        k: az.summary(v, var_names=["beta", "sd"], kind="all", round_to="none")
        for k, v in draws.items()
    }
    a, b = summaries["nutpie"], summaries["pymc"]
    z = (a["mean"] - b["mean"]) / np.sqrt(a["mcse_mean"] ** 2 + b["mcse_mean"] ** 2)
    assert np.abs(z).max() < 4, z
    np.testing.assert_allclose(a["sd"], b["sd"], rtol=0.15)
    assert draws["nutpie"].attrs["source"].startswith("glmm_ppl: NUTS (nutpie)")
    assert float(draws["nutpie"].posterior.attrs["sampling_time"]) > 0


def test_nutpie_output_layout_and_seed(fm1_prior):
    """The same seed gives the same draws; the per-group log-likelihoods are those of each
    draw, and the posterior holds the PyMC model's variables only."""
    one, two = (
        sample(fm1_prior, draws=30, tune=30, chains=2, random_seed=9, progressbar=False)
        for _ in range(2)
    )
    np.testing.assert_array_equal(one.posterior["beta"], two.posterior["beta"])
    assert sorted(one.posterior.data_vars) == ["beta", "sd", "theta_D"]
    assert "group" not in one.posterior.coords
    graph = _graph(fm1_prior)
    post = one.posterior
    for chain, draw in [(0, 0), (1, 29)]:
        theta = np.r_[post["beta"][chain, draw], post["theta_D"][chain, draw]]
        expected = graph.log_density(fm1_prior.modes)(theta)[2]
        got = one.log_likelihood["y"][chain, draw].to_numpy()
        np.testing.assert_allclose(got, expected, atol=1e-7)


def test_sample_refuses_what_nutpie_cannot_do(fm1_prior):
    kw = {"draws": 5, "tune": 5, "chains": 1, "progressbar": False}
    with pytest.raises(ValueError, match=r"^nuts_sampler must be 'nutpie' or 'pymc', got 'stan'$"):
        sample(fm1_prior, nuts_sampler="stan", **kw)
    with pytest.raises(ValueError, match=r"samples the marginal model only; the latent model"):
        sample(fm1_prior, nuts_sampler="nutpie", marginal=False, **kw)
    with pytest.raises(ValueError, match=r"^step= is a PyMC step method: pass nuts_sampler="):
        sample(fm1_prior, step=object(), **kw)
    with pytest.raises(ValueError, match=r"^cores=2: nuts_sampler='pymc' runs the chains one"):
        sample(fm1_prior, nuts_sampler="pymc", cores=2, **kw)


def test_log_density_is_minus_infinity_where_D_is_singular(models):
    """A correlation within rounding of 1 makes ``D`` singular: the likelihood is 0 there,
    with a zero gradient, rather than a value the rule cannot give."""
    fit = models["corr"]
    graph = _graph(fit)
    theta = fit.theta.copy()
    theta[graph.p : graph.p + graph.n_theta] = [0.0, 1e6, -20.0]  # L = [[1, 0], [1e6, e⁻²⁰]]
    value, grad, per_group = graph.log_density(fit.modes)(theta)
    assert value == -np.inf
    assert np.array_equal(grad, np.zeros(len(theta)))
    assert np.all(per_group == -np.inf)


def test_draws_reuse_the_log_likelihoods_of_their_evaluation(fm1_prior, monkeypatch):
    """The per-group log-likelihoods stored with a draw are those computed with its gradient:
    a point evaluated again for each of the 120 draws (warm-up included) would make 120
    repeats; nutpie itself repeats a few (its starting points). Each chain keeps one density
    (its modes follow the chain), although nutpie's threads lose their Python thread state
    between calls: thousands of evaluations, a few densities."""
    points, densities = [], []
    call, init = LogDensity.__call__, LogDensity.__init__

    def counted(self, theta):
        points.append(np.asarray(theta).tobytes())
        return call(self, theta)

    def created(self, *args, **kwargs):
        densities.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(LogDensity, "__call__", counted)
    monkeypatch.setattr(LogDensity, "__init__", created)
    sample(fm1_prior, draws=40, tune=20, chains=2, random_seed=3, progressbar=False)
    assert len(points) > 2 * 60
    assert len(points) - len(set(points)) < 40
    assert len(densities) <= 2 * 2
