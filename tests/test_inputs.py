"""What mixed_model, glm and the calls on a fit accept: ways of giving the same model that must
agree, and bad input, refused with a message that names what is wrong (the column, value,
family, argument or valid options; asserted in full).

Equivalences: trials (``trials=``, ``p(y, n)``, ``cbind(y, f)``), censoring (``censoring=``,
``cbind(y, c)``), offsets (in the formula, a column, an array; a constant offset only moves the
intercept) and group weights (an array in sorted label order, a Series indexed by label, a
column; weight 2 doubles the log-likelihood, integer weights replicate groups). Missing values
drop their rows, with a count. The vignette data come from conftest.py; the other data are
simulated here, with rows in shuffled order and string group labels.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import glmm_ppl as gp

# ---- the vignette data (conftest.py) -------------------------------------------------------------
FIXED = "y ~ sex * time"
COLUMNS = "available columns: id, time, sex, y"


def fit(data, fixed=FIXED, random="~ 1 | id", family="binomial", **kwargs):
    return gp.mixed_model(fixed, random, data, family, **kwargs)


# ---- simulated data: 60 groups of 6 rows ---------------------------------------------------------
N_GROUPS, PER = 60, 6
# The default stop (Newton decrement below 1e-6 log-likelihood units) leaves the estimates up to
# ~1e-3 standard errors from the optimum (6e-5 in log SD measured here, with weights 2 against
# none); fits compared to 1e-5 are taken to a decrement of 1e-10 first.
TIGHT = {"newton_tol": 1e-10}


def _fit(fixed, data, family, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "PyTensor could not link to a BLAS")
        fit = gp.mixed_model(fixed, "~ 1 | g", data, family, **kw)
    assert fit.converged
    return fit


def _layout(seed):
    """Rows in shuffled order (so row order, order of appearance and sorted label order all
    differ), string group labels, a N(0, 1) covariate and random intercepts (SD 0.6)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(N_GROUPS), PER)
    x = rng.normal(size=len(g))
    b = rng.normal(0.0, 0.6, N_GROUPS)[g]
    labels = np.array([f"s{(7 * i) % N_GROUPS:02d}" for i in range(N_GROUPS)])[g]
    order = rng.permutation(len(g))
    return rng, labels[order], x[order], b[order]


@pytest.fixture(scope="module")
def binomial_data():
    rng, g, x, b = _layout(1)
    n = rng.integers(1, 9, len(g))
    y = rng.binomial(n, special.expit(0.2 + 0.5 * x + b)).astype(float)
    return pd.DataFrame({"g": g, "x": x, "y": y, "n": n, "f": n - y})


@pytest.fixture(scope="module")
def censored_data():
    rng, g, x, b = _layout(2)
    y = 0.5 + 0.4 * x + b + 0.5 * rng.normal(size=len(g))
    c = np.where(y < -0.2, 1, np.where(y > 1.4, 2, 0))
    assert (c == 1).sum() > 20 and (c == 2).sum() > 20
    return pd.DataFrame({"g": g, "x": x, "y": np.clip(y, -0.2, 1.4), "c": c})


@pytest.fixture(scope="module")
def poisson_data():
    rng, g, x, b = _layout(3)
    e = rng.uniform(0.5, 3.0, len(g))
    y = rng.poisson(e * np.exp(0.3 + 0.4 * x + b)).astype(float)
    return pd.DataFrame({"g": g, "x": x, "y": y, "e": e, "log_e": np.log(e)})


@pytest.fixture(scope="module")
def counts():
    rng, g, x, b = _layout(4)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + b)).astype(float)
    n = np.maximum(y, 1) + rng.integers(0, 4, len(g))
    return pd.DataFrame({"g": g, "x": x, "y": y, "n": n, "c": np.zeros(len(g)), "w": 1.0})


def _raises(message, data, family, fixed="y ~ x", random="~ 1 | g", **kw):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "PyTensor could not link to a BLAS")
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            gp.mixed_model(fixed, random, data, family, **kw)


def _set(df, column, rows, values):
    out = df.copy()
    out[column] = out[column].astype(float)
    out.loc[out.index[rows], column] = values
    return out


def _labels(df):
    return np.sort(df["g"].unique())


