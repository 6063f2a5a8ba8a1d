"""Priors as PyMC distributions, the PyMC model on the AGQ likelihood, NUTS and ArviZ output."""

import re
import warnings

import arviz as az
import numpy as np
import pymc as pm
import pytest
from scipy import optimize, stats

import glmm_ppl as gp
from glmm_ppl.bayes import compare_map_mcmc, sample, to_inference_data, to_pymc

FIXED, RANDOM = "y ~ sex * time", "~ 1 | id"


@pytest.fixture(scope="module")
def map_fit(binary):
    priors = {"fixed": pm.Normal.dist(0.0, 2.0), "sd": pm.HalfNormal.dist(3.0)}
    return gp.mixed_model(FIXED, RANDOM, binary, "binomial", priors=priors)


def test_map_maximises_loglik_plus_log_prior(map_fit, fm1):
    """The MAP estimate maximises log L(θ) + Σ log N(β; 0, 2) + log HalfNormal(sd; 3) — checked
    with scipy's optimizer on an independently written objective around it."""
    graph = gp.fitting.MixedModelGraph(map_fit.design, map_fit.family, 11, None)

    def objective(theta):
        ll = graph(theta)[1]
        sd = np.exp(theta[4])
        return -(ll + stats.norm.logpdf(theta[:4], 0, 2).sum() + stats.halfnorm.logpdf(sd, 0, 3))

    res = optimize.minimize(
        objective,
        map_fit.theta,
        method="Nelder-Mead",
        options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 4000},
    )
    assert -res.fun <= map_fit.loglik + map_fit.log_prior + 1e-6
    np.testing.assert_allclose(map_fit.theta, res.x, atol=2e-3)
    # the prior pulls the estimates towards 0 compared with maximum likelihood
    assert np.all(np.abs(map_fit.fixef().to_numpy()) < np.abs(fm1.fixef().to_numpy()))
    assert map_fit.log_prior == pytest.approx(
        stats.norm.logpdf(map_fit.theta[:4], 0, 2).sum()
        + stats.halfnorm.logpdf(np.exp(map_fit.theta[4]), 0, 3),
        rel=1e-7,  # PyMC's and scipy's half-normal log densities differ in rounding
    )


def test_vague_prior_is_maximum_likelihood(binary, fm1):
    fit = gp.mixed_model(FIXED, RANDOM, binary, "binomial", priors={"fixed": pm.Flat.dist()})
    np.testing.assert_allclose(fit.theta, fm1.theta, atol=1e-6)
    assert fit.loglik == pytest.approx(fm1.loglik, abs=1e-8)


def test_lkj_prior_on_correlated_random_effects(binary):
    """fm3's correlation runs to 1 by maximum likelihood; an LKJ(2) prior keeps it inside."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gp.mixed_model(
            FIXED,
            "~ time | id",
            binary,
            "binomial",
            priors={"sd": pm.HalfCauchy.dist(2.5), "corr": 2.0},
        )
    D = fit.D.to_numpy()
    assert abs(D[0, 1] / np.sqrt(D[0, 0] * D[1, 1])) < 0.9
    assert fit.converged and not fit.warnings


def test_prior_errors(binary):
    valid = "'fixed', '(Intercept)', 'sexfemale', 'time', 'sexfemale:time', 'sd', 'sd_(Intercept)'"
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"priors for parameters the model does not have: 'tim'; valid keys: {valid}"
        ),
    ):
        gp.mixed_model(FIXED, RANDOM, binary, "binomial", priors={"tim": pm.Normal.dist()})
    with pytest.raises(
        TypeError,
        match=re.escape(
            "priors['time'] must be an unregistered PyMC distribution such as "
            "pm.Normal.dist(0, 2.5)"
        ),
    ):
        gp.mixed_model(FIXED, RANDOM, binary, "binomial", priors={"time": 2.5})
    with pytest.raises(ValueError, match=re.escape("'corr' needs correlated random effects")):
        gp.mixed_model(FIXED, RANDOM, binary, "binomial", priors={"corr": 2.0})
    with pytest.raises(ValueError, match="^penalized=True is a Student-t prior on the fixed"):
        gp.mixed_model(
            FIXED, RANDOM, binary, "binomial", penalized=True, priors={"fixed": pm.Normal.dist()}
        )


def test_pymc_model_logp_is_the_fits_objective_plus_jacobian(map_fit):
    """The PyMC model's log density at θ̂ equals log L + log prior + the log-Jacobian of the
    standard deviation's log scale (the density NUTS samples)."""
    model = to_pymc(map_fit)
    point = {"beta": map_fit.theta[:4], "theta_D": map_fit.theta[4:5]}
    logp = model.compile_logp()(point)
    assert logp == pytest.approx(map_fit.loglik + map_fit.log_prior + map_fit.theta[4], abs=1e-6)


