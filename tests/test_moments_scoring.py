"""Response means and variances of every family, and the scoring rules of discrete fits.

The moments are checked against Monte Carlo draws of each family's simulator (within 5
standard errors) and, for the discrete families, against sums over the pmf given by the
compiled log density and by scipy.stats.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import glmm_ppl as gp
from glmm_ppl.engine.pointwise import pointwise_derivatives
from glmm_ppl.families import (
    beta,
    beta_binomial,
    binomial,
    censored_normal,
    custom_family,
    gamma,
    gaussian,
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
from glmm_ppl.postfit.scoring_rules import _predictive_pmf, scoring_rules

N_DRAWS = 400_000
LOG = np.log

# (family, eta, phis, data): data holds eta_zi and the per-row columns (trials, censoring)
DISCRETE = [
    (binomial(), -1.0, [], {}),
    (binomial(link="cloglog"), 0.7, [], {}),
    (binomial().using_trials(), 0.4, [], {"trials": 9.0}),
    (binomial(link="probit").using_trials(), -0.6, [], {"trials": 5.0}),
    (poisson(), LOG(0.7), [], {}),
    (poisson(), LOG(6.0), [], {}),
    (negative_binomial(), LOG(3.0), [0.8], {}),
    (negative_binomial(), LOG(10.0), [5.0], {}),
    (zi_poisson(), LOG(3.0), [], {"eta_zi": -0.5}),
    (zi_poisson(), LOG(0.5), [], {"eta_zi": 1.0}),
    (zi_negative_binomial(), LOG(4.0), [1.5], {"eta_zi": 0.3}),
    (zi_negative_binomial(), LOG(0.8), [0.6], {"eta_zi": -1.2}),
    (zi_binomial(), 0.4, [], {"eta_zi": -1.0}),
    (zi_binomial().using_trials(), -0.2, [], {"eta_zi": 0.5, "trials": 6.0}),
    (zi_binomial(link="probit").using_trials(), 0.8, [], {"eta_zi": -0.3, "trials": 4.0}),
    (hurdle_poisson(), LOG(2.0), [], {"eta_zi": -0.3}),
    (hurdle_poisson(), LOG(0.2), [], {"eta_zi": 0.5}),
    (hurdle_negative_binomial(), LOG(3.0), [0.7], {"eta_zi": 0.0}),
    (hurdle_negative_binomial(), LOG(0.3), [2.0], {"eta_zi": -1.0}),
    (beta_binomial(), 0.3, [3.0], {"trials": 10.0}),
    (beta_binomial(link="cloglog"), -0.5, [0.7], {"trials": 4.0}),
]
CONTINUOUS = [
    (gaussian(), 1.3, [2.0], {}),
    (students_t(df=10), 0.5, [1.5], {}),
    (gamma(), LOG(2.0), [3.0], {}),
    (gamma(), LOG(0.3), [0.8], {}),
    (beta(), -0.8, [5.0], {}),
    (censored_normal(), -1.0, [0.7], {"censoring": 0.0}),
    (hurdle_lognormal(), 0.2, [0.6], {"eta_zi": -0.4}),
    (hurdle_beta(), 0.5, [4.0], {"eta_zi": 0.2}),
    (hurdle_beta(), -1.5, [1.2], {"eta_zi": 1.0}),
]


def _label(case) -> str:
    family, eta, phis, data = case
    extras = [f"{v:g}" for v in phis] + [f"{k}={v:g}" for k, v in data.items()]
    return f"{family!r}-{eta:.3g}-" + ",".join(extras)


def _moments(family, eta, phis, data) -> tuple[float, float]:
    return (
        float(family.response_mean(eta, phis, **data)),
        float(family.response_variance(eta, phis, **data)),
    )


# ---- Monte Carlo ------------------------------------------------------------------------
@pytest.mark.parametrize("case", DISCRETE + CONTINUOUS, ids=_label)
def test_moments_match_monte_carlo(case):
    family, eta, phis, data = case
    rng = np.random.default_rng(20240611)
    columns = {k: np.full(N_DRAWS, v) for k, v in data.items()}
    y = family.simulate(np.full(N_DRAWS, eta), np.asarray(phis, float), rng, **columns)
    mean, var = _moments(family, eta, phis, data)
    m = y.mean()
    s2 = y.var(ddof=1)
    m4 = np.mean((y - m) ** 4)
    se_mean = np.sqrt(s2 / N_DRAWS)
    se_var = np.sqrt((m4 - s2**2) / N_DRAWS)  # the standard error of the sample variance
    assert abs(m - mean) < 5 * se_mean, (m, mean, se_mean)
    assert abs(s2 - var) < 5 * se_var, (s2, var, se_var)


# ---- exact sums over the pmf ------------------------------------------------------------
def _kernel_pmf(family, eta, phis, data, top: int) -> tuple[np.ndarray, np.ndarray]:
    """``(k, p(k))`` for ``k = 0..top`` from the compiled log density."""
    k = np.arange(top + 1, dtype=float)
    Y = np.column_stack([k] + [np.full_like(k, data[name]) for name in family.aux_names])
    etas = [eta] + ([data["eta_zi"]] if family.zero_part else [])
    eta_tab = np.tile(np.asarray(etas, float), (len(k), 1))[:, None, :]
    lp = pointwise_derivatives(family)(Y, eta_tab, np.asarray(phis, float))[0][:, 0]
    return k, np.exp(lp)


def _top(family, data) -> int:
    """The top of the support: the trials, 1 for 0/1 responses, else far in the tail."""
    if "trials" in data:
        return int(data["trials"])
    return 1 if isinstance(family, (binomial, zi_binomial)) else 3000


@pytest.mark.parametrize(
    "case",
    DISCRETE
    + [
        (hurdle_poisson(), LOG(1e-6), [], {"eta_zi": -40.0}),
        (hurdle_negative_binomial(), LOG(1e-6), [500.0], {"eta_zi": -40.0}),
        (hurdle_negative_binomial(), LOG(2e-5), [0.05], {"eta_zi": -3.0}),
        (zi_binomial(link="cloglog").using_trials(), 3.5, [], {"eta_zi": 2.0, "trials": 8.0}),
        (binomial(link="probit"), 6.0, [], {}),
    ],
    ids=_label,
)
def test_moments_match_kernel_pmf(case):
    family, eta, phis, data = case
    k, p = _kernel_pmf(family, eta, phis, data, _top(family, data))
    assert abs(p.sum() - 1.0) < 1e-12
    exact_mean = np.sum(k * p)
    exact_var = np.sum((k - exact_mean) ** 2 * p)
    mean, var = _moments(family, eta, phis, data)
    np.testing.assert_allclose(mean, exact_mean, rtol=1e-8, atol=0)
    np.testing.assert_allclose(var, exact_var, rtol=1e-8, atol=0)


def _scipy_pmf(family, eta, phis, data, k):
    """The pmf of a discrete family written with scipy.stats, independently of the kernel."""
    name = family.name
    pi = special.expit(data.get("eta_zi", 0.0))
    if name.endswith("binomial") and "negative" not in name:
        p = {"logit": special.expit, "probit": special.ndtr}.get(
            family.link.name, lambda e: -np.expm1(-np.exp(e))
        )(eta)
        n = data.get("trials", 1.0)
        if name == "beta_binomial":
            return stats.betabinom.pmf(k, n, p * phis[0], (1 - p) * phis[0])
        f = stats.binom.pmf(k, n, p)
    elif "negative_binomial" in name:
        size = phis[0]
        f = stats.nbinom.pmf(k, size, size / (size + np.exp(eta)))
    else:
        f = stats.poisson.pmf(k, np.exp(eta))
    if name.startswith("zi_"):
        return np.where(k == 0, pi, 0.0) + (1 - pi) * f
    if name.startswith("hurdle_"):
        return np.where(k == 0, pi, (1 - pi) * f / (1 - f[0]))
    return f


@pytest.mark.parametrize("case", DISCRETE, ids=_label)
def test_moments_match_scipy_pmf(case):
    family, eta, phis, data = case
    k = np.arange(_top(family, data) + 1, dtype=float)
    p = _scipy_pmf(family, eta, phis, data, k)
    exact_mean = np.sum(k * p)
    exact_var = np.sum((k - exact_mean) ** 2 * p)
    mean, var = _moments(family, eta, phis, data)
    np.testing.assert_allclose(mean, exact_mean, rtol=1e-8, atol=0)
    np.testing.assert_allclose(var, exact_var, rtol=1e-8, atol=0)
    np.testing.assert_allclose(
        _kernel_pmf(family, eta, phis, data, _top(family, data))[1], p, atol=1e-12
    )


def _scipy_continuous(family, eta, phis, data):
    """The main part of a continuous family as a frozen scipy.stats distribution."""
    name = family.name
    if name in ("gaussian", "censored_normal"):
        return stats.norm(eta, phis[0])
    if name == "students_t":
        return stats.t(family.df, eta, phis[0])
    if name == "gamma":
        return stats.gamma(phis[0], scale=np.exp(eta) / phis[0])
    if name == "hurdle_lognormal":
        return stats.lognorm(phis[0], scale=np.exp(eta))
    mu = special.expit(eta)  # beta and hurdle_beta
    return stats.beta(mu * phis[0], (1 - mu) * phis[0])


@pytest.mark.parametrize("case", CONTINUOUS, ids=_label)
def test_continuous_moments_match_scipy(case):
    family, eta, phis, data = case
    m, v = (float(x) for x in _scipy_continuous(family, eta, phis, data).stats("mv"))
    if family.zero_part:  # a mixture of the point mass at 0 and the main part
        keep = special.expit(-data["eta_zi"])
        m, v = keep * m, keep * (v + m**2) - (keep * m) ** 2
    mean, var = _moments(family, eta, phis, data)
    np.testing.assert_allclose([mean, var], [m, v], rtol=1e-10)


# ---- other properties of the variances --------------------------------------------------
def test_variances_broadcast_over_rows():
    eta = np.array([-1.0, 0.0, 2.0])
    assert zi_poisson().response_variance(eta, [], eta_zi=np.zeros(3)).shape == (3,)
    assert gaussian().response_variance(eta, [1.0]).shape == (3,)
    trials = np.array([1.0, 4.0, 10.0])
    v = binomial().using_trials().response_variance(eta, [], trials=trials)
    np.testing.assert_allclose(v, trials * special.expit(eta) * special.expit(-eta))


@pytest.mark.parametrize("df", [0.5, 1.0, 2.0])
def test_students_t_variance_is_infinite_for_small_df(df):
    assert np.all(np.isinf(students_t(df=df).response_variance(np.zeros(2), [1.0])))


def test_students_t_variance():
    np.testing.assert_allclose(students_t(df=5).response_variance(0.0, [2.0]), 4.0 * 5 / 3)


def test_variance_not_defined_names_the_family():
    fam = custom_family("my_family", lambda y, eta, phis: -((y - eta) ** 2))
    with pytest.raises(NotImplementedError, match="the my_family family has no response var"):
        fam.response_variance(0.0, [])


def test_binary_variance_accurate_in_the_upper_tail():
    # 1 − p by the link's own complement: no cancellation where p rounds to 1
    for link, q in [
        ("logit", special.expit(-40.0)),
        ("probit", special.ndtr(-9.0)),
        ("cloglog", np.exp(-np.exp(3.5))),
    ]:
        eta = {"logit": 40.0, "probit": 9.0, "cloglog": 3.5}[link]
        v = binomial(link=link).response_variance(eta, [])
        np.testing.assert_allclose(v, q * (1 - q), rtol=1e-12)


# ---- scoring rules ----------------------------------------------------------------------
def _eta_by_hand(fit, data: pd.DataFrame) -> np.ndarray:
    """``Xβ̂ + b̂`` from the data columns of ``y ~ sex * time`` and the fit's modes."""
    beta_hat = fit.fixef()
    female = (data["sex"] == "female").to_numpy(float)
    time = data["time"].to_numpy(float)
    fixed = (
        beta_hat["(Intercept)"]
        + beta_hat["sexfemale"] * female
        + beta_hat["time"] * time
        + beta_hat["sexfemale:time"] * female * time
    )
    modes = pd.Series(fit.modes[:, 0], index=fit.design.groups)
    return fixed + modes.reindex(data["id"]).fillna(0.0).to_numpy()


