"""Nested grouping factors (pupils in classes in schools) by multilevel adaptive quadrature.

Reference numbers: tests/reference/multilevel_reference.json, key "schools_nested" (lme4 and
glmmTMB fits of ``y ~ x + ses + (1 | school/class)`` on gp.load_schools(), and an exact
maximum-likelihood fit by nested non-adaptive Gauss–Hermite quadrature with 80–120 nodes per
level, described in the file's "method" entry). Other checks compute the quantity
independently here (scipy optimisation, non-adaptive Gauss–Hermite sums) or test properties.
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
from scipy import optimize, special, stats

import glmm_ppl as gp
from glmm_ppl.design.formula import split_bambi_formula
from glmm_ppl.design.matrices import build_design
from glmm_ppl.design.terms import Term, random_terms

REFERENCE = Path(__file__).resolve().parent / "reference" / "multilevel_reference.json"
FIXED = "y ~ x + ses"
NESTED = "~ 1 | school/class"
NAMES = ["(Intercept)", "x", "ses"]
FACTORS = ["school", "school:class"]


# ---- data, references and fits (each fitted once for the module) ---------------------------
@pytest.fixture(scope="module")
def ref() -> dict:
    with REFERENCE.open() as fh:
        return json.load(fh)["schools_nested"]


@pytest.fixture(scope="module")
def schools() -> pd.DataFrame:
    return gp.load_schools()


@pytest.fixture(scope="module")
def schools_repeated(schools) -> pd.DataFrame:
    """The schools with class labels "1".."4" that repeat in every school."""
    return schools.assign(**{"class": schools["class"].astype(str).str.split(".").str[1]})


def _fit_recording(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = gp.mixed_model(*args, **kwargs)
    return fit, caught


@pytest.fixture(scope="module")
def fitted_default(schools):
    return _fit_recording(FIXED, NESTED, schools, "binomial")


@pytest.fixture(scope="module")
def fit(fitted_default):
    return fitted_default[0]


@pytest.fixture(scope="module")
def fit_laplace(schools):
    return gp.mixed_model(FIXED, NESTED, schools, "binomial", n_agq=1)


@pytest.fixture(scope="module")
def fit_21(schools):
    return gp.mixed_model(FIXED, NESTED, schools, "binomial", n_agq=21)


@pytest.fixture(scope="module")
def fit_school_only(schools):
    return gp.mixed_model(FIXED, "~ 1 | school", schools, "binomial")


@pytest.fixture(scope="module")
def fitted_slope(schools):
    return _fit_recording(FIXED, "(x | school) + (1 | school:class)", schools, "binomial")


@pytest.fixture(scope="module")
def three_level() -> pd.DataFrame:
    """40 units a, each with 3 b, each with 3 c, each with 3 binary rows; SDs 1.0, 0.7, 0.5."""
    rng = np.random.default_rng(20240611)
    A, B, C, R = 40, 3, 3, 3
    a = np.repeat(np.arange(A), B * C * R)
    b = np.tile(np.repeat(np.arange(B), C * R), A)
    c = np.tile(np.repeat(np.arange(C), R), A * B)
    u_a, u_b, u_c = rng.normal(0, 1.0, A), rng.normal(0, 0.7, A * B), rng.normal(0, 0.5, A * B * C)
    x = rng.normal(size=len(a))
    eta = -0.3 + 0.8 * x + u_a[a] + u_b[a * B + b] + u_c[(a * B + b) * C + c]
    y = rng.binomial(1, special.expit(eta))
    return pd.DataFrame({"a": a, "b": b, "c": c, "x": x, "y": y})


@pytest.fixture(scope="module")
def fitted_three(three_level):
    return _fit_recording("y ~ x", "~ 1 | a/b/c", three_level, "binomial")


@pytest.fixture(scope="module")
def fit_three_laplace(three_level):
    return gp.mixed_model("y ~ x", "~ 1 | a/b/c", three_level, "binomial", n_agq=1)


def _sd(fit, factor: str) -> float:
    return float(np.sqrt(fit.D[factor].iloc[0, 0]))


def _eta0(fit) -> np.ndarray:
    """Xβ of the fitted rows, in the fit's row order."""
    return fit.design.X @ fit.fixef().to_numpy()


def _bernoulli_loglik(y, eta) -> np.ndarray:
    return y * eta - np.logaddexp(0.0, eta)


