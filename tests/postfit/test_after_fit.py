"""What can be done with a fit once it is made: simulation and DHARMa residuals, the sandwich
covariance, Wald tests of linear hypotheses, tidy tables and the quadrature check."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import glmm_ppl as gp
from glmm_ppl.fitting.graph import MixedModelGraph
from glmm_ppl.postfit.quadcheck import check_quadrature
from glmm_ppl.postfit.sandwich import group_scores, sandwich_vcov
from glmm_ppl.postfit.simulate import scaled_residuals, simulate
from glmm_ppl.postfit.tidy import glance, tidy
from glmm_ppl.postfit.wald import wald_test

FIXED = "y ~ sex * time"
NAMES = ["(Intercept)", "sexfemale", "time", "sexfemale:time"]


# ---- data and fits -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def binary():
    return gp.load_vignette("binary")


@pytest.fixture(scope="module")
def poisson():
    return gp.load_vignette("poisson")


@pytest.fixture(scope="module")
def fm1(binary):
    return gp.mixed_model(FIXED, "~ 1 | id", binary, "binomial")


@pytest.fixture(scope="module")
def fm3(binary):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gp.SingularFitWarning)  # correlation near 1
        return gp.mixed_model(FIXED, "~ time | id", binary, "binomial")


@pytest.fixture(scope="module")
def gm1(poisson):
    return gp.mixed_model(FIXED, "~ 1 | id", poisson, "poisson")


@pytest.fixture(scope="module")
def well_specified(binary):
    """A fit to data simulated from a random-intercept model (2,000 groups): the model is
    right by construction."""
    big = pd.concat([binary.assign(id=binary["id"] + 1000 * r) for r in range(20)])
    big = big.reset_index(drop=True)
    truth = gp.mixed_model(FIXED, "~ 1 | id", big, "binomial")
    data = big.loc[truth.design.rows].assign(y=simulate(truth, 1, seed=11)[:, 0])
    return gp.mixed_model(FIXED, "~ 1 | id", data, "binomial")


@pytest.fixture(scope="module")
def tiny(binary):
    """Independent intercepts and slopes on 30 subjects: small enough for finite differences
    per group."""
    return gp.mixed_model("y ~ time", "~ time || id", binary[binary["id"] <= 30], "binomial")


@pytest.fixture(scope="module")
def tiny_nb(poisson):
    """Negative binomial (an extra parameter) with correlated intercepts and slopes, on
    overdispersed counts of 20 subjects."""
    rng = np.random.default_rng(1)
    data = poisson[poisson["id"] <= 20]
    data = data.assign(y=rng.poisson(data["y"] * np.exp(rng.normal(0, 0.5, len(data)))))
    return gp.mixed_model("y ~ time", "~ time | id", data, "negative_binomial")


@pytest.fixture(scope="module")
def trials_fit(binary):
    """Successes out of 4 trials: the simulator must read the trials."""
    df = binary.assign(block=np.arange(len(binary)) % 8 // 4)
    agg = df.groupby(["id", "block"], as_index=False).agg(
        s=("y", "sum"), n=("y", "size"), time=("time", "mean"), sex=("sex", "first")
    )
    return gp.mixed_model("p(s, n) ~ time", "~ 1 | id", agg, "binomial")


@pytest.fixture(scope="module")
def zip_fit(poisson):
    """Zero-inflated Poisson on counts with extra zeros (10% for men, 30% for women)."""
    rng = np.random.default_rng(3)
    extra = rng.random(len(poisson)) < np.where(poisson["sex"] == "female", 0.3, 0.1)
    data = poisson.assign(y=np.where(extra, 0, poisson["y"]))
    return gp.mixed_model("y ~ time", "~ 1 | id", data, "zi_poisson", zi_fixed="~ sex")


def _eta(fit, b):
    """Linear predictors (N, E) with random effects ``b`` (n, q) per group."""
    d = fit.design
    group = np.repeat(np.arange(d.n_groups), np.diff(d.starts))
    gamma = fit.fixef("zero_part").to_numpy() if d.X_zi is not None else None
    eta0 = d.fixed_part(fit.fixef().to_numpy(), gamma)
    return eta0 + np.einsum("neq,nq->ne", d.Z_by_predictor(), b[group])


# ---- simulate ------------------------------------------------------------------------------
def test_simulate_shapes_and_values(fm1, gm1):
    y = simulate(fm1, nsim=5, seed=1)
    assert y.shape == (fm1.nobs, 5)
    assert set(np.unique(y)) == {0.0, 1.0}
    assert simulate(fm1, seed=1).shape == (fm1.nobs, 1)
    counts = simulate(gm1, 2, seed=1)
    assert counts.shape == (gm1.nobs, 2)
    assert np.all(counts >= 0) and np.all(counts == np.round(counts))


def test_simulate_seed_reproducibility(fm1):
    a, b = simulate(fm1, 4, seed=123), simulate(fm1, 4, seed=123)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, simulate(fm1, 4, seed=124))
    rng1, rng2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(simulate(fm1, 2, seed=rng1), simulate(fm1, 2, seed=rng2))
    # a Generator is advanced, not copied
    assert not np.array_equal(simulate(fm1, 2, seed=rng1), simulate(fm1, 2, seed=5))
    np.testing.assert_array_equal(simulate(fm1, 2, seed=np.int64(7)), simulate(fm1, 2, seed=7))


@pytest.mark.parametrize("nsim", [0, -1, 1.5, True, "3"])
def test_simulate_rejects_bad_nsim(fm1, nsim):
    with pytest.raises(
        ValueError, match=re.escape(f"nsim must be a positive integer, got {nsim!r}")
    ):
        simulate(fm1, nsim)


def test_simulate_rejects_bad_seed(fm1):
    with pytest.raises(
        TypeError,
        match=re.escape(
            "seed must be None, a non-negative integer or a numpy.random.Generator, got str"
        ),
    ):
        simulate(fm1, 1, seed="a")
    with pytest.raises(ValueError, match=re.escape("seed must be a non-negative integer, got -3")):
        simulate(fm1, 1, seed=-3)


def test_simulate_mean_is_the_marginal_mean(fm1):
    """Over new random effects every row is Bernoulli with the marginal probability
    ``∫ expit(η⁰ + b) N(b; 0, σ²) db`` (Gauss–Hermite, 60 points)."""
    nsim = 4000
    y = simulate(fm1, nsim, seed=2)
    x, w = np.polynomial.hermite_e.hermegauss(60)
    sd = np.sqrt(fm1.D.iloc[0, 0])
    eta0 = fm1.design.X @ fm1.fixef().to_numpy()
    marginal = special.expit(eta0[:, None] + sd * x) @ w / np.sqrt(2 * np.pi)
    z = (y.mean(axis=1) - marginal) / np.sqrt(marginal * (1 - marginal) / nsim)
    assert np.max(np.abs(z)) < 5
    assert 0.8 < np.mean(z**2) < 1.25
    # not the probability at b = 0, which the random intercepts' variance pulls far away
    conditional = special.expit(eta0)
    assert np.max(np.abs(marginal - conditional)) > 0.1


def test_simulate_with_the_modes(fm1, gm1):
    nsim = 4000
    y = simulate(fm1, nsim, seed=3, new_random_effects=False)
    p = special.expit(_eta(fm1, fm1.modes)[:, 0])
    z = (y.mean(axis=1) - p) / np.sqrt(p * (1 - p) / nsim)
    assert np.max(np.abs(z)) < 5
    # per-group means: held at the modes they track the observed groups, new effects do not
    d = gm1.design
    group = np.repeat(np.arange(d.n_groups), np.diff(d.starts))

    def distance(sims):
        means = pd.DataFrame(sims).groupby(group).mean().mean(axis=1)
        observed = pd.Series(d.y).groupby(group).mean()
        return float(np.mean(np.abs(np.log1p(means) - np.log1p(observed))))

    at_modes = distance(simulate(gm1, 50, seed=4, new_random_effects=False))
    new = distance(simulate(gm1, 50, seed=4))
    assert at_modes < 0.05 and new > 10 * at_modes


def test_simulate_reads_trials(trials_fit):
    n = trials_fit.design.aux[:, 0]
    y = simulate(trials_fit, 2000, seed=5, new_random_effects=False)
    assert np.all(y <= n[:, None]) and y.max() == 4
    mean = n * special.expit(_eta(trials_fit, trials_fit.modes)[:, 0])
    se = np.sqrt(mean * (1 - mean / n) / 2000)
    assert np.max(np.abs(y.mean(axis=1) - mean) / se) < 5


def test_simulate_zero_part(zip_fit):
    y = simulate(zip_fit, 2000, seed=6, new_random_effects=False)
    eta = _eta(zip_fit, zip_fit.modes)
    zero = special.expit(eta[:, 1])
    mean = zip_fit.family.response_mean(eta[:, 0], zip_fit.phis.to_numpy(), eta_zi=eta[:, 1])
    np.testing.assert_allclose(y.mean(axis=1), mean, rtol=0.1, atol=0.05)
    # the share of zeros includes the zero part's
    p0 = zero + (1 - zero) * np.exp(-np.exp(eta[:, 0]))
    assert np.max(np.abs((y == 0).mean(axis=1) - p0) / np.sqrt(p0 * (1 - p0) / 2000 + 1e-9)) < 5


# ---- scaled residuals --------------------------------------------------------------------------
def test_scaled_residuals_uniform_under_the_model(well_specified):
    u = scaled_residuals(well_specified, nsim=250, seed=7)
    assert u.shape == (well_specified.nobs,)
    assert np.all((u >= 0) & (u <= 1))
    assert stats.kstest(u, "uniform").pvalue > 0.01
    # reproducible, and the ties are randomised (binary data: many distinct values)
    np.testing.assert_array_equal(u, scaled_residuals(well_specified, nsim=250, seed=7))
    assert len(np.unique(u)) > 0.9 * len(u)


def test_scaled_residuals_definition(fm1):
    """``P̂(y* < y) + U P̂(y* = y)`` with the same stream of random numbers."""
    rng = np.random.default_rng(8)
    sims = simulate(fm1, 40, seed=rng)
    y = fm1.design.y[:, None]
    expected = (sims < y).mean(1) + rng.uniform(size=fm1.nobs) * (sims == y).mean(1)
    np.testing.assert_array_equal(scaled_residuals(fm1, nsim=40, seed=8), expected)


def test_scaled_residuals_detect_overdispersion(poisson, gm1):
    u = scaled_residuals(gm1, nsim=250, seed=10)
    assert stats.kstest(u, "uniform").pvalue > 0.01
    assert np.mean((u < 0.05) | (u > 0.95)) < 0.15
    # the same counts with observation-level noise (log-normal, sd 0.7): a Poisson GLMM is
    # overdispersed for them, and the residuals pile up at the extremes
    rng = np.random.default_rng(9)
    noise = np.exp(rng.normal(0, 0.7, len(poisson)))
    noisy = gp.mixed_model(
        FIXED, "~ 1 | id", poisson.assign(y=rng.poisson(poisson["y"] * noise)), "poisson"
    )
    u = scaled_residuals(noisy, nsim=250, seed=10)
    assert stats.kstest(u, "uniform").pvalue < 1e-6
    assert np.mean((u < 0.05) | (u > 0.95)) > 0.17


# ---- sandwich -------------------------------------------------------------------------------
def test_sandwich_close_to_model_based_when_model_right(well_specified):
    robust = np.diag(sandwich_vcov(well_specified, "all"))
    model = np.diag(well_specified.vcov("all"))
    np.testing.assert_allclose(robust / model, 1.0, atol=0.2)


def _fd_scores(fit, h=1e-5):
    """Per-group scores by central differences of the per-group log-likelihoods, with the
    nodes held at the estimates."""
    graph = MixedModelGraph(fit.design, fit.family, fit.n_agq, fit.penalty)
    engine = graph.engine
    fixed, D, phis = graph.unpack(fit.theta)
    engine.update_modes(graph.fixed_part(fixed), D, phis)
    engine.recenter = False
    out = []
    for e in np.eye(len(fit.theta)):
        per_group = []
        for sign in (1, -1):
            f, D_, p_ = graph.unpack(fit.theta + sign * h * e)
            per_group.append(engine.evaluate(graph.fixed_part(f), D_, p_, grad=False).per_group)
        out.append((per_group[0] - per_group[1]) / (2 * h))
    return np.column_stack(out)


@pytest.mark.parametrize("name", ["tiny", "tiny_nb"])
def test_meat_is_the_bhhh_sum_of_finite_difference_scores(name, request):
    fit = request.getfixturevalue(name)
    scores = _fd_scores(fit)
    mine = group_scores(fit)
    assert mine.columns.tolist() == fit.names
    assert mine.index.equals(fit.design.groups)
    np.testing.assert_allclose(mine.to_numpy(), scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(mine.T @ mine, scores.T @ scores, rtol=1e-4)
    bread = np.linalg.inv(-fit.hessian)
    np.testing.assert_allclose(
        sandwich_vcov(fit, "all").to_numpy(), bread @ scores.T @ scores @ bread, rtol=1e-4
    )


def test_sandwich_with_weights_counts_groups_as_replicates(binary):
    data = binary[binary["id"] <= 30]
    weights = pd.Series(np.where(np.arange(1, 31) % 3 == 0, 2.0, 1.0), index=range(1, 31))
    weighted = gp.mixed_model("y ~ time", "~ 1 | id", data, "binomial", weights=weights)
    copies = data[data["id"].map(weights) == 2].assign(id=lambda d: d["id"] + 100)
    doubled = gp.mixed_model("y ~ time", "~ 1 | id", pd.concat([data, copies]), "binomial")
    np.testing.assert_allclose(weighted.theta, doubled.theta, atol=1e-4)
    np.testing.assert_allclose(
        sandwich_vcov(weighted, "all"), sandwich_vcov(doubled, "all"), rtol=2e-3
    )


def test_sandwich_blocks_and_errors(fm1, zip_fit):
    full = sandwich_vcov(fm1, "all")
    assert full.index.tolist() == fm1.names
    np.testing.assert_allclose(sandwich_vcov(fm1), full.iloc[:4, :4])
    assert sandwich_vcov(fm1).index.tolist() == NAMES
    assert sandwich_vcov(fm1, "var-cov").index.tolist() == ["D_11"]
    assert sandwich_vcov(fm1, "extra").shape == (0, 0)
    assert sandwich_vcov(zip_fit, "zero_part").index.tolist() == ["(Intercept)", "sexfemale"]
    with pytest.raises(ValueError, match=re.escape("the binomial family has no zero part")):
        sandwich_vcov(fm1, "zero_part")
    with pytest.raises(ValueError, match=re.escape("unknown parm 'beta'; valid: 'all', ")):
        sandwich_vcov(fm1, "beta")


# ---- Wald tests --------------------------------------------------------------------------------
def test_wald_single_coefficient_is_z_squared(fm1):
    z = fm1.summary().fixed_effects["z-value"]
    for k, name in enumerate(NAMES):
        L = np.zeros(4)
        L[k] = 1
        t = wald_test(fm1, L)
        assert t.columns.tolist() == ["Chisq", "df", "Pr(>|Chi|)"] and t.index.tolist() == ["L"]
        np.testing.assert_allclose(t.loc["L", "Chisq"], z[name] ** 2, rtol=1e-10)
        assert t.loc["L", "df"] == 1
        p = fm1.summary().fixed_effects.loc[name, "p-value"]
        np.testing.assert_allclose(t.loc["L", "Pr(>|Chi|)"], p, rtol=1e-8)


def test_wald_named_contrasts_and_rhs(fm1):
    beta, V = fm1.fixef().to_numpy(), fm1.vcov().to_numpy()
    L = np.array([[0, 1, 0, 0], [0, 0, 0, 1.0]])
    r = np.array([-1.0, 0.1])
    d = L @ beta - r
    expected = d @ np.linalg.solve(L @ V @ L.T, d)
    by_array = wald_test(fm1, L, rhs=r)
    by_dict = wald_test(fm1, {"sexfemale": [1, 0], "sexfemale:time": [0, 1]}, rhs=r)
    by_frame = wald_test(fm1, pd.DataFrame(L, columns=NAMES), rhs=r)
    for t in (by_array, by_dict, by_frame):
        np.testing.assert_allclose(t.loc["L", "Chisq"], expected, rtol=1e-10)
        assert t.loc["L", "df"] == 2
        np.testing.assert_allclose(t.loc["L", "Pr(>|Chi|)"], stats.chi2.sf(expected, 2))
    # a scalar rhs is repeated; a Series is one row
    np.testing.assert_allclose(
        wald_test(fm1, {"time": 1}, rhs=0.25).loc["L", "Chisq"],
        (beta[2] - 0.25) ** 2 / V[2, 2],
    )
    series = pd.Series({"time": 1.0, "sexfemale:time": 1.0})
    np.testing.assert_allclose(
        wald_test(fm1, series).loc["L", "Chisq"], wald_test(fm1, [0, 0, 1, 1]).loc["L", "Chisq"]
    )


def test_wald_sandwich(fm1):
    V = sandwich_vcov(fm1).to_numpy()
    t = wald_test(fm1, {"time": 1}, sandwich=True)
    np.testing.assert_allclose(t.loc["L", "Chisq"], fm1.fixef()["time"] ** 2 / V[2, 2])
    assert t.loc["L", "Chisq"] != wald_test(fm1, {"time": 1}).loc["L", "Chisq"]


def test_wald_errors(fm1):
    names = "'(Intercept)', 'sexfemale', 'time', 'sexfemale:time'"
    with pytest.raises(ValueError) as err:
        wald_test(fm1, [[1, 0, 0]])
    assert str(err.value) == (
        f"L has 3 column(s) but the model has 4 fixed effect(s) ({names}): give one column per "
        "fixed effect, or name them (a DataFrame or dict keyed by fixed-effect name)"
    )
    with pytest.raises(ValueError) as err:
        wald_test(fm1, {"sex": 1, "tiem": 1})
    assert str(err.value) == (
        f"unknown fixed effect(s) 'sex', 'tiem' in L; the fixed effects are {names}"
    )
    with pytest.raises(ValueError) as err:
        wald_test(fm1, [[0, 1, 0, 0], [0, 2, 0, 0]])
    assert str(err.value) == (
        "L is rank deficient (rank 1 < 2 rows): some rows are linear combinations of the "
        "others; drop the redundant rows"
    )
    with pytest.raises(ValueError) as err:
        wald_test(fm1, [[0, 1, 0, 0], [0, 0, 1, 0]], rhs=[1, 2, 3])
    assert str(err.value) == "rhs must have one value per row of L (2), got 3"
    with pytest.raises(ValueError, match=re.escape("L must hold numbers")):
        wald_test(fm1, [["a", 0, 0, 0]])


# ---- tidy and glance ---------------------------------------------------------------------------
COLUMNS = ["effect", "term", "estimate", "std_error", "statistic", "p_value", "conf_low"]


def test_tidy_fixed(fm1):
    t = tidy(fm1)
    assert t.columns.tolist() == COLUMNS + ["conf_high"]
    assert t["effect"].eq("fixed").all() and t["term"].tolist() == NAMES
    table = fm1.summary().fixed_effects
    np.testing.assert_allclose(t["estimate"], fm1.fixef())
    np.testing.assert_allclose(t["std_error"], table["Std.Err"])
    np.testing.assert_allclose(t["statistic"], table["z-value"])
    np.testing.assert_allclose(t["p_value"], table["p-value"])
    ci = fm1.confint(level=0.9)
    t90 = tidy(fm1, conf_level=0.9)
    np.testing.assert_allclose(t90["conf_low"], ci["5 %"])
    np.testing.assert_allclose(t90["conf_high"], ci["95 %"])


def test_tidy_ran_pars(fm1, fm3):
    r = tidy(fm3, "ran_pars")
    assert r["term"].tolist() == ["sd__(Intercept)", "sd__time", "cor__(Intercept).time"]
    D = fm3.D.to_numpy()
    sd = np.sqrt(np.diag(D))
    np.testing.assert_allclose(r["estimate"], [sd[0], sd[1], D[0, 1] / (sd[0] * sd[1])])
    ci = fm3.confint("var-cov")
    np.testing.assert_allclose(
        r["conf_low"][:2], np.sqrt(ci["2.5 %"][["var.(Intercept)", "var.time"]])
    )
    np.testing.assert_allclose(
        r["conf_high"][:2], np.sqrt(ci["97.5 %"][["var.(Intercept)", "var.time"]])
    )
    assert r[["std_error", "statistic", "p_value"]].isna().all().all()
    assert np.isnan(r["conf_low"][2])
    every = tidy(fm1, "all")
    assert every["effect"].tolist() == ["fixed"] * 4 + ["ran_pars"]
    np.testing.assert_allclose(every["estimate"].iloc[-1], np.sqrt(fm1.D.iloc[0, 0]))


def test_tidy_extra_and_zero_part(tiny_nb, tiny, zip_fit, fm1):
    e = tidy(tiny_nb, "extra")
    assert e["term"].tolist() == list(tiny_nb.phis.index)
    np.testing.assert_allclose(e["estimate"], tiny_nb.phis)
    ci = tiny_nb.confint("extra")
    np.testing.assert_allclose(e["conf_low"], ci.iloc[:, 0])
    np.testing.assert_allclose(e["conf_high"], ci.iloc[:, 2])
    se_log = np.sqrt(np.diag(tiny_nb.vcov("extra")))
    np.testing.assert_allclose(e["std_error"], tiny_nb.phis * se_log)
    # diagonal D: no correlation rows
    assert tidy(tiny, "ran_pars")["term"].tolist() == ["sd__(Intercept)", "sd__time"]
    z = tidy(zip_fit, ["fixed", "zero_part"])
    zp = z[z["effect"] == "zero_part"]
    assert zp["term"].tolist() == ["(Intercept)", "sexfemale"]
    np.testing.assert_allclose(zp["estimate"], zip_fit.fixef("zero_part"))
    np.testing.assert_allclose(zp["std_error"], np.sqrt(np.diag(zip_fit.vcov("zero_part"))))
    assert tidy(zip_fit, "all")["effect"].unique().tolist() == ["fixed", "zero_part", "ran_pars"]
    assert tidy(fm1, "extra").empty
    with pytest.raises(ValueError) as err:
        tidy(fm1, "zero_part")
    assert str(err.value) == (
        "the binomial family has no zero part; effects='zero_part' applies to zero-inflated "
        "and hurdle families"
    )
    with pytest.raises(ValueError) as err:
        tidy(fm1, "random")
    assert str(err.value) == (
        "unknown effects 'random'; valid: 'fixed', 'zero_part', 'ran_pars', 'extra', 'all'"
    )
    with pytest.raises(ValueError, match=re.escape("conf_level must be between 0 and 1, got 95")):
        tidy(fm1, conf_level=95)


def test_glance(fm1, gm1):
    g = glance(fm1)
    assert g.shape == (1, 10)
    assert g.iloc[0].to_dict() == {
        "nobs": 800,
        "n_groups": 100,
        "logLik": fm1.loglik,
        "AIC": fm1.aic,
        "BIC": fm1.bic,
        "df": 5,
        "converged": True,
        "n_agq": 11,
        "family": "binomial",
        "link": "logit",
    }
    assert glance(gm1).loc[0, "family"] == "poisson" and glance(gm1).loc[0, "link"] == "log"


# ---- quadrature check --------------------------------------------------------------------------
def test_quadrature_fm1_is_fine(fm1):
    t = check_quadrature(fm1, n_agq=[21])
    assert t.index.tolist() == [21] and t.columns.tolist() == ["logLik", "change"]
    assert abs(t.loc[21, "change"]) < 1e-3
    np.testing.assert_allclose(t.loc[21, "logLik"], fm1.loglik + t.loc[21, "change"])
    assert check_quadrature(fm1).index.tolist() == [15, 23]  # default: n_agq + 4, 2 n_agq + 1
    assert check_quadrature(fm1, n_agq=(None,)).index.tolist() == [15, 23]
    refit = check_quadrature(fm1, n_agq=21, refit=True)
    assert refit.columns.tolist() == ["logLik", "change", "max |Δθ|/SE"]
    assert refit.loc[21, "max |Δθ|/SE"] < 0.05


def test_quadrature_fm3_changes_and_finer_rules_change_less(fm3):
    t = check_quadrature(fm3, n_agq=[15, 23, 41])
    # the 11-point rule overstates the log-likelihood of this boundary fit by about 0.01
    # (README: 0.021 above GLMMadaptive's with 11 points, 0.013 with 41)
    assert np.all(t["change"] < 0)
    assert 0.005 < abs(t.loc[41, "change"]) < 0.02
    ll = np.r_[fm3.loglik, t["logLik"]]
    steps = np.abs(np.diff(ll))  # 11 → 15 → 23 → 41
    assert steps[0] > steps[1] > steps[2]


def test_quadrature_penalized_like_with_like(poisson):
    gm2 = gp.mixed_model(FIXED, "~ 1 | id", poisson, "poisson", penalized=True)
    t = check_quadrature(gm2)
    assert np.all(np.abs(t["change"]) < 1e-6)


def test_quadrature_errors(fm3):
    with pytest.raises(ValueError) as err:
        check_quadrature(fm3, n_agq=400)
    assert str(err.value) == (
        "n_agq=400 with 2 random effects gives 160,000 quadrature nodes per group (at most "
        "100,000); use fewer points"
    )
    with pytest.raises(ValueError, match=re.escape("must hold positive integers (points per")):
        check_quadrature(fm3, n_agq=[15, 0])