@pytest.fixture(scope="module")
def binary_scores(fm1):
    return scoring_rules(fm1)


@pytest.fixture(scope="module")
def poisson_scores(gm1):
    return scoring_rules(gm1)


def test_scores_are_finite_and_bounded(binary_scores, poisson_scores):
    for scores, nobs in [(binary_scores, 800), (poisson_scores, 800)]:
        assert scores.columns.tolist() == ["id", "logarithmic", "quadratic", "spherical"]
        assert len(scores) == nobs
        values = scores[["logarithmic", "quadratic", "spherical"]].to_numpy()
        assert np.all(np.isfinite(values))
        assert np.all(scores["logarithmic"] <= 0)
        assert np.all(scores["quadratic"] <= 1 + 1e-12)
        assert np.all(scores["spherical"] <= 1 + 1e-12)
        assert np.all(scores["spherical"] >= 0)


def test_binary_scores_match_scipy(fm1, binary, binary_scores):
    data = binary.loc[binary_scores.index]
    p = special.expit(_eta_by_hand(fm1, data))
    y = data["y"].to_numpy()
    py = stats.bernoulli.pmf(y, p)
    np.testing.assert_allclose(
        binary_scores["logarithmic"], stats.bernoulli.logpmf(y, p), rtol=1e-10, atol=1e-12
    )
    sum_sq = p**2 + (1 - p) ** 2
    np.testing.assert_allclose(binary_scores["quadratic"], 2 * py - sum_sq, atol=1e-12)
    np.testing.assert_allclose(binary_scores["spherical"], py / np.sqrt(sum_sq), atol=1e-12)
    assert (binary_scores["id"].to_numpy() == data["id"].to_numpy()).all()


