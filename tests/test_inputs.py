"""Bad input: every error names what is wrong (column, value, valid options)."""

import re

import numpy as np
import pytest

import glmm_ppl as gp

FIXED = "y ~ sex * time"
COLUMNS = "available columns: id, time, sex, y"


def fit(data, fixed=FIXED, random="~ 1 | id", family="binomial", **kwargs):
    return gp.mixed_model(fixed, random, data, family, **kwargs)


# ---- columns and formulas ---------------------------------------------------------------------
def test_missing_fixed_column_named_and_available_listed(binary):
    msg = f"column(s) 'age' not found in data; {COLUMNS}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(binary, fixed="y ~ sex * age")


def test_missing_random_term_column(binary):
    msg = f"column(s) 'age' not found in data; {COLUMNS}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(binary, random="~ age | id")


def test_missing_group_and_response_columns(binary):
    msg = f"column(s) 'grp', 'outcome' not found in data; {COLUMNS}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(binary, fixed="outcome ~ time", random="~ 1 | grp")


def test_random_formula_without_bar(binary):
    msg = (
        "random must look like '~ 1 | g', '~ x | g' (correlated) or '~ x || g' (independent), "
        "got '~ 1 + id'"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(binary, random="~ 1 + id")


def test_fixed_formula_without_tilde(binary):
    with pytest.raises(
        ValueError, match=re.escape("fixed must be a formula 'response ~ terms', got 'y'")
    ):
        fit(binary, fixed="y")


def test_fixed_formula_without_response(binary):
    with pytest.raises(ValueError, match=re.escape("fixed formula '~ time' has no response")):
        fit(binary, fixed="~ time")


def test_data_not_a_dataframe(binary):
    with pytest.raises(TypeError, match=re.escape("data must be a pandas DataFrame, got dict")):
        fit(binary.to_dict("list"))


def test_single_group(binary):
    one = binary.assign(id=7)
    with pytest.raises(
        ValueError,
        match=r"grouping column 'id' has a single group \(\S*7\S*\); "
        r"a mixed model needs at least two groups",
    ):
        fit(one)


def test_single_group_message_prints_plain_label(binary):
    # the label as the user wrote it, not NumPy's repr (np.int64(7))
    with pytest.raises(ValueError, match=re.escape("has a single group (7)")):
        fit(binary.assign(id=7))


def test_rank_deficient_design_names_aliased_column(binary):
    data = binary.assign(time2=binary["time"])
    msg = (
        "the fixed-effects design is rank deficient (rank 2 < 3 columns); these columns are "
        "linear combinations of earlier ones: time2"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(data, fixed="y ~ time + time2")


# ---- missing values -----------------------------------------------------------------------------
def test_rows_with_missing_values_are_dropped_with_count(binary):
    data = binary.astype({"y": float})
    data.loc[[3, 10], "time"] = np.nan
    data.loc[[20], "y"] = np.nan
    with pytest.warns(
        UserWarning,
        match=re.escape("dropped 3 of 800 rows with missing values ('time': 2, 'y': 1)"),
    ):
        m = fit(data)
    assert m.nobs == 797
    assert m.n_groups == 100
    assert "Rows dropped for missing values: 3" in str(m.summary())
    # the same fit as on the complete rows
    complete = gp.mixed_model(FIXED, "~ 1 | id", binary.drop(index=[3, 10, 20]), "binomial")
    assert m.loglik == pytest.approx(complete.loglik, abs=1e-9)  # same arrays, same optimizer path
    np.testing.assert_allclose(m.fixef(), complete.fixef(), atol=1e-8)


def test_missing_values_in_unused_columns_are_ignored(binary):
    # a NaN in a column the model does not use must not drop the row: design only (no warning)
    from glmm_ppl.design.matrices import build_design
    from glmm_ppl.families import binomial

    data = binary.assign(other=np.where(binary.index % 2 == 0, np.nan, 1.0))
    design = build_design(FIXED, "~ 1 | id", data, binomial())
    assert design.nobs == 800 and design.n_dropped == 0


# ---- responses and families ----------------------------------------------------------------------
def test_binomial_response_outside_0_1(binary):
    data = binary.copy()
    data.loc[5, "y"] = 2
    with pytest.raises(
        ValueError,
        match=r"binomial: response column 'y' must be 0 or 1 .*1 row\(s\) are not \(for example 2",
    ):
        fit(data)


def test_poisson_negative_and_non_integer_counts(poisson):
    data = poisson.astype({"y": float})
    data.loc[5, "y"] = -1
    data.loc[7, "y"] = 1.5
    pattern = (
        r"poisson: response column 'y' must be non-negative integer counts; "
        r"2 row\(s\) are not \(for example -1"
    )
    with pytest.raises(ValueError, match=pattern):
        fit(data, family="poisson")


def test_unknown_family_name(binary):
    # the full list is checked in test_families; here: mixed_model passes the error through
    msg = "unknown family 'gaussianx'; valid names: beta, beta_binomial, binomial, "
    with pytest.raises(ValueError, match="^" + re.escape(msg)):
        fit(binary, family="gaussianx")


# ---- settings --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_n_agq(binary, bad):
    msg = f"n_agq must be a positive integer (points per random effect), got {bad!r}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(binary, n_agq=bad)


def test_unknown_control_key(binary):
    msg = "unknown control setting(s) 'maxiter'; valid: em_iter, em_tol, max_iter"
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(binary, control={"maxiter": 3})


def test_control_of_wrong_type(binary):
    with pytest.raises(TypeError, match=re.escape("control must be a dict or Control, got list")):
        fit(binary, control=[("max_iter", 3)])


def test_unknown_penalized_key(binary):
    msg = "unknown penalized setting(s) 'pen_scale'; valid: pen_mu, pen_sigma, pen_df"
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(binary, penalized={"pen_scale": 3})


@pytest.mark.parametrize(
    "penalized, error, msg",
    [
        ({"pen_sigma": -1}, ValueError, "pen_sigma must be positive, got -1"),
        ({"pen_df": 0}, ValueError, "pen_df must be a positive finite number, got 0"),
        (
            {"pen_mu": [0, 1]},
            ValueError,
            "pen_mu must have length 1 or 4 (one per fixed effect), got 2",
        ),
        (
            "yes",
            TypeError,
            "penalized must be True, False or a dict with keys pen_mu, pen_sigma, pen_df",
        ),
    ],
)
def test_bad_penalty_settings(binary, penalized, error, msg):
    with pytest.raises(error, match=re.escape(msg)):
        fit(binary, penalized=penalized)


def test_initial_values_of_wrong_shape(binary):
    with pytest.raises(
        ValueError, match=re.escape("initial_values['betas'] must have shape (4,), got (3,)")
    ):
        fit(binary, initial_values={"betas": [0.0, 0.0, 0.0]})
    with pytest.raises(
        ValueError, match=re.escape("initial_values['D'] must have shape (1, 1), got (2, 2)")
    ):
        fit(binary, initial_values={"D": np.eye(2)})


@pytest.mark.parametrize(
    "values, error, msg",
    [
        ([0.0], TypeError, "initial_values must be a dict with keys 'betas', 'D', 'phis'"),
        ({"beta": [0.0] * 4}, ValueError, "unknown initial_values key(s) 'beta'; valid: 'betas'"),
        ({"betas": [0.0, np.nan, 0.0, 0.0]}, ValueError, "initial_values['betas'] must be finite"),
        ({"D": [[-1.0]]}, ValueError, "initial_values['D']: D must be symmetric positive definite"),
    ],
)
def test_bad_initial_values(binary, values, error, msg):
    with pytest.raises(error, match=re.escape(msg)):
        fit(binary, initial_values=values)


@pytest.mark.parametrize(
    "control, msg",
    [
        ({"max_iter": "a"}, "control setting 'max_iter' must be a non-negative integer, got 'a'"),
        ({"hessian_step": 0}, "control setting 'hessian_step' must be a positive number, got 0"),
        ({"em_iter": 2.5}, "control setting 'em_iter' must be a non-negative integer, got 2.5"),
    ],
)
def test_bad_control_values(binary, control, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(binary, control=control)


def test_non_finite_values_are_named(binary):
    data = binary.assign(x=np.where(binary.index == 3, np.inf, binary["time"]))
    msg = "the fixed-effects column 'x' has 1 value(s) that are not finite (for example inf)"
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(data, fixed="y ~ x")
    counts = binary.assign(y=np.where(binary.index == 3, np.inf, binary["y"]))
    with pytest.raises(ValueError, match=re.escape("1 row(s) are not (for example inf)")):
        gp.mixed_model("y ~ time", "~ 1 | id", counts, family="poisson")


def test_constant_response_is_refused(binary):
    msg = "response column 'y' has the same value (0) in every row used: there is nothing to fit"
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(binary.assign(y=0))


def test_rank_deficient_random_design_is_named(binary):
    msg = "the random-effects design is rank deficient (rank 2 < 3 columns)"
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(binary, random="~ time + I(2 * time) | id")


def test_unused_levels_after_dropping_rows_are_dropped(binary):
    # every 'female' row loses its time: the level must not become an empty design column
    data = binary.assign(time=np.where(binary["sex"] == "female", np.nan, binary["time"]))
    with pytest.warns(UserWarning, match="dropped"):
        m = fit(data, fixed="y ~ sex + time")
    assert m.fixef().index.tolist() == ["(Intercept)", "time"]


def test_too_many_nodes_is_refused(binary):
    msg = "n_agq=11 with 5 random effects gives 161,051 quadrature nodes per group"
    data = binary.assign(t2=binary.time**2, t3=binary.time**3, t4=binary.time**4)
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(data, random="~ time + t2 + t3 + t4 | id", n_agq=11)


# ---- anova -----------------------------------------------------------------------------------
def test_anova_different_data(binary, fm1):
    subset = gp.glm(FIXED, binary[binary["id"] % 2 == 0], "binomial")  # both sexes
    with pytest.raises(
        ValueError,
        match=re.escape("the models were fitted to different data (400 and 800 observations"),
    ):
        gp.anova(subset, fm1)


def test_anova_not_nested(binary, fm1):
    # fixed effects differ both ways: I(time ** 2) is not in fm1, sexfemale:time not in the GLM
    other = gp.glm("y ~ sex + time + I(time**2)", binary, "binomial")
    msg = (
        "m0 is not nested in m1: its fixed effects or random effects are not a subset of the "
        "larger model's"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.anova(other, fm1)


def test_anova_same_number_of_parameters(fm1, fm1_q15):
    msg = (
        "the two models have the same number of parameters (5); a likelihood-ratio test needs "
        "one model nested in the other"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.anova(fm1, fm1_q15)


def test_anova_rejects_other_objects(fm1):
    with pytest.raises(
        TypeError,
        match=re.escape("anova compares fits from glmm_ppl.mixed_model or glmm_ppl.glm, got str"),
    ):
        gp.anova(fm1, "fm2")


def test_glm_drops_missing_rows_like_mixed_model(binary):
    data = binary.astype({"y": float})
    data.loc[[3, 10], "time"] = np.nan
    data.loc[[20], "y"] = np.nan
    with pytest.warns(UserWarning, match=re.escape("dropped 3 of 800 rows with missing values")):
        null = gp.glm(FIXED, data, "binomial")
    assert null.nobs == 797
    # the same coefficients as on the complete rows (Newton to 1e-10 on identical arrays)
    complete = gp.glm(FIXED, binary.drop(index=[3, 10, 20]), "binomial")
    np.testing.assert_allclose(null.coef, complete.coef, rtol=1e-12, atol=1e-12)
    # and it is a valid null model for a mixed model of the same rows
    with pytest.warns(UserWarning, match="dropped 3 of 800 rows"):
        m = fit(data)
    table = gp.anova(null, m)
    assert table["LRT"].iloc[1] == pytest.approx(2 * (m.loglik - null.loglik), rel=1e-12)


def test_anova_refuses_a_larger_model_without_the_correlation(binary):
    # m1 has more parameters (8 > 7) and every term of m0, but not m0's correlation
    with pytest.warns(gp.SingularFitWarning):  # fm3's boundary fit, see conftest
        m0 = fit(binary, random="~ time | id")
    m1 = fit(binary, fixed="y ~ sex * time + I(time**2) + I(time**3)", random="~ time || id")
    with pytest.raises(ValueError, match=re.escape("m0 is not nested in m1")):
        gp.anova(m0, m1)