# ---- data and columns ----------------------------------------------------------------------------
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


# ---- missing values ------------------------------------------------------------------------------
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


def test_unused_levels_after_dropping_rows_are_dropped(binary):
    # every 'female' row loses its time: the level must not become an empty design column
    data = binary.assign(time=np.where(binary["sex"] == "female", np.nan, binary["time"]))
    with pytest.warns(UserWarning, match="dropped"):
        m = fit(data, fixed="y ~ sex + time")
    assert m.fixef().index.tolist() == ["(Intercept)", "time"]


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


# ---- formulas ------------------------------------------------------------------------------------
def test_random_formula_without_bar(binary):
    msg = (
        "random must look like '~ x | g' (correlated), '~ x || g' (independent), "
        "'~ 1 | school/class' (nested) or lme4's '(x | school) + (1 | class)', got '~ 1 + id'"
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


def test_rank_deficient_random_design_is_named(binary):
    msg = "the random-effects design is rank deficient (rank 2 < 3 columns)"
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(binary, random="~ time + I(2 * time) | id")


def test_zi_random_other_grouping(counts):
    data = counts.assign(h=counts["g"].str[:2])
    _raises(
        "zi_random must use the grouping column of random ('g'), got 'h'",
        data,
        "zi_poisson",
        zi_random="~ 1 | h",
    )


# ---- families and responses ----------------------------------------------------------------------
def test_unknown_family_name(binary):
    # the full list is checked in families/test_family_checks.py and below; here: mixed_model
    # passes the error through
    msg = "unknown family 'gaussianx'; valid names: beta, beta_binomial, binomial, "
    with pytest.raises(ValueError, match="^" + re.escape(msg)):
        fit(binary, family="gaussianx")


def test_unknown_family(counts):
    _raises(
        "unknown family 'poison'; valid names: beta, beta_binomial, binomial, censored_normal, "
        "cumulative, gamma, gaussian, hurdle_beta, hurdle_lognormal, hurdle_negative_binomial, "
        "hurdle_poisson, negative_binomial, poisson, students_t, zi_binomial, "
        "zi_negative_binomial, zi_poisson (or pass a glmm_ppl.families.Family object)",
        counts,
        "poison",
    )


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


@pytest.mark.parametrize("family", ["poisson", "negative_binomial", "zi_poisson"])
def test_negative_counts(counts, family):
    data = _set(counts, "y", [3, 10], [-1.0, -2.0])
    _raises(
        f"{family}: response column 'y' must be non-negative integer counts; 2 row(s) are not "
        "(for example -1)",
        data,
        family,
    )


@pytest.mark.parametrize("family", ["poisson", "negative_binomial", "hurdle_poisson"])
def test_non_integer_counts(counts, family):
    data = _set(counts, "y", [5], [2.5])
    _raises(
        f"{family}: response column 'y' must be non-negative integer counts; 1 row(s) are not "
        "(for example 2.5)",
        data,
        family,
    )


def test_gamma_needs_positive_response(counts):
    data = counts.assign(y=np.exp(counts["x"]))
    data = _set(data, "y", [1, 2, 8], [0.0, -3.0, 0.0])
    _raises(
        "gamma: response column 'y' must be positive numbers; 3 row(s) are not (for example 0)",
        data,
        "gamma",
    )


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5])
def test_beta_needs_open_unit_interval(counts, bad):
    data = counts.assign(y=special.expit(counts["x"]))
    data = _set(data, "y", [7], [bad])
    _raises(
        "beta: response column 'y' must be numbers strictly between 0 and 1; 1 row(s) are not "
        f"(for example {bad:g})",
        data,
        "beta",
    )


@pytest.mark.parametrize("arg", [{"zi_fixed": "~ x"}, {"zi_random": "~ 1 | g"}])
def test_zero_part_formula_without_zero_part(counts, arg):
    _raises(
        "zi_fixed and zi_random apply to zero-inflated and hurdle families, not poisson",
        counts,
        "poisson",
        **arg,
    )


