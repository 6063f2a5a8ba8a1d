"""The parametric bootstrap: ``bootstrap(fit)`` and ``anova(m0, m1, bootstrap=B)``.

Properties checked: reproducibility (seed, threads, prefixes of a longer run), the null
distribution's point mass at 0 for a variance tested on the boundary, the exact smallest
p-value, bootstrap standard errors against the Wald ones, data with trials, a zero part and
offsets, models whose rows are ordered differently, dropped refits, and the errors.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import glmm_ppl as gp
from glmm_ppl.postfit.bootstrap import BootstrapLRT, BootstrapResult, bootstrap

# the module (an exported function of the same name would shadow it as an attribute)
boot_module = importlib.import_module("glmm_ppl.postfit.bootstrap")

FIXED = "y ~ sex * time"
BOUNDARY = "ignore:.*adds the variance of"  # anova's χ² warning, when no bootstrap is asked


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def boot_fm1(fm1):
    return bootstrap(fm1, nsim=100, seed=11, progress=False)


@pytest.fixture(scope="module")
def null_data(binary, glm_binary):
    """The vignette's design with a response simulated from the GLM: no random effects."""
    female, time = binary["sex"].eq("female").to_numpy(float), binary["time"].to_numpy()
    X = np.column_stack([np.ones(len(binary)), female, time, female * time])
    eta = X @ glm_binary.fixef()[["(Intercept)", "sexfemale", "time", "sexfemale:time"]]
    y = np.random.default_rng(2024).binomial(1, 1 / (1 + np.exp(-eta)))
    return binary.assign(y=y)


@pytest.fixture(scope="module")
def trials_data():
    """Successes out of 3 to 8 trials, 40 groups of 5 rows, a random intercept of SD 0.8."""
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(40), 5)
    x = rng.normal(size=200)
    n = rng.integers(3, 9, size=200)
    eta = -0.3 + 0.6 * x + rng.normal(0, 0.8, 40)[g]
    return pd.DataFrame({"g": g, "x": x, "n": n, "s": rng.binomial(n, 1 / (1 + np.exp(-eta)))})


@pytest.fixture(scope="module")
def zip_offset_fit(poisson):
    """A zero-inflated Poisson with an offset of 0 to log 4 (extra zeros for 10%/30%)."""
    rng = np.random.default_rng(3)
    extra = rng.random(len(poisson)) < np.where(poisson["sex"] == "female", 0.3, 0.1)
    data = poisson.assign(y=np.where(extra, 0, poisson["y"]), expo=np.log(1.0 + poisson["id"] % 4))
    return gp.mixed_model(
        "y ~ time", "~ 1 | id", data, "zi_poisson", zi_fixed="~ sex", offset="expo"
    )


def _mean_z(result: BootstrapResult) -> pd.Series:
    """The replicates' mean minus the estimate, in standard errors of that mean."""
    n = len(result.replicates)
    return (result.replicates.mean() - result.estimates) / (result.std_errors / np.sqrt(n))


# ---- reproducibility --------------------------------------------------------------------------
def test_anova_same_seed_same_p_value_other_seed_other_replicates(glm_binary, fm1):
    a = gp.anova(glm_binary, fm1, bootstrap=20, seed=5)
    b = gp.anova(glm_binary, fm1, bootstrap=20, seed=5)
    c = gp.anova(glm_binary, fm1, bootstrap=20, seed=6)
    ra, rb, rc = (t.attrs["bootstrap"].replicates for t in (a, b, c))
    np.testing.assert_array_equal(ra, rb)
    assert a.loc["fm1", "p.boot"] == b.loc["fm1", "p.boot"]
    assert len(ra) == len(rc) and not np.array_equal(ra, rc)


def test_bootstrap_same_seed_same_replicates_and_a_prefix_of_a_longer_run(fm1, boot_fm1):
    again = bootstrap(fm1, nsim=20, seed=11, progress=False)
    pd.testing.assert_frame_equal(again.replicates, boot_fm1.replicates.iloc[:20])
    other = bootstrap(fm1, nsim=20, seed=12, progress=False)
    assert not np.allclose(other.replicates.to_numpy(), again.replicates.to_numpy())


