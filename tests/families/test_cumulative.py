"""The cumulative-link family for ordinal responses: its log density against exact category
probabilities (mpmath far in the tails), its derivatives against finite differences, the fit
of VerbAgg's three-category response against ordinal::clmm, the marginal log-likelihood
against direct integration, the two-category model against the binomial one, predictions,
simulation, scoring rules and the errors of bad responses and formulas.
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import mpmath
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special, stats

import glmm_ppl as gp
from glmm_ppl.engine.pointwise import pointwise_derivatives
from glmm_ppl.families import cumulative
from glmm_ppl.fitting import MixedModelGraph

REFERENCE = Path(__file__).resolve().parents[1] / "reference"
FIXED = "resp3 ~ Anger + Gender + btype + situ"
LINKS = ("logit", "probit", "cloglog")


def _bound(link: str, K: int = 4) -> cumulative:
    return cumulative(link=link).bind_response(pd.Series(np.arange(1, K + 1)), "y")


def _cdf_mp(link: str, x):
    x = mpmath.mpf(x)
    if link == "logit":
        return 1 / (1 + mpmath.exp(-x))
    if link == "probit":
        return mpmath.ncdf(x)
    return 1 - mpmath.exp(-mpmath.exp(x))


def _log_prob_mp(link: str, k: int, eta: float, thresholds) -> float:
    """log P(Y = k) in 50-digit arithmetic."""
    with mpmath.workdps(50):
        K = len(thresholds) + 1
        upper = 1 if k == K else _cdf_mp(link, thresholds[k - 1] - eta)
        lower = 0 if k == 1 else _cdf_mp(link, thresholds[k - 2] - eta)
        return float(mpmath.log(upper - lower))


@cache
def _verbagg() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "verbagg_ordinal.csv")


@cache
def _clmm() -> dict:
    return json.loads((REFERENCE / "extensions_reference.json").read_text())[
        "verbagg_cumulative_logit"
    ]


@cache
def _verbagg_fit():
    return gp.mixed_model(FIXED, "~ 1 | id", _verbagg(), "cumulative")


# ---- the density -------------------------------------------------------------------------
@pytest.mark.parametrize("link", LINKS)
def test_log_density_matches_exact_probabilities_into_the_tails(link):
    fam = _bound(link)
    thresholds = np.array([-1.5, 0.3, 2.0])
    phis = fam.phis_of(thresholds)
    etas = np.array([-30.0, -8.0, -2.0, 0.0, 0.7, 3.0, 8.0, 30.0])
    y = np.repeat(np.arange(1.0, 5.0), len(etas))
    eta = np.tile(etas, 4)
    lp = pointwise_derivatives(fam)(y, eta[:, None], phis)[0][:, 0]
    exact = np.array(
        [_log_prob_mp(link, int(k), e, thresholds) for k, e in zip(y, eta, strict=True)]
    )
    finite = np.isfinite(exact) & (exact > -700)
    assert np.all(np.isfinite(lp[finite]))
    np.testing.assert_allclose(lp[finite], exact[finite], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("link", LINKS)
def test_category_probabilities_sum_to_one_and_match_the_density(link):
    fam = _bound(link)
    phis = fam.phis_of([-1.0, 0.0, 1.5])
    eta = np.linspace(-4, 4, 9)
    probs = fam.category_probabilities(eta, phis)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-14)
    y = np.repeat(np.arange(1.0, 5.0)[None], len(eta), axis=0).ravel()
    lp = pointwise_derivatives(fam)(y, np.repeat(eta, 4)[:, None], phis)[0][:, 0]
    np.testing.assert_allclose(np.exp(lp).reshape(len(eta), 4), probs, rtol=1e-10)


@pytest.mark.parametrize("link", LINKS)
def test_derivatives_match_finite_differences(link):
    fam = _bound(link)
    kernel = pointwise_derivatives(fam)
    phis = fam.phis_of([-1.0, 0.4, 1.8])
    y = np.arange(1.0, 5.0)
    eta = np.array([[0.3], [-0.8], [1.1], [2.5]])
    lp, d1, d2, *dphi = kernel(y, eta, phis)
    h = 1e-5
    up, down = kernel(y, eta + h, phis), kernel(y, eta - h, phis)
    np.testing.assert_allclose(d1, (up[0] - down[0]) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(d2, (up[1] - down[1]) / (2 * h), rtol=1e-6, atol=1e-8)
    for m in range(len(phis)):
        step = h * phis[m]
        e = np.zeros(len(phis))
        e[m] = step
        numeric = (kernel(y, eta, phis + e)[0] - kernel(y, eta, phis - e)[0]) / (2 * step)
        np.testing.assert_allclose(dphi[m], numeric, rtol=1e-6, atol=1e-8)


def test_thresholds_parametrisation_round_trips_and_its_jacobian():
    fam = _bound("logit")
    t = np.array([-0.7, 0.2, 2.9])
    np.testing.assert_allclose(fam.thresholds_of(fam.phis_of(t)), t, rtol=1e-14)
    log_phis = np.log(fam.phis_of(t))
    title, names, values, J = fam.extra_coefficients(log_phis)
    assert (title, names) == ("Thresholds", ["1|2", "2|3", "3|4"])
    np.testing.assert_allclose(values, t)
    h = 1e-6
    numeric = np.column_stack(
        [
            (
                fam.thresholds_of(np.exp(log_phis + h * e))
                - fam.thresholds_of(np.exp(log_phis - h * e))
            )
            / (2 * h)
            for e in np.eye(3)
        ]
    )
    np.testing.assert_allclose(J, numeric, rtol=1e-7)


# ---- the fit against clmm ----------------------------------------------------------------
def test_verbagg_matches_clmm():
    fit, ref = _verbagg_fit(), _clmm()
    assert fit.opt_summary.converged
    assert fit.loglik == pytest.approx(ref["logLik"], abs=1e-3)
    beta = fit.fixef()
    assert list(beta.index) == list(ref["beta"])
    for name, value in ref["beta"].items():
        assert abs(beta[name] - value) < 0.05 * ref["se"][name], name
    thresholds = fit.fixef(sub_model="thresholds")
    assert list(thresholds.index) == ["1|2", "2|3"]
    np.testing.assert_allclose(thresholds.to_numpy(), list(ref["thresholds"].values()), atol=2e-3)
    sd = float(np.sqrt(fit.D.iloc[0, 0]))
    assert sd == pytest.approx(ref["sd_random"], rel=2e-3)
    se = np.sqrt(np.diag(fit.vcov("fixed-effects")))
    ref_se = np.array([ref["se"][name] for name in ref["beta"]])
    np.testing.assert_allclose(se, ref_se, rtol=0.01)


def test_threshold_standard_errors_match_clmm():
    fit, ref = _verbagg_fit(), _clmm()
    _, _, _, J = fit.family.extra_coefficients(fit.theta[fit.layout.blocks["extra"]])
    se = np.sqrt(np.diag(J @ fit.vcov("extra").to_numpy() @ J.T))
    np.testing.assert_allclose(se, [ref["se"]["no|perhaps"], ref["se"]["perhaps|yes"]], rtol=0.02)


def test_summary_reports_the_thresholds():
    text = str(_verbagg_fit().summary())
    assert "Thresholds" in text
    assert "1|2" in text and "2|3" in text
    assert "(Intercept)" not in text.split("Fixed effects")[1].split("Integration")[0]


def test_ordered_categorical_response_names_the_thresholds_and_fits_the_same():
    df = _verbagg()
    df = df.assign(
        r=pd.Categorical(
            df["resp3"].map({1: "no", 2: "perhaps", 3: "yes"}),
            categories=["no", "perhaps", "yes"],
            ordered=True,
        )
    )
    fit = gp.mixed_model(FIXED.replace("resp3", "r"), "~ 1 | id", df, "cumulative")
    assert fit.family.categories == ("no", "perhaps", "yes")
    assert list(fit.fixef(sub_model="thresholds").index) == ["no|perhaps", "perhaps|yes"]
    assert fit.loglik == pytest.approx(_verbagg_fit().loglik, abs=1e-6)


# ---- the likelihood by direct integration ----------------------------------------------------
@cache
def _small_data() -> pd.DataFrame:
    df = _verbagg()
    return df[df["id"] <= 40].reset_index(drop=True)


@pytest.mark.parametrize("link", ["probit", "cloglog"])
def test_marginal_loglik_matches_direct_integration(link):
    df = _small_data()
    fit = gp.mixed_model(FIXED, "~ 1 | id", df, cumulative(link=link))
    fam = fit.family
    phis = np.exp(fit.theta[fit.layout.blocks["extra"]])
    sd = float(np.sqrt(fit.D.iloc[0, 0]))
    eta0 = fit.design.X @ fit.fixef().to_numpy()
    y = fit.design.y.astype(int)
    total = 0.0
    for a, b in zip(fit.design.starts[:-1], fit.design.starts[1:], strict=True):

        def integrand(u, a=a, b=b):
            probs = fam.category_probabilities(eta0[a:b] + u, phis)
            return np.prod(probs[np.arange(b - a), y[a:b] - 1]) * stats.norm.pdf(u, 0, sd)

        value, _ = integrate.quad(integrand, -12 * sd, 12 * sd, epsabs=0, epsrel=1e-12, limit=200)
        total += np.log(value)
    assert fit.loglik == pytest.approx(total, abs=1e-5)


def test_two_categories_equal_the_binomial_model():
    df = gp.load_vignette("binary")
    ordinal = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "cumulative")
    binary = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
    # P(Y = 1) = F(xβ − θ): the binomial intercept is −θ and the slopes are the same
    assert ordinal.loglik == pytest.approx(binary.loglik, abs=1e-6)
    # to the optimizers' tolerance: 1e-3 is under 1/100 of the smallest standard error
    np.testing.assert_allclose(ordinal.fixef(), binary.fixef().iloc[1:], atol=1e-3)
    threshold = ordinal.fixef(sub_model="thresholds").iloc[0]
    assert threshold == pytest.approx(-binary.fixef().iloc[0], abs=1e-3)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_glm_matches_a_direct_maximisation(link):
    df = _small_data()
    glm = gp.glm("resp3 ~ btype + Anger", df, cumulative(link=link))
    X = np.column_stack([df["btype"] == "scold", df["btype"] == "shout", df["Anger"]]).astype(float)
    y = df["resp3"].to_numpy()
    cdf = stats.logistic.cdf if link == "logit" else stats.norm.cdf

    def negative(par):  # thresholds t1 and t1 + exp(s), then the slopes
        t = np.array([-np.inf, par[0], par[0] + np.exp(par[1]), np.inf])
        eta = X @ par[2:]
        return -np.sum(np.log(cdf(t[y] - eta) - cdf(t[y - 1] - eta)))

    ppf = stats.logistic.ppf if link == "logit" else stats.norm.ppf
    t = ppf([np.mean(y <= 1), np.mean(y <= 2)])  # the thresholds without covariates
    start = np.r_[t[0], np.log(t[1] - t[0]), 0.0, 0.0, 0.0]
    best = optimize.minimize(negative, start, method="BFGS", options={"gtol": 1e-8})
    assert glm.loglik == pytest.approx(-best.fun, abs=1e-7)
    np.testing.assert_allclose(glm.coef.to_numpy(), best.x[2:], atol=1e-5)


# ---- predictions and simulation ------------------------------------------------------------
def test_predicted_probabilities_by_category():
    fit = _verbagg_fit()
    nd = _verbagg().iloc[[0, 400, 5000]]
    for type_ in ("mean_subject", "marginal", "subject_specific"):
        p = fit.predict(nd, type_pred="response", type=type_)
        assert list(p.columns) == ["1", "2", "3"]
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-10)
    eta = fit.predict(nd)  # the linear predictor xᵀβ
    t = fit.fixef(sub_model="thresholds").to_numpy()
    expected = np.diff(
        np.column_stack(
            [np.zeros(3), special.expit(t[None] - eta.to_numpy()[:, None]), np.ones(3)]
        ),
        axis=1,
    )
    np.testing.assert_allclose(
        fit.predict(nd, type_pred="response").to_numpy(), expected, rtol=1e-10
    )


def test_marginal_probabilities_integrate_over_the_random_effect():
    fit = _verbagg_fit()
    nd = _verbagg().iloc[[3, 777]]
    marginal = fit.predict(nd, type_pred="response", type="marginal").to_numpy()
    eta = fit.predict(nd).to_numpy()
    t = fit.fixef(sub_model="thresholds").to_numpy()
    sd = float(np.sqrt(fit.D.iloc[0, 0]))
    for i, e in enumerate(eta):
        for j, tj in enumerate(t):  # P(Y ≤ j) averaged over b ~ N(0, sd²)
            value, _ = integrate.quad(
                lambda u, e=e, tj=tj: special.expit(tj - e - u) * stats.norm.pdf(u, 0, sd),
                -np.inf,
                np.inf,
            )
            assert marginal[i, : j + 1].sum() == pytest.approx(value, abs=1e-6)


def test_probability_intervals_contain_the_estimates():
    fit = _verbagg_fit()
    p = fit.predict(_verbagg().iloc[[0, 400]], type_pred="response", se_fit=True)
    assert set(p.columns.get_level_values(0)) == {"pred", "se", "low", "upp"}
    assert np.all(p["low"].to_numpy() <= p["pred"].to_numpy())
    assert np.all(p["pred"].to_numpy() <= p["upp"].to_numpy())
    assert np.all(p["se"].to_numpy() > 0)


def test_simulated_categories_follow_the_probabilities():
    fam = _bound("probit", K=3)
    phis = fam.phis_of([-0.5, 0.8])
    eta = np.full(200_000, 0.3)
    draws = fam.simulate(eta, phis, np.random.default_rng(4))
    shares = np.bincount(draws.astype(int), minlength=4)[1:] / len(eta)
    expected = fam.category_probabilities(eta[:1], phis)[0]
    np.testing.assert_allclose(shares, expected, atol=4e-3)


def test_a_positive_coefficient_moves_towards_higher_categories():
    rng = np.random.default_rng(11)
    n, m = 150, 6
    x = rng.normal(size=n * m)
    g = np.repeat(np.arange(n), m)
    fam = _bound("logit", K=3)
    eta = 1.0 * x + rng.normal(0, 0.8, n)[g]
    y = fam.simulate(eta, fam.phis_of([-0.5, 1.0]), rng)
    fit = gp.mixed_model("y ~ x", "~ 1 | g", pd.DataFrame({"y": y, "x": x, "g": g}), "cumulative")
    beta, se = fit.fixef()["x"], float(np.sqrt(fit.vcov("fixed-effects").iloc[0, 0]))
    assert abs(beta - 1.0) < 3 * se
    t = fit.fixef(sub_model="thresholds").to_numpy()
    assert np.all(np.abs(t - [-0.5, 1.0]) < 0.5)


def test_posterior_reports_the_thresholds():
    fit = _verbagg_fit()
    idata = gp.to_inference_data(fit, draws=2000, seed=5)
    thresholds = idata.posterior["thresholds"]
    assert list(thresholds["extra"].values) == ["1|2", "2|3"]
    log_phi = idata.posterior["log_phi"].values
    expected = np.cumsum(np.concatenate([log_phi[..., :1], np.exp(log_phi[..., 1:])], -1), -1)
    np.testing.assert_allclose(thresholds.values, expected, rtol=1e-12)
    estimate = fit.fixef("thresholds").to_numpy()
    assert np.all(np.abs(thresholds.mean(("chain", "draw")).values - estimate) < 0.03)
    assert "phi" not in idata.posterior


def test_profile_intervals_of_the_thresholds():
    fit = gp.mixed_model(FIXED, "~ 1 | id", _small_data(), "cumulative")
    ci = fit.confint("extra", method="profile")
    wald = fit.confint("extra")
    assert list(ci.index) == ["1|2", "2|3"]
    np.testing.assert_allclose(ci["Estimate"], fit.fixef("thresholds"), rtol=1e-10)
    # 40 people: the profile and Wald intervals of the thresholds agree to a tenth of their width
    width = (wald.iloc[:, 2] - wald.iloc[:, 0]).to_numpy()
    np.testing.assert_allclose(ci.iloc[:, [0, 2]], wald.iloc[:, [0, 2]], atol=0.1 * width.min())
    # at each end the log-likelihood maximised with the threshold held there is χ²₁(0.95)/2
    # below the maximum: an independent maximisation over the other parameters
    graph = MixedModelGraph(fit.design, fit.family, fit.n_agq, None)
    extra = fit.parameter_slice("extra")
    fam = fit.family

    def held(j, value):
        t_hat = fam.coefficient_values(fit.theta[extra])
        free = np.r_[fit.theta[: extra.start], np.delete(t_hat, j)]

        def negative(x):
            t = np.insert(x[extra.start :], j, value)
            entries = fam.coefficient_entries(t)
            if entries is None:
                return np.inf
            return -graph(np.r_[x[: extra.start], entries])[0]

        return -optimize.minimize(negative, free, method="BFGS", options={"gtol": 1e-7}).fun

    for j in range(2):
        for end in ci.iloc[j, [0, 2]]:
            assert 2 * (fit.loglik - held(j, end)) == pytest.approx(3.8415, abs=5e-3)


def test_scoring_rules_use_the_categories():
    fit = _verbagg_fit()
    scores = gp.scoring_rules(fit)
    probs = fit.predict(type_pred="response", type="subject_specific").to_numpy()
    observed = probs[np.arange(len(probs)), fit.design.y.astype(int) - 1]
    np.testing.assert_allclose(scores["logarithmic"].to_numpy(), np.log(observed), rtol=1e-8)
    quadratic = 2 * observed - np.sum(probs**2, axis=1)
    np.testing.assert_allclose(scores["quadratic"].to_numpy(), quadratic, rtol=1e-8)


# ---- errors --------------------------------------------------------------------------------
def _tiny(y) -> pd.DataFrame:
    return pd.DataFrame({"y": y, "x": np.linspace(0, 1, len(y)), "g": np.repeat([1, 2, 3], 4)})


def test_unordered_categorical_is_refused():
    df = _tiny(pd.Categorical(["a", "b", "c"] * 4))
    with pytest.raises(ValueError, match=r"response column 'y' is an unordered categorical"):
        gp.mixed_model("y ~ x", "~ 1 | g", df, "cumulative")


def test_a_category_without_rows_is_refused():
    y = pd.Categorical(["lo", "hi"] * 6, categories=["lo", "mid", "hi"], ordered=True)
    with pytest.raises(ValueError) as err:
        gp.mixed_model("y ~ x", "~ 1 | g", _tiny(y), "cumulative")
    assert str(err.value) == (
        "cumulative: response column 'y' has no rows in category 'mid' (of 'lo', 'mid', "
        "'hi'): its thresholds are not estimable; drop the category (e.g. "
        ".cat.remove_unused_categories()) or merge it with a neighbour"
    )


def test_a_gap_in_integer_codes_is_refused():
    with pytest.raises(ValueError, match=r"no rows in category '3' \(of '1', '2', '3', '4'\)"):
        gp.mixed_model("y ~ x", "~ 1 | g", _tiny([1, 2, 4, 1] * 3), "cumulative")


def test_non_integer_codes_and_strings_are_refused():
    with pytest.raises(ValueError, match=r"must be integer category codes; 1 row\(s\) are not"):
        gp.mixed_model("y ~ x", "~ 1 | g", _tiny([1, 2, 3] * 3 + [1, 2, 2.5]), "cumulative")
    with pytest.raises(
        ValueError, match=r"must be an ordered categorical or integer category codes, got dtype"
    ):
        gp.mixed_model("y ~ x", "~ 1 | g", _tiny(["a", "b", "c"] * 4), "cumulative")


def test_a_single_category_is_refused():
    with pytest.raises(ValueError, match=r"has a single category \('2' in every row used\)"):
        gp.mixed_model("y ~ x", "~ 1 | g", _tiny([2] * 12), "cumulative")


def test_a_formula_without_intercept_is_refused():
    with pytest.raises(ValueError) as err:
        gp.mixed_model("y ~ 0 + x", "~ 1 | g", _tiny([1, 2, 3] * 4), "cumulative")
    assert str(err.value) == (
        "the fixed-effects formula '~ 0 + x' has no intercept; with thresholds, write it with "
        "one (the default, as in R's clmm): the thresholds take the intercept's place and the "
        "intercept column is left out"
    )


def test_marginal_coefficients_and_effect_plots_are_refused():
    fit = _verbagg_fit()
    with pytest.raises(
        ValueError, match="marginal coefficients are not defined for the cumulative"
    ):
        gp.marginal_coefs(fit)
    with pytest.raises(ValueError, match="effect_plot_data: the cumulative family's response"):
        gp.effect_plot_data(fit, _verbagg().head(2))


def test_family_by_name_and_alias():
    assert repr(gp.families.get_family("ordinal")) == "cumulative(link='logit')"
    with pytest.raises(ValueError, match="unknown link 'log'; valid links here: logit, probit"):
        cumulative(link="log")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _bound("probit").n_phis == 3


def test_a_thresholds_only_model_is_the_null_of_a_likelihood_ratio_test():
    df = _small_data()
    null = gp.mixed_model("resp3 ~ 1", "~ 1 | id", df, "cumulative")
    assert null.fixef().empty
    full = gp.mixed_model("resp3 ~ btype", "~ 1 | id", df, "cumulative")
    table = gp.anova(null, full)
    assert table["df"].iloc[1] == 2
    assert table["LRT"].iloc[1] == pytest.approx(2 * (full.loglik - null.loglik), rel=1e-10)
    # without covariates the thresholds of a random intercept model reproduce the shares of
    # the categories averaged over the random intercept
    marginal = null.predict(df.head(1), type_pred="response", type="marginal").to_numpy()[0]
    shares = np.bincount(df["resp3"], minlength=4)[1:] / len(df)
    np.testing.assert_allclose(marginal, shares, atol=0.02)


def test_a_large_first_threshold_is_no_warning():
    df = _small_data().assign(anger=lambda d: d["Anger"] + 600.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "PyTensor could not link to a BLAS")
        fit = gp.mixed_model("resp3 ~ anger", "~ 1 | id", df, "cumulative")
    assert fit.fixef("thresholds").iloc[0] > 12
    assert fit.warnings == ()
    centred = gp.mixed_model("resp3 ~ Anger", "~ 1 | id", _small_data(), "cumulative")
    assert fit.loglik == pytest.approx(centred.loglik, abs=1e-6)


def test_initial_values_give_the_thresholds():
    df = _small_data()
    fit = gp.mixed_model(
        "resp3 ~ btype", "~ 1 | id", df, "cumulative", initial_values={"phis": [-0.5, 1.5]}
    )
    np.testing.assert_allclose(fit.opt_summary.initial[-2:], [-0.5, np.log(2.0)])
    with pytest.raises(ValueError) as err:
        gp.mixed_model(
            "resp3 ~ btype", "~ 1 | id", df, "cumulative", initial_values={"phis": [1.5, -0.5]}
        )
    assert str(err.value) == (
        "initial_values['phis'] are the cumulative family's thresholds, which must increase, "
        "got [1.5, -0.5]"
    )


def test_marginal_link_predictions_and_marginaleffects_are_refused():
    fit = _verbagg_fit()
    with pytest.raises(ValueError, match="the cumulative family has no marginal linear predictor"):
        fit.predict(_verbagg().head(2), type="marginal")
    with pytest.raises(ValueError, match="to_marginaleffects: a cumulative fit predicts a prob"):
        gp.to_marginaleffects(fit)
    with pytest.raises(ValueError, match="its thresholds, which have no natural scale"):
        fit.phis  # noqa: B018