def test_family_reading_an_unknown_column_is_refused(poisson_data):
    fam = gp.families.custom_family("exposed", lambda y, eta, phis, *data: -((y - eta) ** 2))
    fam.data_names = ("exposure",)
    message = (
        "the exposed family reads a per-row column 'exposure'; mixed_model passes only trials "
        "and censoring columns to a family (put other per-row values in the formula, e.g. as "
        "an offset)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        gp.mixed_model("y ~ x", "~ 1 | g", poisson_data, fam)


# ---- trials and censoring ------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["binomial", "beta_binomial"])
def test_trials_three_ways(binomial_data, family):
    by_arg = _fit("y ~ x", binomial_data, family, trials="n")
    by_p = _fit("p(y, n) ~ x", binomial_data, family)
    by_cbind = _fit("cbind(y, f) ~ x", binomial_data, family)
    for other in (by_p, by_cbind):
        np.testing.assert_allclose(other.loglik, by_arg.loglik, rtol=0, atol=1e-8)
        np.testing.assert_allclose(other.theta, by_arg.theta, rtol=0, atol=1e-8)


def test_censoring_two_ways(censored_data):
    by_arg = _fit("y ~ x", censored_data, "censored_normal", censoring="c")
    by_cbind = _fit("cbind(y, c) ~ x", censored_data, "censored_normal")
    np.testing.assert_allclose(by_cbind.loglik, by_arg.loglik, rtol=0, atol=1e-8)
    np.testing.assert_allclose(by_cbind.theta, by_arg.theta, rtol=0, atol=1e-8)


@pytest.mark.parametrize("family", ["binomial", "zi_binomial", "beta_binomial"])
def test_successes_above_trials(counts, family):
    data = _set(counts, "y", [4], [counts["n"].iloc[4] + 2])
    example = f"{counts['n'].iloc[4] + 2:g}"
    _raises(
        f"{family}: response column 'y' must be at most the number of trials; 1 row(s) are not "
        f"(for example {example})",
        data,
        family,
        trials="n",
    )


def test_trials_must_be_integers(counts):
    data = _set(counts, "n", [2, 6], [4.5, 4.5])
    message = "trials column 'n' must hold non-negative integers; 2 row(s) do not (for example 4.5)"
    _raises(message, data, "binomial", trials="n")
    _raises(message, data, "binomial", fixed="p(y, n) ~ x")


def test_failures_must_be_integers(counts):
    data = counts.assign(f=counts["n"] - counts["y"])
    data = _set(data, "f", [2], [0.5])
    data = _set(data, "y", [2], [3.0])
    _raises(
        "failures column 'f' must hold non-negative integers; 1 row(s) do not (for example 0.5)",
        data,
        "binomial",
        fixed="cbind(y, f) ~ x",
    )


def test_negative_failures(counts):
    data = counts.assign(f=counts["n"] - counts["y"])
    data = _set(data, "f", [2], [-1.0])
    data = _set(data, "y", [2], [3.0])
    _raises(
        "failures column 'f' must hold non-negative integers; 1 row(s) do not (for example -1)",
        data,
        "binomial",
        fixed="cbind(y, f) ~ x",
    )


@pytest.mark.parametrize("how", ["argument", "cbind"])
def test_censoring_codes(counts, how):
    data = _set(counts, "c", [0, 9], [3.0, -1.0])
    kw = {"censoring": "c"} if how == "argument" else {"fixed": "cbind(y, c) ~ x"}
    _raises(
        "censoring column 'c' must be 0 (observed), 1 (left censored) or 2 (right censored); "
        "2 row(s) are not (for example 3)",
        data,
        "censored_normal",
        **kw,
    )


def test_trials_for_poisson(counts):
    _raises(
        "the poisson family does not take trials; families that do: binomial, zi_binomial, "
        "beta_binomial",
        counts,
        "poisson",
        trials="n",
    )


def test_censoring_for_poisson(counts):
    _raises("censoring= applies to censored_normal, not poisson", counts, "poisson", censoring="c")


def test_beta_binomial_needs_trials(counts):
    _raises(
        "the beta_binomial family needs trials: give trials='column', a response "
        "p(successes, trials) or cbind(successes, failures)",
        counts,
        "beta_binomial",
    )


def test_censored_normal_needs_censoring(counts):
    _raises(
        "the censored_normal family needs censoring: give censoring='column' (0 observed, "
        "1 left, 2 right censored) or a response cbind(y, indicator)",
        counts,
        "censored_normal",
    )


# ---- offsets -------------------------------------------------------------------------------------
def test_offset_three_ways(poisson_data):
    in_formula = _fit("y ~ x + offset(log(e))", poisson_data, "poisson")
    column = _fit("y ~ x", poisson_data, "poisson", offset="log_e")
    array = _fit("y ~ x", poisson_data, "poisson", offset=np.log(poisson_data["e"].to_numpy()))
    no_offset = _fit("y ~ x", poisson_data, "poisson")
    assert abs(no_offset.loglik - in_formula.loglik) > 1.0  # the offset matters here
    for other in (column, array):
        np.testing.assert_allclose(other.loglik, in_formula.loglik, rtol=0, atol=1e-8)
        np.testing.assert_allclose(other.theta, in_formula.theta, rtol=0, atol=1e-8)


def test_offset_series_aligned_by_index(poisson_data):
    shuffled = poisson_data.sample(frac=1.0, random_state=5)
    column = _fit("y ~ x", shuffled, "poisson", offset="log_e")
    series = _fit("y ~ x", shuffled, "poisson", offset=poisson_data["log_e"])
    np.testing.assert_allclose(series.loglik, column.loglik, rtol=0, atol=1e-8)


def test_constant_offset_moves_the_intercept(poisson_data):
    plain = _fit("y ~ x", poisson_data, "poisson", control=TIGHT)
    log2 = np.full(len(poisson_data), np.log(2))
    shifted = _fit("y ~ x", poisson_data, "poisson", offset=log2, control=TIGHT)
    expected = plain.theta.copy()
    expected[0] -= np.log(2.0)
    np.testing.assert_allclose(shifted.theta, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(shifted.loglik, plain.loglik, rtol=0, atol=1e-6)


def test_glm_offsets_match_mixed_model_terms(poisson_data):
    in_formula = gp.glm("y ~ x + offset(log(e))", poisson_data, "poisson")
    as_column = gp.glm("y ~ x", poisson_data, "poisson", offset="log_e")
    none = gp.glm("y ~ x", poisson_data, "poisson")
    assert in_formula.loglik == pytest.approx(as_column.loglik, abs=1e-9)
    assert in_formula.loglik != pytest.approx(none.loglik, abs=1.0)


def test_offset_wrong_length(counts):
    _raises(
        f"offset must have one value per row of data ({len(counts)}), got {len(counts) + 1}; "
        "or give a column name or a pandas Series indexed like data",
        counts,
        "poisson",
        offset=np.zeros(len(counts) + 1),
    )


def test_offset_must_be_a_term_of_its_own(poisson_data):
    message = (
        "offset(...) must be added as a term of its own ('~ x + offset(log(e))'), got "
        "'~ x - offset(log_e)'"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        gp.mixed_model("y ~ x - offset(log_e)", "~ 1 | g", poisson_data, "poisson")
    message = "offset(...) belongs in the fixed-effects formula, not in '~ offset(log_e) | g'"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        gp.mixed_model("y ~ x", "~ offset(log_e) | g", poisson_data, "poisson")


# ---- group weights -------------------------------------------------------------------------------
def test_weight_two_doubles_the_loglik(poisson_data):
    plain = _fit("y ~ x", poisson_data, "poisson", control=TIGHT)
    labels = _labels(poisson_data)
    ways = {
        "array": np.full(len(labels), 2.0),
        "series": pd.Series(2.0, index=labels[::-1]),
        "column": "w",
    }
    data = poisson_data.assign(w=2.0)
    for how, weights in ways.items():
        fit = _fit("y ~ x", data, "poisson", weights=weights, control=TIGHT)
        np.testing.assert_allclose(fit.theta, plain.theta, rtol=0, atol=1e-5, err_msg=how)
        np.testing.assert_allclose(fit.loglik, 2.0 * plain.loglik, rtol=1e-6, err_msg=how)


@pytest.mark.parametrize("family", ["poisson", "negative_binomial"])
def test_integer_weights_replicate_groups(poisson_data, family):
    labels = _labels(poisson_data)
    w = np.random.default_rng(9).integers(1, 4, len(labels))
    weight_of = dict(zip(labels, w, strict=True))
    copies = [
        poisson_data.assign(g=poisson_data["g"] + f"_copy{k}")[poisson_data["g"].map(weight_of) > k]
        for k in range(w.max())
    ]
    replicated = _fit("y ~ x", pd.concat(copies, ignore_index=True), family)
    assert replicated.n_groups == w.sum()
    rng = np.random.default_rng(10)
    ways = {
        "array": w.astype(float),
        "series": pd.Series(w, index=labels).iloc[rng.permutation(len(labels))],
        "column": "w",
    }
    data = poisson_data.assign(w=poisson_data["g"].map(weight_of))
    for how, weights in ways.items():
        fit = _fit("y ~ x", data, family, weights=weights)
        assert fit.n_groups == N_GROUPS
        np.testing.assert_allclose(fit.theta, replicated.theta, rtol=0, atol=1e-4, err_msg=how)
        np.testing.assert_allclose(fit.loglik, replicated.loglik, rtol=1e-6, err_msg=how)


def test_weights_wrong_length(counts):
    _raises(
        f"weights must have one value per group of 'g' ({N_GROUPS}, in sorted order of the "
        f"labels), got {N_GROUPS - 1}; or pass a pandas Series indexed by group label, or a "
        "column name",
        counts,
        "poisson",
        weights=np.ones(N_GROUPS - 1),
    )


def test_weights_column_varying_within_group(counts):
    rows = np.flatnonzero(counts["g"] == "s14")[:1]
    data = _set(counts, "w", rows, [2.0])
    _raises(
        "weights column 'w' must be constant within each group of 'g'; it varies in 1 group(s) "
        "(for example 's14')",
        data,
        "poisson",
        weights="w",
    )


def test_weights_message_with_integer_labels(counts):
    data = counts.assign(g=counts["g"].str[1:].astype(int))
    data = _set(data, "w", np.flatnonzero(data["g"] == 3)[:1], [2.0])
    _raises(
        "weights column 'w' must be constant within each group of 'g'; it varies in 1 group(s) "
        "(for example 3)",
        data,
        "poisson",
        weights="w",
    )


@pytest.mark.parametrize("bad", [0.0, -1.0, np.inf])
def test_weights_not_positive(counts, bad):
    weights = np.ones(N_GROUPS)
    weights[[5, 17]] = bad
    _raises(
        f"weights must be positive and finite; 2 group(s) are not (for example {bad:g})",
        counts,
        "poisson",
        weights=weights,
    )


# ---- settings: n_agq, control, penalized, initial values -----------------------------------------
@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_n_agq(binary, bad):
    msg = f"n_agq must be a positive integer (points per random effect) or 'auto', got {bad!r}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(binary, n_agq=bad)


def test_too_many_nodes_is_refused(binary):
    msg = "n_agq=11 with 5 random effects gives 161,051 quadrature nodes per group"
    data = binary.assign(t2=binary.time**2, t3=binary.time**3, t4=binary.time**4)
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(data, random="~ time + t2 + t3 + t4 | id", n_agq=11)


def test_unknown_control_key(binary):
    msg = "unknown control setting(s) 'maxiter'; valid: em_iter, em_tol, max_iter"
    with pytest.raises(ValueError, match=re.escape(msg)):
        fit(binary, control={"maxiter": 3})


def test_control_of_wrong_type(binary):
    with pytest.raises(TypeError, match=re.escape("control must be a dict or Control, got list")):
        fit(binary, control=[("max_iter", 3)])


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


# ---- a parameter at the edge of its range --------------------------------------------------------
def test_negative_binomial_size_at_its_poisson_limit_is_said():
    """Poisson data: the NB size runs to ∞. The log-likelihood is then the Poisson one (not
    the 0.0 a cancelling log Γ difference gave), and a warning says the size is at its edge."""
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(60), 6)
    x = rng.normal(size=len(g))
    y = rng.poisson(np.exp(0.5 + 0.3 * x + rng.normal(size=60)[g] * 0.5))
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    poisson = _fit("y ~ x", df, "poisson")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nb = gp.mixed_model("y ~ x", "~ 1 | g", df, "negative_binomial")
    said = [str(w.message) for w in caught if w.category is gp.SingularFitWarning]
    assert said and said[0].startswith("the negative_binomial parameter 'size' ran to")
    # a limit of the model, as a variance at 0 is: the curvature in log size vanishes there,
    # so whether the numerical Hessian also fails its check is rounding, and not asserted
    assert nb.phis["size"] > np.exp(12)
    assert nb.loglik == pytest.approx(poisson.loglik, abs=1e-3)
    assert any("the edge of its range" in note for note in nb.warnings)


# ---- after the fit: the zero part ----------------------------------------------------------------
@pytest.fixture(scope="module")
def plain_and_zi(counts):
    rng = np.random.default_rng(12)
    zero = rng.random(len(counts)) < special.expit(-0.5 + 0.5 * counts["x"].to_numpy())
    data = counts.assign(y=np.where(zero, 0.0, counts["y"]))
    return _fit("y ~ x", data, "poisson"), _fit("y ~ x", data, "zi_poisson", zi_fixed="~ x")


def test_zero_part_accessors_without_zero_part(plain_and_zi):
    plain, _ = plain_and_zi
    with pytest.raises(
        ValueError,
        match=re.escape(
            "the poisson family has no zero part; sub_model='zero_part' applies to "
            "zero-inflated and hurdle families"
        ),
    ):
        plain.fixef(sub_model="zero_part")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "the poisson family has no zero part; parm='zero_part' applies to zero-inflated "
            "and hurdle families"
        ),
    ):
        plain.vcov(parm="zero_part")
    assert "Zero-part coefficients:" not in str(plain.summary())


