"""Random effects in the zero part only (``random=None`` with ``zi_random``), and predictions
of the zero part with the groups' empirical Bayes modes.

The log-likelihood of a model with one random intercept in the zero part is checked against
an independent integral per group (``scipy.integrate.quad`` of the product of the rows'
probabilities, written out from the families' definitions, times the normal density), its
gradient against central differences, the estimates against the simulation's values, and the
subject-specific predictions against ``fit.ranef()`` and ``fit.fixef("zero_part")``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special, stats

import glmm_ppl as gp
from glmm_ppl.fitting.graph import MixedModelGraph

N_GROUPS, PER_GROUP = 150, 8
BETA = np.array([0.7, 0.4])  # main part: log mean 0.7 + 0.4 x
GAMMA = np.array([-0.5, 0.8])  # zero part: logit -0.5 + 0.8 x + b
SD_ZI = 1.2  # SD of the zero part's random intercept


def simulate(family: str, seed: int) -> pd.DataFrame:
    """Counts with a zero part whose probability has a random intercept per group; the main
    part has none."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(N_GROUPS), PER_GROUP)
    x = rng.normal(size=len(g))
    b = rng.normal(0.0, SD_ZI, N_GROUPS)[g]
    zero = rng.random(len(g)) < special.expit(GAMMA[0] + GAMMA[1] * x + b)
    mu = np.exp(BETA[0] + BETA[1] * x)
    counts = rng.poisson(mu)
    if family == "hurdle_poisson":  # positive values: a Poisson truncated to y > 0
        while np.any(counts == 0):
            again = counts == 0
            counts[again] = rng.poisson(mu[again])
    y = np.where(zero, 0, counts).astype(float)
    return pd.DataFrame({"g": g, "x": x, "y": y})


def _fit(df: pd.DataFrame, family: str, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "PyTensor could not link to a BLAS")
        return gp.mixed_model(
            "y ~ x", random=None, data=df, family=family, zi_fixed="~ x", zi_random="~ 1 | g",
            **kwargs,
        )  # fmt: skip


def group_logp(family: str, y, eta):
    """``η_zi ↦ Σ_j log p(y_j | η_j, η_zi,j)`` over one group's rows, from the definitions:
    zero-inflated ``P(0) = π + (1 − π) e^{−μ}``, ``P(y) = (1 − π) Pois(y; μ)``; hurdle
    ``P(0) = π``, ``P(y) = (1 − π) Pois(y; μ) / (1 − e^{−μ})``; ``π = logistic(η_zi)``,
    ``μ = e^η``. The main part has no random effect, so its terms are computed once."""
    zero, mu = y == 0, np.exp(eta)
    positive = stats.poisson.logpmf(y, mu)
    if family == "hurdle_poisson":
        positive = positive - np.log(-np.expm1(-mu))

    def logp(eta_zi):
        log_pi, log_not = -np.logaddexp(0.0, -eta_zi), -np.logaddexp(0.0, eta_zi)
        if family == "zi_poisson":
            at_zero = np.logaddexp(log_pi, log_not - mu)
        else:
            at_zero = log_pi
        return np.sum(np.where(zero, at_zero, log_not + positive))

    return logp


def independent_loglik(family: str, df: pd.DataFrame, beta, gamma, sd: float) -> float:
    """``Σ_i log ∫ Π_j p(y_ij | η_ij, η^zi_ij + b) N(b; 0, sd²) db`` by adaptive quadrature on
    the real line (each group's integrand scaled by its value at the mode)."""
    total = 0.0
    for _, rows in df.groupby("g", sort=True):
        y, x = rows["y"].to_numpy(), rows["x"].to_numpy()
        logp = group_logp(family, y, beta[0] + beta[1] * x)
        eta_zi = gamma[0] + gamma[1] * x

        def h(b, logp=logp, eta_zi=eta_zi):
            return logp(eta_zi + b) - 0.5 * (b / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)

        mode = optimize.minimize_scalar(lambda b, h=h: -h(b), bounds=(-20, 20), method="bounded")
        top = h(mode.x)
        value, _ = integrate.quad(
            lambda b, h=h, top=top: np.exp(h(b) - top),
            -np.inf,
            np.inf,
            epsabs=0.0,
            epsrel=1e-11,
            limit=200,
        )
        total += top + np.log(value)
    return total


@pytest.fixture(scope="module")
def zip_fit():
    df = simulate("zi_poisson", seed=7)
    return df, _fit(df, "zi_poisson")


@pytest.fixture(scope="module")
def hurdle_fit():
    df = simulate("hurdle_poisson", seed=8)
    return df, _fit(df, "hurdle_poisson")


def _estimates_near_truth(fit):
    """Each parameter within 3 standard errors of the simulation's value (``θ_D = log SD``)."""
    assert fit.converged and fit.warnings == ()
    truth = np.r_[BETA, GAMMA, np.log(SD_ZI)]
    se = np.sqrt(np.diag(fit.vcov("all").to_numpy()))
    z = (fit.theta - truth) / se
    assert np.all(np.abs(z) < 3), dict(zip(fit.names, np.round(z, 2), strict=True))