# ---- 1. the Laplace approximation against lme4 and glmmTMB -------------------------------
def test_laplace_matches_lme4_and_glmmtmb(fit_laplace, ref):
    assert fit_laplace.n_agq == 1
    assert fit_laplace.converged
    assert abs(fit_laplace.loglik - ref["lme4"]["logLik"]) < 0.05
    # glmmTMB optimises the same Laplace approximation more tightly (measured 1.1e-6 apart)
    assert abs(fit_laplace.loglik - ref["glmmTMB"]["logLik"]) < 1e-4
    fixef = fit_laplace.fixef()
    assert fixef.index.tolist() == NAMES
    expected = pd.Series(ref["lme4"]["fixef"])[NAMES].to_numpy()
    se = pd.Series(ref["lme4"]["se_fixef"])[NAMES].to_numpy()
    np.testing.assert_array_less(np.abs(fixef.to_numpy() - expected), 0.1 * se)


# ---- 2. the default rule against the exact maximum likelihood -----------------------------
def test_default_rule_matches_exact_ml(fitted_default, fit_21, ref):
    fit, caught = fitted_default
    exact = ref["exact_ml"]
    assert fit.n_agq == 7
    assert fit.converged
    assert [str(w.message) for w in caught] == []
    assert abs(fit.loglik - exact["logLik"]) < 0.01
    assert abs(fit.loglik - fit_21.loglik) < 0.01
    expected = pd.Series(exact["fixef"])[NAMES].to_numpy()
    se = pd.Series(exact["se_fixef"])[NAMES].to_numpy()
    np.testing.assert_array_less(np.abs(fit.fixef().to_numpy() - expected), 0.05 * se)
    assert abs(_sd(fit, "school") - exact["sd"]["school"]) < 0.01
    assert abs(_sd(fit, "school:class") - exact["sd"]["class:school"]) < 0.01


def test_standard_errors_match_exact_ml(fit, ref):
    # the reference's SEs come from a numerical Hessian (1% covers its differencing error)
    se = np.sqrt(np.diag(fit.vcov().to_numpy()))
    expected = pd.Series(ref["exact_ml"]["se_fixef"])[NAMES].to_numpy()
    np.testing.assert_allclose(se, expected, rtol=0.01)


def test_quadrature_check_of_default_fit(fit):
    table = fit.check_quadrature()
    assert table.index.tolist() == [11, 15]
    assert table["change"].abs().max() < 1e-4
    np.testing.assert_allclose(table["logLik"] - fit.loglik, table["change"], atol=1e-12)


def test_quadrature_check_with_refits(fit):
    table = fit.check_quadrature(refit=True)
    assert table.index.tolist() == [11, 15]
    # finer rules move the log-likelihood by 6e-5: the estimates barely move
    assert table["max |Δθ|/SE"].max() < 0.01


# ---- 3. formula spellings -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("spelling", "factors"),
    [
        ({"fixed": FIXED, "random": "(1 | school) + (1 | class)"}, ["school", "class"]),
        ({"fixed": FIXED, "random": "(1 | school) + (1 | school:class)"}, FACTORS),
        ({"fixed": FIXED, "random": "(1 | school:class) + (1 | school)"}, FACTORS),
        ({"fixed": "y ~ x + ses + (1 | school/class)"}, FACTORS),
        ({"fixed": "y ~ (1 | school/class) + x + ses"}, FACTORS),
    ],
    ids=["separate", "colon", "colon-first", "one-formula", "one-formula-first"],
)
def test_spellings_give_the_same_fit(spelling, factors, schools, fit):
    other = gp.mixed_model(data=schools, family="binomial", **spelling)
    assert abs(other.loglik - fit.loglik) < 1e-8
    np.testing.assert_allclose(other.fixef().to_numpy(), fit.fixef().to_numpy(), atol=1e-8)
    assert list(other.D) == list(other.ranef()) == factors


def test_school_slash_class_with_repeated_class_labels(schools_repeated, fit):
    assert schools_repeated.groupby("class")["school"].nunique().eq(60).all()
    other = gp.mixed_model(
        "y ~ x + ses + (1 | school/class)", data=schools_repeated, family="binomial"
    )
    assert abs(other.loglik - fit.loglik) < 1e-8
    assert other.ranef()["school:class"].index[:4].tolist() == ["1:1", "1:2", "1:3", "1:4"]


def test_school_slash_class_with_categorical_columns(schools_repeated, fit):
    """Categorical school and class columns are joined into the same ``school:class`` labels
    as text ones."""
    data = schools_repeated.assign(
        school=schools_repeated["school"].astype("category"),
        **{"class": schools_repeated["class"].astype("category")},
    )
    same = gp.mixed_model(FIXED, NESTED, data, "binomial")
    assert abs(same.loglik - fit.loglik) < 1e-8
    assert same.ranef()["school:class"].index[:4].tolist() == ["1:1", "1:2", "1:3", "1:4"]


