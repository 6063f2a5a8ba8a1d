"""Data that do not identify the model: an error before the fit, or a fit marked as not
converged with a warning that names the cause — never a silent "converged"."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import glmm_ppl as gp


def test_one_binary_row_per_group_is_refused():
    rng = np.random.default_rng(1)
    n = 300
    df = pd.DataFrame({"g": np.arange(n), "x": rng.normal(size=n)})
    df["y"] = (rng.random(n) < 0.4).astype(int)
    with pytest.raises(ValueError, match=r"every group of 'g' has a single binary response"):
        gp.mixed_model("y ~ x", "~ 1 | g", df, "binomial")


def test_one_binomial_row_with_trials_per_group_is_fitted():
    # with several trials per row one row per group identifies the variance
    rng = np.random.default_rng(2)
    n = 200
    b = rng.normal(scale=0.8, size=n)
    df = pd.DataFrame({"g": np.arange(n), "n": 12})
    df["s"] = rng.binomial(12, 1 / (1 + np.exp(-(0.2 + b))))
    fit = gp.mixed_model("s ~ 1", "~ 1 | g", df, "binomial", trials="n")
    assert fit.converged
    assert 0.3 < float(fit.D.iloc[0, 0]) < 1.3  # the true variance is 0.64


def test_response_constant_within_every_group_is_not_converged():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"g": np.repeat(np.arange(60), 5), "x": rng.normal(size=300)})
    df["y"] = np.repeat(rng.integers(0, 2, 60), 5)
    with pytest.warns(gp.ConvergenceWarning, match="constant within every group"):
        fit = gp.mixed_model("y ~ x", "~ 1 | g", df, "binomial")
    assert not fit.converged
    assert "constant within every group" in str(fit.summary())


@pytest.mark.parametrize("code, side", [(1, "left"), (2, "right")])
def test_every_row_censored_on_one_side_is_refused(code, side):
    rng = np.random.default_rng(4)
    df = pd.DataFrame({"g": np.repeat(np.arange(30), 4), "y": rng.normal(size=120), "c": code})
    with pytest.raises(ValueError, match=f"every row is {side} censored"):
        gp.mixed_model("y ~ 1", "~ 1 | g", df, "censored_normal", censoring="c")


def test_separation_is_not_converged_and_names_the_coefficient(binary):
    df = binary.copy()
    df["grp"] = np.where(df.index % 10 == 0, "a", "b")
    df.loc[df["grp"] == "a", "y"] = 1  # level "a": all successes
    with pytest.warns(gp.ConvergenceWarning, match=re.escape("'grpb'")):
        fit = gp.mixed_model("y ~ time + grp", "~ 1 | id", df, "binomial")
    assert not fit.converged
    assert "separation" in fit.opt_summary.problem
    # the Student-t penalty bounds the coefficient: a converged fit, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", gp.ConvergenceWarning)
        penalized = gp.mixed_model("y ~ time + grp", "~ 1 | id", df, "binomial", penalized=True)
    assert penalized.converged
    assert abs(float(penalized.fixef()["grpb"])) < 10


def test_identified_fits_have_no_problem(fm1, fm2, gm1):
    from glmm_ppl.fitting.identification import existence_problems

    for fit in (fm1, fm2, gm1):
        assert existence_problems(fit.design, fit.family, fit.layout, fit.theta, fit.hessian) == []


def test_flat_direction_is_reported(fm1):
    from glmm_ppl.fitting.identification import existence_problems

    flat = fm1.hessian.copy()
    k = fm1.names.index("D_11")  # make the log-likelihood flat along the variance parameter
    flat[k, :] = 0.0
    flat[:, k] = 0.0
    flat[k, k] = -1e-14
    problems = existence_problems(fm1.design, fm1.family, fm1.layout, fm1.theta, flat)
    assert len(problems) == 1
    assert "flat along a direction" in problems[0] and "'D_11'" in problems[0]
    # a flat fixed effect is reported by its standard error instead
    H = fm1.hessian.copy()
    H[0, :] = 0.0
    H[:, 0] = 0.0
    H[0, 0] = -1e-14
    problems = existence_problems(fm1.design, fm1.family, fm1.layout, fm1.theta, H)
    assert len(problems) == 1 and "do not bound the fixed effect(s) '(Intercept)'" in problems[0]
    # at a known boundary, flatness is expected and not reported again
    at_boundary = existence_problems(
        fm1.design, fm1.family, fm1.layout, fm1.theta, flat, boundary=True
    )
    assert at_boundary == []


@pytest.mark.parametrize("factor, advice", [(1e12, "divide it by 1e+12"), (1e-8, "multiply it")])
def test_response_far_from_unit_scale_warns_to_rescale(factor, advice):
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(60), 6)
    df = pd.DataFrame({"g": g, "x": rng.normal(size=360)})
    df["z"] = factor * (
        1 + 0.3 * df["x"] + rng.normal(scale=0.5, size=60)[g] + rng.normal(size=360)
    )
    with pytest.warns(UserWarning, match=re.escape(advice)):
        gp.mixed_model("z ~ x", "~ 1 | g", df, "gaussian")


def test_gaussian_at_large_scale_finds_the_rescaled_estimates():
    rng = np.random.default_rng(6)
    g = np.repeat(np.arange(80), 6)
    df = pd.DataFrame({"g": g, "x": rng.normal(size=480)})
    df["z"] = 1 + 0.3 * df["x"] + rng.normal(scale=0.5, size=80)[g] + rng.normal(size=480)
    unit = gp.mixed_model("z ~ x", "~ 1 | g", df, "gaussian")
    df["big"] = df["z"] * 1e9
    with pytest.warns(UserWarning, match="standard deviation"):
        big = gp.mixed_model("big ~ x", "~ 1 | g", df, "gaussian")
    np.testing.assert_allclose(big.fixef().to_numpy() / 1e9, unit.fixef().to_numpy(), rtol=1e-3)
    np.testing.assert_allclose(float(big.D.iloc[0, 0]) / 1e18, float(unit.D.iloc[0, 0]), rtol=1e-2)


def test_identity_link_responses_in_large_units_are_not_flagged():
    # standard errors in the response's units are not separation, nor a flat likelihood
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(60), 5)
    time = np.tile(np.arange(5.0), 60)
    df = pd.DataFrame({"g": g, "x": rng.normal(size=300), "time": time})
    b0, b1 = rng.normal(scale=800, size=60), rng.normal(scale=300, size=60)
    df["y"] = 1000 + 500 * df["x"] + b0[g] + b1[g] * time + rng.normal(scale=900, size=300)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gp.ConvergenceWarning)
        ri = gp.mixed_model("y ~ x", "~ 1 | g", df, "gaussian")
        slopes = gp.mixed_model("y ~ x", "~ time | g", df, "gaussian")
    assert ri.converged and slopes.converged


def test_a_prior_on_the_sd_gives_constant_groups_a_finite_map():
    # the likelihood has no maximum in the SD, but the posterior mode has one: the fit does
    # not claim the estimate is missing
    pm = pytest.importorskip("pymc")
    rng = np.random.default_rng(8)
    df = pd.DataFrame({"g": np.repeat(np.arange(40), 5), "x": rng.normal(size=200)})
    df["y"] = np.repeat(rng.integers(0, 2, 40), 5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = gp.mixed_model(
            "y ~ x", "~ 1 | g", df, "binomial", priors={"sd": pm.HalfNormal.dist(2.0)}
        )
    assert not any("constant within every group" in str(w.message) for w in caught)
    assert "constant within every group" not in fit.opt_summary.problem
    assert 1.0 < float(np.sqrt(fit.D.iloc[0, 0])) < 20.0
