"""Profile-likelihood intervals: each end checked against an independent constrained fit,
against Wald intervals where the likelihood is nearly quadratic, and at the boundary."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import glmm_ppl as gp
from glmm_ppl.postfit.profile import profile, profile_confint

Z95 = stats.norm.ppf(0.975)
REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"


@pytest.fixture(scope="module")
def small(binary):
    """A random-intercept model with one slope: the ends can be checked by refits."""
    return gp.mixed_model("y ~ time", "~ 1 | id", binary, "binomial")


def test_fixed_effect_ends_are_where_an_offset_refit_loses_the_chi2_quantile(small, binary):
    # with the slope fixed at an end c, the model is y ~ 1 with offset c·time: an ordinary
    # fit, independent of the profile code; 2 (ℓ̂ − ℓ_c) must be the χ²₁ 0.95 quantile
    ci = profile_confint(small, "time")
    for c in (ci.iloc[0, 0], ci.iloc[0, 2]):
        refit = gp.mixed_model("y ~ 1", "~ 1 | id", binary, "binomial", offset=c * binary["time"])
        assert 2 * (small.loglik - refit.loglik) == pytest.approx(Z95**2, abs=2e-3)
    assert ci.iloc[0, 1] == pytest.approx(small.fixef()["time"], abs=1e-12)


def test_sd_ends_are_where_the_likelihood_maximised_over_beta_loses_the_quantile(
    small, engine_loglik
):
    # at an end s of the standard deviation, maximise a fresh engine's log-likelihood over
    # β with D = s² held (Nelder–Mead, no gradients): 2 (ℓ̂ − ℓ_s) must be the quantile
    ci = profile_confint(small, "sd.(Intercept)")
    for s in (ci.iloc[0, 0], ci.iloc[0, 2]):
        _check_sd_end(small, s, engine_loglik, 2e-3)
    sd = np.sqrt(small.D.to_numpy()[0, 0])
    assert ci.iloc[0, 0] < sd < ci.iloc[0, 2]


def test_profile_matches_wald_where_the_likelihood_is_quadratic():
    # 1,000 groups: the fixed effects' profiles are straight to within a few hundredths of
    # a standard error, so the two kinds of interval agree to 0.05 SE
    df = pd.read_csv(REFERENCE_DIR / "binary_n1000.csv")
    fit = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
    prof = fit.confint(method="profile")
    wald = fit.confint()
    se = np.sqrt(np.diag(fit.vcov()))
    assert list(prof.index) == list(wald.index)
    assert np.max(np.abs(prof.to_numpy() - wald.to_numpy()) / se[:, None]) < 0.05
    # the variance: the profile's sd interval and the Wald interval of the variance (through
    # its log scale) agree to 2% of the estimate at this size
    sd_prof = fit.confint("var-cov", method="profile").to_numpy()[0]
    sd_wald = np.sqrt(fit.confint("var-cov").to_numpy()[0])
    assert np.allclose(sd_prof, sd_wald, rtol=0.02)


def _tiny_intercept(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(30), 6)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + 0.02 * rng.normal(size=30)[g]))
    return pd.DataFrame({"y": y, "x": x, "g": g})


def _check_sd_end(fit, s, engine_loglik, tol):
    """2 (ℓ̂ − max_β ℓ(β, D = s²)) by a fresh engine and Nelder–Mead: the χ²₁ quantile."""
    res = optimize.minimize(
        lambda b: -engine_loglik(fit, b, [[s**2]]),
        fit.fixef().to_numpy(),
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-10},
    )
    assert 2 * (fit.loglik + res.fun) == pytest.approx(Z95**2, abs=tol)


@pytest.mark.parametrize("seed", [11, 15])
def test_sd_interval_reaching_zero_has_lower_end_zero(seed, engine_loglik):
    # 30 groups of 6 with a tiny random intercept: the profile of its standard deviation
    # stays within the quantile all the way down to 0, from an estimate inside (seed 11)
    # or at 0 (seed 15, a singular fit)
    df = _tiny_intercept(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the singular fit's warnings
        fit = gp.mixed_model("y ~ x", "~ 1 | g", df, "poisson")
    # a singular fit may be reported as not converged (its Hessian is flat along D_11), and
    # the profile then says so
    if fit.converged:
        ci = fit.confint("var-cov", method="profile")
    else:
        with pytest.warns(UserWarning, match="the profiles start from estimates that may"):
            ci = fit.confint("var-cov", method="profile")
    assert ci.iloc[0, 0] == 0.0
    assert 0 <= ci.iloc[0, 1] < ci.iloc[0, 2] < 1
    assert (ci.iloc[0, 1] < 1e-4) == (seed == 15)  # 0.16 for seed 11
    _check_sd_end(fit, ci.iloc[0, 2], engine_loglik, 5e-3)


def test_correlation_and_extra_parameter_intervals():
    # negative binomial counts with correlated random intercepts and slopes
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(150), 8)
    t = np.tile(np.linspace(0, 1, 8), 150)
    b = rng.normal(size=(150, 2)) @ np.linalg.cholesky([[0.36, 0.09], [0.09, 0.16]]).T
    mu = np.exp(1.0 + 0.5 * t + b[g, 0] + b[g, 1] * t)
    df = pd.DataFrame({"y": rng.negative_binomial(4, 4 / (4 + mu)), "t": t, "g": g})
    fit = gp.mixed_model("y ~ t", "~ t | g", df, "negative_binomial")
    ci = fit.confint(["cor.(Intercept).t", "size"], method="profile")
    assert list(ci.index) == ["cor.(Intercept).t", "size"]
    D = fit.D.to_numpy()
    cor = D[0, 1] / np.sqrt(D[0, 0] * D[1, 1])
    assert ci.loc["cor.(Intercept).t", "Estimate"] == pytest.approx(cor, rel=1e-9)
    assert ci.loc["size", "Estimate"] == pytest.approx(fit.phis.iloc[0], rel=1e-9)
    # the slope's standard deviation is poorly determined: the correlation's profile stays
    # within the level up to 1, and the upper end is reported as 1
    lo, _, hi = ci.loc["cor.(Intercept).t"]
    assert -1 < lo < cor and hi == 1.0
    # the size is well determined: its profile interval is near the Wald one (log scale)
    wald = fit.confint("extra").loc["size"]
    assert np.allclose(np.log(ci.loc["size"]), np.log(wald), atol=0.02)


def test_profile_trace_is_monotone_and_straight_near_the_estimate(small):
    p = profile(small, "time", level=0.95)
    assert p["parameter"].unique().tolist() == ["time"]
    assert p["zeta"].is_monotonic_increasing
    assert (p["zeta"] == 0).sum() == 1
    assert p["zeta"].min() <= -Z95 + 2e-3 and p["zeta"].max() >= Z95 - 2e-3
    # ζ against the slope is nearly the Wald line (c − β̂)/SE
    se = np.sqrt(small.vcov().loc["time", "time"])
    wald = (p["value"] - small.fixef()["time"]) / se
    assert np.max(np.abs(p["zeta"] - wald)) < 0.1


def test_level_changes_the_width(small):
    narrow = profile_confint(small, "time", level=0.5)
    wide = profile_confint(small, "time", level=0.99)
    assert list(narrow.columns) == ["25 %", "Estimate", "75 %"]
    assert narrow.iloc[0, 2] - narrow.iloc[0, 0] < wide.iloc[0, 2] - wide.iloc[0, 0]


def test_bad_input_is_a_clear_error(small, binary):
    with pytest.raises(ValueError, match=r"no parameter 'sd\.time' to profile; the parameters"):
        small.confint("sd.time", method="profile")
    with pytest.raises(ValueError, match=r"unknown method 'bootstrap'; valid: 'wald', 'profile'"):
        small.confint(method="bootstrap")
    with pytest.raises(ValueError, match="level must be between 0 and 1, got 95"):
        small.confint("time", level=95, method="profile")
    pm = pytest.importorskip("pymc")
    fit = gp.mixed_model(
        "y ~ time", "~ 1 | id", binary, "binomial", priors={"fixed": pm.Normal.dist(0, 5)}
    )
    with pytest.raises(ValueError, match="profile intervals are intervals of the likelihood"):
        fit.confint(method="profile")


def test_sd_profile_to_zero_with_a_correlated_slope_matches_the_slope_only_model():
    # 300 subjects with correlated random intercepts and slopes; the intercept's standard
    # deviation is small. As it goes to 0 the correlation goes to ±1 (where the profile's
    # maximum then lies) and the model becomes the slope-only one: ζ at the floor must be
    # −√(2 (ℓ̂ − ℓ_slope-only)), an independent fit, and the interval reaches 0
    df = pd.read_csv(REFERENCE_DIR / "binary_n1000.csv")
    df = df[df["id"] <= 300]
    # (binary data, 8 rows a subject: 11 points are coarse for both models, said so; the
    # comparison is of the same rule's log-likelihoods)
    with pytest.warns(gp.QuadratureWarning):
        fit = gp.mixed_model("y ~ sex * time", "~ time | id", df, "binomial")
    with pytest.warns(gp.QuadratureWarning):
        slope_only = gp.mixed_model("y ~ sex * time", "~ 0 + time | id", df, "binomial")
    p = profile(fit, "sd.(Intercept)", level=0.95)
    floor = p["zeta"].iloc[0]  # the smallest value profiled
    assert p["value"].iloc[0] < 1e-3 * np.sqrt(fit.D.iloc[0, 0])
    assert floor == pytest.approx(-np.sqrt(2 * (fit.loglik - slope_only.loglik)), abs=0.01)
    assert fit.confint("sd.(Intercept)", method="profile").iloc[0, 0] == 0.0


def test_zero_part_run_off_to_minus_infinity_gets_a_one_sided_interval(poisson):
    # Poisson data without zero inflation: the zero part's intercept runs off towards −∞ and
    # the fit says it did not converge; its profile is flat downwards (an infinite end, with
    # a warning) and rises upwards (a finite end). The sex effect of the zero part is flat
    # both ways: with the intercept free to go to −∞ no value of it changes the likelihood
    with pytest.warns(gp.ConvergenceWarning):
        fit = gp.mixed_model("y ~ sex * time", "~ 1 | id", poisson, "zi_poisson", zi_fixed="~ sex")
    with pytest.warns(UserWarning) as caught:
        ci = fit.confint("zero_part", method="profile")
    messages = [str(w.message) for w in caught]
    assert any(
        "the profiles start from estimates that may not be the maximum" in m for m in messages
    )
    assert any(
        "the profile of 'zi_(Intercept)' does not reach the 0.95 level" in m for m in messages
    )
    assert list(ci.index) == ["(Intercept)", "sexfemale"]
    assert ci.loc["(Intercept)"].iloc[0] == -np.inf
    assert -20 < ci.loc["(Intercept)"].iloc[2] < 0
    assert ci.loc["sexfemale"].iloc[0] == -np.inf and ci.loc["sexfemale"].iloc[2] == np.inf
