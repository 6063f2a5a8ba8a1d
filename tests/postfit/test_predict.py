"""predict / fitted / residuals / coef: the reference predictions of GLMMadaptive, the
definitions of each prediction type checked against independent computations (Monte Carlo
integrals, hand-built linear predictors), standard errors and intervals, and the errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

import glmm_ppl as gp

# the reference newdata of fm1_predict_*: time 0/5/10 for male/female/female
REF_NEWDATA = pd.DataFrame({"time": [0.0, 5.0, 10.0], "sex": ["male", "female", "female"]})
NAMES = ["(Intercept)", "sexfemale", "time", "sexfemale:time"]


def _x_fm1(nd: pd.DataFrame) -> np.ndarray:
    """Fixed-effects design of ``y ~ sex * time`` (male the reference level), by hand."""
    female = (np.asarray(nd["sex"]) == "female").astype(float)
    time = nd["time"].to_numpy(dtype=float)
    return np.column_stack([np.ones(len(nd)), female, time, female * time])


def _eta0(fit, nd: pd.DataFrame) -> np.ndarray:
    return _x_fm1(nd) @ fit.fixef()[NAMES].to_numpy()


# ---- module-scoped fits ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def zi_fit():
    """A zero-inflated Poisson fit of simulated data (zero part ``~ sex``)."""
    rng = np.random.default_rng(11)
    n, k = 150, 6
    ids = np.repeat(np.arange(1, n + 1), k)
    sex = np.repeat(rng.choice(["male", "female"], n), k)
    time = rng.uniform(0, 10, n * k)
    female = sex == "female"
    b = np.repeat(rng.normal(0.0, 0.5, n), k)
    mu = np.exp(0.5 + 0.1 * time - 0.3 * female + b)
    zero = rng.uniform(size=n * k) < expit(-1.0 + 0.8 * female)
    y = np.where(zero, 0, rng.poisson(mu))
    data = pd.DataFrame(
        {
            "id": ids,
            "time": time,
            "sex": pd.Categorical(sex, ["male", "female"]),
            "y": y,
        }
    )
    return gp.mixed_model("y ~ sex + time", "~ 1 | id", data, "zi_poisson", zi_fixed="~ sex")


@pytest.fixture(scope="module")
def offset_fit(poisson):
    """The vignette Poisson model with an exposure offset ``offset(log(exposure))``."""
    rng = np.random.default_rng(3)
    data = poisson.assign(exposure=rng.uniform(0.5, 2.0, len(poisson)))
    return gp.mixed_model("y ~ sex * time + offset(log(exposure))", "~ 1 | id", data, "poisson")


# ---- the reference predictions -----------------------------------------------------------------
def test_mean_subject_matches_reference(fm1, ref):
    # our β differ from GLMMadaptive's by at most ~0.015 of their standard errors (its
    # optimizer stops a little early); that moves these probabilities by a relative ~1e-3,
    # so 3e-3 is the tolerance that still catches any error in the prediction itself
    pred = fm1.predict(REF_NEWDATA, type_pred="response", type="mean_subject")
    np.testing.assert_allclose(pred.to_numpy(), ref["fm1_predict_mean_subject"], rtol=3e-3)
    np.testing.assert_allclose(pred.to_numpy(), expit(_eta0(fm1, REF_NEWDATA)), rtol=1e-12)


def test_marginal_close_to_reference(fm1, ref):
    # GLMMadaptive predicts g⁻¹(x β_M) with Monte Carlo marginal coefficients (M = 3000); ours
    # is the exact marginal mean E_b g⁻¹(xβ + b), so the two agree to about two digits
    pred = fm1.predict(REF_NEWDATA, type_pred="response", type="marginal")
    np.testing.assert_allclose(pred.to_numpy(), ref["fm1_predict_marginal"], atol=0.01)


def test_marginal_is_the_monte_carlo_mean(fm1):
    pred = fm1.predict(REF_NEWDATA, type_pred="response", type="marginal").to_numpy()
    sd_b = np.sqrt(fm1.D.to_numpy()[0, 0])
    b = np.random.default_rng(20240501).normal(0.0, sd_b, 400_000)
    values = expit(_eta0(fm1, REF_NEWDATA)[:, None] + b[None, :])
    mc = values.mean(axis=1)
    mc_se = values.std(axis=1, ddof=1) / np.sqrt(values.shape[1])
    assert np.all(np.abs(pred - mc) < 4 * mc_se), (pred, mc, mc_se)
    # the random effects matter: the marginal mean is not the mean-subject one
    assert np.all(np.abs(pred - expit(_eta0(fm1, REF_NEWDATA))) > 0.01)


def test_marginal_is_average_of_subject_means_over_simulated_effects(fm1):
    # each simulated data set draws new random effects b_i ~ N(0, D̂) and y | b_i, so the
    # average response of a row over the simulations estimates E_b h(η⁰ + b)
    nsim = 4000
    sims = fm1.simulate(nsim=nsim, seed=5, new_random_effects=True)
    marginal = fm1.fitted(type="marginal").to_numpy()
    mean = sims.mean(axis=1)
    se = np.sqrt(marginal * (1 - marginal) / nsim)
    z = (mean - marginal) / se
    assert np.max(np.abs(z)) < 5.0
    # all rows together: the average over rows and simulations
    total_se = np.sqrt(np.sum(marginal * (1 - marginal))) / (len(marginal) * np.sqrt(nsim))
    assert abs(mean.mean() - marginal.mean()) < 4 * total_se
    # and it is not the mean-subject fit
    assert np.max(np.abs(fm1.fitted().to_numpy() - marginal)) > 0.05


# ---- scales and types --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mean_subject", "marginal"])
def test_link_and_response_scales_agree(fm1, kind):
    link = fm1.predict(REF_NEWDATA, type_pred="link", type=kind)
    response = fm1.predict(REF_NEWDATA, type_pred="response", type=kind)
    np.testing.assert_allclose(expit(link.to_numpy()), response.to_numpy(), rtol=1e-10)


def test_link_and_response_scales_agree_subject_specific(fm1, binary):
    link = fm1.predict(type_pred="link", type="subject_specific")
    response = fm1.predict(type_pred="response", type="subject_specific")
    np.testing.assert_allclose(expit(link.to_numpy()), response.to_numpy(), rtol=1e-10)
    nd = binary.iloc[[0, 9, 17]]
    np.testing.assert_allclose(
        expit(fm1.predict(nd, type="subject_specific").to_numpy()),
        fm1.predict(nd, type_pred="response", type="subject_specific").to_numpy(),
        rtol=1e-10,
    )


def test_zero_part_is_logistic_of_zero_part_linear_predictor(zi_fit):
    gamma = zi_fit.fixef("zero_part")[["(Intercept)", "sexfemale"]].to_numpy()
    female = (REF_NEWDATA["sex"] == "female").to_numpy(dtype=float)
    eta_zi = gamma[0] + gamma[1] * female
    link = zi_fit.predict(REF_NEWDATA, type_pred="link", type="zero_part")
    prob = zi_fit.predict(REF_NEWDATA, type_pred="response", type="zero_part")
    np.testing.assert_allclose(link.to_numpy(), eta_zi, rtol=1e-12)
    np.testing.assert_allclose(prob.to_numpy(), expit(eta_zi), rtol=1e-12)
    # the response mean of the zero-inflated Poisson at b = 0: (1 − π) e^η
    beta = zi_fit.fixef()[["(Intercept)", "sexfemale", "time"]].to_numpy()
    eta = beta[0] + beta[1] * female + beta[2] * REF_NEWDATA["time"].to_numpy()
    mean = zi_fit.predict(REF_NEWDATA, type_pred="response")
    np.testing.assert_allclose(mean.to_numpy(), (1 - expit(eta_zi)) * np.exp(eta), rtol=1e-10)


def test_zero_part_interval_is_the_link_interval_mapped_back(zi_fit):
    link = zi_fit.predict(REF_NEWDATA, type_pred="link", type="zero_part", se_fit=True)
    prob = zi_fit.predict(REF_NEWDATA, type_pred="response", type="zero_part", se_fit=True)
    np.testing.assert_allclose(prob["low"], expit(link["low"]), rtol=1e-10)
    np.testing.assert_allclose(prob["upp"], expit(link["upp"]), rtol=1e-10)
    assert np.all((prob["low"] > 0) & (prob["upp"] < 1))


def test_zero_part_of_binomial_fit_is_an_error(fm1):
    message = (
        "the binomial family has no zero part; type='zero_part' applies to zero-inflated and "
        "hurdle families"
    )
    with pytest.raises(ValueError) as err:
        fm1.predict(REF_NEWDATA, type="zero_part")
    assert str(err.value) == message


def test_unknown_type_and_type_pred(fm1):
    with pytest.raises(ValueError) as err:
        fm1.predict(REF_NEWDATA, type="conditional")
    assert str(err.value) == (
        "unknown type 'conditional'; valid: 'mean_subject', 'marginal', 'subject_specific', "
        "'zero_part', 'zero_part_subject_specific'"
    )
    with pytest.raises(ValueError) as err:
        fm1.predict(REF_NEWDATA, type_pred="probability")
    assert str(err.value) == "unknown type_pred 'probability'; valid: 'link', 'response'"


# ---- subject-specific predictions --------------------------------------------------------------
def test_subject_specific_fitted_data_adds_the_modes(fm1):
    d = fm1.design
    b = fm1.ranef()["(Intercept)"].to_numpy()
    b_rows = np.repeat(b, np.diff(d.starts))
    eta0 = d.X @ fm1.fixef().to_numpy()
    pred = fm1.predict(type="subject_specific")
    np.testing.assert_allclose(pred.to_numpy(), eta0 + b_rows, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        fm1.predict(type="mean_subject").to_numpy(), eta0, rtol=1e-12, atol=1e-12
    )


def test_subject_specific_known_groups_in_newdata(fm1):
    nd = pd.DataFrame({"id": [3, 1, 3], "time": [1.0, 2.0, 7.5], "sex": ["female"] * 3})
    b = fm1.ranef()["(Intercept)"]
    pred = fm1.predict(nd, type="subject_specific")
    expected = _eta0(fm1, nd) + b.loc[nd["id"]].to_numpy()
    np.testing.assert_allclose(pred.to_numpy(), expected, rtol=1e-12)


def test_dynamic_modes_of_new_groups_equal_the_fitted_modes(fm1, binary):
    # the same rows under labels the fit did not see: their random effects are estimated from
    # these rows at the fitted parameters, which is what the fit did for the original groups
    new = binary.assign(id=binary["id"] + 1000).sample(frac=1.0, random_state=7)
    dynamic = fm1.predict(new, type="subject_specific")
    fitted = pd.Series(fm1.predict(type="subject_specific").to_numpy(), index=fm1.design.rows)
    assert dynamic.index.equals(new.index)
    np.testing.assert_allclose(
        dynamic.to_numpy(), fitted.loc[new.index].to_numpy(), rtol=0, atol=1e-6
    )


def test_new_groups_without_response_are_an_error(fm1, binary):
    new = binary.assign(id=binary["id"] + 1000).drop(columns="y")
    with pytest.raises(ValueError, match=r"^newdata has 100 group\(s\) the fit did not see"):
        fm1.predict(new, type="subject_specific")
    # the population-level types do not need the group's random effects
    assert fm1.predict(new, type="mean_subject").notna().all()


# ---- standard errors and intervals ---------------------------------------------------------------
def test_mean_subject_se_is_the_wald_se(fm1):
    out = fm1.predict(REF_NEWDATA, type="mean_subject", se_fit=True)
    X = _x_fm1(REF_NEWDATA)
    V = fm1.vcov("fixed-effects").loc[NAMES, NAMES].to_numpy()
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))
    np.testing.assert_allclose(out["se"].to_numpy(), se, rtol=1e-6)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(out["low"].to_numpy(), out["pred"] - z * se, rtol=1e-6)
    np.testing.assert_allclose(out["upp"].to_numpy(), out["pred"] + z * se, rtol=1e-6)
    resp = fm1.predict(REF_NEWDATA, type_pred="response", se_fit=True)
    np.testing.assert_allclose(resp["pred"].to_numpy(), expit(out["pred"].to_numpy()))
    np.testing.assert_allclose(resp["low"].to_numpy(), expit(out["low"].to_numpy()), rtol=1e-10)
    np.testing.assert_allclose(resp["upp"].to_numpy(), expit(out["upp"].to_numpy()), rtol=1e-10)


def test_marginal_se_and_interval(fm1):
    for scale in ("link", "response"):
        out = fm1.predict(REF_NEWDATA, type_pred=scale, type="marginal", se_fit=True)
        assert (out["se"] > 0).all()
        assert (out["low"] < out["pred"]).all() and (out["pred"] < out["upp"]).all()
    point = fm1.predict(REF_NEWDATA, type_pred="response", type="marginal")
    np.testing.assert_allclose(out["pred"].to_numpy(), point.to_numpy())
    assert ((out["low"] > 0) & (out["upp"] < 1)).all()


def test_subject_specific_interval_includes_parameter_uncertainty(fm1):
    nd = pd.DataFrame(
        {
            "id": [1, 1, 1, 2, 2, 2],
            "time": [0.0, 5.0, 40.0, 0.0, 5.0, 40.0],
            "sex": ["male"] * 3 + ["female"] * 3,
        }
    )
    link = fm1.predict(nd, type="subject_specific", se_fit=True, n_draws=200, seed=1)
    resp = fm1.predict(
        nd, type_pred="response", type="subject_specific", se_fit=True, n_draws=200, seed=1
    )
    for out in (link, resp):
        assert (out["low"] <= out["pred"]).all() and (out["pred"] <= out["upp"]).all()
        assert (out["se"] > 0).all()
    assert ((resp["low"] >= 0) & (resp["upp"] <= 1)).all()
    np.testing.assert_allclose(resp["pred"].to_numpy(), expit(link["pred"].to_numpy()))
    # the interval at θ̂ from the posterior of b alone (normal at the mode, posterior variance)
    post = fm1.ranef(post_vars=True).loc[nd["id"]]
    rng = np.random.default_rng(99)
    b = post["(Intercept)"].to_numpy()[:, None] + np.sqrt(post["var.(Intercept)"].to_numpy())[
        :, None
    ] * rng.standard_normal((len(nd), 50_000))
    eta = _eta0(fm1, nd)[:, None] + b
    low_b, upp_b = np.quantile(eta, [0.025, 0.975], axis=1)
    # far from the observed times (time 40) the slope's uncertainty dominates: with θ drawn
    # too the interval is wider by a margin far beyond the noise of 200 draws (≥ 1.4× here)
    far = (nd["time"] == 40.0).to_numpy()
    width = (link["upp"] - link["low"]).to_numpy()
    assert np.all(width[far] > 1.2 * (upp_b - low_b)[far])
    # and nowhere much narrower than the b-only interval
    assert np.all(width > 0.8 * (upp_b - low_b))


def test_subject_specific_intervals_reproducible(fm1):
    nd = pd.DataFrame({"id": [5], "time": [3.0], "sex": ["male"]})
    a = fm1.predict(nd, type="subject_specific", se_fit=True, n_draws=50, seed=4)
    b = fm1.predict(nd, type="subject_specific", se_fit=True, n_draws=50, seed=4)
    pd.testing.assert_frame_equal(a, b)


# ---- fitted, residuals, coef -------------------------------------------------------------------
def _wait_for_response_variance(family) -> None:
    """``response_variance`` of the family (retries while it is not yet available)."""
    import time

    for _ in range(5):
        try:
            family.response_variance(np.zeros(1), [])
            return
        except NotImplementedError:
            time.sleep(60)
    family.response_variance(np.zeros(1), [])


def test_fitted_and_response_residuals(fm1):
    y = fm1.design.y.astype(float)
    for kind in ("mean_subject", "marginal", "subject_specific"):
        fitted = fm1.fitted(type=kind)
        resid = fm1.residuals(type=kind)
        assert fitted.index.equals(resid.index)
        np.testing.assert_allclose(resid.to_numpy(), y - fitted.to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(
            fitted.to_numpy(), fm1.predict(type_pred="response", type=kind).to_numpy()
        )
    np.testing.assert_allclose(
        fm1.fitted().to_numpy(), expit(fm1.design.X @ fm1.fixef().to_numpy()), rtol=1e-12
    )


@pytest.mark.parametrize("kind", ["subject_specific", "mean_subject", "marginal"])
def test_pearson_residuals_binomial(fm1, kind):
    _wait_for_response_variance(fm1.family)
    y = fm1.design.y.astype(float)
    p = fm1.fitted(type=kind).to_numpy()
    # for a binary response the marginal variance E_b Var + Var_b E is m(1 − m) as well
    expected = (y - p) / np.sqrt(p * (1 - p))
    pearson = fm1.residuals(type=kind, kind="pearson")
    np.testing.assert_allclose(pearson.to_numpy(), expected, rtol=1e-8)


def test_residuals_unknown_kind(fm1):
    with pytest.raises(ValueError, match=r"^unknown kind 'deviance'"):
        fm1.residuals(kind="deviance")


def test_coef_adds_random_intercept_only(fm1):
    coefs = fm1.coef()
    fixef = fm1.fixef()
    b = fm1.ranef()["(Intercept)"]
    assert list(coefs.columns) == list(fixef.index)
    assert coefs.index.equals(b.index)
    np.testing.assert_allclose(coefs["(Intercept)"], fixef["(Intercept)"] + b, rtol=1e-12)
    for name in NAMES[1:]:
        assert (coefs[name] == fixef[name]).all()


# ---- newdata ---------------------------------------------------------------------------------
def test_offset_of_newdata_is_used(offset_fit):
    nd = REF_NEWDATA.assign(exposure=[1.0, 2.0, 0.5])
    beta = offset_fit.fixef()[NAMES].to_numpy()
    eta = _x_fm1(nd) @ beta + np.log(nd["exposure"].to_numpy())
    np.testing.assert_allclose(offset_fit.predict(nd).to_numpy(), eta, rtol=1e-12)
    np.testing.assert_allclose(
        offset_fit.predict(nd, type_pred="response").to_numpy(), np.exp(eta), rtol=1e-12
    )
    # marginal: the random intercept multiplies the mean by E e^b = e^{D/2}
    D = offset_fit.D.to_numpy()[0, 0]
    np.testing.assert_allclose(
        offset_fit.predict(nd, type_pred="response", type="marginal").to_numpy(),
        np.exp(eta + D / 2),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match=r"^cannot build the fixed offset design"):
        offset_fit.predict(REF_NEWDATA)


def test_unseen_factor_level_is_an_error(fm1):
    nd = pd.DataFrame({"time": [1.0], "sex": ["other"]})
    msg = (
        "newdata's column 'sex' has level(s) the fit did not see: 'other'; the fitted levels "
        "are 'male', 'female'"
    )
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        fm1.predict(nd)


def test_missing_column_is_an_error(fm1):
    msg = "newdata needs the column(s) 'sex' of the fixed-effects formula; it has time"
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        fm1.predict(pd.DataFrame({"time": [1.0, 2.0]}))


def test_predictions_keep_the_newdata_index(fm1):
    nd = REF_NEWDATA.set_index(pd.Index(["a", "b", "c"]))
    for kind in ("mean_subject", "marginal"):
        assert fm1.predict(nd, type=kind).index.equals(nd.index)
        assert fm1.predict(nd, type=kind, se_fit=True).index.equals(nd.index)


def test_response_predictions_need_the_trials_not_the_response():
    """Binomial with trials: new data need each row's number of trials, not the successes
    (a mean is a prediction of them); without the trials column the error names it."""
    rng = np.random.default_rng(1)
    n = 60
    df = pd.DataFrame({"id": np.repeat(np.arange(n), 5), "x": rng.normal(size=n * 5)})
    b = rng.normal(0.0, 0.7, n)
    df["n"] = rng.integers(1, 12, len(df))
    df["s"] = rng.binomial(df["n"], 1 / (1 + np.exp(-(0.3 + 0.5 * df.x + b[df.id]))))
    fit = gp.mixed_model("p(s, n) ~ x", "~ 1 | id", df, "binomial")
    with_y = fit.predict(df.head(4), type_pred="response", type="marginal")
    without_y = fit.predict(df[["id", "x", "n"]].head(4), type_pred="response", type="marginal")
    np.testing.assert_allclose(without_y, with_y, rtol=1e-12)
    eta = fit.predict(df[["id", "x"]].head(4))  # link scale: no trials needed
    np.testing.assert_allclose(
        fit.predict(df[["id", "x", "n"]].head(4), type_pred="response"),
        df["n"].head(4) / (1 + np.exp(-eta)),
        rtol=1e-12,
    )
    with pytest.raises(ValueError) as err:
        fit.predict(df[["id", "x"]].head(4), type_pred="response")
    assert str(err.value) == (
        "response-scale predictions of the binomial family need the column(s) 'n' in newdata, "
        "without missing values (they give the number of trials of each row)"
    )