def test_zero_part_accessors(plain_and_zi):
    _, zi = plain_and_zi
    gamma = zi.fixef(sub_model="zero_part")
    assert gamma.index.tolist() == ["(Intercept)", "x"]
    V = zi.vcov(parm="zero_part")
    # named as fixef names them, so gamma @ V aligns; in vcov("all") they carry the zi_ prefix
    assert V.index.tolist() == V.columns.tolist() == gamma.index.tolist()
    all_ = zi.vcov("all")
    prefixed = ["zi_(Intercept)", "zi_x"]
    np.testing.assert_array_equal(V.to_numpy(), all_.loc[prefixed, prefixed].to_numpy())
    assert float(gamma @ V @ gamma) > 0
    assert zi.confint("zero_part").index.tolist() == ["(Intercept)", "x"]
    assert zi.confint("all").index[2:4].tolist() == prefixed
    assert np.all(np.diag(V.to_numpy()) > 0)
    np.testing.assert_array_equal(gamma.to_numpy(), zi.theta[2:4])
    text = str(zi.summary())
    assert "Zero-part coefficients:" in text
    block = text.split("Zero-part coefficients:")[1]
    assert re.search(r"^\(Intercept\)\s+" + re.escape(f"{gamma['(Intercept)']:.4f}"), block, re.M)
    assert re.search(r"^x\s+" + re.escape(f"{gamma['x']:.4f}"), block, re.M)