def test_poisson_scores_match_scipy(gm1, poisson, poisson_scores):
    data = poisson.loc[poisson_scores.index]
    mu = np.exp(_eta_by_hand(gm1, data))
    y = data["y"].to_numpy()
    np.testing.assert_allclose(
        poisson_scores["logarithmic"], stats.poisson.logpmf(y, mu), rtol=1e-10, atol=1e-12
    )
    top = max(100, 3 * int(y.max()))
    pmf = stats.poisson.pmf(np.arange(top + 1)[None, :], mu[:, None])
    sum_sq = np.sum(pmf**2, axis=1)
    py = stats.poisson.pmf(y, mu)
    np.testing.assert_allclose(poisson_scores["quadratic"], 2 * py - sum_sq, atol=1e-12)
    np.testing.assert_allclose(poisson_scores["spherical"], py / np.sqrt(sum_sq), atol=1e-10)


@pytest.mark.parametrize("fit_name", ["fm1", "gm1"])
def test_predictive_pmf_sums_to_one(fit_name, request):
    fit = request.getfixturevalue(fit_name)
    pmf = _predictive_pmf(fit)
    assert pmf.shape[0] == fit.nobs
    assert np.all(pmf.to_numpy() >= 0)
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, rtol=0, atol=1e-10)


def test_new_groups_score_at_the_fixed_part(gm1, poisson):
    newdata = poisson.iloc[:12].copy()
    newdata["id"] = newdata["id"] + 10_000
    scores = scoring_rules(gm1, newdata, max_count=3000)
    assert scores.index.equals(newdata.index)
    mu = np.exp(_eta_by_hand(gm1, newdata))  # the modes of unknown ids are 0
    np.testing.assert_allclose(
        scores["logarithmic"], stats.poisson.logpmf(newdata["y"], mu), rtol=1e-10
    )
    known = scoring_rules(gm1, poisson.iloc[:12])
    np.testing.assert_allclose(
        known["logarithmic"],
        stats.poisson.logpmf(poisson["y"].iloc[:12], np.exp(_eta_by_hand(gm1, poisson.iloc[:12]))),
        rtol=1e-10,
    )