# ---- the design and the fit ------------------------------------------------------------------
def test_design_has_no_main_random_effects(zip_fit):
    df, fit = zip_fit
    d = fit.design
    assert d.Z.shape == (len(df), 0) and d.q_main == 0 and d.q == 1
    assert d.random_names == ["zi_(Intercept)"] and d.random is None
    assert d.group_name == "g" and d.n_groups == N_GROUPS
    np.testing.assert_array_equal(d.Z_zi, np.ones((len(df), 1)))
    Z = d.Z_by_predictor()
    assert Z.shape == (len(df), 2, 1)
    assert np.all(Z[:, 0] == 0.0) and np.all(Z[:, 1] == 1.0)
    assert fit.names == ["(Intercept)", "x", "zi_(Intercept)", "zi_x", "D_11"]
    assert fit.D.index.tolist() == ["zi_(Intercept)"]
    assert fit.ranef().shape == (N_GROUPS, 1)
    summary = str(fit.summary())
    assert "random = None" in summary and "zi_(Intercept)" in summary


@pytest.mark.parametrize("which", ["zip_fit", "hurdle_fit"])
def test_loglik_equals_independent_integral(request, which):
    df, fit = request.getfixturevalue(which)
    family = fit.family.name
    sd = float(np.sqrt(fit.D.iloc[0, 0]))
    gamma = fit.fixef("zero_part").to_numpy()
    ll = independent_loglik(family, df, fit.fixef().to_numpy(), gamma, sd)
    # the fit's 11-point rule: within 1e-6 relative (measured 7e-7 and 4e-9, 0.0011 and
    # 7e-6 in log-likelihood: groups of zeros only have skewed integrands in the zero part)
    np.testing.assert_allclose(fit.loglik, ll, rtol=1e-6)
    # a finer rule at the same estimates converges to the integral
    fine = MixedModelGraph(fit.design, fit.family, 31, None)(fit.theta)[1]
    np.testing.assert_allclose(fine, ll, rtol=1e-9)


@pytest.mark.parametrize("which", ["zip_fit", "hurdle_fit"])
def test_estimates_near_truth(request, which):
    _estimates_near_truth(request.getfixturevalue(which)[1])