def test_separate_terms_with_repeated_class_labels_are_crossed(schools_repeated, schools):
    """Class labels "1".."4" in every school: (1 | school) + (1 | class) crosses school with
    the four labels (as lme4 reads it), where (1 | school/class) nests them."""
    family = gp.families.binomial()
    crossed = build_design(FIXED, "(1 | school) + (1 | class)", schools_repeated, family)
    assert crossed.crossed
    assert [(f.name, f.n_units) for f in crossed.factors] == [("class", 4), ("school", 60)]
    nested = build_design(FIXED, NESTED, schools_repeated, family)
    assert not nested.crossed
    assert [(f.name, f.n_units) for f in nested.factors] == [("school", 60), ("school:class", 240)]
    # with unique class labels the separate terms are nested
    assert not build_design(FIXED, "(1 | school) + (1 | class)", schools, family).crossed


def test_term_parsing_of_nested_groupings():
    assert random_terms("(x || school/class)") == [
        Term("~ x", ("school",), True),
        Term("~ x", ("school", "class"), True),
    ]
    assert random_terms("~ 1 | a/b/c") == [
        Term("~ 1", ("a",), False),
        Term("~ 1", ("a", "b"), False),
        Term("~ 1", ("a", "b", "c"), False),
    ]
    assert split_bambi_formula("y ~ x + (x || school/class) + ses") == (
        "y ~ x + ses",
        "(x || school/class)",
    )


# ---- 4. shapes and labels of the results ----------------------------------------------------
def test_D_by_factor(fit):
    D = fit.D
    assert list(D) == FACTORS
    for factor in FACTORS:
        assert D[factor].index.tolist() == D[factor].columns.tolist() == ["(Intercept)"]
        assert D[factor].iloc[0, 0] > 0


def test_ranef_by_factor(fit, schools):
    re_ = fit.ranef()
    assert list(re_) == FACTORS
    assert re_["school"].shape == (60, 1)
    assert re_["school:class"].shape == (240, 1)
    assert re_["school"].index.name == "school"
    assert re_["school:class"].index.name == "school:class"
    assert re_["school"].index.tolist() == list(range(1, 61))
    assert re_["school:class"].index[:5].tolist() == ["1:1.1", "1:1.2", "1:1.3", "1:1.4", "2:2.1"]
    labels = schools["school"].astype(str) + ":" + schools["class"].astype(str)
    assert set(re_["school:class"].index) == set(labels)
    for table in re_.values():
        assert table.columns.tolist() == ["(Intercept)"]
        assert np.all(np.isfinite(table.to_numpy()))


def test_ranef_post_vars(fit):
    re_ = fit.ranef(post_vars=True)
    assert list(re_) == FACTORS
    for factor, table in re_.items():
        assert table.columns.tolist() == ["(Intercept)", "var.(Intercept)"]
        # a unit's posterior variance is positive and below its prior variance
        var = table["var.(Intercept)"].to_numpy()
        assert np.all(var > 0)
        assert np.all(var < fit.D[factor].iloc[0, 0])
    np.testing.assert_array_equal(
        re_["school"]["(Intercept)"], fit.ranef()["school"]["(Intercept)"]
    )


def _random_effects_lines(fit) -> list[str]:
    lines = str(fit.summary()).splitlines()
    start = lines.index("Random effects covariance matrix:")
    return lines[start + 1 : lines.index("", start)]


def test_summary_lines(fit):
    lines = str(fit.summary()).splitlines()
    assert "Number of Groups: school 60, school:class 240" in lines
    # a block per factor, titled with its number of levels; the StdDev column as printed
    assert _random_effects_lines(fit) == [
        "school (60 levels):",
        "             StdDev",
        f"(Intercept)  {_sd(fit, 'school'):.4f}",
        "school:class (240 levels):",
        "             StdDev",
        f"(Intercept)  {_sd(fit, 'school:class'):.4f}",
    ]
    assert f"{_sd(fit, 'school'):.4f}" == "0.9886"  # exact_ml sd 0.98859
    assert f"{_sd(fit, 'school:class'):.4f}" == "0.7029"  # exact_ml sd 0.70288
    blocks = fit.summary().random_blocks
    assert [title for title, _ in blocks] == ["school (60 levels)", "school:class (240 levels)"]
    assert "quadrature points: 7" in lines


def test_parameter_names(fit):
    names = NAMES + ["school.D_11", "school:class.D_11"]
    assert fit.names == names
    assert fit.vcov("all").index.tolist() == names
    assert fit.vcov("all").columns.tolist() == names
    assert fit.vcov("var-cov").index.tolist() == ["school.D_11", "school:class.D_11"]
    assert fit.n_groups == 60
    assert fit.n_params == 5