def test_results_do_not_depend_on_the_threads(fm1, glm_binary, monkeypatch):
    threaded = bootstrap(fm1, nsim=8, seed=3, progress=False)
    lrt = gp.anova(glm_binary, fm1, bootstrap=8, seed=3).attrs["bootstrap"]
    monkeypatch.setattr(boot_module, "_THREADS", 1)
    pd.testing.assert_frame_equal(
        bootstrap(fm1, nsim=8, seed=3, progress=False).replicates, threaded.replicates
    )
    sequential = gp.anova(glm_binary, fm1, bootstrap=8, seed=3).attrs["bootstrap"]
    np.testing.assert_array_equal(sequential.replicates, lrt.replicates)


def test_a_generator_seed_is_used_as_it_is(fm1):
    a = bootstrap(fm1, nsim=3, seed=np.random.default_rng(9), progress=False)
    b = bootstrap(fm1, nsim=3, seed=np.random.default_rng(9), progress=False)
    pd.testing.assert_frame_equal(a.replicates, b.replicates)


# ---- the likelihood-ratio test ------------------------------------------------------------------
def test_huge_lrt_has_the_smallest_bootstrap_p_value(glm_binary, fm1):
    B = 40
    table = gp.anova(glm_binary, fm1, bootstrap=B, seed=1)
    test = table.attrs["bootstrap"]
    assert test.n_failed == 0 and len(test.replicates) == B
    assert table.loc["fm1", "p.boot"] == 1 / (B + 1)  # no LRT* near 162
    assert np.isnan(table.loc["glm_binary", "p.boot"])
    assert test.statistic == pytest.approx(table.loc["fm1", "LRT"], abs=1e-12)


@pytest.mark.filterwarnings("ignore:m1 did not converge")  # it is on the boundary, as it should
@pytest.mark.filterwarnings("ignore:the log-likelihood is flat")
def test_null_distribution_of_a_variance_has_a_point_mass_at_zero(null_data):
    """Data from the GLM: the random-intercept variance's estimate is 0 in about half the
    simulated data sets (the χ̄² 50:50 mixture; a little more with binary data), where the
    refit stops on the boundary and LRT* = 0. Dropping boundary refits as not converged, or
    simulating from the larger model, leaves almost none there."""
    m0 = gp.glm(FIXED, null_data, "binomial")
    m1 = gp.mixed_model(FIXED, "~ 1 | id", null_data, "binomial")
    table = gp.anova(m0, m1, bootstrap=100, seed=4)
    test = table.attrs["bootstrap"]
    assert test.n_failed <= 3
    at_zero = np.mean(test.replicates < 1e-6)
    assert 0.35 <= at_zero <= 0.8, at_zero
    assert test.replicates.min() > -1e-5  # the larger model's fit is never worse
    # the rest look like χ²(1): its 90% quantile is 2.71
    assert 0.5 < np.quantile(test.replicates, 0.9) < 6.0


@pytest.mark.filterwarnings("ignore:the quadrature rule may be too coarse")
def test_simulated_responses_follow_each_models_row_order():
    """A subject-only model and a crossed one order the rows differently: the responses
    simulated from the first are matched to the second's rows by label. Mismatched rows would
    give the two refits different data, and LRT* far below 0."""
    rng = np.random.default_rng(20240611)
    subj, item = np.repeat(np.arange(12), 5), np.tile(np.arange(5), 12)
    x = rng.normal(size=60)
    eta = 0.3 + 0.5 * x + rng.normal(0, 0.6, 12)[subj] + rng.normal(0, 0.5, 5)[item]
    df = pd.DataFrame(
        {"subj": [f"s{s:02d}" for s in subj], "item": [f"i{i}" for i in item], "x": x}
    ).assign(y=rng.poisson(np.exp(eta)))
    m0 = gp.mixed_model("y ~ x", "~ 1 | subj", df, "poisson", n_agq=1)
    m1 = gp.mixed_model("y ~ x", "(1 | subj) + (1 | item)", df, "poisson")
    assert not np.array_equal(m0.design.rows, m1.design.rows)
    test = gp.anova(m0, m1, bootstrap=4, seed=2).attrs["bootstrap"]
    assert test.n_failed == 0
    assert test.replicates.min() > -1e-4


