"""Families: log densities against scipy, their derivatives against finite differences,
response checks and name/link look-ups."""

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest
from scipy import special, stats

from glmm_ppl.engine.pointwise import pointwise_derivatives
from glmm_ppl.families import binomial, get_family, poisson

LINKS = ["logit", "probit", "cloglog"]

# p = g⁻¹(η) with scipy, independently of the package's links
INVERSE = {
    "logit": special.expit,
    "probit": special.ndtr,
    "cloglog": lambda eta: -np.expm1(-np.exp(eta)),
}
# log p and log(1 − p) accurate in both tails (closed forms / scipy's log_ndtr)
LOG_P = {
    "logit": (lambda e: -np.logaddexp(0.0, -e), lambda e: -np.logaddexp(0.0, e)),
    "probit": (special.log_ndtr, lambda e: special.log_ndtr(-e)),
    "cloglog": (lambda e: np.log(-np.expm1(-np.exp(e))), lambda e: -np.exp(e)),
}

ETA = np.linspace(-30.0, 30.0, 601)
# Densities such as y·η − softplus(η) carry an absolute rounding error of a few ε·|η| (≤ 1e-14
# for |η| ≤ 30); log-likelihoods add these up, so absolute accuracy is what matters where
# log p is itself tiny (e.g. log p ≈ −1e-13 at η = 30).
ATOL = 1e-14


def logp_eval(family, y, eta):
    return family.logp(
        pt.as_tensor(np.asarray(y, float)), pt.as_tensor(np.asarray(eta, float)), []
    ).eval()


def kernel(family, y, eta):
    """(ℓ, ∂ℓ/∂η, ∂²ℓ/∂η²) from the package's compiled pointwise derivatives, shape of eta."""
    y = np.asarray(y, float)
    eta = np.broadcast_to(np.asarray(eta, float), (len(y), np.shape(eta)[-1])).copy()
    out = pointwise_derivatives(family)(y[:, None], eta, np.array([]))
    return out[0], out[1], out[2]


# ---- binomial log density -----------------------------------------------------------------------
@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("y", [0.0, 1.0])
def test_binomial_logp_equals_scipy_bernoulli(link, y):
    fam = binomial(link=link)
    p = INVERSE[link](ETA)
    ok = (p > 1e-6) & (1 - p > 1e-6)  # where scipy's p and 1 − p are computed accurately
    assert ok.sum() > 20
    expected = stats.bernoulli.logpmf(y, p[ok])
    got = logp_eval(fam, np.full(ok.sum(), y), ETA[ok])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=ATOL)
    # the jitted kernel the engine uses gives the same density
    lp, _, _ = kernel(fam, np.full(1, y), ETA[ok][None, :])
    np.testing.assert_allclose(lp[0], expected, rtol=1e-10, atol=ATOL)


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("y", [0.0, 1.0])
def test_binomial_logp_accurate_and_finite_in_tails(link, y):
    fam = binomial(link=link)
    expected = LOG_P[link][0 if y == 1 else 1](ETA)
    got = logp_eval(fam, np.full(len(ETA), y), ETA)
    assert np.all(np.isfinite(got)), ETA[~np.isfinite(got)]
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=ATOL)
    assert got[0] <= 0 and got[-1] <= 0


# ---- Poisson log density ---------------------------------------------------------------------
def test_poisson_logp_equals_scipy():
    y = np.arange(51.0)
    eta = np.linspace(-5.0, 5.0, 41)
    Y, E = np.meshgrid(y, eta, indexing="ij")
    expected = stats.poisson.logpmf(Y, np.exp(E))
    got = logp_eval(poisson(), Y.ravel(), E.ravel()).reshape(Y.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-10)  # measured ~1e-15
    lp, _, _ = kernel(poisson(), y, E)
    np.testing.assert_allclose(lp, expected, rtol=1e-10)


