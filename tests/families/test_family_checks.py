"""Family objects: look-up by name and aliases, the links each allows, declarations and
settings (zero part, extra parameters, per-row data, Student's t df), and the checks of the
response column, whose messages name the family, column and an offending value."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from glmm_ppl.families import (
    beta,
    beta_binomial,
    binomial,
    censored_normal,
    gamma,
    gaussian,
    get_family,
    hurdle_beta,
    hurdle_lognormal,
    hurdle_negative_binomial,
    hurdle_poisson,
    negative_binomial,
    poisson,
    students_t,
    zi_binomial,
    zi_negative_binomial,
    zi_poisson,
)


# ---- look-ups ------------------------------------------------------------------------------------
def test_get_family_unknown_name_lists_valid_names():
    msg = (
        "unknown family 'gaussianx'; valid names: beta, beta_binomial, binomial, "
        "censored_normal, cumulative, gamma, gaussian, hurdle_beta, hurdle_lognormal, "
        "hurdle_negative_binomial, hurdle_poisson, negative_binomial, poisson, students_t, "
        "zi_binomial, zi_negative_binomial, zi_poisson (or pass a glmm_ppl.families.Family "
        "object)"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        get_family("gaussianx")


def test_get_family_aliases():
    assert get_family("bernoulli") == binomial()
    assert get_family("Gamma").name == "gamma"
    assert get_family("negativebinomial").name == "negative_binomial"


def test_get_family_by_name_and_object():
    assert get_family("poisson") == poisson()
    assert get_family("binomial") == binomial(link="logit")
    fam = binomial(link="probit")
    assert get_family(fam) is fam
    assert binomial(link="probit") != binomial()


# ---- links ---------------------------------------------------------------------------------------
def test_link_not_allowed_names_valid_links():
    msg = "unknown link 'log'; valid links here: logit, probit, cloglog"
    with pytest.raises(ValueError, match=re.escape(msg)):
        binomial(link="log")


@pytest.mark.parametrize(
    "family, bad, valid",
    [
        (gamma, "identity", "log"),
        (beta, "probit", "logit"),
        (negative_binomial, "identity", "log"),
        (beta_binomial, "log", "logit, probit, cloglog"),
        (censored_normal, "log", "identity"),
    ],
)
def test_links_not_allowed_name_valid_links(family, bad, valid):
    with pytest.raises(ValueError, match=re.escape(f"valid links here: {valid}")):
        family(link=bad)


# ---- declarations and settings -------------------------------------------------------------------
@pytest.mark.parametrize(
    "family, phi_names, links",
    [
        (zi_poisson(), (), ("log",)),
        (zi_negative_binomial(), ("size",), ("log",)),
        (zi_binomial(), (), ("logit", "probit", "cloglog")),
        (hurdle_poisson(), (), ("log",)),
        (hurdle_negative_binomial(), ("size",), ("log",)),
        (hurdle_lognormal(), ("sigma",), ("identity",)),
        (hurdle_beta(), ("precision",), ("logit",)),
    ],
)
def test_declarations(family, phi_names, links):
    assert family.zero_part and family.n_eta == 2
    assert family.phi_names == phi_names and family.links == links
    assert repr(family) == f"{family.name}(link={links[0]!r})"
    assert family.name == type(family).__name__


def test_zi_binomial_trials_optional():
    fam = zi_binomial()
    assert fam.trials == "optional" and fam.aux_names == ()
    assert fam.using_trials().aux_names == ("trials",)
    with pytest.raises(ValueError, match="does not take trials"):
        zi_poisson().using_trials()


def test_aux_names():
    assert beta_binomial().aux_names == ("trials",)
    assert censored_normal().aux_names == ("censoring",)
    assert gamma().aux_names == ()


# ---- Student's t settings ------------------------------------------------------------------------
@pytest.mark.parametrize("df", [0, -1.0, np.inf, np.nan, "three", None, True])
def test_students_t_refuses_bad_df(df):
    msg = f"students_t: df must be a positive finite number, got {df!r}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        students_t(df=df)


def test_students_t_df_is_part_of_the_family():
    assert repr(students_t(df=4)) == "students_t(df=4.0, link='identity')"
    assert students_t(df=4) == students_t(df=4.0)
    assert students_t(df=4) != students_t(df=5)
    assert hash(students_t(df=4)) == hash(students_t(df=4.0))


# ---- response checks: binomial and Poisson -------------------------------------------------------
def test_binomial_rejects_values_other_than_0_1():
    pattern = (
        r"^binomial: response column 'resp' must be 0 or 1 \(or two levels; counts need trials=\); "
        r"1 row\(s\) are not \(for example \S*2(\.0)?\)*$"
    )
    with pytest.raises(ValueError, match=pattern):
        binomial().check_response(pd.Series([0, 1, 2, 1]), "resp")


def test_poisson_rejects_negative_and_non_integer_counts():
    pattern = (
        r"^poisson: response column 'count' must be non-negative integer counts; "
        r"2 row\(s\) are not \(for example \S*-1(\.0)?\)*$"
    )
    with pytest.raises(ValueError, match=pattern):
        poisson().check_response(pd.Series([0.0, -1.0, 3.0, 1.5]), "count")


def test_poisson_rejects_non_numeric():
    with pytest.raises(
        ValueError, match=re.escape("poisson: response column 'count' must be numeric, got dtype")
    ):
        poisson().check_response(pd.Series(["a", "b"]), "count")


def test_response_error_prints_plain_value():
    with pytest.raises(ValueError, match=r"\(for example 2(\.0)?\)$"):
        binomial().check_response(pd.Series([0, 1, 2, 1]), "resp")


def test_binomial_two_string_levels_second_sorted_is_success():
    y = binomial().check_response(pd.Series(["no", "yes", "yes", "no"]), "resp")
    np.testing.assert_array_equal(y, [0.0, 1.0, 1.0, 0.0])
    # sorted order, not order of appearance
    y = binomial().check_response(pd.Series(["yes", "no"]), "resp")
    np.testing.assert_array_equal(y, [1.0, 0.0])


def test_binomial_categorical_uses_category_order():
    s = pd.Series(pd.Categorical(["yes", "no", "yes"], categories=["yes", "no"]))
    np.testing.assert_array_equal(binomial().check_response(s, "resp"), [0.0, 1.0, 0.0])


def test_binomial_booleans():
    np.testing.assert_array_equal(
        binomial().check_response(pd.Series([True, False]), "r"), [1.0, 0.0]
    )


def test_binomial_three_levels_lists_levels():
    msg = "binomial: response column 'resp' must have two levels, found 3: ['a', 'b', 'c']"
    with pytest.raises(ValueError, match=re.escape(msg)):
        binomial().check_response(pd.Series(["b", "a", "c", "a"]), "resp")


# ---- response checks: the continuous families, negative binomial and beta-binomial --------------
ERRORS = [
    (
        gaussian(),
        [1.0, np.inf, np.nan],
        {},
        "gaussian: response column 'y' must be finite numbers; 2 row(s) are not (for example inf)",
    ),
    (
        students_t(),
        [1.0, np.nan],
        {},
        "students_t: response column 'y' must be finite numbers; 1 row(s) are not "
        "(for example nan)",
    ),
    (
        gamma(),
        [1.0, -1.0, 0.0, 2.5, np.nan],
        {},
        "gamma: response column 'y' must be positive numbers; 3 row(s) are not (for example -1)",
    ),
    (
        gamma(),
        [1.0, np.inf],
        {},
        "gamma: response column 'y' must be positive numbers; 1 row(s) are not (for example inf)",
    ),
    (
        beta(),
        [0.5, 0.0, 1.0, 1.2, -0.1],
        {},
        "beta: response column 'y' must be numbers strictly between 0 and 1; 4 row(s) are not "
        "(for example 0)",
    ),
    (
        beta(),
        [0.5, np.nan],
        {},
        "beta: response column 'y' must be numbers strictly between 0 and 1; 1 row(s) are not "
        "(for example nan)",
    ),
    (
        negative_binomial(),
        [0.0, 1.5, -2.0, 3.0],
        {},
        "negative_binomial: response column 'y' must be non-negative integer counts; "
        "2 row(s) are not (for example 1.5)",
    ),
    (
        negative_binomial(),
        [0.0, np.nan],
        {},
        "negative_binomial: response column 'y' must be non-negative integer counts; "
        "1 row(s) are not (for example nan)",
    ),
    (
        beta_binomial(),
        [0.0, 3.0, 6.0, 2.0],
        {"trials": np.array([5.0, 5.0, 5.0, 1.0])},
        "beta_binomial: response column 'y' must be at most the number of trials; "
        "2 row(s) are not (for example 6)",
    ),
    (
        beta_binomial(link="probit"),
        [0.0, 0.5, -1.0],
        {"trials": np.array([5.0, 5.0, 5.0])},
        "beta_binomial: response column 'y' must be non-negative integer counts; "
        "2 row(s) are not (for example 0.5)",
    ),
    (
        censored_normal(),
        [0.0, np.nan],
        {"censoring": np.array([0.0, 1.0])},
        "censored_normal: response column 'y' must be finite numbers; 1 row(s) are not "
        "(for example nan)",
    ),
]


@pytest.mark.parametrize(
    "family, values, data, message", ERRORS, ids=[f"{e[0].name}-{i}" for i, e in enumerate(ERRORS)]
)
def test_check_response_errors(family, values, data, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        family.check_response(pd.Series(values), "y", **data)


def test_censoring_codes_are_checked_by_the_family():
    # the family's per-row data check, which the design calls with the data frame's column
    msg = (
        "censoring column 'c' must be 0 (observed), 1 (left censored) or 2 (right censored); "
        "2 row(s) are not (for example 3)"
    )
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        censored_normal().check_data("censoring", np.array([0.0, 3.0, 0.5, 2.0]), "c")
    censored_normal().check_data("censoring", np.array([0.0, 1.0, 2.0]), "c")  # valid codes
    gaussian().check_data("trials", np.array([0.5]), "n")  # nothing to check by default


# the families of test_family_logp.py's CASES that take no per-row column
NUMERIC_ONLY = {
    "gaussian": gaussian(),
    "students_t-3": students_t(),
    "students_t-30": students_t(df=30),
    "gamma": gamma(),
    "beta": beta(),
    "negative_binomial": negative_binomial(),
}


@pytest.mark.parametrize("family", list(NUMERIC_ONLY.values()), ids=list(NUMERIC_ONLY))
def test_check_response_refuses_non_numeric(family):
    msg = f"{family.name}: response column 'y' must be numeric, got dtype "
    with pytest.raises(ValueError, match=re.escape(msg) + "(object|str)$"):
        family.check_response(pd.Series(["a", "b"]), "y")


@pytest.mark.parametrize(
    "family, values, data",
    [
        (gaussian(), [-1.5, 0, 2], {}),
        (students_t(df=5), [-1.5, 0, 2], {}),
        (gamma(), [0.1, 1, 20], {}),
        (beta(), [0.01, 0.5, 0.99], {}),
        (negative_binomial(), [0, 1, 7], {}),
        (beta_binomial(), [0, 1, 7], {"trials": np.array([0.0, 3.0, 7.0])}),
        (censored_normal(), [-1.5, 0, 2], {"censoring": np.array([0.0, 1.0, 2.0])}),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_check_response_accepts_valid_values_as_floats(family, values, data):
    out = family.check_response(pd.Series(values), "y", **data)
    assert out.dtype == float
    np.testing.assert_array_equal(out, values)


# ---- response checks: zero-inflated and hurdle families ------------------------------------------
def message(name, column, what, count, example):
    return (
        f"{name}: response column {column!r} must be {what}; {count} row(s) are not "
        f"(for example {example})"
    )


@pytest.mark.parametrize(
    "family", [zi_poisson(), zi_negative_binomial(), hurdle_poisson(), hurdle_negative_binomial()]
)
def test_count_families_reject_negative_and_non_integer(family):
    msg = message(family.name, "count", "non-negative integer counts", 2, "-1")
    with pytest.raises(ValueError, match=re.escape(msg)):
        family.check_response(pd.Series([0.0, -1.0, 3.0, 1.5]), "count")
    got = family.check_response(pd.Series([0, 3, 1]), "count")
    assert got.dtype == float and got.tolist() == [0.0, 3.0, 1.0]


def test_hurdle_beta_rejects_outside_unit_interval():
    msg = message("hurdle_beta", "y", "in [0, 1)", 2, "1")
    with pytest.raises(ValueError, match=re.escape(msg)):
        hurdle_beta().check_response(pd.Series([0.0, 0.5, 1.0, 1.2]), "y")
    msg = message("hurdle_beta", "y", "in [0, 1)", 1, "-0.1")
    with pytest.raises(ValueError, match=re.escape(msg)):
        hurdle_beta().check_response(pd.Series([-0.1, 0.5]), "y")
    msg = message("hurdle_beta", "y", "in [0, 1)", 1, "nan")
    with pytest.raises(ValueError, match=re.escape(msg)):
        hurdle_beta().check_response(pd.Series([0.2, np.nan]), "y")
    assert hurdle_beta().check_response(pd.Series([0.0, 0.25]), "y").tolist() == [0.0, 0.25]


def test_hurdle_lognormal_rejects_negative_and_infinite():
    msg = message("hurdle_lognormal", "amount", "non-negative numbers", 2, "-2.5")
    with pytest.raises(ValueError, match=re.escape(msg)):
        hurdle_lognormal().check_response(pd.Series([0.0, -2.5, 3.0, np.inf]), "amount")
    got = hurdle_lognormal().check_response(pd.Series([0.0, 2.5]), "amount")
    assert got.tolist() == [0.0, 2.5]


def test_zi_binomial_checks():
    fam = zi_binomial()
    msg = message("zi_binomial", "y", "0 or 1 (counts need trials=)", 1, "2")
    with pytest.raises(ValueError, match=re.escape(msg)):
        fam.check_response(pd.Series([0, 1, 2]), "y")
    assert fam.check_response(pd.Series([True, False]), "y").tolist() == [1.0, 0.0]
    trials = np.array([4.0, 4.0, 4.0])
    msg = message("zi_binomial", "y", "at most the number of trials", 1, "5")
    with pytest.raises(ValueError, match=re.escape(msg)):
        fam.check_response(pd.Series([0, 3, 5]), "y", trials=trials)
    msg = message("zi_binomial", "y", "non-negative integer counts", 1, "1.5")
    with pytest.raises(ValueError, match=re.escape(msg)):
        fam.check_response(pd.Series([0, 1.5, 2]), "y", trials=trials)
    assert fam.check_response(pd.Series([0, 4, 2]), "y", trials=trials).tolist() == [0, 4, 2]


@pytest.mark.parametrize("family", [zi_poisson(), zi_binomial(), hurdle_beta(), hurdle_lognormal()])
def test_non_numeric_response_refused(family):
    msg = f"{family.name}: response column 'y' must be numeric, got dtype "
    with pytest.raises(ValueError, match=re.escape(msg)):
        family.check_response(pd.Series(["a", "b"]), "y")
