"""The latent model (every random effect explicit) against the marginal model on the AGQ Op.

For fixed ``θ`` the latent model's density, integrated over each group's standard-normal
``z_i`` (scipy ``quad``/``dblquad``, independent of the package's quadrature), is the marginal
model's density: the same parameters, the same priors and Jacobians, the same likelihood.
"""

import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy import integrate

import glmm_ppl as gp
from glmm_ppl.bayes import to_pymc
from glmm_ppl.engine.covariance import theta_to_D

N_GROUPS, PER_GROUP = 5, 4


@pytest.fixture(scope="module")
def tiny() -> pd.DataFrame:
    rng = np.random.default_rng(20)
    n = N_GROUPS * PER_GROUP
    df = pd.DataFrame(
        {
            "id": np.repeat(np.arange(N_GROUPS), PER_GROUP),
            "x": rng.normal(size=n),
            "e": rng.uniform(0.5, 2.0, size=n),
            "n": rng.integers(1, 6, size=n),
        }
    )
    b = rng.normal(scale=0.8, size=N_GROUPS)[df["id"]]
    eta = 0.2 + 0.5 * df["x"] + b
    df["yb"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    df["s"] = rng.binomial(df["n"], 1 / (1 + np.exp(-eta)))
    df["yc"] = rng.poisson(np.exp(eta)) * rng.binomial(1, 0.8, size=n)
    df["yg"] = eta + rng.normal(scale=0.7, size=n)
    df["cens"] = np.where(df["yg"] > 1.2, 2, 0)
    df.loc[df["cens"] == 2, "yg"] = 1.2
    return df


CASES = {
    "bernoulli": ("yb ~ x + (1 | id)", "bernoulli", {}),
    "bernoulli_priors": (
        "yb ~ x + (1 | id)",
        "bernoulli",
        {"priors": {"fixed": pm.Normal.dist(0.0, 2.0), "sd": pm.HalfNormal.dist(2.0)}},
    ),
    "binomial_trials": ("p(s, n) ~ x + (1 | id)", "binomial", {}),
    "poisson_offset": ("yc ~ x + offset(log(e)) + (1 | id)", "poisson", {}),
    "negative_binomial": ("yc ~ x + (1 | id)", "negative_binomial", {}),
    "zi_poisson": ("yc ~ x + (1 | id)", "zi_poisson", {"zi_fixed": "~ x"}),
    "gaussian": ("yg ~ x + (1 | id)", "gaussian", {"penalized": True}),
    "censored_normal": ("cbind(yg, cens) ~ x + (1 | id)", "censored_normal", {}),
    "poisson_diagonal": ("yc ~ x + (x || id)", "poisson", {}),
    "poisson_correlated": (
        "yc ~ x + (x | id)",
        "poisson",
        {"priors": {"sd": pm.HalfNormal.dist(1.0), "corr": 2.0}},
    ),
    "zi_poisson_zero_part_random": (
        "yc ~ x + (1 | id)",
        "zi_poisson",
        {"zi_random": "~ 1 | id"},
    ),
}


def _theta(fit) -> np.ndarray:
    """``θ``: the fit's fixed effects; chosen ``D`` and extra parameters (away from any edge)."""
    blocks, d = fit.layout.blocks, fit.design
    theta = fit.theta.copy()
    sd = np.array([0.8, 0.5])[: d.q]
    D = np.diag(sd**2)
    if d.q == 2:
        D[0, 1] = D[1, 0] = 0.3 * sd[0] * sd[1]
    theta[blocks["var-cov"]] = gp.engine.covariance.D_to_theta(D, d.diagonal)
    if fit.family.n_phis:
        theta[blocks["extra"]] = np.log(1.5)
    return theta


def _point(fit, theta) -> dict:
    blocks = fit.layout.blocks
    point = {"beta": theta[blocks["fixed-effects"]], "theta_D": theta[blocks["var-cov"]]}
    if fit.design.X_zi is not None:
        point["gamma"] = theta[blocks["zero_part"]]
    if fit.family.n_phis:
        point["log_phi"] = theta[blocks["extra"]]
    return point


def _integrated_latent_logp(fit, theta) -> float:
    """``log ∫ exp(latent logp(θ, z)) dz``, one group at a time: the latent density is a sum
    over groups, so with the other groups' ``z`` held at 0 each group's integral factors out."""
    model = to_pymc(fit, marginal=False)
    logp = model.compile_logp()
    point = _point(fit, theta)
    q = fit.design.q
    z0 = np.zeros((fit.n_groups, q))
    base = float(logp({**point, "z": z0}))
    total = base
    for i in range(fit.n_groups):

        def density(*t, i=i):
            z = z0.copy()
            z[i] = t
            return np.exp(float(logp({**point, "z": z})) - base)

        if q == 1:
            value, _ = integrate.quad(density, -12, 12, epsabs=0, epsrel=1e-11, limit=200)
        else:
            value, _ = integrate.dblquad(density, -8, 8, -8, 8, epsabs=0, epsrel=1e-8)
        total += np.log(value)
    return total


@pytest.mark.parametrize("case", list(CASES))
def test_latent_integrates_to_marginal(tiny, case):
    formula, family, kwargs = CASES[case]
    q = 1 if "(1 |" in formula and "zi_random" not in kwargs else 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny data: boundary fits do not matter here
        fit = gp.mixed_model(
            formula, data=tiny, family=family, n_agq=41 if q == 1 else 21, **kwargs
        )
    assert fit.design.q == q
    theta = _theta(fit)
    marginal = float(to_pymc(fit).compile_logp()(_point(fit, theta)))
    assert _integrated_latent_logp(fit, theta) == pytest.approx(marginal, abs=1e-6)


def test_latent_model_structure(fm1):
    model = to_pymc(fm1, marginal=False)
    assert sorted(v.name for v in model.free_RVs) == ["beta", "theta_D", "z"]
    assert model.named_vars_to_dims["z"] == ("group", "random")
    assert model.named_vars_to_dims["b"] == ("group", "random")
    # the chains start at the fit: b = L z reproduces the empirical Bayes modes
    start = model.initial_point()
    b = pm.compile([model["theta_D"], model["z"]], model["b"])(start["theta_D"], start["z"])
    np.testing.assert_allclose(b, fm1.modes, atol=1e-10)
    D = theta_to_D(start["theta_D"], 1, False)
    np.testing.assert_allclose(D, fm1.D.to_numpy(), rtol=1e-10)


def test_latent_model_refuses_weights(binary):
    weights = pd.Series(1.0, index=np.unique(binary["id"]))
    fit = gp.mixed_model("y ~ time + (1 | id)", data=binary, family="binomial", weights=weights)
    with pytest.raises(NotImplementedError, match="^the latent model .* has no group weights"):
        to_pymc(fit, marginal=False)


def test_latent_nuts_agrees_with_map(fm1):
    """NUTS on the latent model of the binary vignette: the posterior means of β within 3
    posterior standard deviations of the MAP (maximum-likelihood) estimates."""
    with to_pymc(fm1, marginal=False), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample(draws=400, tune=400, chains=2, cores=1, random_seed=11, progressbar=False)
    beta = idata.posterior["beta"]
    mean, sd = beta.mean(("chain", "draw")).to_numpy(), beta.std(("chain", "draw")).to_numpy()
    z = (mean - fm1.fixef().to_numpy()) / sd
    assert np.all(np.abs(z) < 3), z
    assert float(idata.sample_stats["diverging"].sum()) < 10
