"""Observation-level weights (``mixed_model(..., row_weights=...)``).

The defining property: integer row weights give the fit of the data with each row repeated
by its weight within its group (the same log-likelihood, estimates and standard errors), for
random intercepts, correlated slopes, nested and crossed grouping factors. Then: weights all 1
are the unweighted model, weight 0 equals dropping the row, the gradient of the weighted
log-likelihood against finite differences, the errors, and what the post-fit functions do
with the weights.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import glmm_ppl as gp
from glmm_ppl.design.matrices import build_design
from glmm_ppl.families import poisson as poisson_family
from glmm_ppl.fitting.graph import MixedModelGraph
from glmm_ppl.postfit.simulate import ROW_WEIGHTS_NOT_SIMULATED

FIXED = "y ~ sex * time"


def _fit(*args, **kwargs):
    """``gp.mixed_model`` with no warning allowed (a warning would make the comparison moot)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return gp.mixed_model(*args, **kwargs)


def _replicated(df: pd.DataFrame, w: np.ndarray) -> pd.DataFrame:
    """Each row repeated ``w`` times (in its group: the copies keep its columns)."""
    return df.loc[df.index.repeat(w)].reset_index(drop=True)


def _se(fit) -> np.ndarray:
    return np.sqrt(np.diag(fit.vcov("all")))


def _loglik_at(fit, theta) -> float:
    return MixedModelGraph(fit.design, fit.family, fit.n_agq, None)(theta)[1]


def _assert_same_fit(weighted, replicated, loglik_rtol=1e-8, theta_atol=1e-5, se_rtol=1e-5):
    # the same function of θ: equal at the same θ (away from the estimates too)
    for theta in (weighted.theta, weighted.theta + 0.1):
        at_w, at_r = _loglik_at(weighted, theta), _loglik_at(replicated, theta)
        assert at_w == pytest.approx(at_r, rel=1e-10, abs=0)
    assert weighted.loglik == pytest.approx(replicated.loglik, rel=loglik_rtol, abs=0)
    np.testing.assert_allclose(weighted.theta, replicated.theta, rtol=0, atol=theta_atol)
    np.testing.assert_allclose(_se(weighted), _se(replicated), rtol=se_rtol)


# ---- data and fits ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def binary() -> pd.DataFrame:
    return gp.load_vignette("binary")


@pytest.fixture(scope="module")
def counts() -> pd.DataFrame:
    return gp.load_vignette("poisson")


@pytest.fixture(scope="module")
def w_binary(binary) -> np.ndarray:
    return np.random.default_rng(1).integers(1, 4, len(binary))


@pytest.fixture(scope="module")
def fm1(binary):
    return _fit(FIXED, "~ 1 | id", binary, "binomial")


@pytest.fixture(scope="module")
def weighted(binary, w_binary):
    return _fit(FIXED, "~ 1 | id", binary, "binomial", row_weights=w_binary)


@pytest.fixture(scope="module")
def replicated(binary, w_binary):
    return _fit(FIXED, "~ 1 | id", _replicated(binary, w_binary), "binomial")


def _crossed_counts(seed: int = 7, n_subj: int = 24, n_item: int = 8) -> pd.DataFrame:
    """Poisson counts of subjects × items with a random intercept of each."""
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subj), n_item)
    item = np.tile(np.arange(n_item), n_subj)
    x = rng.normal(size=len(subj))
    eta = 0.4 + 0.5 * x + rng.normal(0, 0.6, n_subj)[subj] + rng.normal(0, 0.4, n_item)[item]
    return pd.DataFrame(
        {
            "subj": [f"s{s:02d}" for s in subj],
            "item": [f"i{i}" for i in item],
            "x": x,
            "y": rng.poisson(np.exp(eta)),
        }
    )


# ---- the defining property: weights as repeated rows -----------------------------------------
def test_binary_random_intercept_equals_repeated_rows(weighted, replicated):
    _assert_same_fit(weighted, replicated)
    assert weighted.family.row_weighted and not replicated.family.row_weighted


def test_sandwich_and_marginal_coefficients_equal_repeated_rows(weighted, replicated):
    # the groups' scores are those of the repeated rows, so is the sandwich covariance
    np.testing.assert_allclose(
        weighted.vcov("all", sandwich=True), replicated.vcov("all", sandwich=True), rtol=1e-5
    )
    np.testing.assert_allclose(
        weighted.marginal_coefs()["Estimate"],
        replicated.marginal_coefs()["Estimate"],
        rtol=0,
        atol=1e-6,
    )


def test_poisson_correlated_slopes_equal_repeated_rows(counts):
    w = np.random.default_rng(3).integers(1, 4, len(counts))
    fit_w = _fit(FIXED, "~ time | id", counts, "poisson", row_weights=w)
    fit_r = _fit(FIXED, "~ time | id", _replicated(counts, w), "poisson")
    _assert_same_fit(fit_w, fit_r)
    assert fit_w.design.q == 2 and not fit_w.design.diagonal