@pytest.fixture(scope="module")
def short_chain(map_fit):
    return sample(map_fit, draws=60, tune=60, chains=1, random_seed=3, progressbar=False)


def test_sample_returns_inference_data(short_chain, map_fit):
    post = short_chain.posterior
    assert list(post["beta"].coords["fixed"].values) == list(map_fit.design.fixed_names)
    assert post["sd"].shape == (1, 60, 1)
    ll = short_chain.log_likelihood["y"]
    assert ll.shape == (1, 60, map_fit.n_groups)
    # the per-group values sum to the log-likelihood of that draw (engine re-evaluation)
    graph = gp.fitting.MixedModelGraph(map_fit.design, map_fit.family, 11, None)
    theta = np.r_[post["beta"][0, 5].to_numpy(), post["theta_D"][0, 5].to_numpy()]
    assert float(ll[0, 5].sum()) == pytest.approx(graph(theta)[1], abs=1e-6)
    assert "log_prior" in short_chain.groups()
    assert short_chain.log_prior["theta"].dims == ("chain", "draw")
    obs = short_chain.observed_data["y"]  # one value per row, not chain × draw
    assert obs.dims == ("obs_id",)
    np.testing.assert_array_equal(obs.to_numpy(), map_fit.design.y)  # grouped row order,
    binary = gp.load_vignette("binary")  # labelled by the data's row labels
    np.testing.assert_array_equal(obs.to_numpy(), binary.loc[obs["obs_id"].to_numpy(), "y"])
    assert short_chain.attrs["source"].startswith("glmm_ppl")


@pytest.mark.parametrize("sampler, depth", [("nutpie", "depth"), ("pymc", "tree_depth")])
def test_map_covariance_as_mass_matrix_gives_near_independent_draws(map_fit, sampler, depth):
    """NUTS's metric is the MAP fit's inverse negative Hessian (nutpie: coordinates whitened
    by it): the correlated fixed effects then mix as well as the rest. PyMC's default
    diagonal adaptation gives a bulk ESS of 0.2-0.35 per draw for the fixed effects of this
    model; with the MAP metric about 1."""
    idata = sample(
        map_fit,
        draws=200,
        tune=200,
        chains=1,
        random_seed=7,
        progressbar=False,
        nuts_sampler=sampler,
    )
    ess = az.ess(idata.posterior[["beta", "sd"]], method="bulk")
    assert float(ess["beta"].min()) > 120 and float(ess["sd"].min()) > 120
    assert float(idata.sample_stats[depth].mean()) < 3.0


def test_sample_warns_without_sd_prior(fm1):
    with pytest.warns(UserWarning, match="^no prior on the random-effect standard deviations"):
        sample(fm1, draws=5, tune=5, chains=1, random_seed=1, progressbar=False)


def test_map_inference_data_matches_the_fit(fm1):
    idata = to_inference_data(fm1, draws=20000, seed=1)
    beta = idata.posterior["beta"]
    np.testing.assert_allclose(beta.mean(("chain", "draw")), fm1.fixef(), atol=0.02)
    se = np.sqrt(np.diag(fm1.vcov()))
    np.testing.assert_allclose(beta.std(("chain", "draw")), se, rtol=0.03)
    assert az.summary(idata, var_names=["sd"]).shape[0] == 1


