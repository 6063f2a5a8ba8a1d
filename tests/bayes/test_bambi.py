"""The MAP fit beside bambi's posterior of the same model (bambi is optional)."""

import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import glmm_ppl as gp
from glmm_ppl.bayes import compare_with_bambi


def test_without_bambi_the_error_says_how_to_install(fm1, monkeypatch):
    monkeypatch.setitem(sys.modules, "bambi", None)  # as if bambi were not installed
    with pytest.raises(ImportError) as err:
        compare_with_bambi(fm1)
    assert str(err.value) == (
        "compare_with_bambi needs bambi: pip install 'glmm_ppl[bambi]' (or pip install bambi)"
    )


def test_families_without_a_bambi_counterpart(poisson):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # whether it converged does not matter here
        fit = gp.mixed_model("y ~ time + (1 | id)", data=poisson, family="zi_poisson")
    with pytest.raises(NotImplementedError) as err:
        compare_with_bambi(fit)
    assert str(err.value) == (
        "no bambi counterpart of the zi_poisson family here; compare_with_bambi supports "
        "binomial, poisson, negative_binomial, gaussian, gamma, beta"
    )


def test_bambi_model_uses_the_fits_design(fm2):
    pytest.importorskip("bambi")
    from glmm_ppl.bayes.bambi_bridge import bambi_model

    model, names = bambi_model(fm2)
    assert model.formula.main == "y ~ 1 + sexfemale + time + sexfemale_time + (1 + time | id)"
    assert names == {
        "beta": ["Intercept", "sexfemale", "time", "sexfemale_time"],
        "sd": ["1|id_sigma", "time|id_sigma"],
        "phi": [],
    }
    assert model.family.name == "bernoulli"
    data = model.data
    np.testing.assert_array_equal(data["y"], fm2.design.y)
    np.testing.assert_array_equal(data["sexfemale_time"], fm2.design.X[:, 3])


def test_bambi_binomial_with_trials_and_offset():
    pytest.importorskip("bambi")
    from glmm_ppl.bayes.bambi_bridge import bambi_model

    rng = np.random.default_rng(1)
    df = pd.DataFrame({"g": np.repeat(np.arange(10), 5), "x": rng.normal(size=50)})
    df["n"] = rng.integers(2, 8, size=50)
    b = rng.normal(scale=1.5, size=10)[df["g"]]
    df["s"] = rng.binomial(df["n"], 1 / (1 + np.exp(-(df["x"] + b))))
    df["o"] = 0.1 * df["x"]
    fit = gp.mixed_model("p(s, n) ~ x + offset(o) + (1 | g)", data=df, family="binomial")
    model, names = bambi_model(fit)
    assert model.formula.main == "p(s, n) ~ 1 + x + offset(eta_offset) + (1 | g)"
    assert model.family.name == "binomial"
    np.testing.assert_allclose(model.data["eta_offset"], 0.1 * fit.design.X[:, 1])


@pytest.mark.slow
def test_bambi_posterior_agrees_with_map(fm1):
    """bambi's latent model under its default priors: the posterior means of the fixed effects
    within 3 posterior standard deviations of the maximum-likelihood estimates."""
    pytest.importorskip("bambi")
    table = compare_with_bambi(
        fm1, draws=500, tune=500, chains=2, random_seed=5, progressbar=False, cores=1
    )
    assert table["bambi"].tolist() == [
        "Intercept",
        "sexfemale",
        "time",
        "sexfemale_time",
        "1|id_sigma",
    ]
    beta = table.loc[table.index.str.startswith("beta[")]
    np.testing.assert_allclose(beta["MAP"], fm1.fixef().to_numpy())
    assert np.all(np.abs(beta["z"]) < 3), beta["z"]
    assert np.all(beta["r_hat"] < 1.05)
    sd = table.loc["sd[(Intercept)]"]
    assert abs(sd["mean"] - sd["MAP"]) < 3 * sd["sd"]