def test_gaussian_with_weights_as_a_column_equals_repeated_rows(counts):
    df = counts.assign(ly=np.log1p(counts["y"]), w=np.arange(len(counts)) % 3 + 1)
    fit_w = _fit("ly ~ time", "~ 1 | id", df, "gaussian", row_weights="w")
    fit_r = _fit("ly ~ time", "~ 1 | id", _replicated(df, df["w"].to_numpy()), "gaussian")
    _assert_same_fit(fit_w, fit_r)


def test_crossed_laplace_equals_repeated_rows():
    df = _crossed_counts()
    w = np.random.default_rng(5).integers(1, 4, len(df))
    fit_w = _fit("y ~ x", "(1 | subj) + (1 | item)", df, "poisson", row_weights=w)
    fit_r = _fit("y ~ x", "(1 | subj) + (1 | item)", _replicated(df, w), "poisson")
    assert fit_w.design.crossed and fit_w.n_agq == 1
    _assert_same_fit(fit_w, fit_r)


def test_nested_equals_repeated_rows():
    schools = gp.load_schools()
    df = schools[schools["school"].isin(pd.unique(schools["school"])[:15])]
    w = np.random.default_rng(11).integers(1, 3, len(df))
    tight = {"gtol": 1e-7, "converge_tol": 1e-9}  # a flat maximum: the optimizer's tolerance
    args = ("y ~ x + ses", "~ 1 | school/class")
    fit_w = _fit(*args, df, "gaussian", row_weights=w, n_agq=5, control=tight)
    fit_r = _fit(*args, _replicated(df, w), "gaussian", n_agq=5, control=tight)
    assert fit_w.design.nested and not fit_w.design.crossed
    _assert_same_fit(fit_w, fit_r)


def test_with_group_weights_too(counts):
    w = np.random.default_rng(4).integers(1, 3, len(counts))
    per_group = pd.Series(np.arange(counts["id"].nunique()) % 2 + 1.0, np.unique(counts["id"]))
    fit_w = _fit(FIXED, "~ 1 | id", counts, "poisson", row_weights=w, weights=per_group)
    fit_r = _fit(FIXED, "~ 1 | id", _replicated(counts, w), "poisson", weights=per_group)
    _assert_same_fit(fit_w, fit_r)
    assert "Group weights: sum 150" in str(fit_w.summary())


# ---- weights 1 and 0 -------------------------------------------------------------------------
def test_weights_all_one_are_the_unweighted_fit(binary, fm1):
    ones = _fit(FIXED, "~ 1 | id", binary, "binomial", row_weights=np.ones(len(binary)))
    assert ones.loglik == fm1.loglik
    np.testing.assert_array_equal(ones.theta, fm1.theta)
    assert ones.family == fm1.family and not ones.family.row_weighted
    assert "Row weights" not in str(ones.summary())


def test_zero_weights_equal_dropping_the_rows(binary):
    w = np.where(np.arange(len(binary)) % 5 == 2, 0.0, 1.0)
    fit_w = _fit(FIXED, "~ 1 | id", binary, "binomial", row_weights=pd.Series(w, binary.index))
    fit_d = _fit(FIXED, "~ 1 | id", binary[w > 0], "binomial")
    _assert_same_fit(fit_w, fit_d)
    # the rows stay in the fit (fitted values, residuals) but are not observations
    assert fit_w.design.nobs == len(binary)
    assert fit_w.nobs == fit_d.nobs == int((w > 0).sum())
    assert len(fit_w.fitted()) == len(binary)
    assert fit_w.bic == pytest.approx(fit_d.bic, rel=1e-8)


def test_rows_dropped_for_missing_values_drop_their_weights(binary, w_binary):
    df = binary.assign(w=w_binary.astype(float), time=binary["time"].where(binary.index % 7 != 0))
    with pytest.warns(UserWarning, match=r"dropped 115 of 800 rows with missing values"):
        fit_w = gp.mixed_model(FIXED, "~ 1 | id", df, "binomial", row_weights="w")
    kept = df.dropna()
    fit_r = _fit(FIXED, "~ 1 | id", _replicated(kept, kept["w"].astype(int)), "binomial")
    _assert_same_fit(fit_w, fit_r)


