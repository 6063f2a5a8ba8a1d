"""Crossed grouping factors (subjects × items) by the joint Laplace approximation: everything
after the fit, and the inputs refused before it.

Reference numbers: tests/reference/multilevel_reference.json, key "verbagg_crossed" (lme4 and
glmmTMB fits of ``y ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)`` on
``tests/reference/verbagg.csv``: 316 people × 24 items, binary). Other expected values are
computed here from the fit's own estimates (predictions by hand, Gauss–Hermite sums) or are
properties with a stated tolerance. The small data sets are simulated with fixed seeds.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy import special

import glmm_ppl as gp
from glmm_ppl.design.matrices import build_design

REFERENCE = Path(__file__).resolve().parent / "reference"
FIXED = "y ~ Anger + Gender + btype + situ"
CROSSED = "(1 | id) + (1 | item)"
NAMES = ["(Intercept)", "Anger", "GenderM", "btypescold", "btypeshout", "situself"]


# ---- data and fits (each fitted once for the module) ----------------------------------------
@pytest.fixture(scope="module")
def verbagg() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "verbagg.csv")


@pytest.fixture(scope="module")
def ref() -> dict:
    with (REFERENCE / "multilevel_reference.json").open() as fh:
        return json.load(fh)["verbagg_crossed"]


@pytest.fixture(scope="module")
def fitted_vb(verbagg):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = gp.mixed_model(FIXED, CROSSED, verbagg, "binomial")
    return fit, caught


@pytest.fixture(scope="module")
def vb(fitted_vb):
    return fitted_vb[0]


def _counts(seed: int = 20240611, n_subj: int = 60, n_item: int = 12) -> pd.DataFrame:
    """Poisson counts of subjects × items (10% of the pairs missing), a random intercept and
    slope on x per subject and a random intercept per item."""
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subj), n_item)
    item = np.tile(np.arange(n_item), n_subj)
    x = rng.normal(size=len(subj))
    b_s, slope = rng.normal(0, 0.6, n_subj), rng.normal(0, 0.3, n_subj)
    b_i = rng.normal(0, 0.5, n_item)
    eta = 0.3 + 0.5 * x + b_s[subj] + slope[subj] * x + b_i[item]
    df = pd.DataFrame(
        {
            "subj": [f"s{s:02d}" for s in subj],
            "item": [f"i{i:02d}" for i in item],
            "x": x,
            "y": rng.poisson(np.exp(eta)),
        }
    )
    return df[rng.random(len(df)) > 0.1].reset_index(drop=True)


@pytest.fixture(scope="module")
def counts() -> pd.DataFrame:
    return _counts()


@pytest.fixture(scope="module")
def slope_fit(counts):
    return gp.mixed_model("y ~ x", "(x | subj) + (1 | item)", counts, "poisson")


@pytest.fixture(scope="module")
def subj_only(counts):
    return gp.mixed_model("y ~ x", "(x | subj)", counts, "poisson")


@pytest.fixture(scope="module")
def subj_only_laplace(counts):
    return gp.mixed_model("y ~ x", "(x | subj)", counts, "poisson", n_agq=1)


def _sd(fit, factor: str) -> float:
    return float(np.sqrt(fit.D[factor].iloc[0, 0]))


def _xb(fit, df: pd.DataFrame) -> np.ndarray:
    """The fixed part ``Xβ`` of verbagg rows, by hand."""
    b = fit.fixef()
    return (
        b["(Intercept)"]
        + b["Anger"] * df["Anger"]
        + b["GenderM"] * (df["Gender"] == "M")
        + b["btypescold"] * (df["btype"] == "scold")
        + b["btypeshout"] * (df["btype"] == "shout")
        + b["situself"] * (df["situ"] == "self")
    ).to_numpy()


# ---- 1. the fit ---------------------------------------------------------------------------
def test_verbagg_fit_matches_glmmtmb(fitted_vb, ref):
    fit, caught = fitted_vb
    assert [str(w.message) for w in caught] == []
    assert fit.converged
    assert fit.design.crossed and fit.n_agq == 1
    assert abs(fit.loglik - ref["glmmTMB"]["logLik"]) < 1e-4
    fixef = fit.fixef()
    assert fixef.index.tolist() == NAMES
    tmb = pd.Series(ref["glmmTMB"]["fixef"])[NAMES].to_numpy()
    se_tmb = pd.Series(ref["glmmTMB"]["se_fixef"])[NAMES].to_numpy()
    np.testing.assert_array_less(np.abs(fixef.to_numpy() - tmb), 0.01 * se_tmb)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov())), se_tmb, rtol=0.01)
    for factor in ("id", "item"):
        assert abs(fit.D[factor].iloc[0, 0] - ref["glmmTMB"]["varcorr"][factor][0][0]) < 1e-3


# ---- 2. results by factor ---------------------------------------------------------------------
def test_D_by_factor(vb):
    D = vb.D
    assert list(D) == ["item", "id"]  # the factor with the fewest levels first
    for table in D.values():
        assert table.index.tolist() == table.columns.tolist() == ["(Intercept)"]
        assert table.iloc[0, 0] > 0


def test_ranef_by_factor(vb, verbagg):
    re_ = vb.ranef()
    assert list(re_) == ["item", "id"]
    assert re_["item"].shape == (24, 1) and re_["id"].shape == (316, 1)
    assert re_["item"].index.name == "item" and re_["id"].index.name == "id"
    assert re_["item"].index.tolist() == sorted(verbagg["item"].unique())
    assert re_["id"].index.tolist() == list(range(1, 317))
    for table in re_.values():
        assert table.columns.tolist() == ["(Intercept)"]
        # modes of a N(0, D) effect: centred near 0, spread below the prior SD
        assert abs(table["(Intercept)"].mean()) < 0.1
    assert re_["id"]["(Intercept)"].std() < _sd(vb, "id")


def test_ranef_post_vars(vb):
    re_ = vb.ranef(post_vars=True)
    for factor, table in re_.items():
        assert table.columns.tolist() == ["(Intercept)", "var.(Intercept)"]
        var = table["var.(Intercept)"].to_numpy()
        assert np.all(var > 0)
        assert np.all(var < vb.D[factor].iloc[0, 0])  # the data shrink every posterior
    # an item has 316 answers, a person 24: the items' modes are far better determined
    assert re_["item"]["var.(Intercept)"].max() < re_["id"]["var.(Intercept)"].min()


def test_coef_by_factor(vb):
    coef, fixef, re_ = vb.coef(), vb.fixef(), vb.ranef()
    assert list(coef) == ["item", "id"]
    for factor, table in coef.items():
        assert table.columns.tolist() == NAMES
        assert table.index.tolist() == re_[factor].index.tolist()
        np.testing.assert_allclose(
            table["(Intercept)"], fixef["(Intercept)"] + re_[factor]["(Intercept)"], atol=1e-12
        )
        np.testing.assert_allclose(table["Anger"], fixef["Anger"], atol=1e-12)


def test_slope_fit_results_by_factor(slope_fit, counts):
    assert slope_fit.converged
    assert list(slope_fit.D) == ["item", "subj"]
    assert slope_fit.D["subj"].index.tolist() == ["(Intercept)", "x"]
    assert slope_fit.D["item"].shape == (1, 1)
    re_ = slope_fit.ranef(post_vars=True)
    assert re_["subj"].shape == (60, 5)
    assert re_["subj"].columns.tolist() == [
        "(Intercept)",
        "x",
        "var.(Intercept)",
        "var.x",
        "cov.(Intercept).x",
    ]
    assert re_["item"].index.tolist() == sorted(counts["item"].unique())
    assert slope_fit.names == [
        "(Intercept)",
        "x",
        "item.D_11",
        "subj.D_11",
        "subj.D_12",
        "subj.D_22",
    ]


# ---- 3. summary and tables ----------------------------------------------------------------------
def test_summary_blocks_per_factor(vb):
    text = str(vb.summary())
    lines = text.splitlines()
    assert "Number of Groups: item 24, id 316" in lines
    start = lines.index("Random effects covariance matrix:")
    assert lines[start + 1 : start + 7] == [
        "item (24 levels):",
        "             StdDev",
        f"(Intercept)  {_sd(vb, 'item'):.4f}",
        "id (316 levels):",
        "             StdDev",
        f"(Intercept)  {_sd(vb, 'id'):.4f}",
    ]
    integration = lines[lines.index("Integration:") + 1]
    assert integration == (
        "method: Laplace approximation over all random effects jointly (crossed grouping factors)"
    )
    assert "quadrature points" not in text
    html = vb.summary()._repr_html_()
    assert "item (24 levels)" in html and "id (316 levels)" in html


def test_slope_summary_shows_the_correlation_in_its_block(slope_fit):
    lines = str(slope_fit.summary()).splitlines()
    start = lines.index("Random effects covariance matrix:")
    block = lines[start + 1 : start + 8]
    assert block[0] == "item (12 levels):"
    assert block[3] == "subj (60 levels):"
    assert block[4].split() == ["StdDev", "Corr"]
    assert block[6].split()[0] == "x" and len(block[6].split()) == 3


def test_vcov_confint_and_information_criteria(vb):
    names = NAMES + ["item.D_11", "id.D_11"]
    assert vb.names == names
    assert vb.vcov("all").index.tolist() == names
    ci = vb.confint("var-cov")
    assert ci.index.tolist() == ["var.item.(Intercept)", "var.id.(Intercept)"]
    np.testing.assert_allclose(ci["Estimate"], [vb.D[f].iloc[0, 0] for f in ["item", "id"]])
    assert (ci["2.5 %"] > 0).all() and (ci["97.5 %"] > ci["Estimate"]).all()
    assert vb.aic == pytest.approx(-2 * vb.loglik + 2 * 8)
    # no independent groups: BIC counts the observations, as lme4 does
    assert vb.bic == pytest.approx(-2 * vb.loglik + np.log(7584) * 8)
    assert "groups item 24, id 316" in repr(vb)


def test_tidy_and_glance(vb):
    tidy = vb.to_dataframe()
    assert tidy["term"].tolist() == NAMES + ["sd__item.(Intercept)", "sd__id.(Intercept)"]
    np.testing.assert_allclose(tidy["estimate"].iloc[6:], [_sd(vb, "item"), _sd(vb, "id")])
    glance = vb.glance()
    assert glance[["nobs", "df", "n_agq"]].values.tolist() == [[7584, 8, 1]]
    assert glance["BIC"].iloc[0] == pytest.approx(vb.bic)


# ---- 4. predictions ---------------------------------------------------------------------------
def test_subject_specific_predictions_on_fitted_data(vb, verbagg):
    re_ = vb.ranef()
    expected = (
        _xb(vb, verbagg)
        + re_["id"]["(Intercept)"].reindex(verbagg["id"]).to_numpy()
        + re_["item"]["(Intercept)"].reindex(verbagg["item"]).to_numpy()
    )
    fitted = vb.predict(type="subject_specific")  # the fit's row order, data labels
    np.testing.assert_allclose(fitted.reindex(verbagg.index), expected, atol=1e-10)
    np.testing.assert_allclose(vb.predict(verbagg, type="subject_specific"), expected, atol=1e-10)
    np.testing.assert_allclose(
        vb.fitted("subject_specific").reindex(verbagg.index), special.expit(expected), atol=1e-12
    )
    np.testing.assert_allclose(vb.predict(verbagg), _xb(vb, verbagg), atol=1e-10)


def test_new_levels_get_zero_for_their_factor_only(vb, verbagg):
    rows = verbagg.iloc[[0, 1, 400]].reset_index(drop=True)  # known ids and items
    new = pd.concat(
        [
            rows.assign(id=[9001, 9002, 9003]),  # new people answering known items
            rows.assign(item="a new item"),  # known people answering a new item
            rows.assign(id=9004, item="another new item"),  # both new
        ],
        ignore_index=True,
    )
    re_ = vb.ranef()
    item = re_["item"]["(Intercept)"].reindex(rows["item"]).to_numpy()
    person = re_["id"]["(Intercept)"].reindex(rows["id"]).to_numpy()
    xb = _xb(vb, rows)
    expected = np.concatenate([xb + item, xb + person, xb])
    pred = vb.predict(new, type="subject_specific")
    np.testing.assert_allclose(pred.to_numpy(), expected, atol=1e-10)
    # the response is there but not used: the new levels' modes are not re-estimated
    assert "y" in new.columns
    # on the response scale too
    pred_r = vb.predict(new, type_pred="response", type="subject_specific").to_numpy()
    np.testing.assert_allclose(pred_r, special.expit(expected), atol=1e-12)


def test_new_levels_with_a_random_slope(slope_fit, counts):
    rows = counts.iloc[[0, 5]].reset_index(drop=True)
    new = pd.concat(
        [rows.assign(subj="new subject"), rows.assign(item="new item")], ignore_index=True
    )
    b, re_ = slope_fit.fixef(), slope_fit.ranef()
    xb = (b["(Intercept)"] + b["x"] * rows["x"]).to_numpy()
    item = re_["item"]["(Intercept)"].reindex(rows["item"]).to_numpy()
    subj = re_["subj"].reindex(rows["subj"])
    subj_part = (subj["(Intercept)"] + subj["x"] * rows["x"].to_numpy()).to_numpy()
    pred = slope_fit.predict(new, type="subject_specific").to_numpy()
    np.testing.assert_allclose(pred, np.concatenate([xb + item, xb + subj_part]), atol=1e-10)


def test_subject_specific_prediction_needs_every_grouping_column(vb, verbagg):
    msg = (
        "subject-specific predictions of crossed grouping factors need the grouping column(s) "
        "'item' in newdata (with a value in every row; a level the fit did not see gets 0)"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        vb.predict(verbagg.iloc[:3].drop(columns="item"), type="subject_specific")
    # the population-level predictions do not need it
    np.testing.assert_allclose(
        vb.predict(verbagg.iloc[:3].drop(columns="item")), _xb(vb, verbagg.iloc[:3]), atol=1e-10
    )


def test_marginal_predictions_integrate_every_factor(vb, verbagg):
    """For one row the two random intercepts add up to N(0, σ²_id + σ²_item)."""
    z, w = hermegauss(60)
    w = w / w.sum()
    rows = verbagg.iloc[[0, 3000, 7000]]
    total_sd = np.hypot(_sd(vb, "id"), _sd(vb, "item"))
    expected = special.expit(_xb(vb, rows)[:, None] + total_sd * z[None, :]) @ w
    got = vb.predict(rows, type_pred="response", type="marginal").to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_marginal_coefs_by_independent_quadrature(vb):
    z, w = hermegauss(60)
    w = w / w.sum()
    total_sd = np.hypot(_sd(vb, "id"), _sd(vb, "item"))
    X = vb.design.X
    mean = special.expit((X @ vb.fixef().to_numpy())[:, None] + total_sd * z[None, :]) @ w
    expected = np.linalg.lstsq(X, special.logit(mean), rcond=None)[0]
    got = vb.marginal_coefs()["Estimate"].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_subject_specific_standard_errors(vb, verbagg):
    rows = verbagg.iloc[[0, 1]]
    out = vb.predict(rows, type="subject_specific", se_fit=True, n_draws=30, seed=1)
    assert out.columns.tolist() == ["pred", "se", "low", "upp"]
    assert np.all(out["se"] > 0) and np.all(out["low"] < out["upp"])
    again = vb.predict(rows, type="subject_specific", se_fit=True, n_draws=30, seed=1)
    pd.testing.assert_frame_equal(out, again)


def test_residuals(vb):
    resid = vb.residuals()
    np.testing.assert_allclose(
        resid.to_numpy(), vb.design.y - vb.fitted("subject_specific").to_numpy(), atol=1e-12
    )
    pearson = vb.residuals(type="marginal", kind="pearson")
    assert np.all(np.isfinite(pearson))
    assert abs(pearson.mean()) < 0.05


# ---- 5. simulation --------------------------------------------------------------------------
def test_simulate_shape_and_seed(vb):
    y = vb.simulate(nsim=4, seed=11)
    assert y.shape == (7584, 4)
    assert set(np.unique(y)) <= {0.0, 1.0}
    np.testing.assert_array_equal(vb.simulate(nsim=4, seed=11), y)
    assert not np.array_equal(vb.simulate(nsim=4, seed=12), y)


def test_simulate_at_the_modes_tracks_the_subject_specific_fit(vb):
    nsim = 200
    y = vb.simulate(nsim=nsim, seed=2, new_random_effects=False)
    fitted = vb.fitted("subject_specific").to_numpy()
    # a binomial mean of 200 draws has SE at most 0.035: 5 SE
    assert np.max(np.abs(y.mean(axis=1) - fitted)) < 5 * 0.5 / np.sqrt(nsim)


def test_simulated_effects_are_new_per_level_of_every_factor(slope_fit):
    """With new random effects the responses' mean tracks the marginal mean, and two rows
    covary through a shared subject or a shared item, not otherwise."""
    nsim = 400
    y = slope_fit.simulate(nsim=nsim, seed=3)
    assert y.shape == (slope_fit.nobs, nsim)
    marginal = slope_fit.fitted("marginal").to_numpy()
    per_sim = y.mean(axis=0)
    assert abs(per_sim.mean() - marginal.mean()) < 4 * per_sim.std(ddof=1) / np.sqrt(nsim)
    yc = np.log1p(y) - np.log1p(y).mean(axis=1, keepdims=True)
    cov = yc @ yc.T / (nsim - 1)
    levels = slope_fit.design.levels  # item, subj
    same_item = levels[:, 0][:, None] == levels[:, 0][None, :]
    same_subj = levels[:, 1][:, None] == levels[:, 1][None, :]
    off = ~np.eye(len(y), dtype=bool)
    # item SD 0.46, subject SD 0.51: both shared effects raise the covariance
    assert cov[same_item & ~same_subj].mean() > 0.02
    assert cov[same_subj & ~same_item & off].mean() > 0.02
    assert abs(cov[~same_item & ~same_subj].mean()) < 0.005


# ---- 6. likelihood-ratio tests ----------------------------------------------------------------
def test_anova_against_one_factor_by_quadrature_warns(subj_only, slope_fit):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = gp.anova(subj_only, slope_fit)
    messages = [str(w.message) for w in caught]
    assert messages[0] == (
        "slope_fit is fitted by the Laplace approximation (its grouping factors are crossed) "
        "and subj_only by adaptive Gauss-Hermite quadrature with 11 points: their "
        "log-likelihoods carry different approximation errors (the Laplace approximation's "
        "can reach several units on binary data), which the likelihood-ratio statistic mixes "
        "with the difference between the models; refit subj_only with n_agq=1 so that both "
        "are the same approximation"
    )
    assert messages[1].startswith("slope_fit adds the variance of (Intercept) (item) to subj_only")
    assert len(messages) == 2
    assert table["LRT"].iloc[1] == pytest.approx(2 * (slope_fit.loglik - subj_only.loglik))


def test_anova_of_two_laplace_fits(subj_only_laplace, slope_fit):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = gp.anova(subj_only_laplace, slope_fit, names=["subj", "crossed"])
    assert [str(w.message)[:44] for w in caught] == ["crossed adds the variance of (Intercept) (it"]
    assert table.index.tolist() == ["subj", "crossed"]
    assert table["df"].iloc[1] == 1
    lrt = 2 * (slope_fit.loglik - subj_only_laplace.loglik)
    assert table["LRT"].iloc[1] == pytest.approx(lrt)
    assert lrt > 50  # the items' effects are there (SD 0.5 in the simulation)


def test_anova_refuses_models_that_group_the_rows_differently(counts, slope_fit):
    other = gp.mixed_model("y ~ x", "~ 1 | item", counts.assign(item=counts["subj"]), "poisson")
    with pytest.raises(ValueError, match="the models group the rows differently"):
        gp.anova(other, slope_fit)
    renamed = gp.mixed_model(
        "y ~ x", "~ 1 | person", counts.assign(person=counts["subj"]), "poisson"
    )
    msg = "the models group by different columns: 'person' and 'item', 'subj'"
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.anova(renamed, slope_fit)


# ---- 7. what a crossed fit refuses ----------------------------------------------------------
def test_check_quadrature_is_refused(vb):
    msg = (
        "check_quadrature compares quadrature rules, and a fit with crossed grouping factors "
        "('item', 'id') has none"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        vb.check_quadrature()
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.check_quadrature(vb, n_agq=5)


def test_sandwich_covariance_is_refused(vb):
    msg = (
        "the sandwich covariance needs independent groups, and the crossed grouping factors "
        "'item' and 'id' have none"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        vb.vcov(sandwich=True)
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.anova(vb, L={"Anger": 1}, sandwich=True)


def test_quadrature_points_are_refused(counts):
    with pytest.raises(ValueError, match=re.escape("n_agq=5 with crossed grouping factors")):
        gp.mixed_model("y ~ x", "(1 | subj) + (1 | item)", counts, "poisson", n_agq=5)
    with pytest.raises(ValueError, match=re.escape("n_agq='auto' with crossed grouping factors")):
        gp.mixed_model("y ~ x", "(1 | subj) + (1 | item)", counts, "poisson", n_agq="auto")


def test_random_effect_draws_are_refused(slope_fit):
    msg = "draws of the random effects of several grouping factors are not available"
    idata = slope_fit.to_inference_data(draws=5, seed=1)
    with pytest.raises(NotImplementedError, match=re.escape(msg)):
        gp.sample_random_effects(slope_fit, idata, seed=1)


def test_bambi_comparison_is_refused(slope_fit):
    from glmm_ppl.bayes.bambi_bridge import compare_with_bambi

    msg = (
        "compare_with_bambi builds bambi's model of one grouping factor; this fit has several "
        "('item', 'subj')"
    )
    with pytest.raises(NotImplementedError, match=re.escape(msg)):
        compare_with_bambi(slope_fit)


# ---- 8. the sampler's density and the PyMC models ----------------------------------------------
def test_engine_density_is_the_fit_s_objective(slope_fit):
    from glmm_ppl.fitting.density import EngineDensity
    from glmm_ppl.fitting.graph import MixedModelGraph

    graph = MixedModelGraph(slope_fit.design, slope_fit.family, 1, None)
    density = EngineDensity(graph, None, slope_fit.modes)
    theta = slope_fit.theta + 0.05  # away from the estimates, where the gradient is not 0
    value, grad, per_group = density(theta)
    objective, _, expected = graph(theta)
    assert value == pytest.approx(objective, abs=1e-6)  # modes converged from other starts
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)
    assert per_group.shape == (1,) and per_group[0] == pytest.approx(value)


def test_latent_pymc_model_has_each_factor_s_effects(slope_fit):
    model = gp.to_pymc(slope_fit, marginal=False)
    assert sorted(v.name for v in model.free_RVs) == ["beta", "theta_D", "z[item]", "z[subj]"]
    start = model.initial_point()
    outputs = model.replace_rvs_by_values([model["b[subj]"], model["b[item]"]])
    effects = model.compile_fn(outputs, inputs=model.value_vars, on_unused_input="ignore")
    b_subj, b_item = effects(start)
    assert b_subj.shape == (60, 2) and b_item.shape == (12, 1)
    assert list(model.coords["subj"])[:2] == ["s00", "s01"]
    assert list(model.coords["random[subj]"]) == ["(Intercept)", "x"]
    # it starts at the modes, where its log density is finite
    np.testing.assert_allclose(b_subj, slope_fit.ranef()["subj"].to_numpy(), atol=1e-8)
    assert np.isfinite(model.compile_logp()(start))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # r_hat of 1 chain
def test_nuts_on_the_marginal_model(slope_fit):
    with pytest.warns(UserWarning, match="no prior on the random-effect standard deviations"):
        idata = gp.sample(slope_fit, draws=20, tune=20, chains=1, random_seed=1, progressbar=False)
    assert idata.posterior["sd"].shape == (1, 20, 3)
    assert idata.posterior["sd"]["random"].values.tolist() == [
        "item.(Intercept)",
        "subj.(Intercept)",
        "subj.x",
    ]
    # no independent groups: no per-group log-likelihood for az.loo
    assert "log_likelihood" not in idata.groups()
    assert "Laplace marginal likelihood" in idata.attrs["source"]
    table = gp.compare_map_mcmc(slope_fit, idata)
    assert table.loc["beta[x]", "MAP"] == pytest.approx(slope_fit.fixef()["x"])


def test_prior_sensitivity(slope_fit):
    import pymc as pm

    table = gp.prior_sensitivity(
        slope_fit, lambda sigma: pm.Normal.dist(0, sigma), {"sigma": [0.05, 10.0]}, key="x"
    )
    x = table[table.parameter == "x"].set_index("sigma")["estimate"]
    assert abs(x[0.05]) < abs(x[10.0])
    assert x[10.0] == pytest.approx(slope_fit.fixef()["x"], abs=0.01)
    assert table["converged"].all()


# ---- 9. bad input --------------------------------------------------------------------------
def test_single_level_factor(verbagg):
    msg = "grouping factor 'one' has a single level (1); a random effect needs at least two"
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.mixed_model(FIXED, "(1 | id) + (1 | one)", verbagg.assign(one=1), "binomial")


def test_slope_on_a_variable_constant_within_its_factor(verbagg):
    msg = (
        "the random slope 'GenderM' of 'id' is not identified: Gender does not vary within any "
        "level of id (each level has a single value of it), so its slope cannot be told apart "
        "from the random intercept of id; remove Gender from the random-effects term of id (it "
        "can stay among the fixed effects)"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.mixed_model(FIXED, "(Gender | id) + (1 | item)", verbagg, "binomial")
    # Gender varies within items: a slope there is identified
    design = build_design(FIXED, "(1 | id) + (Gender | item)", verbagg, gp.families.binomial())
    assert design.crossed and design.q == 3


def test_more_random_effects_than_observations(counts):
    few = counts.groupby("subj").head(2).reset_index(drop=True)  # two rows per subject
    few = few.assign(z=np.random.default_rng(1).normal(size=len(few)))
    msg = (
        "the grouping factor 'subj' has 180 random effects (subj 60 levels × 3 effects) for "
        "120 observations: more random effects than observations, so their variances are not "
        "identified (lme4 refuses this too)"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.mixed_model("y ~ x", "(x + z | subj) + (1 | item)", few, "poisson")


def test_as_many_random_effects_as_observations_with_a_scale_parameter(counts):
    few = counts.groupby("subj").head(2).reset_index(drop=True)
    msg = (
        "the grouping factors have 123 random effects together (item 3 levels × 1 effect; "
        "subj 60 levels × 2 effects) for 120 observations: with at least as many random effects "
        "as observations they can reproduce every observation, so their variances cannot be "
        "told apart from the gaussian family's sigma"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.mixed_model("y ~ x", "(x | subj) + (1 | item)", few, "gaussian")


def test_one_random_effect_per_observation_stays_for_counts(counts):
    """Observation-level random effects (overdispersion) are a model of their own for counts."""
    design = build_design(
        "y ~ x",
        "(1 | subj) + (1 | item) + (1 | obs)",
        counts.assign(obs=np.arange(len(counts))),
        gp.families.poisson(),
    )
    assert design.crossed
    assert [f.n_units for f in design.factors] == [12, 60, len(counts)]


def test_binary_response_with_one_row_per_level(verbagg):
    rows = verbagg.assign(obs=np.arange(len(verbagg)))
    msg = (
        "every level of 'obs' has a single binary response: the variance of its random effects "
        "cannot be told apart from the fixed effects (lme4 refuses this too); leave 'obs' out "
        "or give its levels more rows"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.mixed_model(FIXED, "(1 | id) + (1 | item) + (1 | obs)", rows, "binomial")