def test_fm1_against_fm2(fm1, fm2):
    table = gp.anova(fm1, fm2, bootstrap=4, seed=1)
    test = table.attrs["bootstrap"]
    assert table.columns.tolist()[-1] == "p.boot"
    assert test.names == ("fm1", "fm2") and test.nsim == 4
    assert table.loc["fm2", "p.boot"] == (1 + np.sum(test.replicates >= 30.0965)) / (
        1 + len(test.replicates)
    )


@pytest.mark.filterwarnings(BOUNDARY)
def test_the_printed_table_has_the_bootstrap_column_and_note(glm_binary, fm1):
    table = gp.anova(glm_binary, fm1, bootstrap=3, seed=1)
    text = str(table)
    assert text.splitlines()[0].split()[-1] == "p.boot"
    assert text.splitlines()[-1] == (
        "parametric bootstrap: 3 data sets simulated from glm_binary, 0 dropped (refits not "
        "converged)"
    )
    assert "<p>parametric bootstrap: 3 data sets" in table._repr_html_()
    assert "p.boot" not in str(gp.anova(glm_binary, fm1))


def test_p_value_counts_ties_and_uses_the_kept_data_sets():
    test = BootstrapLRT(2.0, np.array([0.0, 1.999995, 2.5, 1.9]), nsim=6, n_failed=2)
    assert test.p_value == 3 / 5
    assert np.isnan(BootstrapLRT(2.0, np.array([]), nsim=2, n_failed=2).p_value)


# ---- bootstrap of the parameters ----------------------------------------------------------------
def test_columns_are_the_rows_of_confint_all(fm1, boot_fm1):
    wald = fm1.confint("all")
    assert boot_fm1.replicates.columns.tolist() == wald.index.tolist()
    np.testing.assert_allclose(boot_fm1.estimates, wald["Estimate"], rtol=1e-12)
    assert boot_fm1.n_failed == 0 and boot_fm1.nsim == 100


def test_bootstrap_se_of_fixed_effects_is_near_the_wald_se(fm1, boot_fm1):
    """With 100 replicates an SD is within about 7% of its value (one standard error,
    1/√(2·99)); 25% leaves 3.5 of those plus a few percent for the difference between the
    bootstrap and the curvature's standard errors, and fails if the refits' estimates do not
    vary as the fixed effects' sampling distribution does."""
    wald = np.sqrt(np.diag(fm1.vcov()))
    ratio = boot_fm1.std_errors[fm1.fixef().index].to_numpy() / wald
    np.testing.assert_allclose(ratio, 1.0, atol=0.25)


def test_percentile_intervals_are_the_replicates_quantiles(boot_fm1):
    ci = boot_fm1.confint()
    assert ci.columns.tolist() == ["2.5 %", "Estimate", "97.5 %"]
    reps = boot_fm1.replicates.to_numpy()
    np.testing.assert_allclose(ci["2.5 %"], np.quantile(reps, 0.025, axis=0))
    np.testing.assert_allclose(ci["97.5 %"], np.quantile(reps, 0.975, axis=0))
    narrow = boot_fm1.confint(level=0.5)
    assert (narrow["25 %"] >= ci["2.5 %"]).all() and (narrow["75 %"] <= ci["97.5 %"]).all()
    assert repr(boot_fm1).splitlines()[0] == (
        "Parametric bootstrap: 100 of 100 simulated data sets kept (0 refits did not "
        "converge); percentile intervals"
    )