# ---- the gradient ----------------------------------------------------------------------------
def test_gradient_of_weighted_loglik_matches_finite_differences(counts):
    w = np.random.default_rng(2).uniform(0.2, 2.5, len(counts))
    fit = _fit(FIXED, "~ time | id", counts, "poisson", row_weights=w)
    graph = MixedModelGraph(fit.design, fit.family, fit.n_agq, None)
    theta = fit.theta + 0.05  # away from the maximum, where the gradient is 0
    _, loglik, grad = graph(theta)
    fd = np.empty(len(theta))
    for j in range(len(theta)):
        h = 1e-5 * max(1.0, abs(theta[j]))
        step = np.zeros(len(theta))
        step[j] = h
        fd[j] = (graph(theta + step)[1] - graph(theta - step)[1]) / (2 * h)
    assert np.abs(grad).max() > 100  # a gradient that is not near 0
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-4)
    # and the log-likelihood is the weighted one: not the unweighted fit's at the same θ
    plain = MixedModelGraph(
        build_design(FIXED, "~ time | id", counts, poisson_family()),
        poisson_family(),
        fit.n_agq,
        None,
    )
    assert abs(plain(theta)[1] - loglik) > 1.0


# ---- errors ----------------------------------------------------------------------------------
def _design(df, row_weights):
    return build_design("y ~ x", "~ 1 | g", df, poisson_family(), row_weights=row_weights)


#: pandas' dtype of a column of text (``str`` from pandas 3, ``object`` before)
_TEXT = pd.Series(["a"]).dtype


