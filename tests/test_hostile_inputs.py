"""Hostile input: every call fits, or raises a ValueError/TypeError naming the argument or
column at fault, or warns — never another exception, never a NaN estimate without a warning.

Fixed cases for the column names, dates, labels, tests across data sets, sampler arguments
and large rules; then random small data frames (``hypothesis``) with missing and infinite
values, constant columns, single-row groups and odd labels.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import glmm_ppl as gp
from glmm_ppl.engine.quadrature import gauss_hermite

FIXED = "y ~ sex * time"


# ---- column names and types ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["log", "C", "I", "exp", "x.1", "my x"])
def test_columns_named_like_functions_or_with_dots_and_spaces_fit(binary, name):
    df = binary.copy()
    df[name] = df["time"]
    term = f"`{name}`" if " " in name else name
    fit = gp.mixed_model(f"y ~ {term}", "~ 1 | id", df, "binomial")
    reference = gp.mixed_model("y ~ time", "~ 1 | id", binary, "binomial")
    assert fit.loglik == pytest.approx(reference.loglik, abs=1e-8)
    assert fit.fixef().index.tolist()[1] == name


@pytest.mark.parametrize(
    "term, names",
    [
        ("poly(time, 2)", ["poly(time, 2)[1]", "poly(time, 2)[2]"]),
        ("scale(time)", ["scale(time)"]),
        ("center(time)", ["center(time)"]),
    ],
)
def test_formula_transforms_fit(binary, term, names):
    fit = gp.mixed_model(f"y ~ {term}", "~ 1 | id", binary, "binomial")
    assert fit.fixef().index.tolist() == ["(Intercept)", *names]
    if term != "poly(time, 2)":  # a linear transform of time: the same likelihood
        reference = gp.mixed_model("y ~ time", "~ 1 | id", binary, "binomial")
        assert fit.loglik == pytest.approx(reference.loglik, abs=1e-6)


def test_column_named_like_a_function_the_formula_calls(binary):
    df = binary.copy()
    df["I"] = df["time"]
    msg = "column 'I' has the name of the function I() that the formula calls: rename the column"
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.mixed_model("y ~ I + I(time**2)", "~ 1 | id", df, "binomial")


@pytest.mark.parametrize("name", ["Intercept", "(Intercept)"])
def test_column_named_like_the_intercept_is_refused(binary, name):
    df = binary.assign(**{name: binary["time"]})
    msg = f"column {name!r} has the name the design gives the intercept"
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.mixed_model(f"y ~ `{name}`", "~ 1 | id", df, "binomial")


@pytest.mark.parametrize("factor, order", [(1e300, "1e+301"), (1e-300, "1e-299")])
def test_covariates_on_an_unusable_scale_are_refused(binary, factor, order):
    df = binary.assign(x=binary["time"] * factor)
    msg = f"the fixed-effects column 'x' has values of order {order}: rescale it"
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.mixed_model("y ~ x", "~ 1 | id", df, "binomial")


@pytest.mark.parametrize("factor", [1e12, 1e-9])
def test_covariates_far_from_unit_scale_warn_to_rescale(binary, factor):
    # not refused as rank deficient (the rank does not depend on units), but rescaling advised
    df = binary.assign(x=binary["time"] * factor)
    msg = "the fixed-effects column 'x' has values of order"
    with pytest.warns(UserWarning, match=re.escape(msg)) as caught:
        gp.mixed_model("y ~ x", "~ 1 | id", df, "binomial")
    assert "rescale it (its coefficient scales back by the same factor)" in str(caught[0].message)


def test_covariates_far_from_zero_warn_to_centre(binary):
    df = binary.assign(x=1e5 + binary["time"])
    with pytest.warns(UserWarning, match=re.escape("centre it (subtract its mean, 100007")):
        gp.mixed_model("y ~ x", "~ 1 | id", df, "binomial")


def test_keyword_arguments_and_strings_in_formulas_name_no_column(binary):
    # 'degree' and 'female' are a keyword and a string here, not the (empty) columns
    df = binary.assign(degree=np.nan, female=np.nan)
    fit = gp.mixed_model(
        "y ~ poly(time, degree=2) + C(sex, Treatment('female'))", "~ 1 | id", df, "binomial"
    )
    assert fit.nobs == 800


def test_dotted_names_predict(binary):
    df = binary.assign(**{"x.1": binary["time"]})
    fit = gp.mixed_model("y ~ x.1", "~ 1 | id", df, "binomial")
    reference = gp.mixed_model("y ~ time", "~ 1 | id", binary, "binomial")
    np.testing.assert_allclose(fit.predict(df.head(5)), reference.predict(binary.head(5)))


@pytest.mark.parametrize("column", ["time", "y", "id"])
def test_duplicated_columns_are_named(binary, column):
    df = pd.concat([binary, binary[[column]]], axis=1)
    msg = f"data has 2 columns named {column!r}: drop or rename the duplicates"
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.mixed_model("y ~ time", "~ 1 | id", df, "binomial")


def test_duplicated_unused_column_is_ignored(binary):
    df = pd.concat([binary, binary[["sex"]]], axis=1)
    fit = gp.mixed_model("y ~ time", "~ 1 | id", df, "binomial")
    assert fit.converged


@pytest.mark.parametrize(
    "make, how",
    [
        (lambda t: pd.Timestamp("2020-01-01") + pd.to_timedelta(t, unit="D"), ".dt.days"),
        (lambda t: pd.to_timedelta(t, unit="D"), ".dt.total_seconds() / 86400"),
    ],
)
def test_dates_and_durations_in_formulas_are_refused(binary, make, how):
    df = binary.copy()
    df["when"] = make(df["time"])
    with pytest.raises(ValueError, match=re.escape(how)) as err:
        gp.mixed_model("y ~ when", "~ 1 | id", df, "binomial")
    assert str(err.value).startswith("column 'when' holds ")


def test_dates_as_groups_fit(binary):
    df = binary.copy()
    df["day"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(df["id"], unit="D")
    fit = gp.mixed_model("y ~ time", "~ 1 | day", df, "binomial")
    reference = gp.mixed_model("y ~ time", "~ 1 | id", binary, "binomial")
    assert fit.loglik == pytest.approx(reference.loglik, abs=1e-8)


@pytest.mark.parametrize(
    "fixed, random",
    [
        ("`my y` ~ time", "~ 1 | id"),
        ("y ~ time", "~ 1 | `my id`"),
        ("`my y` ~ time + (1 | `my id`)", None),
    ],
)
def test_backquoted_response_and_group(binary, fixed, random):
    df = binary.rename(columns={"y": "my y"}).assign(**{"my id": binary["id"], "y": binary["y"]})
    fit = gp.mixed_model(fixed, random, df, "binomial")
    reference = gp.mixed_model("y ~ time", "~ 1 | id", binary, "binomial")
    assert fit.loglik == pytest.approx(reference.loglik, abs=1e-8)


# ---- likelihood-ratio tests need the same data --------------------------------------------
def test_anova_refuses_a_permuted_response(binary, fm1, glm_binary):
    df = binary.copy()
    df["y"] = np.random.default_rng(1).permutation(df["y"].to_numpy())
    other = gp.mixed_model(FIXED, "~ time || id", df, "binomial")
    with pytest.raises(ValueError, match=r"different responses \(\d+ of 800 rows differ\)"):
        gp.anova(fm1, other)
    # with more models, every pair of successive rows is checked, and the error names it
    with pytest.raises(ValueError, match=r"^fm1 against other: the models were fitted to diff"):
        gp.anova(other, glm_binary, fm1)


def test_anova_refuses_a_different_grouping(binary, fm1):
    df = binary.copy()
    df["id"] = np.random.default_rng(2).permutation(df["id"].to_numpy())
    other = gp.mixed_model(FIXED, "~ time || id", df, "binomial")
    with pytest.raises(ValueError, match="group the rows differently"):
        gp.anova(fm1, other)


def test_anova_with_repeated_row_labels(binary, fm1, glm_binary):
    # row labels repeat after a concat: the rows are compared as sets of values
    df = pd.concat([binary[binary["id"] <= 50], binary[binary["id"] > 50]])
    df.index = list(range(400)) * 2
    glm = gp.glm(FIXED, df, "binomial")
    mixed = gp.mixed_model(FIXED, "~ 1 | id", df, "binomial")
    table = gp.anova(glm, mixed)
    expected = gp.anova(glm_binary, fm1)
    assert float(table["LRT"].iloc[1]) == pytest.approx(float(expected["LRT"].iloc[1]), abs=1e-6)


def test_anova_accepts_the_same_rows_in_another_order(binary, fm1, fm2):
    shuffled = gp.mixed_model(
        FIXED, "~ time || id", binary.sample(frac=1.0, random_state=3), "binomial"
    )
    a, b = gp.anova(fm1, fm2), gp.anova(fm1, shuffled)
    assert float(b["LRT"].iloc[1]) == pytest.approx(float(a["LRT"].iloc[1]), abs=1e-6)


# ---- group labels of new data ---------------------------------------------------------------
def test_group_labels_match_by_value(binary, fm1):
    rows = binary[binary["id"] == 7]
    expected = fm1.predict(rows, type="subject_specific")
    as_float = rows.assign(id=rows["id"].astype(float))
    np.testing.assert_allclose(fm1.predict(as_float, type="subject_specific"), expected)
    as_text = rows.assign(id=rows["id"].astype(str))
    msg = (
        "newdata's group column 'id' holds text (for example '7') but the fit's groups are "
        "numbers (for example 1): convert it, e.g. newdata['id'] = pd.to_numeric(newdata['id'])"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        fm1.predict(as_text, type="subject_specific")


# ---- sampler arguments ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"draws": -5}, "draws must be an integer of at least 1, got -5"),
        ({"draws": 0}, "draws must be an integer of at least 1, got 0"),
        ({"draws": 2.5}, "draws must be an integer of at least 1, got 2.5"),
        ({"chains": 0}, "chains must be an integer of at least 1, got 0"),
        ({"tune": 0}, "tune must be an integer of at least 1, got 0"),
        ({"tune": -1, "nuts_sampler": "pymc"}, "tune must be an integer of at least 0, got -1"),
        ({"cores": 0}, "cores must be an integer of at least 1, got 0"),
        ({"draws": True}, "draws must be an integer of at least 1, got True"),
    ],
)
def test_sampler_arguments_are_checked_first(fm1, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        gp.sample(fm1, progressbar=False, **kwargs)


def test_map_draws_are_checked(fm1):
    with pytest.raises(ValueError, match=re.escape("draws must be an integer of at least 1")):
        gp.to_inference_data(fm1, draws=0)


# ---- keywords and settings -----------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, hint",
    [({"nAGQ": 5}, "did you mean 'n_agq'?"), ({"weigths": "w"}, "did you mean 'weights'?")],
)
def test_unknown_keywords_name_the_one_meant(binary, kwargs, hint):
    name = next(iter(kwargs))
    msg = f"mixed_model() got an unexpected keyword argument {name!r}; {hint}"
    with pytest.raises(TypeError, match="^" + re.escape(msg) + "$"):
        gp.mixed_model("y ~ time", "~ 1 | id", binary, "binomial", **kwargs)


def test_check_quadrature_takes_an_array_of_rules(fm1):
    table = gp.check_quadrature(fm1, n_agq=np.array([13, 15]))
    assert table.index.tolist() == [13, 15]


@pytest.mark.parametrize("n_agq", [2.5, "15", 0])
def test_check_quadrature_rules_are_checked(fm1, n_agq):
    msg = f"n_agq must hold positive integers (points per random effect), got {n_agq!r}"
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        gp.check_quadrature(fm1, n_agq=n_agq)


# ---- large rules ----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [200, 500, 1000])
def test_large_rules_are_stable(n):
    z, w = gauss_hermite(n)
    assert np.all(np.isfinite(z)) and np.all(w > 0)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-12)
    assert float(w @ z**2) == pytest.approx(1.0, abs=1e-10)
    assert float(w @ z**4) == pytest.approx(3.0, abs=1e-9)


def test_more_points_than_the_limit_are_refused(binary):
    with pytest.raises(ValueError, match=re.escape("n_agq=101: at most 100 points per random")):
        gp.mixed_model("y ~ time", "~ 1 | id", binary, "binomial", n_agq=101)


def test_the_largest_rule_fits(binary, fm1):
    fit = gp.mixed_model(FIXED, "~ 1 | id", binary, "binomial", n_agq=100)
    assert fit.loglik == pytest.approx(fm1.loglik, abs=1e-4)


# ---- random small data frames ---------------------------------------------------------------
ARGUMENTS = ("fixed", "random", "data", "family", "response", "group", "column", "n_agq")
LABELS = st.sampled_from([0, 1, 2, "a", "b c", "é", 2.5, None, "1"])
VALUES = st.one_of(
    st.floats(-3, 3, allow_nan=False),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0, 1e6]),
)


GOOD_Y = {"binomial": [0, 1], "poisson": [0, 1, 2, 3, 7], "gaussian": [-1.5, 0.0, 0.4, 2.0]}
BAD_Y = {
    "binomial": [0.5, 2, -1, np.nan],
    "poisson": [-1, 2.5, np.nan, np.inf],
    "gaussian": [np.nan, np.inf, -np.inf],
}


@st.composite
def frames(draw):
    """A small data frame: mostly valid rows, some corrupted (a bad response, a missing or
    infinite covariate, a missing group), few or odd groups, sometimes a constant covariate."""
    family = draw(st.sampled_from(["binomial", "poisson", "gaussian"]))
    n = draw(st.integers(0, 40))
    labels = draw(st.lists(LABELS, min_size=1, max_size=6, unique_by=repr))
    groups = draw(st.lists(st.sampled_from(labels), min_size=n, max_size=n))
    good = st.sampled_from(GOOD_Y[family])
    bad_rate = draw(st.sampled_from([0.0, 0.0, 0.05, 0.3]))
    y = [
        draw(st.sampled_from(BAD_Y[family]) if draw(st.floats(0, 1)) < bad_rate else good)
        for _ in range(n)
    ]
    x = [
        draw(VALUES if draw(st.floats(0, 1)) < bad_rate else st.floats(-3, 3, allow_nan=False))
        for _ in range(n)
    ]
    df = pd.DataFrame({"y": y, "x": x, "g": groups})
    if n and draw(st.booleans()):
        df["x"] = 1.0  # constant covariate
    return df, family


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(frames())
def test_random_small_frames(case):
    df, family = case
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = gp.mixed_model("y ~ x", "~ 1 | g", df, family)
        except (ValueError, TypeError) as err:
            message = str(err)
            assert any(name in message for name in (*ARGUMENTS, "'y'", "'x'", "'g'", "rows")), (
                message
            )
            return
    relevant = [w for w in caught if "BLAS" not in str(w.message)]
    estimates = np.r_[fit.theta, fit.loglik]
    if not np.all(np.isfinite(estimates)):
        assert relevant, f"non-finite estimates without a warning: {fit.theta}"
    if not fit.converged:
        assert any(issubclass(w.category, gp.ConvergenceWarning) for w in relevant)
