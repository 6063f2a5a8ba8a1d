"""What a family says about its responses: the draws of its simulator, its response mean and
variance, and its starting values of the extra parameters.

Simulators are checked by the moments of 200,000 draws (within 5 standard errors) against
scipy.stats and, for the zero-inflated and hurdle families, against P(y = 0), P(y = 1) and the
mean in closed form. ``response_mean`` and ``response_variance`` are checked against Monte Carlo
draws of each family's simulator and, for the discrete families, against sums over the pmf
given by the compiled log density and by scipy.stats. Starting values are checked on simulated
and degenerate data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

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

# p = g⁻¹(η) and 1 − p with scipy, independently of the package's links
P_AND_Q = {
    "logit": lambda e: (special.expit(e), special.expit(-e)),
    "probit": lambda e: (special.ndtr(e), special.ndtr(-e)),
    "cloglog": lambda e: (-np.expm1(-np.exp(e)), np.exp(-np.exp(e))),
}


# ==== simulators: the continuous families, negative binomial and beta-binomial ====================
def _bb(link, eta, phi, n):
    p, q = P_AND_Q[link](eta)
    return stats.betabinom(n, p * phi, q * phi)


SIMULATIONS = [
    (gaussian(), 1.3, 2.0, {}, stats.norm(1.3, 2.0)),
    (students_t(df=10), -0.5, 1.5, {}, stats.t(10, -0.5, 1.5)),
    (gamma(), 0.7, 3.0, {}, stats.gamma(3.0, scale=np.exp(0.7) / 3.0)),
    (beta(), 0.8, 5.0, {}, stats.beta(5 * special.expit(0.8), 5 * special.expit(-0.8))),
    (negative_binomial(), 1.5, 2.0, {}, stats.nbinom(2.0, 2.0 / (2.0 + np.exp(1.5)))),
    (beta_binomial(), 0.3, 4.0, {"trials": 12.0}, _bb("logit", 0.3, 4.0, 12)),
    (beta_binomial(link="cloglog"), -0.4, 1.5, {"trials": 7.0}, _bb("cloglog", -0.4, 1.5, 7)),
    (censored_normal(), 0.2, 0.7, {"censoring": 0.0}, stats.norm(0.2, 0.7)),
]


@pytest.mark.parametrize(
    "family, eta, phi, data, dist",
    SIMULATIONS,
    ids=[f"{s[0].name}-{s[0].link.name}" for s in SIMULATIONS],
)
def test_simulate_moments(family, eta, phi, data, dist):
    n = 200_000
    rng = np.random.default_rng(20240601)
    data = {k: np.full(n, v) for k, v in data.items()}
    draws = family.simulate(np.full(n, eta), np.array([phi]), rng, **data)
    assert draws.shape == (n,) and np.all(np.isfinite(draws))
    mean, var, kurt = (float(v) for v in dist.stats("mvk"))
    se_mean = np.sqrt(var / n)
    se_var = var * np.sqrt((kurt + 2.0) / n)  # sd of the sample variance: (μ₄ − σ⁴)/n
    assert abs(draws.mean() - mean) < 5 * se_mean
    assert abs(draws.var(ddof=1) - var) < 5 * se_var


# ==== simulators: zero-inflated and hurdle families ===============================================
N_SIM = 200_000


def nb_p0(mu, size):
    return (size / (size + mu)) ** size


def theory(family, eta, eta_zi, phi, n=1):
    """(P(y = 0), mean, P(y = 1) or None) of the family."""
    pi = special.expit(eta_zi)
    mu = np.exp(eta)
    name = family.name
    if name == "zi_poisson":
        return pi + (1 - pi) * np.exp(-mu), (1 - pi) * mu, (1 - pi) * mu * np.exp(-mu)
    if name == "zi_negative_binomial":
        p1 = (1 - pi) * nb_p0(mu, phi) * phi * mu / (phi + mu)
        return pi + (1 - pi) * nb_p0(mu, phi), (1 - pi) * mu, p1
    if name == "zi_binomial":
        p = family.link.inverse(np.asarray(eta))
        p1 = (1 - pi) * n * p * (1 - p) ** (n - 1)
        return pi + (1 - pi) * (1 - p) ** n, (1 - pi) * n * p, p1
    if name == "hurdle_poisson":
        c = -np.expm1(-mu)
        return pi, (1 - pi) * mu / c, (1 - pi) * mu * np.exp(-mu) / c
    if name == "hurdle_negative_binomial":
        c = 1 - nb_p0(mu, phi)
        return pi, (1 - pi) * mu / c, (1 - pi) * nb_p0(mu, phi) * phi * mu / (phi + mu) / c
    if name == "hurdle_lognormal":
        return pi, (1 - pi) * np.exp(eta + phi**2 / 2), None
    if name == "hurdle_beta":
        return pi, (1 - pi) * special.expit(eta), None
    raise AssertionError(name)


SIM_CASES = [
    (zi_poisson(), np.log(2.5), -0.5, None, None),
    (zi_poisson(), -3.0, 1.0, None, None),
    (zi_negative_binomial(), np.log(4.0), 0.3, 1.5, None),
    (zi_binomial(), 0.4, -1.0, None, None),
    (zi_binomial(link="probit"), 0.3, 0.2, None, 8),
    (zi_binomial(link="cloglog"), -1.0, -0.5, None, 5),
    (hurdle_poisson(), np.log(1.5), 0.4, None, None),
    (hurdle_poisson(), -4.0, -0.3, None, None),
    (hurdle_poisson(), np.log(30.0), -0.3, None, None),
    (hurdle_negative_binomial(), np.log(3.0), -0.2, 0.8, None),
    (hurdle_negative_binomial(), -3.0, 0.5, 0.3, None),
    (hurdle_negative_binomial(), np.log(20.0), 0.5, 40.0, None),
    (hurdle_lognormal(), 0.7, 0.1, 0.6, None),
    (hurdle_beta(), 0.5, -0.4, 6.0, None),
    (hurdle_beta(), -2.0, 0.4, 0.8, None),
]


@pytest.mark.parametrize("family, eta, eta_zi, phi, n", SIM_CASES)
def test_simulate_matches_theory(family, eta, eta_zi, phi, n):
    rng = np.random.default_rng(20240611)
    phis = np.array([] if phi is None else [phi])
    data = {} if n is None else {"trials": np.full(N_SIM, n)}
    y = family.simulate(np.full(N_SIM, eta), phis, rng, eta_zi=np.full(N_SIM, eta_zi), **data)
    assert y.shape == (N_SIM,) and y.dtype == float
    family.check_response(pd.Series(y), "y", **data)  # every draw is a valid response
    p0, mean, p1 = theory(family, eta, eta_zi, phi, 1 if n is None else n)
    se0 = np.sqrt(p0 * (1 - p0) / N_SIM)
    assert abs(np.mean(y == 0) - p0) < 5 * se0
    assert abs(y.mean() - mean) < 5 * y.std() / np.sqrt(N_SIM)
    if p1 is not None:
        assert abs(np.mean(y == 1) - p1) < 5 * np.sqrt(p1 * (1 - p1) / N_SIM)


def test_simulate_broadcasts_and_is_seeded():
    eta = np.linspace(-1.0, 1.0, 10)
    a = hurdle_negative_binomial().simulate(eta, np.array([2.0]), np.random.default_rng(1), 0.0)
    b = hurdle_negative_binomial().simulate(eta, np.array([2.0]), np.random.default_rng(1), 0.0)
    assert a.shape == (10,)
    np.testing.assert_array_equal(a, b)


def test_zero_truncated_nb_distribution():
    """Frequencies of 1…5 of the zero-truncated NB draws against NB(y)/(1 − NB(0))."""
    mu, size = 2.0, 0.7
    y = hurdle_negative_binomial().simulate(
        np.full(N_SIM, np.log(mu)), np.array([size]), np.random.default_rng(7), eta_zi=-40.0
    )
    assert y.min() >= 1
    p = stats.nbinom.pmf(np.arange(1, 6), size, size / (size + mu)) / (1 - nb_p0(mu, size))
    freq = np.array([np.mean(y == k) for k in range(1, 6)])
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / N_SIM))


# ==== response means and variances ================================================================
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


# ==== starting values =============================================================================
STARTS = [
    (gaussian(), 0.0, [0.2, 3.0], {}),
    (students_t(df=4), 0.0, [0.2, 3.0], {}),
    (censored_normal(), 0.0, [0.5, 2.0], {"censoring": 0.0}),
    (gamma(), 1.0, [0.5, 2.0, 30.0], {}),
    (beta(), 0.5, [1.0, 10.0, 100.0], {}),
    (negative_binomial(), 1.5, [0.5, 3.0, 20.0], {}),
    (beta_binomial(), 0.0, [0.5, 3.0, 20.0], {"trials": 10.0}),
]


@pytest.mark.parametrize("family, eta0, truths, data", STARTS, ids=[s[0].name for s in STARTS])
def test_initial_phis_within_factor_2_of_truth(family, eta0, truths, data):
    rng = np.random.default_rng(7)
    n = 5000
    eta = eta0 + 0.5 * rng.standard_normal(n)
    data = {k: np.full(n, v) for k, v in data.items()}
    for truth in truths:
        y = family.simulate(eta, np.array([truth]), rng, **data)
        extra = {"trials": data["trials"]} if "trials" in data else {}
        start = family.initial_phis(y, family.mean(eta), **extra)
        assert start.shape == (1,)
        assert truth / 2 < start[0] < truth * 2, (truth, start)


# the families of test_family_logp.py's CASES (each has one extra parameter)
PHI_FAMILIES = {
    "gaussian": gaussian(),
    "students_t-3": students_t(),
    "students_t-30": students_t(df=30),
    "gamma": gamma(),
    "beta": beta(),
    "negative_binomial": negative_binomial(),
    "beta_binomial-logit": beta_binomial(link="logit"),
    "beta_binomial-probit": beta_binomial(link="probit"),
    "beta_binomial-cloglog": beta_binomial(link="cloglog"),
    "censored_normal": censored_normal(),
}


@pytest.mark.parametrize("family", list(PHI_FAMILIES.values()), ids=list(PHI_FAMILIES))
def test_initial_phis_finite_positive_on_degenerate_data(family):
    for y, mu in [
        (np.ones(5), np.ones(5)),
        (np.array([]), np.array([])),
        (np.zeros(3), np.full(3, 0.5)),
    ]:
        start = family.initial_phis(y, mu)
        assert start.shape == (1,) and np.isfinite(start[0]) and start[0] > 0


@pytest.mark.parametrize(
    "family, phi",
    [
        (zi_negative_binomial(), 2.0),
        (hurdle_negative_binomial(), 2.0),
        (hurdle_lognormal(), 0.8),
        (hurdle_beta(), 5.0),
    ],
)
def test_initial_phis_finite_positive_and_sensible(family, phi):
    rng = np.random.default_rng(3)
    eta = 0.5 if family.name != "hurdle_beta" else 0.3
    y = family.simulate(np.full(20_000, eta), np.array([phi]), rng, eta_zi=-0.5)
    start = family.initial_phis(y, np.full(len(y), y.mean()))
    assert start.shape == (1,) and np.all(np.isfinite(start)) and start[0] > 0
    assert phi / 1.25 < start[0] < phi * 1.25
    for degenerate in (np.zeros(10), np.array([0.0, 0.5]), np.full(5, 0.5)):
        start = family.initial_phis(degenerate, np.full(len(degenerate), 0.25))
        assert np.all(np.isfinite(start)) and 1e-3 <= start[0] <= 1e3
