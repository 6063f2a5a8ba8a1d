"""Every family fitted to data simulated (with numpy) from known parameters.

For each family of :data:`glmm_ppl.families.FAMILIES` the data are drawn from the model with a
seeded generator, independently of the families' ``simulate`` methods, and the fit is checked
two ways:

a. it converges and every parameter (fixed effects of both parts, ``log SD`` of the random
   intercept, ``log φ``) is within 4 standard errors of the truth, on the scale of ``θ``;
b. its log-likelihood equals an independent integration at the fitted parameters: per group,
   ``∫ Π_j p(y_ij | η_ij + b) N(b; 0, σ_b²) db`` by scipy's adaptive Gauss–Kronrod quadrature
   with densities from ``scipy.stats``.

A zero-inflated Poisson model with a random intercept in each part is checked against a dense
2-D Gauss–Hermite rule (40 × 40 points, centred and scaled at each group's mode found by
``scipy.optimize``), and the gamma model on which GLMMadaptive 0.9-7 fails is fitted without
starting values.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special, stats

import glmm_ppl as gp
from glmm_ppl.families import FAMILIES

N_GROUPS = 150
SD_B = 0.6
BETA = np.array([0.5, 0.4])  # main part: intercept, slope of x
GAMMA = np.array([-0.8, 0.6])  # zero part (logit): intercept, slope of x


# ---- simulation (numpy only) ------------------------------------------------------------------
def _layout(rng, n_groups=N_GROUPS, sizes=(5, 9)):
    """Group codes (5 to 8 rows per group), a N(0, 1) covariate and the random intercepts."""
    size = rng.integers(*sizes, n_groups)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=len(g))
    b = rng.normal(0.0, SD_B, n_groups)[g]
    return g, x, b


def _frame(g, x, y, **cols):
    return pd.DataFrame({"g": [f"g{i:03d}" for i in g], "x": x, "y": y, **cols})


def _zero(rng, x):
    """Indicators of the zero part, probability logistic(γ₀ + γ₁ x)."""
    return rng.random(len(x)) < special.expit(GAMMA[0] + GAMMA[1] * x)


def _positive_draws(draw, n):
    """``draw(mask)`` redrawn where it gave 0, until every value is positive (rejection
    sampling of the zero-truncated distribution)."""
    y = np.zeros(n)
    todo = np.ones(n, bool)
    while todo.any():
        y[todo] = draw(todo)
        todo = y == 0
    return y


def _nb(rng, size, mu):
    return rng.negative_binomial(size, size / (size + mu)).astype(float)


def sim_binomial(rng):
    g, x, b = _layout(rng)
    n = rng.integers(1, 11, len(g))
    y = rng.binomial(n, special.expit(BETA[0] + BETA[1] * x + b)).astype(float)
    return _frame(g, x, y, n=n)


def sim_poisson(rng):
    g, x, b = _layout(rng)
    return _frame(g, x, rng.poisson(np.exp(BETA[0] + BETA[1] * x + b)).astype(float))


def sim_negative_binomial(rng):
    g, x, b = _layout(rng)
    return _frame(g, x, _nb(rng, 2.0, np.exp(BETA[0] + BETA[1] * x + b)))


def sim_zi_poisson(rng):
    g, x, b = _layout(rng)
    y = rng.poisson(np.exp(BETA[0] + BETA[1] * x + b)).astype(float)
    return _frame(g, x, np.where(_zero(rng, x), 0.0, y))


def sim_zi_negative_binomial(rng):
    g, x, b = _layout(rng)
    y = _nb(rng, 2.5, np.exp(BETA[0] + BETA[1] * x + b))
    return _frame(g, x, np.where(_zero(rng, x), 0.0, y))


def sim_zi_binomial(rng):
    g, x, b = _layout(rng)
    n = rng.integers(1, 11, len(g))
    y = rng.binomial(n, special.expit(BETA[0] + BETA[1] * x + b)).astype(float)
    return _frame(g, x, np.where(_zero(rng, x), 0.0, y), n=n)


def sim_hurdle_poisson(rng):
    g, x, b = _layout(rng)
    mu = np.exp(BETA[0] + BETA[1] * x + b)
    y = _positive_draws(lambda m: rng.poisson(mu[m]), len(g))
    return _frame(g, x, np.where(_zero(rng, x), 0.0, y))


def sim_hurdle_negative_binomial(rng):
    g, x, b = _layout(rng)
    mu = np.exp(BETA[0] + BETA[1] * x + b)
    y = _positive_draws(lambda m: _nb(rng, 2.5, mu[m]), len(g))
    return _frame(g, x, np.where(_zero(rng, x), 0.0, y))


def sim_hurdle_lognormal(rng):
    g, x, b = _layout(rng)
    y = np.exp(BETA[0] + BETA[1] * x + b + 0.5 * rng.normal(size=len(g)))
    return _frame(g, x, np.where(_zero(rng, x), 0.0, y))


def sim_hurdle_beta(rng):
    g, x, b = _layout(rng)
    p = special.expit(BETA[0] + BETA[1] * x + b)
    y = rng.beta(p * 8.0, (1 - p) * 8.0)
    assert np.all((y > 0) & (y < 1))
    return _frame(g, x, np.where(_zero(rng, x), 0.0, y))


def sim_gaussian(rng):
    g, x, b = _layout(rng)
    return _frame(g, x, BETA[0] + BETA[1] * x + b + 0.5 * rng.normal(size=len(g)))


def sim_students_t(rng):
    g, x, b = _layout(rng)
    return _frame(g, x, BETA[0] + BETA[1] * x + b + 0.5 * rng.standard_t(4.0, len(g)))


def sim_gamma(rng):
    """GLMMadaptive 0.9-7 fails on this one: 150 groups × 6, log link, shape 2.5, random
    intercept SD 0.6, intercept 1 and slope 0.5 on a N(0, 1) covariate."""
    g, x, b = _layout(rng, sizes=(6, 7))
    mu = np.exp(1.0 + 0.5 * x + b)
    return _frame(g, x, rng.gamma(2.5, mu / 2.5))


def sim_beta(rng):
    g, x, b = _layout(rng)
    p = special.expit(BETA[0] + BETA[1] * x + b)
    y = rng.beta(p * 10.0, (1 - p) * 10.0)
    assert np.all((y > 0) & (y < 1))
    return _frame(g, x, y)


def sim_beta_binomial(rng):
    g, x, b = _layout(rng)
    n = rng.integers(1, 11, len(g))
    p = special.expit(BETA[0] + BETA[1] * x + b)
    y = rng.binomial(n, rng.beta(p * 5.0, (1 - p) * 5.0)).astype(float)
    return _frame(g, x, y, n=n)


LOWER, UPPER = -0.2, 1.4  # censoring limits of censored_normal


def sim_censored_normal(rng):
    g, x, b = _layout(rng)
    y = BETA[0] + BETA[1] * x + b + 0.5 * rng.normal(size=len(g))
    c = np.where(y < LOWER, 1, np.where(y > UPPER, 2, 0))
    assert (c == 1).mean() > 0.1 and (c == 2).mean() > 0.1
    return _frame(g, x, np.clip(y, LOWER, UPPER), c=c)


# ---- log densities from scipy.stats ----------------------------------------------------------
# each is logpdf(df, eta, eta_zi, phis) for all rows; eta_zi is None without a zero part
def _zi(y, logp_main, eta_zi):
    """Zero-inflated mixture: log(π + (1 − π) f(0)) at 0, log(1 − π) + log f(y) above."""
    log_pi, log_1m_pi = stats.logistic.logcdf(eta_zi), stats.logistic.logsf(eta_zi)
    return np.where(y > 0, log_1m_pi + logp_main, np.logaddexp(log_pi, log_1m_pi + logp_main))


def _hurdle(y, logp_positive, eta_zi):
    """Hurdle: log π at 0, log(1 − π) + log f⁺(y) above."""
    return np.where(
        y > 0, stats.logistic.logsf(eta_zi) + logp_positive, stats.logistic.logcdf(eta_zi)
    )


def _nb_args(size, eta):
    return size, size / (size + np.exp(eta))


def lp_binomial(df, eta, eta_zi, phis):
    return stats.binom.logpmf(df["y"], df["n"], special.expit(eta))


def lp_poisson(df, eta, eta_zi, phis):
    return stats.poisson.logpmf(df["y"], np.exp(eta))


def lp_negative_binomial(df, eta, eta_zi, phis):
    return stats.nbinom.logpmf(df["y"], *_nb_args(phis["size"], eta))


def lp_zi_poisson(df, eta, eta_zi, phis):
    return _zi(df["y"], stats.poisson.logpmf(df["y"], np.exp(eta)), eta_zi)


def lp_zi_negative_binomial(df, eta, eta_zi, phis):
    return _zi(df["y"], stats.nbinom.logpmf(df["y"], *_nb_args(phis["size"], eta)), eta_zi)


def lp_zi_binomial(df, eta, eta_zi, phis):
    return _zi(df["y"], stats.binom.logpmf(df["y"], df["n"], special.expit(eta)), eta_zi)


def lp_hurdle_poisson(df, eta, eta_zi, phis):
    y, mu = df["y"], np.exp(eta)
    return _hurdle(y, stats.poisson.logpmf(y, mu) - stats.poisson.logsf(0, mu), eta_zi)


def lp_hurdle_negative_binomial(df, eta, eta_zi, phis):
    y, args = df["y"], _nb_args(phis["size"], eta)
    return _hurdle(y, stats.nbinom.logpmf(y, *args) - stats.nbinom.logsf(0, *args), eta_zi)


def lp_hurdle_lognormal(df, eta, eta_zi, phis):
    y = np.where(df["y"] > 0, df["y"], 1.0)
    return _hurdle(df["y"], stats.lognorm.logpdf(y, phis["sigma"], scale=np.exp(eta)), eta_zi)


def lp_hurdle_beta(df, eta, eta_zi, phis):
    y, phi, p = np.where(df["y"] > 0, df["y"], 0.5), phis["precision"], special.expit(eta)
    return _hurdle(df["y"], stats.beta.logpdf(y, p * phi, (1 - p) * phi), eta_zi)


def lp_gaussian(df, eta, eta_zi, phis):
    return stats.norm.logpdf(df["y"], eta, phis["sigma"])


def lp_students_t(df, eta, eta_zi, phis):
    return stats.t.logpdf(df["y"], 4.0, eta, phis["sigma"])


def lp_gamma(df, eta, eta_zi, phis):
    k = phis["shape"]
    return stats.gamma.logpdf(df["y"], k, scale=np.exp(eta) / k)


def lp_beta(df, eta, eta_zi, phis):
    phi, p = phis["precision"], special.expit(eta)
    return stats.beta.logpdf(df["y"], p * phi, (1 - p) * phi)


def lp_beta_binomial(df, eta, eta_zi, phis):
    phi, p = phis["precision"], special.expit(eta)
    return stats.betabinom.logpmf(df["y"], df["n"], p * phi, (1 - p) * phi)


def lp_censored_normal(df, eta, eta_zi, phis):
    y, c, s = df["y"], df["c"], phis["sigma"]
    return np.select(
        [c == 1, c == 2],
        [stats.norm.logcdf(y, eta, s), stats.norm.logsf(y, eta, s)],
        stats.norm.logpdf(y, eta, s),
    )


# ---- the cases ---------------------------------------------------------------------------------
@dataclass
class Case:
    family: object
    simulate: Callable
    logpdf: Callable
    beta: np.ndarray = field(default_factory=lambda: BETA)
    gamma: np.ndarray | None = None  # zero-part fixed effects (zero-part families)
    phis: dict = field(default_factory=dict)
    kwargs: dict = field(default_factory=dict)
    seed: int = 0


def _case(name, family=None, **kw):
    zero = FAMILIES[name].zero_part
    if zero:
        kw = {"gamma": GAMMA, **kw, "kwargs": {"zi_fixed": "~ x", **kw.get("kwargs", {})}}
    return Case(
        family=name if family is None else family,
        simulate=globals()[f"sim_{name}"],
        logpdf=globals()[f"lp_{name}"],
        **kw,
    )


CASES = {
    "binomial": _case("binomial", kwargs={"trials": "n"}, seed=101),
    "poisson": _case("poisson", seed=102),
    "negative_binomial": _case("negative_binomial", phis={"size": 2.0}, seed=103),
    "zi_poisson": _case("zi_poisson", seed=104),
    "zi_negative_binomial": _case("zi_negative_binomial", phis={"size": 2.5}, seed=105),
    "zi_binomial": _case("zi_binomial", kwargs={"trials": "n"}, seed=106),
    "hurdle_poisson": _case("hurdle_poisson", seed=107),
    "hurdle_negative_binomial": _case("hurdle_negative_binomial", phis={"size": 2.5}, seed=108),
    "hurdle_lognormal": _case("hurdle_lognormal", phis={"sigma": 0.5}, seed=109),
    "hurdle_beta": _case("hurdle_beta", phis={"precision": 8.0}, seed=110),
    "gaussian": _case("gaussian", phis={"sigma": 0.5}, seed=111),
    "students_t": _case(
        "students_t", family=gp.families.students_t(df=4), phis={"sigma": 0.5}, seed=112
    ),
    "gamma": _case("gamma", beta=np.array([1.0, 0.5]), phis={"shape": 2.5}, seed=113),
    "beta": _case("beta", phis={"precision": 10.0}, seed=114),
    "beta_binomial": _case(
        "beta_binomial", kwargs={"trials": "n"}, phis={"precision": 5.0}, seed=115
    ),
    "censored_normal": _case(
        "censored_normal", kwargs={"censoring": "c"}, phis={"sigma": 0.5}, seed=116
    ),
}


def test_every_family_has_a_case():
    # the cumulative family has no intercept and has thresholds: its estimates near the truth
    # and its log-likelihood against direct integration are in test_cumulative.py
    assert sorted(CASES) == sorted(set(FAMILIES) - {"cumulative"})


@pytest.fixture(scope="module")
def fitted():
    """``fitted(name)`` → ``(data, fit)``, each model simulated and fitted once."""
    cache = {}

    def get(name):
        if name not in cache:
            case = CASES[name]
            df = case.simulate(np.random.default_rng(case.seed))
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # convergence or singular-fit warnings fail
                warnings.filterwarnings("ignore", "PyTensor could not link to a BLAS")
                fit = gp.mixed_model("y ~ x", "~ 1 | g", df, case.family, **case.kwargs)
            cache[name] = df, fit
        return cache[name]

    return get


# ---- a. estimates near the truth -------------------------------------------------------------
def _estimates(fit, zero_part: bool):
    """θ̂ rebuilt from the public accessors, in the order of ``vcov("all")``: fixed effects,
    zero-part fixed effects, log SD of the random intercept, log φ."""
    parts = [fit.fixef().to_numpy()]
    if zero_part:
        parts.append(fit.fixef("zero_part").to_numpy())
    parts.append([0.5 * np.log(fit.D.iloc[0, 0])])
    parts.append(np.log(fit.phis.to_numpy()))
    return np.concatenate(parts)


@pytest.mark.parametrize("name", sorted(CASES))
def test_estimates_within_4_se(fitted, name):
    case = CASES[name]
    df, fit = fitted(name)
    assert fit.converged
    assert fit.warnings == ()
    zero = case.gamma is not None
    names = ["(Intercept)", "x"] + (["zi_(Intercept)", "zi_x"] if zero else []) + ["D_11"]
    names += [f"log({p})" for p in case.phis]
    V = fit.vcov("all")
    assert V.index.tolist() == names
    truth = np.concatenate(
        [case.beta, case.gamma if zero else [], [np.log(SD_B)], np.log(list(case.phis.values()))]
    )
    estimate = _estimates(fit, zero)
    np.testing.assert_allclose(estimate, fit.theta, rtol=1e-12, atol=1e-12)
    se = np.sqrt(np.diag(V.to_numpy()))
    assert np.all(np.isfinite(se)) and np.all(se > 0)
    z = (estimate - truth) / se
    assert np.all(np.abs(z) < 4), dict(zip(names, np.round(z, 2), strict=True))


# ---- b. the log-likelihood is the integral ----------------------------------------------------
def _group_index(df):
    codes, _ = pd.factorize(df["g"], sort=True)
    return codes, codes.max() + 1


def independent_loglik(case, df, beta, gamma, sd, phis) -> float:
    """Σ_i log ∫ Π_j p(y_ij | x_ijᵀβ + b) N(b; 0, sd²) db, by scipy.

    Per group the integrand is ``exp(h_i(b) − h_i(b̂_i))`` in ``t = (b − b̂_i)/s_i``, centred at
    the group's mode ``b̂_i`` (grid search then three Newton steps) and scaled by
    ``s_i = (−h_i''(b̂_i))^{-1/2}``; ``scipy.integrate.quad_vec`` (adaptive Gauss–Kronrod on the
    whole real line) integrates all groups at once, each to an absolute error of 1e-11 against
    a value near √(2π).
    """
    codes, n = _group_index(df)
    eta0 = beta[0] + beta[1] * df["x"].to_numpy()
    eta_zi = None if gamma is None else gamma[0] + gamma[1] * df["x"].to_numpy()
    cols = {c: df[c].to_numpy() for c in df.columns if c not in ("g", "x")}

    def h(b):
        """h_i(b_i) for a vector of one b per group."""
        lp = case.logpdf(cols, eta0 + b[codes], eta_zi, phis)
        return np.bincount(codes, lp, minlength=n) + stats.norm.logpdf(b, 0.0, sd)

    grid = np.linspace(-8 * sd, 8 * sd, 801)
    values = np.array([h(np.full(n, b)) for b in grid])
    mode = grid[np.argmax(values, axis=0)]
    step = 1e-4 * sd
    for _ in range(3):
        h0, hp, hm = h(mode), h(mode + step), h(mode - step)
        d2 = (hp - 2 * h0 + hm) / step**2
        mode = np.where(d2 < 0, mode - (hp - hm) / (2 * step) / np.minimum(d2, -1e-12), mode)
    h0 = h(mode)
    d2 = (h(mode + step) - 2 * h0 + h(mode - step)) / step**2
    scale = np.where(d2 < 0, 1.0 / np.sqrt(-np.minimum(d2, -1e-300)), sd)

    def integrand(t):
        return np.exp(h(mode + scale * t) - h0)

    # at 40 posterior standard deviations the integrand is negligible (checked)
    assert np.all(integrand(np.full(n, -40.0)) < 1e-30)
    assert np.all(integrand(np.full(n, 40.0)) < 1e-30)
    res, err = integrate.quad_vec(integrand, -40.0, 40.0, epsabs=1e-11, epsrel=0, norm="max")
    assert err < 1e-9 and np.all(res > 0)
    return float(np.sum(h0 + np.log(scale * res)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_loglik_equals_independent_integral(fitted, name):
    case = CASES[name]
    df, fit = fitted(name)
    gamma = None if case.gamma is None else fit.fixef("zero_part").to_numpy()
    sd = float(np.sqrt(fit.D.iloc[0, 0]))
    ll = independent_loglik(case, df, fit.fixef().to_numpy(), gamma, sd, fit.phis.to_dict())
    np.testing.assert_allclose(fit.loglik, ll, rtol=1e-6)


# ---- c. random intercepts in both parts of a zero-inflated Poisson model ----------------------
D_ZI = np.array([[0.36, 0.12], [0.12, 0.49]])  # SDs 0.6 (main) and 0.7 (zero part), corr 0.29


@pytest.fixture(scope="module")
def zi_random_fit():
    rng = np.random.default_rng(2024)
    size = rng.integers(5, 9, N_GROUPS)
    g = np.repeat(np.arange(N_GROUPS), size)
    x = rng.normal(size=len(g))
    b = rng.multivariate_normal(np.zeros(2), D_ZI, N_GROUPS)[g]
    y = rng.poisson(np.exp(BETA[0] + BETA[1] * x + b[:, 0])).astype(float)
    zero = rng.random(len(g)) < special.expit(GAMMA[0] + GAMMA[1] * x + b[:, 1])
    df = _frame(g, x, np.where(zero, 0.0, y))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "PyTensor could not link to a BLAS")
        fit = gp.mixed_model(
            "y ~ x", "~ 1 | g", df, "zi_poisson", zi_fixed="~ x", zi_random="~ 1 | g"
        )
    return df, fit


def test_zi_random_estimates_within_4_se(zi_random_fit):
    df, fit = zi_random_fit
    assert fit.converged and fit.warnings == ()
    assert fit.D.index.tolist() == ["(Intercept)", "zi_(Intercept)"]
    V = fit.vcov("all")
    names = ["(Intercept)", "x", "zi_(Intercept)", "zi_x", "D_11", "D_12", "D_22"]
    assert V.index.tolist() == names
    # θ_D is the lower triangle of the Cholesky factor L of D, row by row, log on the diagonal
    L_true, L_hat = np.linalg.cholesky(D_ZI), np.linalg.cholesky(fit.D.to_numpy())

    def log_chol(L):
        return [np.log(L[0, 0]), L[1, 0], np.log(L[1, 1])]

    truth = np.concatenate([BETA, GAMMA, log_chol(L_true)])
    estimate = np.concatenate(
        [fit.fixef().to_numpy(), fit.fixef("zero_part").to_numpy(), log_chol(L_hat)]
    )
    np.testing.assert_allclose(estimate, fit.theta, rtol=1e-10, atol=1e-12)
    se = np.sqrt(np.diag(V.to_numpy()))
    z = (estimate - truth) / se
    assert np.all(np.abs(z) < 4), dict(zip(names, np.round(z, 2), strict=True))


def dense_2d_loglik(df, beta, gamma, D, n_points=40) -> float:
    """Σ_i log ∫∫ Π_j p(y_ij | η_ij + b₁, η^zi_ij + b₂) N₂(b; 0, D) db with a tensor-product
    Gauss–Hermite rule of ``n_points²`` nodes per group, centred at each group's mode
    ``b̂_i`` (by ``scipy.optimize.minimize`` on the sum over groups, which is separable) and
    scaled by the Cholesky factor of the inverse of ``−∇²h_i(b̂_i)`` (central differences);
    densities from scipy.stats."""
    codes, n = _group_index(df)
    x, y = df["x"].to_numpy(), df["y"].to_numpy()
    eta0, eta_zi0 = beta[0] + beta[1] * x, gamma[0] + gamma[1] * x
    prior = stats.multivariate_normal(np.zeros(2), D)

    def h(b):
        """h_i(b_i) for b of shape (n, 2)."""
        lp = _zi(y, stats.poisson.logpmf(y, np.exp(eta0 + b[codes, 0])), eta_zi0 + b[codes, 1])
        return np.bincount(codes, lp, minlength=n) + prior.logpdf(b)

    step = 1e-4
    E = [np.array([step, 0.0]), np.array([0.0, step])]

    def negative_total(flat):
        b = flat.reshape(n, 2)
        grad = np.column_stack([(h(b + e) - h(b - e)) / (2 * step) for e in E])
        return -h(b).sum(), -grad.ravel()

    res = optimize.minimize(
        negative_total, np.zeros(2 * n), jac=True, method="BFGS", options={"gtol": 1e-6}
    )
    mode = res.x.reshape(n, 2)
    h0 = h(mode)
    H = np.empty((n, 2, 2))
    for a in range(2):
        for c in range(2):
            H[:, a, c] = (
                h(mode + E[a] + E[c])
                - h(mode + E[a] - E[c])
                - h(mode - E[a] + E[c])
                + h(mode - E[a] - E[c])
            ) / (4 * step**2)
    L = np.linalg.cholesky(np.linalg.inv(-H))
    z, w = np.polynomial.hermite.hermgauss(n_points)
    total = np.zeros(n)
    for z1, w1 in zip(z, w, strict=True):
        for z2, w2 in zip(z, w, strict=True):
            u = np.sqrt(2.0) * np.array([z1, z2])
            total += w1 * w2 * np.exp(h(mode + L @ u) - h0 + z1**2 + z2**2)
    log_det = np.log(L[:, 0, 0] * L[:, 1, 1]) + np.log(2.0)  # |det(√2 L)|
    return float(np.sum(h0 + log_det + np.log(total)))


def test_zi_random_loglik_equals_dense_rule(zi_random_fit):
    df, fit = zi_random_fit
    beta, gamma = fit.fixef().to_numpy(), fit.fixef("zero_part").to_numpy()
    D = fit.D.to_numpy()
    dense = dense_2d_loglik(df, beta, gamma, D)
    # the reference rule has converged: 30 × 30 points give the same value to 1e-9 relative
    np.testing.assert_allclose(dense_2d_loglik(df, beta, gamma, D, 30), dense, rtol=1e-9)
    np.testing.assert_allclose(fit.loglik, dense, rtol=1e-5)


# ---- d. the gamma model GLMMadaptive 0.9-7 fails on --------------------------------------------
@pytest.mark.parametrize("seed", [113, 1, 2, 3, 4])
def test_gamma_glmmadaptive_case(seed):
    """Log link, 150 groups × 6, shape 2.5, random intercept SD 0.6, intercept 1 and slope 0.5
    on a N(0, 1) covariate: converges from the default starting values, near the truth."""
    df = sim_gamma(np.random.default_rng(seed))
    assert df.groupby("g").size().eq(6).all() and df["g"].nunique() == 150
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "PyTensor could not link to a BLAS")
        fit = gp.mixed_model("y ~ x", "~ 1 | g", df, "gamma")
    assert fit.converged
    truth = np.array([1.0, 0.5, np.log(0.6), np.log(2.5)])
    se = np.sqrt(np.diag(fit.vcov("all").to_numpy()))
    z = (fit.theta - truth) / se
    assert np.all(np.abs(z) < 4), np.round(z, 2)