def test_confint_var_cov(fit):
    ci = fit.confint("var-cov")
    assert ci.index.tolist() == ["var.school.(Intercept)", "var.school:class.(Intercept)"]
    assert ci.columns.tolist() == ["2.5 %", "Estimate", "97.5 %"]
    np.testing.assert_allclose(ci["Estimate"], [fit.D[f].iloc[0, 0] for f in FACTORS], rtol=1e-12)
    # intervals symmetric on the log scale: the estimate is the bounds' geometric mean
    np.testing.assert_allclose(np.sqrt(ci["2.5 %"] * ci["97.5 %"]), ci["Estimate"], rtol=1e-8)
    assert (ci["2.5 %"] > 0).all()


def test_coef_by_factor(fit):
    coef, fixef, re_ = fit.coef(), fit.fixef(), fit.ranef()
    assert list(coef) == FACTORS
    for factor in FACTORS:
        table = coef[factor]
        assert table.columns.tolist() == NAMES
        assert table.index.tolist() == re_[factor].index.tolist()
        # as lme4's coef(): the fixed effects plus that factor's own random effects
        np.testing.assert_allclose(
            table["(Intercept)"], fixef["(Intercept)"] + re_[factor]["(Intercept)"], atol=1e-12
        )
        np.testing.assert_allclose(
            table[["x", "ses"]], np.tile(fixef[["x", "ses"]], (len(table), 1))
        )


def test_tidy_and_glance(fit):
    tidy = fit.to_dataframe()
    assert tidy["term"].tolist() == NAMES + [
        "sd__school.(Intercept)",
        "sd__school:class.(Intercept)",
    ]
    np.testing.assert_allclose(
        tidy["estimate"].iloc[3:], [_sd(fit, f) for f in FACTORS], rtol=1e-10
    )
    glance = fit.glance()
    assert glance[["nobs", "n_groups", "df", "n_agq"]].values.tolist() == [[1920, 60, 5, 7]]


# ---- 5. likelihood-ratio test against the school-only model ------------------------------
def test_anova_school_only_vs_nested(fit_school_only, fit):
    boundary = (
        "fit adds the variance of (Intercept) (school:class) to fit_school_only: the smaller "
        "model fixes these variances at 0, on the boundary of the parameter space, where the χ² "
        "p-value is conservative (for one variance the null distribution is an equal mixture of "
        "χ²(0) and χ²(1): half the p-value)"
    )
    with pytest.warns(UserWarning, match=re.escape(boundary)):
        table = gp.anova(fit_school_only, fit)
    lrt = 2 * (fit.loglik - fit_school_only.loglik)
    assert abs(table["LRT"].iloc[1] - lrt) < 1e-8
    assert table["df"].iloc[1] == 1
    assert table["p.value"].iloc[1] < 1e-4
    assert abs(table["p.value"].iloc[1] - stats.chi2.sf(lrt, 1)) < 1e-12
    np.testing.assert_allclose(table["log.Lik"], [fit_school_only.loglik, fit.loglik], atol=1e-10)


# ---- 6. predictions -----------------------------------------------------------------------
def _by_hand(fit, df: pd.DataFrame) -> np.ndarray:
    """Xβ + the school's mode + the class's mode, 0 for a unit the fit did not see."""
    fixef, re_ = fit.fixef(), fit.ranef()
    eta = fixef["(Intercept)"] + fixef["x"] * df["x"] + fixef["ses"] * df["ses"]
    school = re_["school"]["(Intercept)"].reindex(df["school"]).fillna(0.0).to_numpy()
    labels = df["school"].astype(str) + ":" + df["class"].astype(str)
    klass = re_["school:class"]["(Intercept)"].reindex(labels).fillna(0.0).to_numpy()
    return eta.to_numpy() + school + klass


def test_subject_specific_predictions_on_fitted_data(fit, schools):
    expected = _by_hand(fit, schools)
    fitted = fit.predict(type="subject_specific")  # fit's row order, indexed by data labels
    np.testing.assert_allclose(fitted.reindex(schools.index), expected, atol=1e-10)
    np.testing.assert_allclose(fit.predict(schools, type="subject_specific"), expected, atol=1e-10)
    np.testing.assert_allclose(
        fit.fitted("subject_specific").reindex(schools.index), special.expit(expected), atol=1e-12
    )


def test_new_class_in_known_school_gets_the_school_mode(fit):
    new = pd.DataFrame(
        {
            "school": [1, 1, 2],
            "class": [1.9, 1.1, 2.9],
            "x": [0.5, 0.5, 0.0],
            "ses": [0.1, 0.1, 0.0],
        }
    )
    fixef, school = fit.fixef(), fit.ranef()["school"]["(Intercept)"]
    xb = fixef["(Intercept)"] + fixef["x"] * new["x"] + fixef["ses"] * new["ses"]
    pred = fit.predict(new, type="subject_specific").to_numpy()
    assert abs(pred[0] - (xb[0] + school[1])) < 1e-10
    assert abs(pred[2] - (xb[2] + school[2])) < 1e-10
    # a known class of the same school adds its own mode
    assert (
        abs(pred[1] - (xb[1] + school[1] + fit.ranef()["school:class"].loc["1:1.1"].iloc[0]))
        < 1e-10
    )