def test_refit_of_the_fits_own_data_gives_the_fit(fm1, glm_binary):
    again = boot_module._MixedRefit(fm1)(np.asarray(fm1.design.y, dtype=float))
    assert again.ok
    assert again.loglik == pytest.approx(fm1.loglik, abs=1e-6)
    se = np.sqrt(np.diag(fm1.vcov("all")))
    # the optimizer stops within about 1e-3 standard errors of the maximum (Newton decrement)
    assert np.max(np.abs(again.theta - fm1.theta) / se) < 1e-2
    glm_again = boot_module._GLMRefit(glm_binary, fm1)(np.asarray(fm1.design.y, dtype=float))
    assert glm_again.loglik == pytest.approx(glm_binary.loglik, abs=1e-8)


def test_trials_in_the_simulation_and_the_refits(trials_data):
    """Simulating one trial per row (or refitting without the trials) would move the
    intercept far from its estimate."""
    fit = gp.mixed_model("p(s, n) ~ x", "~ 1 | g", trials_data, "binomial")
    result = bootstrap(fit, nsim=20, seed=1)
    assert result.n_failed == 0
    assert (_mean_z(result)[["(Intercept)", "x"]].abs() < 4.5).all()
    glm = gp.glm("p(s, n) ~ x", trials_data, "binomial")
    test = gp.anova(glm, fit, bootstrap=10, seed=1).attrs["bootstrap"]
    assert test.n_failed == 0 and test.replicates.min() > -1e-5


def test_zero_part_and_offset(zip_offset_fit):
    """The offset (0 to log 4) in both the simulation and the refits: leaving it out of either
    would shift the intercept by about its mean, 1.1, some 30 standard errors."""
    result = bootstrap(zip_offset_fit, nsim=20, seed=1)
    assert result.replicates.columns.tolist() == zip_offset_fit.confint("all").index.tolist()
    assert result.n_failed == 0
    assert (_mean_z(result).abs() < 4.5).all(), _mean_z(result)


@pytest.mark.filterwarnings("ignore:m1 did not converge")
def test_failed_refits_are_counted_dropped_and_said(binary):
    stopped = {"em_iter": 0, "max_iter": 1, "newton_iter": 0}
    with pytest.warns(gp.ConvergenceWarning):
        fit = gp.mixed_model("y ~ time", "~ 1 | id", binary, "binomial", control=stopped)
    with pytest.warns(UserWarning, match=r"^3 of 3 bootstrap refits did not converge and were"):
        result = bootstrap(fit, nsim=3, seed=1)
    assert result.n_failed == 3 and result.replicates.shape == (0, 3)
    assert result.confint()["2.5 %"].isna().all()
    m0 = gp.glm("y ~ time", binary, "binomial")
    message = r"^3 of 3 bootstrap data sets were dropped because a refit did not converge \(m0: 0"
    with pytest.warns(UserWarning, match=message):
        table = gp.anova(m0, fit, bootstrap=3, seed=1, names=["m0", "m1"])
    assert np.isnan(table.loc["m1", "p.boot"])


def test_progress_bar(fm1, capsys):
    bootstrap(fm1, nsim=2, seed=1, progress=True)
    assert "bootstrap" in capsys.readouterr().err
    bootstrap(fm1, nsim=2, seed=1)  # few data sets: no bar by default
    assert capsys.readouterr().err == ""


# ---- errors -------------------------------------------------------------------------------------
COUNT = "must be a positive integer (the number of simulated data sets), got "


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_anova_bootstrap_must_be_a_positive_integer(glm_binary, fm1, bad):
    with pytest.raises(ValueError, match=re.escape(f"bootstrap {COUNT}{bad!r}")):
        gp.anova(glm_binary, fm1, bootstrap=bad)


@pytest.mark.parametrize("bad", [0, -1, 1.5, None])
def test_nsim_must_be_a_positive_integer(fm1, bad):
    with pytest.raises(ValueError, match=re.escape(f"nsim {COUNT}{bad!r}")):
        bootstrap(fm1, nsim=bad)