def test_gradient_equals_central_differences(zip_fit):
    """The gradient is that of the rule with its nodes held where they were centred (the
    engine's modes at θ), and, to the rule's accuracy, that of the exact log-likelihood."""
    df, fit = zip_fit
    graph = MixedModelGraph(fit.design, fit.family, fit.n_agq, None)
    theta = fit.theta + np.array([0.1, -0.05, 0.2, -0.1, -0.3])  # away from the optimum
    _, ll, grad = graph(theta)  # centres the nodes at the modes at θ
    assert np.all(np.abs(grad) > 1.0)  # not an optimum

    def exact(t):
        return independent_loglik("zi_poisson", df, t[:2], t[2:4], np.exp(t[4]))

    np.testing.assert_allclose(ll, exact(theta), rtol=1e-6)
    graph.engine.recenter = False

    def central(f):  # steps of 1e-5
        return np.array([(f(theta + e) - f(theta - e)) / 2e-5 for e in 1e-5 * np.eye(5)])

    # truncation (h²/6) f''' and rounding 1e-16 |log L| / h: below 1e-7 for |log L| ~ 2000
    np.testing.assert_allclose(grad, central(lambda t: graph(t)[1]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad, central(exact), rtol=1e-4)


# ---- predictions of the zero part with the modes ---------------------------------------------
def test_zero_part_subject_specific_by_hand(zip_fit):
    df, fit = zip_fit
    pred = fit.predict(type_pred="response", type="zero_part_subject_specific")
    rows = df.loc[pred.index]
    gamma = fit.fixef("zero_part").to_numpy()
    b = fit.ranef()["zi_(Intercept)"].reindex(rows["g"]).to_numpy()
    eta_zi = gamma[0] + gamma[1] * rows["x"].to_numpy()
    np.testing.assert_allclose(pred.to_numpy(), special.expit(eta_zi + b), rtol=1e-12)
    link = fit.predict(type_pred="link", type="zero_part_subject_specific")
    np.testing.assert_allclose(link.to_numpy(), eta_zi + b, rtol=1e-12, atol=1e-12)
    at_zero = fit.predict(type_pred="response", type="zero_part")
    np.testing.assert_allclose(at_zero.to_numpy(), special.expit(eta_zi), rtol=1e-12)
    assert np.max(np.abs(pred - at_zero)) > 0.2
    # the subject-specific mean of a zi Poisson is (1 − π̂_i) μ with the modes in π̂_i
    mean = fit.predict(type_pred="response", type="subject_specific")
    beta = fit.fixef().to_numpy()
    mu = np.exp(beta[0] + beta[1] * rows["x"].to_numpy())
    np.testing.assert_allclose(mean.to_numpy(), (1 - special.expit(eta_zi + b)) * mu, rtol=1e-10)


def test_zero_part_subject_specific_new_and_known_groups(zip_fit):
    df, fit = zip_fit
    full = fit.predict(type_pred="response", type="zero_part_subject_specific")
    known = df[df["g"].isin([3, 10])]
    np.testing.assert_allclose(
        fit.predict(known, type_pred="response", type="zero_part_subject_specific"),
        full.loc[known.index],
        rtol=1e-12,
    )
    # a group the fit did not see, with the rows of group 3: its mode, estimated from those
    # rows at the estimates, is group 3's
    new = df[df["g"] == 3].assign(g=999)
    np.testing.assert_allclose(
        fit.predict(new, type_pred="response", type="zero_part_subject_specific"),
        full.loc[new.index],
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match=r"which then need the column\(s\) .y. without missing"):
        fit.predict(new.drop(columns="y"), type="zero_part_subject_specific")
    ci = fit.predict(
        known, type_pred="response", type="zero_part_subject_specific", se_fit=True,
        n_draws=50, seed=1,
    )  # fmt: skip
    assert np.all((ci["low"] < ci["pred"]) & (ci["pred"] < ci["upp"]))
    assert np.all((ci["low"] > 0) & (ci["upp"] < 1) & (ci["se"] > 0))


def test_subject_specific_mean_uses_both_parts():
    """Random intercepts in both parts: the subject-specific mean is ``(1 − π̂_i) μ̂_i`` with
    each part's mode, not with the main part's alone."""
    rng = np.random.default_rng(5)
    n, per = 80, 6
    g = np.repeat(np.arange(n), per)
    x = rng.normal(size=len(g))
    b = rng.normal(0.0, [0.5, 1.0], (n, 2))[g]
    counts = rng.poisson(np.exp(0.7 + 0.4 * x + b[:, 0]))
    zero = rng.random(len(g)) < special.expit(-0.5 + b[:, 1])
    df = pd.DataFrame({"g": g, "x": x, "y": np.where(zero, 0, counts).astype(float)})
    fit = gp.mixed_model("y ~ x", "~ 1 | g", df, "zi_poisson", zi_random="~ 1 | g")
    assert fit.design.q_main == 1 and fit.design.q == 2
    pred = fit.predict(type_pred="response", type="subject_specific")
    rows = df.loc[pred.index]
    re = fit.ranef().reindex(rows["g"])
    beta, gamma = fit.fixef().to_numpy(), fit.fixef("zero_part").to_numpy()
    mu = np.exp(beta[0] + beta[1] * rows["x"].to_numpy() + re["(Intercept)"].to_numpy())
    pi = special.expit(gamma[0] + re["zi_(Intercept)"].to_numpy())
    np.testing.assert_allclose(pred.to_numpy(), (1 - pi) * mu, rtol=1e-10)
    main_only = (1 - special.expit(gamma[0])) * mu
    assert np.max(np.abs(pred.to_numpy() - main_only)) > 0.1
    zp = fit.predict(type_pred="response", type="zero_part_subject_specific")
    np.testing.assert_allclose(zp.to_numpy(), pi, rtol=1e-12)


# ---- errors ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    return simulate("zi_poisson", seed=1).assign(h=lambda d: d["g"] // 2)


def test_zero_part_family_without_any_random_effects(small):
    with pytest.raises(ValueError) as err:
        gp.mixed_model("y ~ x", None, small, "zi_poisson")
    assert str(err.value) == (
        "no random effects in 'y ~ x': add them to the formula as bambi does ('y ~ x + (1 | g)') "
        "or give them as random ('~ 1 | g'); or, for random effects in the zero part only, give "
        "them as zi_random ('~ 1 | g')"
    )


def test_family_without_zero_part(small):
    with pytest.raises(ValueError) as err:
        gp.mixed_model("y ~ x", None, small, "poisson")
    assert str(err.value) == (
        "no random effects in 'y ~ x': add them to the formula as bambi does ('y ~ x + (1 | g)') "
        "or give them as random ('~ 1 | g')"
    )
    with pytest.raises(ValueError) as err:
        gp.mixed_model("y ~ x", None, small, "poisson", zi_random="~ 1 | g")
    assert str(err.value) == (
        "zi_fixed and zi_random apply to zero-inflated and hurdle families, not poisson"
    )


def test_zero_part_random_effects_of_two_groupings(small):
    with pytest.raises(ValueError) as err:
        gp.mixed_model("y ~ x", None, small, "zi_poisson", zi_random="(1 | g) + (1 | h)")
    assert str(err.value) == (
        "zi_random takes the random effects of one grouping column, got '(1 | g) + (1 | h)'"
    )


def test_zero_part_type_without_zero_part(fm1):
    with pytest.raises(ValueError) as err:
        fm1.predict(type="zero_part_subject_specific")
    assert str(err.value) == (
        "the binomial family has no zero part; type='zero_part_subject_specific' applies to "
        "zero-inflated and hurdle families"
    )