# ---- derivatives in η ------------------------------------------------------------------------
def check_derivatives(family, y, eta):
    """First and second derivatives of the kernel against central differences of its ℓ."""
    lp, d1, d2 = kernel(family, y, eta)
    h1, h2 = 1e-5, 1e-3
    lp_p1, _, _ = kernel(family, y, eta + h1)
    lp_m1, _, _ = kernel(family, y, eta - h1)
    lp_p2, _, _ = kernel(family, y, eta + h2)
    lp_m2, _, _ = kernel(family, y, eta - h2)
    fd1 = (lp_p1 - lp_m1) / (2 * h1)
    fd2 = (lp_p2 - 2 * lp + lp_m2) / h2**2
    # d1: truncation h²|ℓ'''|/6 ~ 1e-10, rounding ε|ℓ|/h ~ 1e-9
    np.testing.assert_allclose(d1, fd1, rtol=1e-6, atol=1e-7)
    # d2: truncation h²|ℓ''''|/12 ≲ 1e-5 (Poisson at η = 5), rounding 4ε|ℓ|/h² ~ 1e-7
    np.testing.assert_allclose(d2, fd2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("link", LINKS)
def test_binomial_derivatives_match_finite_differences(link):
    eta = np.linspace(-6.0, 6.0, 121)[None, :].repeat(2, axis=0)
    check_derivatives(binomial(link=link), np.array([0.0, 1.0]), eta)


def test_poisson_derivatives_match_finite_differences():
    y = np.arange(51.0)
    eta = np.linspace(-5.0, 5.0, 41)[None, :].repeat(len(y), axis=0)
    check_derivatives(poisson(), y, eta)
    _, d1, d2 = kernel(poisson(), y, eta)
    np.testing.assert_allclose(d1, y[:, None] - np.exp(eta), rtol=1e-12, atol=1e-12)  # closed form
    np.testing.assert_allclose(d2, -np.exp(eta), rtol=1e-12)


@pytest.mark.parametrize("link", LINKS)
def test_binomial_derivatives_finite_in_tails(link):
    _, d1, d2 = kernel(binomial(link=link), np.array([0.0, 1.0]), ETA[None, :].repeat(2, axis=0))
    assert np.all(np.isfinite(d1)), ETA[~np.isfinite(d1).all(axis=0)]
    assert np.all(np.isfinite(d2)), ETA[~np.isfinite(d2).all(axis=0)]
    assert np.all(d2 <= 1e-12)  # every link here gives a log-concave Bernoulli density


def test_logit_kernel_accurate_far_in_tails():
    # the compiled softplus and sigmoid share exp(−|η|): value and derivatives against closed
    # forms out to where exp underflows
    eta = np.concatenate([-np.logspace(3, -3, 40), [0.0], np.logspace(-3, 3, 40)])
    y = np.array([0.0, 1.0])
    lp, d1, d2 = kernel(binomial(), y, eta[None, :].repeat(2, axis=0))
    p, log_p, log_q = special.expit(eta), special.log_expit(eta), special.log_expit(-eta)
    eps = np.finfo(float).eps
    # y·η − softplus(η) cancels for y = 1, η ≫ 0: an absolute error of a few ε·|η| there
    lp_atol = 4 * eps * np.abs(eta)
    assert np.all(np.abs(lp[0] - log_q) <= 1e-14 * np.abs(log_q) + lp_atol)
    assert np.all(np.abs(lp[1] - log_p) <= 1e-14 * np.abs(log_p) + lp_atol)
    # y − sigmoid(η) and 1 − sigmoid(η) cancel the same way: an absolute error of an ε
    np.testing.assert_allclose(d1, [-p, special.expit(-eta)], rtol=1e-14, atol=2 * eps)
    np.testing.assert_allclose(d2[0], -p * special.expit(-eta), rtol=1e-13, atol=2 * eps)


def test_point_function_is_loaded_from_disk_by_a_new_process():
    code = (
        "from glmm_ppl.families import binomial; "
        "from glmm_ppl.engine.pointwise import _compile_point; "
        "print(_compile_point(binomial())[0].cache_hits)"
    )
    hits = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        for _ in range(2)
    ]
    assert hits[1] == "1"  # the first process compiled it (or found it), the second loaded it


# ---- response checks -------------------------------------------------------------------------
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


# ---- look-ups --------------------------------------------------------------------------------
def test_get_family_unknown_name_lists_valid_names():
    msg = (
        "unknown family 'gaussianx'; valid names: beta, beta_binomial, binomial, "
        "censored_normal, gamma, gaussian, hurdle_beta, hurdle_lognormal, "
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


def test_trigamma_in_compiled_kernels_matches_scipy():
    """ψ₁ runs in nopython mode in the family kernels (PyTensor's numba backend lacks it);
    checked through ∂²/∂x² of log Γ compiled the way the kernels are."""
    from glmm_ppl.families import custom_family

    fam = custom_family("lgamma", lambda y, eta, phis: pt.gammaln(eta))
    x = np.array([1e-3, 0.1, 0.5, 1.0, 2.5, 9.99, 10.0, 10.5, 50.0, 1e3, 1e6])
    out = pointwise_derivatives(fam)(np.zeros(len(x)), x[:, None], np.array([]))
    np.testing.assert_allclose(out[2][:, 0], special.polygamma(1, x), rtol=1e-13)


def test_get_family_by_name_and_object():
    assert get_family("poisson") == poisson()
    assert get_family("binomial") == binomial(link="logit")
    fam = binomial(link="probit")
    assert get_family(fam) is fam
    assert binomial(link="probit") != binomial()


def test_link_not_allowed_names_valid_links():
    msg = "unknown link 'log'; valid links here: logit, probit, cloglog"
    with pytest.raises(ValueError, match=re.escape(msg)):
        binomial(link="log")