def test_zero_part_without_fixed_effects(poisson_data):
    """zi_fixed='~ 0' with zero-part random intercepts: the zero part's probability is
    logistic(b_zi); it fits, and the summary says the zero part has no coefficients."""
    fit = gp.mixed_model(
        "y ~ x + offset(log_e)",
        "~ 1 | g",
        poisson_data,
        "zi_poisson",
        zi_fixed="~ 0",
        zi_random="~ 1 || g",
    )
    assert fit.fixef("zero_part").empty
    assert fit.D.index.tolist() == ["(Intercept)", "zi_(Intercept)"]
    assert "Zero-part coefficients:\n(none)" in str(fit.summary())


# ---- after the fit: likelihood-ratio tests (anova) -----------------------------------------------
def test_anova_different_data(binary, fm1):
    subset = gp.glm(FIXED, binary[binary["id"] % 2 == 0], "binomial")  # both sexes
    with pytest.raises(
        ValueError,
        match=re.escape(
            "the models were fitted to different rows of the data (400 and 800 observations): "
            "refit both to the same rows"
        ),
    ):
        gp.anova(subset, fm1)


def test_anova_not_nested(binary, fm1):
    # fixed effects differ both ways: I(time ** 2) is not in fm1, sexfemale:time not in the GLM
    other = gp.glm("y ~ sex + time + I(time**2)", binary, "binomial")
    msg = (
        "other is not nested in fm1: its fixed effects or random effects are not a subset of "
        "the larger model's"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.anova(other, fm1)


def test_anova_same_number_of_parameters(fm1, fm1_q15):
    msg = (
        "fm1 and fm1_q15 have the same number of parameters (5); a likelihood-ratio test needs "
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


def test_anova_names_need_one_label_per_model(glm_binary, fm1, fm2):
    msg = "names must give one name per model (3), got 2: ('glm', 'fm1')"
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.anova(glm_binary, fm1, fm2, names=("glm", "fm1"))
    with pytest.raises(TypeError, match=re.escape("names must be a list or tuple of 2 row labels")):
        gp.anova(glm_binary, fm1, names="ab")


def test_anova_needs_two_models_or_a_wald_hypothesis(glm_binary, fm1):
    with pytest.raises(ValueError, match=re.escape("anova needs two or more models to compare")):
        gp.anova(fm1)
    msg = "a Wald test (L) takes one model and no names, got 2 model(s) and names=None"
    with pytest.raises(ValueError, match=re.escape(msg)):
        gp.anova(glm_binary, fm1, L={"time": 1})
    with pytest.raises(ValueError, match=re.escape("rhs and sandwich are options of the Wald")):
        gp.anova(glm_binary, fm1, sandwich=True)


def test_anova_refuses_a_larger_model_without_the_correlation(binary):
    # m1 has more parameters (8 > 7) and every term of m0, but not m0's correlation
    with pytest.warns(gp.SingularFitWarning):  # fm3's boundary fit, see conftest
        m0 = fit(binary, random="~ time | id")
    m1 = fit(binary, fixed="y ~ sex * time + I(time**2) + I(time**3)", random="~ time || id")
    with pytest.raises(ValueError, match=re.escape("m0 is not nested in m1")):
        gp.anova(m0, m1)


def test_anova_refuses_different_offsets_and_weights(poisson_data):
    with_offset = _fit("y ~ x + offset(log_e)", poisson_data, "poisson")
    without = _fit("y ~ 1", poisson_data, "poisson")
    with pytest.raises(ValueError, match="^the models use different offsets: they are not nested$"):
        gp.anova(without, with_offset)
    w = np.arange(1.0, N_GROUPS + 1.0)
    weighted = _fit("y ~ 1 + offset(log_e)", poisson_data, "poisson", weights=w)
    message = "the models use different group weights, so their log-likelihoods are not comparable"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        gp.anova(weighted, with_offset)
    glm = gp.glm("y ~ x + offset(log_e)", poisson_data, "poisson")
    table = gp.anova(glm, with_offset)  # the same offset through glm: accepted
    assert table["LRT"].iloc[1] > 0


def test_anova_warns_about_a_fit_that_did_not_converge(poisson_data):
    small = _fit("y ~ 1 + offset(log_e)", poisson_data, "poisson")
    with pytest.warns(gp.ConvergenceWarning):
        rough = gp.mixed_model(
            "y ~ x + offset(log_e)",
            "~ 1 | g",
            poisson_data,
            "poisson",
            control={"em_iter": 0, "max_iter": 1, "newton_iter": 0},
        )
    with pytest.warns(UserWarning, match="^rough did not converge: its log-likelihood, and the"):
        gp.anova(small, rough)


# ---- after the fit: likelihood-ratio tests across nested families --------------------------------
def test_anova_labels_fits_that_no_variable_holds(poisson_data):
    fixed = "y ~ x + offset(log_e)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the NB size may run to its upper limit here
        fits = [
            gp.mixed_model(fixed, "~ 1 | g", poisson_data, family)
            for family in ("negative_binomial", "poisson")
        ]
    with pytest.warns(UserWarning, match="poisson is negative_binomial with a parameter at the"):
        table = gp.anova(gp.glm(fixed, poisson_data, "poisson"), *fits)
    label = "y ~ x + offset(log_e), ~ 1 | g"
    assert list(table.index) == [fixed, label, f"{label} (2)"]
    assert table.loc[f"{label} (2)", "log.Lik"] == fits[0].loglik  # the larger model, last


def test_anova_poisson_within_negative_binomial(poisson_data):
    """Poisson is the negative binomial at size → ∞: the test runs, with the boundary said."""
    m0 = _fit("y ~ x + offset(log_e)", poisson_data, "poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the NB size may run to its upper limit here
        m1 = gp.mixed_model("y ~ x + offset(log_e)", "~ 1 | g", poisson_data, "negative_binomial")
    with pytest.warns(UserWarning, match="poisson is negative_binomial with a parameter at the"):
        table = gp.anova(m0, m1)
    assert table["df"].iloc[1] == 1
    assert table["LRT"].iloc[1] == pytest.approx(2 * (m1.loglik - m0.loglik))
    assert m1.loglik >= m0.loglik - 1e-6  # the larger model contains the smaller one


def test_anova_binomial_within_beta_binomial():
    """The binomial is the beta-binomial at precision → ∞: overdispersed proportions are
    tested against it, with the boundary said."""
    rng = np.random.default_rng(3)
    n = 80
    df = pd.DataFrame({"g": np.repeat(np.arange(n), 5), "x": rng.normal(size=n * 5)})
    df["n"] = rng.integers(5, 15, len(df))
    p = rng.beta(4.0, 4.0 * np.exp(-(0.2 + 0.5 * df["x"])))  # beta-distributed success rates
    df["s"] = rng.binomial(df["n"], p)
    m0 = gp.mixed_model("p(s, n) ~ x", "~ 1 | g", df, "binomial")
    m1 = gp.mixed_model("p(s, n) ~ x", "~ 1 | g", df, "beta_binomial")
    with pytest.warns(UserWarning, match="binomial is beta_binomial with a parameter at the"):
        table = gp.anova(m0, m1)
    assert table["df"].iloc[1] == 1
    assert m1.loglik > m0.loglik  # the larger model contains the smaller one
    assert table["p.value"].iloc[1] < 1e-3  # the data are overdispersed
    other = gp.mixed_model("p(s, n1) ~ x", "~ 1 | g", df.assign(n1=df["n"] + 1), "binomial")
    with pytest.raises(ValueError, match=r"^the models use different per-row data \(trials"):
        gp.anova(other, m1)


def test_anova_refuses_families_that_do_not_nest(poisson_data):
    m0 = _fit("y ~ x", poisson_data, "poisson")
    data = poisson_data.assign(y=poisson_data["y"] + 0.5)
    m1 = _fit("y ~ x + e", data, "gamma")
    msg = "the models were fitted to different responses (360 of 360 rows differ)"
    with pytest.raises(ValueError, match="^" + re.escape(msg)):
        gp.anova(m0, m1)
    m2 = _fit("y ~ x + e", poisson_data.assign(y=poisson_data["y"] + 1), "gamma")
    m3 = _fit("y ~ x", poisson_data.assign(y=poisson_data["y"] + 1), "poisson")
    message = (
        "the models use different families: poisson(link='log') and gamma(link='log'), and the "
        "first is not a special case of the second"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        gp.anova(m3, m2)


# ---- after the fit: the GLM's standard errors with an extra parameter ----------------------------
def test_glm_standard_errors_account_for_the_extra_parameter(censored_data):
    """Censored normal: β and σ are not orthogonal, so the SEs come from the full Hessian —
    checked against central differences of an independent scipy log-likelihood."""
    m = gp.glm("cbind(y, c) ~ x", censored_data, "censored_normal")
    y, c, x = (censored_data[k].to_numpy() for k in ("y", "c", "x"))

    def loglik(par):
        mu, sigma = par[0] + par[1] * x, np.exp(par[2])
        z = (y - mu) / sigma
        return np.sum(
            np.where(
                c == 0,
                stats.norm.logpdf(y, mu, sigma),
                np.where(c == 1, stats.norm.logcdf(z), stats.norm.logsf(z)),
            )
        )

    par = np.r_[m.coef.to_numpy(), np.log(m.phis[0])]
    h = 1e-4
    H = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            ei, ej = np.eye(3)[i] * h, np.eye(3)[j] * h
            H[i, j] = (
                loglik(par + ei + ej)
                - loglik(par + ei - ej)
                - loglik(par - ei + ej)
                + loglik(par - ei - ej)
            ) / (4 * h * h)
    expected = np.sqrt(np.diag(np.linalg.inv(-H)))[:2]
    np.testing.assert_allclose(m.se.to_numpy(), expected, rtol=1e-4)