def test_scoring_rules_refuse_continuous_families(poisson):
    data = poisson.assign(log_y=np.log1p(poisson["y"]))
    fit = gp.mixed_model("log_y ~ sex * time", "~ 1 | id", data, "gaussian")
    message = (
        "scoring_rules: the gaussian family is not discrete; scoring rules are for discrete "
        "families (binomial, poisson, negative_binomial, zi_poisson, zi_negative_binomial, "
        "zi_binomial, hurdle_poisson, hurdle_negative_binomial, beta_binomial)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        scoring_rules(fit)


def test_scoring_rules_need_the_response(fm1, binary):
    with pytest.raises(ValueError, match="the response is needed"):
        scoring_rules(fm1, binary.drop(columns="y"))


@pytest.mark.parametrize("bad", [-1, 2.5, True, "10"])
def test_max_count_is_checked(gm1, bad):
    with pytest.raises(ValueError, match="max_count must be a non-negative integer"):
        scoring_rules(gm1, max_count=bad)


def test_small_max_count_warns(gm1):
    with pytest.warns(UserWarning, match="give a larger max_count"):
        scores = scoring_rules(gm1, max_count=5)
    reference = scoring_rules(gm1)
    np.testing.assert_allclose(scores["logarithmic"], reference["logarithmic"])