@pytest.fixture
def small() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "y": [0, 3, 1, 2, 4, 1],
            "x": [0.1, 0.5, 0.2, 0.9, 0.3, 0.7],
            "g": [1, 1, 2, 2, 3, 3],
            "w": [1.0, 2.0, 0.5, 1.0, 1.5, 1.0],
            "label": list("abcdef"),
        }
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            [1.0, -2.0, 1.0, -0.5, 1.0, 1.0],
            "row_weights column 'w' must be finite and non-negative; 2 row(s) are not "
            "(for example -2)",
        ),
        (
            [1.0, np.inf, 1.0, 1.0, 1.0, 1.0],
            "row_weights column 'w' must be finite and non-negative; 1 row(s) are not "
            "(for example inf)",
        ),
        (
            [1.0, np.nan, np.nan, 1.0, 1.0, 1.0],
            "row_weights column 'w' has 2 missing value(s) (NaN); give every row a weight "
            "(0 leaves a row out of the log-likelihood) or drop those rows from data",
        ),
        (
            [0.0, 0.0, 1.0, 1.0, 1.0, 1.0],
            "row_weights column 'w' is 0 in every row of 1 group(s) of 'g' (for example 1): a "
            "group needs a positive weight in some row (or leave it out of data)",
        ),
        ([0.0] * 6, "row_weights column 'w' is 0 in every row used: there is nothing to fit"),
    ],
)
def test_bad_weights_in_a_column(small, values, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        _design(small.assign(w=values), "w")


@pytest.mark.parametrize(
    ("row_weights", "message"),
    [
        (
            "weight",
            "row_weights column 'weight' not found in data; available columns: y, x, g, w, label",
        ),
        ("label", f"row_weights column 'label' must be numeric, got dtype {_TEXT}"),
        (
            [1.0, 2.0, 3.0],
            "row_weights must have one value per row of data (6), got 3; or give a column name "
            "or a pandas Series indexed like data",
        ),
        (np.array([True] * 6), "row_weights must be numeric, got dtype bool"),
        (np.array(list("abcdef")), f"row_weights must be numeric, got dtype {_TEXT}"),
        (
            pd.Series([1.0] * 5, index=range(5)),
            "row_weights (a Series) has no value for 1 row(s) of data (for example index 5); "
            "index it like data",
        ),
        (
            [1.0, 1.0, -1.0, 1.0, 1.0, 1.0],
            "row_weights must be finite and non-negative; 1 row(s) are not (for example -1)",
        ),
    ],
)
def test_bad_weights_arguments(small, row_weights, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        _design(small, row_weights)


def test_a_series_is_matched_by_index_label(small):
    shuffled = small["w"].iloc[::-1]  # the same weights in another order
    by_series = _design(small, shuffled)
    by_column = _design(small, "w")
    np.testing.assert_array_equal(by_series.aux, by_column.aux)
    np.testing.assert_array_equal(by_series.aux[:, 0], [1.0, 2.0, 0.5, 1.0, 1.5, 1.0])


def test_zero_weights_of_an_inner_unit_are_refused():
    schools = gp.load_schools()
    df = schools[schools["school"].isin(pd.unique(schools["school"])[:4])]
    w = np.where(df["class"] == df["class"].iloc[0], 0.0, 1.0)
    with pytest.raises(ValueError, match=r"is 0 in every row of 1 group\(s\) of 'school:class'"):
        build_design("y ~ x", "~ 1 | school/class", df, gp.families.gaussian(), row_weights=w)


# ---- after the fit ---------------------------------------------------------------------------
def test_simulate_warns_that_weights_are_not_used(weighted):
    with pytest.warns(UserWarning, match=f"^{re.escape(ROW_WEIGHTS_NOT_SIMULATED)}$") as caught:
        y = weighted.simulate(nsim=3, seed=1)
    assert len(caught) == 1
    assert caught[0].filename == __file__  # the warning points at the call
    assert y.shape == (weighted.design.nobs, 3)
    assert ROW_WEIGHTS_NOT_SIMULATED == (
        "the fit has row weights, which simulation does not use: each row is drawn once from "
        "its distribution given the random effects (a data set of the same shape cannot "
        "repeat a row by its weight)"
    )


def test_scaled_residuals_do_not_warn(weighted):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        u = gp.scaled_residuals(weighted, nsim=50, seed=1)
    assert u.shape == (weighted.design.nobs,)


@pytest.fixture(scope="module")
def smaller(binary, w_binary):
    return _fit("y ~ sex + time", "~ 1 | id", binary, "binomial", row_weights=w_binary)


def test_bootstrap_refuses_row_weights(weighted, smaller):
    with pytest.raises(ValueError, match=r"^fit has row weights: a simulated data set draws"):
        gp.bootstrap(weighted, nsim=2, seed=1)
    with pytest.raises(ValueError, match=r"^weighted has row weights: a simulated data set"):
        gp.anova(smaller, weighted, bootstrap=2)


def test_anova_refuses_different_row_weights(binary, weighted, w_binary):
    message = (
        "the models use different row weights (row_weights=; one may have none), so their "
        "log-likelihoods are not comparable: fit both with the same row weights"
    )
    unweighted = _fit("y ~ sex + time", "~ 1 | id", binary, "binomial")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        gp.anova(unweighted, weighted)
    other = _fit("y ~ sex + time", "~ 1 | id", binary, "binomial", row_weights=4 - w_binary)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        gp.anova(other, weighted)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        gp.anova(gp.glm(FIXED, binary, "binomial"), weighted)


def test_anova_with_the_same_row_weights(binary, weighted, replicated, w_binary, smaller):
    table = gp.anova(smaller, weighted)
    rep = _replicated(binary, w_binary)
    expected = gp.anova(_fit("y ~ sex + time", "~ 1 | id", rep, "binomial"), replicated)
    np.testing.assert_allclose(table["LRT"].iloc[1], expected["LRT"].iloc[1], rtol=1e-6)
    # against the GLM with the same weights (the test of the random intercept)
    glm_w = gp.glm(FIXED, binary, "binomial", row_weights=w_binary)
    glm_r = gp.glm(FIXED, rep, "binomial")
    assert glm_w.loglik == pytest.approx(glm_r.loglik, rel=1e-8)
    assert glm_w.nobs == len(binary)
    with pytest.warns(UserWarning, match="on the boundary of the parameter space"):
        lrt = gp.anova(glm_w, weighted)["LRT"].iloc[1]
    assert lrt == pytest.approx(2 * (replicated.loglik - glm_r.loglik), rel=1e-6)


def test_predictions_do_not_need_the_weight_column(binary, w_binary):
    df = binary.assign(w=w_binary)
    fit = _fit(FIXED, "~ 1 | id", df, "binomial", row_weights="w")
    new = binary.drop(columns="y").head(6)
    assert "w" not in new.columns
    for kind in ("mean_subject", "subject_specific", "marginal"):
        p = fit.predict(new, type_pred="response", type=kind)
        assert len(p) == 6 and np.all((p > 0) & (p < 1))
    # rows of groups the fit did not see: their random effects from their rows, each once
    unseen = binary.head(8).assign(id=-1)
    p = fit.predict(unseen, type_pred="response", type="subject_specific")
    assert len(p) == 8 and np.all(np.isfinite(p))


def test_scoring_rules_are_per_row_and_unweighted(weighted, fm1):
    scores = weighted.scoring_rules()
    # the logarithmic score is the row's log-probability at the fit, not times the weight
    eta = weighted.predict(type_pred="link", type="subject_specific").to_numpy()
    p = 1 / (1 + np.exp(-eta))
    y = weighted.design.y
    np.testing.assert_allclose(
        scores["logarithmic"], np.where(y == 1, np.log(p), np.log1p(-p)), rtol=1e-8
    )
    assert fm1.scoring_rules().shape == scores.shape


def test_summary_line(binary):
    w = np.where(np.arange(len(binary)) % 10 == 0, 0.0, 2.0)
    fit = _fit(FIXED, "~ 1 | id", binary, "binomial", row_weights=w)
    text = str(fit.summary())
    assert "Row weights: sum 1440 (min 0, max 2); 80 row(s) of weight 0, not counted as " in text
    assert "Number of Observations: 720" in text