def test_new_school_copy_of_a_fitted_school_gets_its_modes(fit, schools):
    """School 1's rows under new labels: the dynamic prediction re-estimates the modes from
    the same rows at the same parameters, so it must reproduce school 1's predictions."""
    rows = schools[schools["school"] == 1]
    copy = rows.assign(school=999, **{"class": rows["class"].map(lambda c: f"copy {c}")})
    pred_copy = fit.predict(copy, type="subject_specific").to_numpy()
    pred_school = fit.predict(rows, type="subject_specific").to_numpy()
    np.testing.assert_allclose(pred_copy, pred_school, atol=1e-7)
    assert np.all(np.abs(pred_copy - fit.predict(copy).to_numpy()) > 1e-3)


def test_new_school_modes_are_the_joint_posterior_mode(fit, schools):
    """A new school of 3 classes: its predictions are Xβ + b̂_school + b̂_class where b̂ maximises
    the joint log posterior of the school's and its classes' effects (scipy here)."""
    rows = schools[schools["school"].isin([7])].iloc[:24]
    new = rows.assign(school=998, **{"class": rows["class"].map(lambda c: f"n{c}")})
    pred = fit.predict(new, type="subject_specific").to_numpy()
    xb = new[["x", "ses"]].to_numpy() @ fit.fixef()[["x", "ses"]].to_numpy() + fit.fixef().iloc[0]
    codes = pd.factorize(new["class"])[0]
    var_s, var_c = fit.D["school"].iloc[0, 0], fit.D["school:class"].iloc[0, 0]
    y = new["y"].to_numpy()

    def neg_log_post(u):
        eta = xb + u[0] + u[1:][codes]
        return -(
            _bernoulli_loglik(y, eta).sum()
            - u[0] ** 2 / (2 * var_s)
            - np.sum(u[1:] ** 2) / (2 * var_c)
        )

    u = optimize.minimize(neg_log_post, np.zeros(4), method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(pred, xb + u[0] + u[1:][codes], atol=1e-6)


def test_new_school_with_ones_is_predicted_above_mean_subject(fit):
    new = pd.DataFrame(
        {
            "school": [997] * 6,
            "class": ["a", "a", "a", "b", "b", "b"],
            "x": [0.0, 0.5, -0.5, 0.2, 0.1, -0.3],
            "ses": [0.3] * 6,
            "y": [1, 1, 1, 1, 1, 0],
        }
    )
    ss = fit.predict(new, type="subject_specific").to_numpy()
    ms = fit.predict(new, type="mean_subject").to_numpy()
    assert np.all(np.isfinite(ss))
    assert np.all(ss - ms > 0.1)
    # class a (all ones) is above class b (one zero) beyond their covariates
    assert (ss - ms)[0] > (ss - ms)[3]


def test_new_school_without_response_is_refused(fit):
    new = pd.DataFrame(
        {"school": [99, 99], "class": [99.1, 99.2], "x": [0.5, 0.5], "ses": [0.1, 0.1]}
    )
    msg = (
        "newdata has 1 group(s) of school the fit did not see (for example 99): their random "
        "effects are estimated from their rows, which then need the response; or use "
        "type='mean_subject' or 'marginal'"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit.predict(new, type="subject_specific")


def test_new_school_without_grouping_columns_is_refused(fit):
    new = pd.DataFrame({"school": [99], "x": [0.5], "ses": [0.1], "y": [1]})
    msg = "subject-specific predictions need the grouping columns 'school', 'class' in newdata"
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit.predict(new, type="subject_specific")


def test_float_school_column_keeps_the_class_mode(fit, schools):
    rows = schools.iloc[[0, 8]]
    expected = fit.predict(rows, type="subject_specific").to_numpy()
    as_float = rows.astype({"school": float})
    np.testing.assert_allclose(fit.predict(as_float, type="subject_specific"), expected, atol=1e-10)


def test_marginal_coefs_by_independent_quadrature(fit):
    """For one row the two random intercepts add up to N(0, σ²_school + σ²_class):
    β_M = least squares of logit(E_b expit(Xβ + b)) on X (Hedeker et al. 2018)."""
    z, w = hermegauss(80)
    w = w / w.sum()
    total_sd = np.sqrt(sum(fit.D[f].iloc[0, 0] for f in FACTORS))
    X = fit.design.X
    mean = special.expit(_eta0(fit)[:, None] + total_sd * z[None, :]) @ w
    expected = np.linalg.lstsq(X, special.logit(mean), rcond=None)[0]
    got = fit.marginal_coefs()["Estimate"].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert np.all(np.abs(got) < np.abs(fit.fixef().to_numpy()))


# ---- 7. simulation ------------------------------------------------------------------------
def test_simulate_shape_and_seed(fit):
    y = fit.simulate(nsim=5, seed=11)
    assert y.shape == (1920, 5)
    assert set(np.unique(y)) <= {0.0, 1.0}
    np.testing.assert_array_equal(fit.simulate(nsim=5, seed=11), y)
    assert not np.array_equal(fit.simulate(nsim=5, seed=12), y)


def test_simulated_mean_matches_the_model(fit):
    nsim = 400
    y = fit.simulate(nsim=nsim, seed=1)
    per_sim = y.mean(axis=0)
    # the expected mean is the marginal mean of the fitted model; MC SE of the mean of means
    expected = fit.fitted("marginal").mean()
    assert abs(per_sim.mean() - expected) < 4 * per_sim.std(ddof=1) / np.sqrt(nsim)
    # the observed mean is one draw of the per-simulation mean
    assert abs(fit.design.y.mean() - per_sim.mean()) < 4 * per_sim.std(ddof=1)


def test_simulated_covariances_follow_the_nesting(fit):
    """Covariances of two rows' simulated responses, averaged over pairs in the same class,
    in the same school but different classes, and in different schools, against their values
    under the fitted model (nested Gauss–Hermite sums computed here)."""
    nsim = 400
    y = fit.simulate(nsim=nsim, seed=3)
    yc = y - y.mean(axis=1, keepdims=True)
    cov = yc @ yc.T / (nsim - 1)
    levels = fit.design.levels
    same_school = levels[:, 0][:, None] == levels[:, 0][None, :]
    same_class = levels[:, 1][:, None] == levels[:, 1][None, :]
    off_diagonal = ~np.eye(len(y), dtype=bool)

    z, w = hermegauss(40)
    w = w / w.sum()
    s_school, s_class = _sd(fit, "school"), _sd(fit, "school:class")
    eta0 = _eta0(fit)
    # within a class both rows share b_school + b_class ~ N(0, s² + s²)
    P = special.expit(eta0[:, None] + np.hypot(s_school, s_class) * z[None, :])  # (N, K)
    # within a school they share b_school only: average over each row's own class effect
    G = (
        special.expit(
            eta0[:, None, None] + s_school * z[None, :, None] + s_class * z[None, None, :]
        )
        @ w
    )  # (N, K)
    mean = P @ w
    exp_class, exp_school = [], []
    for s in np.unique(levels[:, 0]):
        r = np.flatnonzero(levels[:, 0] == s)
        cc = (P[r] * w) @ P[r].T - np.outer(mean[r], mean[r])
        cs = (G[r] * w) @ G[r].T - np.outer(mean[r], mean[r])
        sc = same_class[np.ix_(r, r)]
        exp_class.append(cc[sc & off_diagonal[np.ix_(r, r)]])
        exp_school.append(cs[~sc])
    exp_class, exp_school = np.concatenate(exp_class).mean(), np.concatenate(exp_school).mean()
    # measured spread of these averages over seeds: about 3e-4
    assert abs(cov[same_class & off_diagonal].mean() - exp_class) < 0.002
    assert abs(cov[same_school & ~same_class].mean() - exp_school) < 0.002
    assert abs(cov[~same_school].mean()) < 0.001
    assert exp_class - exp_school > 0.01  # the class level matters at this size


def test_simulate_at_the_modes_tracks_subject_specific_fit(fit):
    y = fit.simulate(nsim=200, seed=2, new_random_effects=False)
    fitted = fit.fitted("subject_specific").to_numpy()
    assert np.corrcoef(y.mean(axis=1), fitted)[0, 1] > 0.9
    # binomial SE of a mean of 200 draws is at most 0.035: 5 SE
    assert np.max(np.abs(y.mean(axis=1) - fitted)) < 5 * 0.5 / np.sqrt(200)


# ---- 8. bad input -------------------------------------------------------------------------
def test_missing_inner_column(schools):
    msg = "column(s) 'klass' not found in data; available columns: pupil, class, school, x, ses, y"
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.mixed_model(FIXED, "~ 1 | school/klass", schools, "binomial")


def test_factors_that_are_not_nested_are_crossed(schools):
    # pupils 1..8 repeat in every class and school: pupil crosses school
    design = build_design(FIXED, "(1 | school) + (1 | pupil)", schools, gp.families.binomial())
    assert design.crossed
    assert [f.name for f in design.factors] == ["pupil", "school"]


def test_single_level_factor(schools):
    msg = "grouping factor 'one' has a single level (1); a random effect needs at least two"
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.mixed_model(FIXED, "~ 1 | one/school", schools.assign(one=1), "binomial")


def test_factor_with_the_same_levels_as_its_parent(schools):
    msg = "grouping factors 'school' and 'school:one' have the same levels: drop one of them"
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.mixed_model(FIXED, "~ 1 | school/one", schools.assign(one=1), "binomial")


def test_zero_inflated_family_with_nested_factors(schools):
    msg = (
        "several grouping factors ('~ 1 | school/class') are not available with families with "
        "a zero part"
    )
    counts = schools.assign(y=schools["y"] * 2)
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.mixed_model(FIXED, NESTED, counts, "zi_poisson")


def test_weights_with_nested_factors(schools):
    msg = "several grouping factors ('~ 1 | school/class') are not available with weights="
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.mixed_model(FIXED, NESTED, schools.assign(w=1.0), "binomial", weights="w")


def test_too_many_quadrature_nodes(schools):
    msg = (
        "n_agq=100 with 4 random effects gives 100,000,000 quadrature nodes per group (at most "
        "100,000); use fewer points or fewer random effects"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.mixed_model(FIXED, "~ x | school/class", schools, "binomial", n_agq=100)


def test_random_effect_draws_of_nested_fit_are_refused(fit):
    msg = (
        "draws of the random effects of several grouping factors are not available; "
        "to_pymc(fit, marginal=False) samples them with the parameters"
    )
    idata = fit.to_inference_data(draws=5, seed=1)
    with pytest.raises(NotImplementedError, match=re.escape(msg)):
        gp.sample_random_effects(fit, idata, seed=1)


# ---- 9. three levels ----------------------------------------------------------------------
def _three_level_loglik(df: pd.DataFrame, beta, sds, K: int = 40) -> float:
    """log L of ``y ~ x + (1 | a/b/c)`` (balanced 3 x 3 x 3 per unit of a) by nested
    non-adaptive Gauss–Hermite sums, K nodes per level."""
    z, w = hermegauss(K)
    logw = np.log(w / w.sum())
    s_a, s_b, s_c = sds
    total = 0.0
    for _, rows in df.sort_values(["a", "b", "c"], kind="stable").groupby("a"):
        eta0 = (beta[0] + beta[1] * rows["x"].to_numpy()).reshape(3, 3, 3)  # b, c, row
        y = rows["y"].to_numpy().reshape(3, 3, 3)
        eta = (
            eta0[..., None, None, None]
            + s_a * z[:, None, None]
            + s_b * z[None, :, None]
            + s_c * z[None, None, :]
        )
        ll = _bernoulli_loglik(y[..., None, None, None], eta).sum(axis=2)  # (b, c, ka, kb, kc)
        lc = special.logsumexp(ll + logw, axis=-1)  # (b, c, ka, kb)
        lb = special.logsumexp(lc.sum(axis=1) + logw, axis=-1)  # (b, ka)
        total += special.logsumexp(lb.sum(axis=0) + logw)
    return float(total)


def test_three_level_fit(fitted_three, fit_three_laplace, three_level):
    fit, caught = fitted_three
    assert [str(w.message) for w in caught] == []
    assert fit.converged
    assert list(fit.D) == ["a", "a:b", "a:b:c"]
    re_ = fit.ranef()
    assert list(re_) == ["a", "a:b", "a:b:c"]
    assert [len(t) for t in re_.values()] == [40, 120, 360]
    assert re_["a:b:c"].index[:2].tolist() == ["0:0:0", "0:0:1"]
    assert np.isfinite(fit.loglik)
    assert fit_three_laplace.loglik <= fit.loglik + 1
    assert fit.check_quadrature()["change"].abs().max() < 0.01
    assert "Number of Groups: a 40, a:b 120, a:b:c 360" in str(fit.summary()).splitlines()


def test_three_level_loglik_by_independent_quadrature(fitted_three, three_level):
    fit = fitted_three[0]
    sds = [_sd(fit, f) for f in ["a", "a:b", "a:b:c"]]
    exact = _three_level_loglik(three_level, fit.fixef().to_numpy(), sds)
    # the fit's 7-point rule moves by 2e-5 with finer rules (check_quadrature)
    assert abs(fit.loglik - exact) < 1e-3


# ---- 10. a random slope at the school level -----------------------------------------------
def test_random_slope_at_school_level(fitted_slope):
    fit = fitted_slope[0]
    assert list(fit.D) == FACTORS
    D = fit.D["school"]
    assert D.shape == (2, 2)
    assert D.index.tolist() == D.columns.tolist() == ["(Intercept)", "x"]
    np.testing.assert_array_equal(D.to_numpy(), D.to_numpy().T)
    # the maximum lies at a correlation of -1 (11 points reach it too), so D may be singular
    assert np.linalg.eigvalsh(D.to_numpy()).min() > -1e-10
    assert np.all(np.diag(D.to_numpy()) > 0)
    assert fit.D["school:class"].shape == (1, 1)
    assert fit.names == NAMES + ["school.D_11", "school.D_12", "school.D_22", "school:class.D_11"]
    lines = _random_effects_lines(fit)
    assert lines[:4] == ["school (60 levels):", "             StdDev    Corr", *lines[2:4]]
    assert lines[3].split()[0] == "x" and len(lines[3].split()) == 3
    assert lines[4:] == ["school:class (240 levels):", "             StdDev", lines[6]]


def test_random_slope_fit_is_not_below_its_submodel(fitted_slope, schools):
    fit = fitted_slope[0]
    submodel = gp.mixed_model(FIXED, NESTED, schools, "binomial", n_agq=fit.n_agq)
    assert fit.loglik >= submodel.loglik - 1e-6
    assert fit.converged


def test_random_slope_fit_raises_no_numpy_warnings(fitted_slope):
    caught = fitted_slope[1]
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []


# ---- 11. Bayesian ---------------------------------------------------------------------------
def test_nuts_on_nested_fit(fit):
    with pytest.warns(UserWarning, match="no prior on the random-effect standard deviations"):
        idata = gp.sample(fit, draws=50, tune=50, chains=1, random_seed=1, progressbar=False)
    sd = idata.posterior["sd"]
    assert sd["random"].values.tolist() == ["school.(Intercept)", "school:class.(Intercept)"]
    assert sd.shape == (1, 50, 2)
    means = sd.mean(("chain", "draw")).to_numpy()
    # the Wald SEs of the two SDs are 0.13 and 0.10 (to_dataframe): 0.3 covers a short chain
    np.testing.assert_array_less(np.abs(means - [_sd(fit, f) for f in FACTORS]), 0.3)
    assert idata.log_likelihood["y"].shape == (1, 50, 60)


def test_latent_pymc_model(fit):
    model = gp.to_pymc(fit, marginal=False)
    names = [v.name for v in model.free_RVs]
    assert "z[school]" in names and "z[school:class]" in names
    point = model.initial_point()
    assert point["z[school]"].shape == (60, 1)
    assert point["z[school:class]"].shape == (240, 1)
    assert np.isfinite(model.compile_logp()(point))

    def at_start(name):
        out = model.replace_rvs_by_values([model[name]])[0]
        return model.compile_fn(out, inputs=model.value_vars, on_unused_input="ignore")(point)

    # it starts at the modes: b equals ranef, the likelihood that of the subject-specific fit
    np.testing.assert_allclose(
        at_start("b[school]")[:, 0], fit.ranef()["school"]["(Intercept)"], atol=1e-10
    )
    np.testing.assert_allclose(
        at_start("b[school:class]")[:, 0], fit.ranef()["school:class"]["(Intercept)"], atol=1e-10
    )
    p = fit.fitted("subject_specific").to_numpy()
    y = fit.design.y
    expected = np.sum(y * np.log(p) + (1 - y) * np.log1p(-p))
    assert abs(at_start("loglik") - expected) < 1e-8


def test_marginal_pymc_model_starts_at_the_fit(fit):
    model = gp.to_pymc(fit)
    assert sorted(v.name for v in model.free_RVs) == ["beta", "theta_D"]
    point = model.initial_point()
    out = model.replace_rvs_by_values([model["loglik"]])[0]
    value = model.compile_fn(out, inputs=model.value_vars, on_unused_input="ignore")(point)
    assert abs(value - fit.loglik) < 1e-8


def test_prior_sensitivity_of_class_sd(fit):
    import pymc as pm

    table = gp.prior_sensitivity(
        fit, lambda s: pm.HalfNormal.dist(s), {"s": [0.1, 10.0]}, key="sd_school:class.(Intercept)"
    )
    row = table[table["parameter"] == "school:class.D_11"].set_index("s")
    assert row["natural_name"].tolist() == ["sd(school:class.(Intercept))"] * 2
    assert row["converged"].all()
    log_sd = np.log(_sd(fit, "school:class"))
    assert abs(row.loc[10.0, "estimate"] - log_sd) < 0.01  # a vague prior: the MLE
    assert row.loc[0.1, "estimate"] < log_sd - 0.5  # a tight one pulls the SD down
    # log_prior: the half-normal density at the estimate (no Jacobian)
    expected = stats.halfnorm.logpdf(np.exp(row.loc[0.1, "estimate"]), scale=0.1)
    assert abs(row.loc[0.1, "log_prior"] - expected) < 1e-8