@pytest.mark.filterwarnings(BOUNDARY)
def test_anova_bootstrap_takes_two_models_and_no_l(glm_binary, fm1, fm2):
    with pytest.raises(ValueError, match=r"compares two nested models, got 3: test them two at"):
        gp.anova(glm_binary, fm1, fm2, bootstrap=10)
    with pytest.raises(ValueError, match=r"^bootstrap is an option of the likelihood-ratio test"):
        gp.anova(fm1, L={"time": 1}, bootstrap=10)
    with pytest.raises(ValueError, match=r"^seed and progress are options of bootstrap="):
        gp.anova(glm_binary, fm1, seed=1)


def test_anova_bootstrap_needs_a_mixed_model_as_the_larger_one(binary):
    small, large = gp.glm("y ~ time", binary, "binomial"), gp.glm(FIXED, binary, "binomial")
    with pytest.raises(TypeError, match=r"needs the larger model to be a mixed model .*GLMFit"):
        gp.anova(small, large, bootstrap=5)


def test_fits_the_bootstrap_cannot_refit(fm1, glm_binary):
    with pytest.raises(ValueError, match=r"^fit has priors \(a MAP fit\): the parametric"):
        bootstrap(dataclasses.replace(fm1, priors=object()), nsim=5)
    weighted = dataclasses.replace(fm1.design, weights=np.ones(fm1.n_groups))
    with pytest.raises(ValueError, match=r"^fit has group weights: each simulated group"):
        bootstrap(dataclasses.replace(fm1, design=weighted), nsim=5)
    with pytest.raises(ValueError, match=r"^fm1 has priors \(a MAP fit\)"):
        gp.anova(glm_binary, dataclasses.replace(fm1, priors=object()), names=["glm", "fm1"],
                 bootstrap=5)  # fmt: skip
    with pytest.raises(TypeError, match=r"^fit must be a fit from glmm_ppl.mixed_model, got GLM"):
        bootstrap(glm_binary, nsim=5)


def test_bad_seed_level_and_progress(fm1):
    with pytest.raises(TypeError, match=r"^seed must be None, a non-negative integer or a numpy"):
        bootstrap(fm1, nsim=2, seed="1")
    with pytest.raises(ValueError, match=r"^seed must be a non-negative integer, got -1"):
        bootstrap(fm1, nsim=2, seed=-1)
    with pytest.raises(ValueError, match=r"^level must be a number between 0 and 1, got 1.5"):
        bootstrap(fm1, nsim=2, level=1.5)
    with pytest.raises(TypeError, match=r"^progress must be True, False or None \(automatic\)"):
        bootstrap(fm1, nsim=2, progress="yes")


@pytest.mark.parametrize("k", [122, 155])
def test_fit_from_estimates_near_a_singular_d_warns_nothing_and_does_not_crash(k, fm1, glm_binary):
    # data sets 122 and 155 of the GLM's bootstrap (seed 1): from fm1's estimates the fit
    # passes near a singular D, where the gradient in D overflowed with a RuntimeWarning (122)
    # and a Hessian that was not finite crashed the optimizer's step check (155)
    boot = boot_module
    d = fm1.design
    y = boot._GLMRefit(glm_binary, fm1).simulate(np.random.default_rng(boot._streams(1, 200)[k]))
    data = pd.DataFrame(
        {
            "id": np.repeat(np.arange(d.n_groups), np.diff(d.starts)),
            "time": d.X[:, 2],
            "sex": np.where(d.X[:, 1] == 1, "female", "male"),
            "y": y,
        }
    )
    start = {"betas": fm1.fixef().to_numpy(), "D": fm1.D.to_numpy()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = gp.mixed_model("y ~ sex * time", "~ 1 | id", data, "binomial", initial_values=start)
    assert not [w for w in caught if w.category is RuntimeWarning]
    assert np.isfinite(fit.loglik)
