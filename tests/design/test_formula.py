"""One formula with the random effects in it (bambi and lme4 style)."""

import numpy as np
import pytest

import glmm_ppl as gp
from glmm_ppl.design.formula import split_bambi_formula

FIXED = "y ~ sex * time"


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("y ~ sex * time + (time | id)", ("y ~ sex * time", "~ time | id")),
        ("y ~ sex * time + (1 | id)", ("y ~ sex * time", "~ 1 | id")),
        ("y ~ sex * time + (1|id)", ("y ~ sex * time", "~ 1 | id")),
        ("y~sex*time+(time||id)", ("y ~ sex*time", "~ time || id")),
        ("y ~ ( time || id ) + sex", ("y ~ sex", "~ time || id")),
        ("y ~ sex + (0 + time | id) + time", ("y ~ sex + time", "~ 0 + time | id")),
        ("y ~ (1 | id)", ("y ~ 1", "~ 1 | id")),
        ("y ~ 0 + (1 | id)", ("y ~ 0", "~ 1 | id")),
        ("y ~ x + (log(x) + I(x ** 2) | g)", ("y ~ x", "~ log(x) + I(x ** 2) | g")),
        (
            "p(s, n) ~ x + offset(log(e)) + (1 | g)",
            ("p(s, n) ~ x + offset(log(e))", "~ 1 | g"),
        ),
        ("y ~ sex * time", ("y ~ sex * time", None)),
        ("y ~ I(a | b) + x", ("y ~ I(a | b) + x", None)),  # a function call, not a term
        # nested groupings and several factors: lme4's terms, kept as written
        ("y ~ x + ses + (1 | school/class)", ("y ~ x + ses", "(1 | school/class)")),
        ("y ~ x + (1|a) + (1|b)", ("y ~ x", "(1|a) + (1|b)")),
        ("y ~ (x | a) + x + (1 | a:b)", ("y ~ x", "(x | a) + (1 | a:b)")),
        ("y ~ x + (1 | a:b)", ("y ~ x", "~ 1 | a:b")),  # one factor: the combinations
    ],
)
def test_split(formula, expected):
    assert split_bambi_formula(formula) == expected


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        (
            "y ~ x + (1 | id) + (0 + time | id)",
            "several random-effects terms for id: write them as one, '(x | id)' (correlated "
            "random effects) or '(x || id)' (independent: '(1 | id) + (0 + x | id)' is "
            "'(x || id)')",
        ),
        (
            "y ~ x + (1 | a/b) + (x | a)",
            "several random-effects terms for a: write them as one, '(x | a)' (correlated "
            "random effects) or '(x || a)' (independent: '(1 | a) + (0 + x | a)' is '(x || a)')",
        ),
        (
            "y ~ x * (1 | g)",
            "the random-effects term (1 | g) must be added to the fixed-effects terms, as in "
            "'y ~ x + (1 | g)'; got 'y ~ x * (1 | g)'",
        ),
        (
            "y ~ x + (1 | a+b)",
            "the grouping of '(1 | a+b)' must be a column of data, or columns joined by '/' "
            "(nested) or ':' (their combinations), got 'a+b'",
        ),
        (
            "y ~ x + ( | g)",
            "the random-effects term '( | g)' needs effects and a grouping column: write "
            "'~ x | g' (correlated), '~ x || g' (independent), '~ 1 | school/class' (nested) or "
            "lme4's '(x | school) + (1 | class)'",
        ),
        ("y ~ x + (1 | g", "unbalanced parentheses in 'x + (1 | g'"),
    ],
)
def test_split_errors(formula, message):
    with pytest.raises(ValueError) as err:
        split_bambi_formula(formula)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("random", "term"), [("~ 1 | id", "(1|id)"), ("~ time || id", "(time || id)")]
)
def test_single_formula_fit_equals_two_formulas(binary, random, term):
    two = gp.mixed_model(FIXED, random, binary, "binomial")
    formula = f"{FIXED} + {term}"
    one = gp.mixed_model(formula, data=binary, family="bernoulli")
    np.testing.assert_allclose(one.theta, two.theta, rtol=0, atol=1e-8)
    assert one.loglik == pytest.approx(two.loglik, abs=1e-8)
    assert (one.design.fixed, one.design.random) == (FIXED, random)
    # positionally, bambi's order: formula, data, family
    positional = gp.mixed_model(formula, binary, "binomial")
    np.testing.assert_allclose(positional.theta, two.theta, rtol=0, atol=1e-8)


def test_correlated_single_formula(binary, fm3):
    with pytest.warns(gp.SingularFitWarning):
        one = gp.mixed_model(f"{FIXED} + (time | id)", data=binary, family="binomial")
    np.testing.assert_allclose(one.theta, fm3.theta, rtol=0, atol=1e-8)


def test_formula_errors(binary):
    with pytest.raises(ValueError) as err:
        gp.mixed_model(FIXED, data=binary, family="binomial")
    assert str(err.value) == (
        "no random effects in 'y ~ sex * time': add them to the formula as bambi does "
        "('y ~ x + (1 | g)') or give them as random ('~ 1 | g')"
    )
    with pytest.raises(ValueError) as err:
        gp.mixed_model(f"{FIXED} + (1 | id)", "~ 1 | id", binary, "binomial")
    assert str(err.value) == (
        "random effects given twice, in the formula 'y ~ sex * time + (1 | id)' and as "
        "random='~ 1 | id': give them in one place"
    )
    with pytest.raises(ValueError) as err:
        gp.mixed_model(f"{FIXED} + (1 | id) + (0 + time | id)", data=binary, family="binomial")
    assert str(err.value).startswith("several random-effects terms for id:")
    with pytest.raises(TypeError) as err:
        gp.mixed_model(f"{FIXED} + (1 | id)", family="binomial")
    assert str(err.value) == "mixed_model() needs data, a pandas DataFrame"
    with pytest.raises(TypeError) as err:
        gp.mixed_model(f"{FIXED} + (1 | id)", data=binary)
    assert str(err.value) == (
        "mixed_model() needs a family, e.g. family='binomial' (see glmm_ppl.families)"
    )
    with pytest.raises(ValueError, match="fixed must be a formula 'response ~ terms'"):
        gp.mixed_model("sex * time", data=binary, family="binomial")