def test_compare_map_mcmc_table(short_chain, map_fit):
    table = compare_map_mcmc(map_fit, short_chain)
    assert table.index.tolist()[:2] == ["beta[(Intercept)]", "beta[sexfemale]"]
    np.testing.assert_allclose(table["MAP"].to_numpy()[:4], map_fit.fixef().to_numpy())
    np.testing.assert_allclose(table["z"], (table["mean"] - table["MAP"]) / table["sd"])
    assert np.all(table["MAP_se"] > 0)


def test_random_effects_draws_match_the_exact_conditional_posterior(fm1):
    """At a fixed θ (every draw θ̂), the draws of b_i have the mean and variance of
    p(b_i | y_i, θ̂), integrated with scipy for each of the 100 groups; the normal
    approximation at the mode (method="normal") misses the skew of these binary groups."""
    from scipy import integrate

    from glmm_ppl.bayes.random_effects import sample_random_effects

    S, p, d = 1000, 4, fm1.design
    theta = fm1.theta
    draws = {"beta": np.tile(theta[:p], (1, S, 1)), "theta_D": np.tile(theta[p:], (1, S, 1))}
    eta0, sd = d.X @ theta[:p], np.sqrt(fm1.D.iloc[0, 0])

    def moments(i):
        y, e = d.y[d.starts[i] : d.starts[i + 1]], eta0[d.starts[i] : d.starts[i + 1]]

        def f(b, k):
            return b**k * np.exp(np.sum(y * (e + b) - np.logaddexp(0, e + b)) - 0.5 * (b / sd) ** 2)

        m = [integrate.quad(f, -15, 15, args=(k,))[0] for k in range(3)]
        return m[1] / m[0], m[2] / m[0] - (m[1] / m[0]) ** 2

    exact = np.array([moments(i) for i in range(fm1.n_groups)])
    z = {}
    for method in ("importance", "normal"):
        b = sample_random_effects(fm1, az.from_dict(posterior=draws), seed=3, method=method)
        b = b.posterior["b"].to_numpy()[0, :, :, 0]
        z[method] = (b.mean(axis=0) - exact[:, 0]) / np.sqrt(exact[:, 1] / S)
        if method == "importance":
            assert np.median(b.var(axis=0) / exact[:, 1]) == pytest.approx(1.0, abs=0.06)
    assert np.max(np.abs(z["importance"])) < 4.5 and abs(np.mean(z["importance"])) < 0.4
    assert np.max(np.abs(z["normal"])) > 5  # what the importance weights correct
    with pytest.raises(ValueError, match=r"^method must be 'importance' or 'normal', got 'mcmc'$"):
        sample_random_effects(fm1, az.from_dict(posterior=draws), method="mcmc")


def test_random_effects_posterior_centres_on_the_modes(fm1):
    from glmm_ppl.bayes.random_effects import sample_random_effects

    idata = sample_random_effects(fm1, to_inference_data(fm1, draws=400, seed=4), seed=5)
    b = idata.posterior["b"]
    assert b.dims == ("chain", "draw", "group", "random")
    assert list(b.coords["random"].values) == ["(Intercept)"]
    mean = b.mean(("chain", "draw")).to_numpy()[:, 0]
    modes = fm1.ranef()["(Intercept)"].to_numpy()
    assert np.corrcoef(mean, modes)[0, 1] > 0.99
    # posterior SDs of b exceed the conditional ones (θ uncertainty adds to them)
    sd = b.std(("chain", "draw")).to_numpy()[:, 0]
    cond = np.sqrt(fm1.ranef(post_vars=True)["var.(Intercept)"].to_numpy())
    assert np.median(sd / cond) > 0.95


def test_priors_are_described_with_their_parameters(binary):
    priors = {"fixed": pm.Normal.dist(0, 2.5), "sd": pm.HalfNormal.dist(3), "corr": 2}
    fit = gp.mixed_model("y ~ time", "~ time | id", binary, "binomial", priors=priors)
    assert fit.priors.describe() == [
        "fixed ~ Normal(0, 2.5)",
        "sd ~ HalfNormal(0, 3)",
        "corr ~ LKJ(eta=2)",
    ]
    assert "fixed ~ Normal(0, 2.5); sd ~ HalfNormal(0, 3); corr ~ LKJ(eta=2)" in str(fit.summary())
