"""The exact fixed-node Hessian (Louis' identity) against central differences of the gradient,
in every parameter (extra parameters included), the derivatives of ``D(θ)`` against differences
of the map, and what the optimizer saves."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special

import glmm_ppl as gp
from glmm_ppl.engine.covariance import Blocks, D_derivatives, n_theta, theta_to_D
from glmm_ppl.fitting.graph import MixedModelGraph, ModelParameters

FIXED = "y ~ sex * time"


def _fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gp.mixed_model(*args, **kwargs)


def _hessians(fit):
    """The graph's Hessian and central differences of its gradient, at the estimates."""
    graph = MixedModelGraph(fit.design, fit.family, fit.n_agq, fit.penalty, fit.priors)
    theta = np.asarray(fit.theta, dtype=float)
    graph.centre(theta)
    return graph.hessian(theta, 1e-4), ModelParameters.hessian(graph, theta, 1e-4)


def _zero_part_data() -> pd.DataFrame:
    """Counts with structural zeros whose probability varies by group (correlated with the
    count part's random intercept), so that both variances are well inside."""
    rng = np.random.default_rng(3)
    n, m = 150, 8
    g = np.repeat(np.arange(n), m)
    x = rng.normal(size=n * m)
    b = rng.multivariate_normal([0, 0], [[0.36, 0.14], [0.14, 0.64]], size=n)[g]
    zero = rng.random(n * m) < special.expit(-0.5 + b[:, 1])
    y = np.where(zero, 0, rng.poisson(np.exp(0.5 + 0.4 * x + b[:, 0])))
    return pd.DataFrame({"y": y.astype(float), "x": x, "g": g})


@pytest.mark.parametrize(
    "random, kwargs",
    [
        ("~ 1 | id", {}),
        ("~ time | id", {}),
        ("~ time || id", {}),
        ("~ 1 | id", {"penalized": True}),
    ],
)
def test_binomial_hessian_equals_central_differences(binary, random, kwargs):
    exact, differences = _hessians(_fit(FIXED, random, binary, "binomial", **kwargs))
    # the differences' own error is about 1e-8 of the largest entry
    np.testing.assert_allclose(exact, differences, rtol=0, atol=2e-6 * np.abs(exact).max())


@pytest.mark.parametrize("random", ["~ 1 | id", "~ time || id"])
def test_group_weights_enter_the_hessian(binary, random):
    # (not the correlated model: with these weights its correlation goes to 1, where the
    # differences themselves change by 0.5% between steps of 1e-4 and 1e-5)
    ids = np.sort(binary["id"].unique())
    weights = pd.Series(np.arange(len(ids)) % 3 + 1.0, index=ids)
    exact, differences = _hessians(_fit(FIXED, random, binary, "binomial", weights=weights))
    np.testing.assert_allclose(exact, differences, rtol=0, atol=2e-6 * np.abs(exact).max())


@pytest.mark.parametrize("family", ["zi_poisson", "zi_negative_binomial"])
def test_zero_part_with_random_effects(family):
    """Two linear predictors with a random intercept each, and the negative binomial's size (its
    maximum is far out: the counts are Poisson, so scoring's steps in log size are capped)."""
    df = _zero_part_data()
    fit = _fit("y ~ x", "~ 1 | g", df, family, zi_fixed="~ 1", zi_random="~ 1 | g")
    assert fit.converged
    exact, differences = _hessians(fit)
    np.testing.assert_allclose(exact, differences, rtol=0, atol=2e-6 * np.abs(exact).max())


def test_beta_binomial_with_trials_and_precision():
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"g": np.repeat(np.arange(80), 5), "x": rng.normal(size=400)})
    df["n"] = rng.integers(2, 12, size=400)
    p = special.expit(0.3 + 0.5 * df["x"] + rng.normal(0, 0.5, 80)[df["g"]])
    df["y"] = rng.binomial(df["n"], rng.beta(p * 8, (1 - p) * 8)).astype(float)
    exact, differences = _hessians(_fit("y ~ x", "~ 1 | g", df, "beta_binomial", trials="n"))
    np.testing.assert_allclose(exact, differences, rtol=0, atol=2e-6 * np.abs(exact).max())


def test_several_extra_parameters():
    """Ordinal thresholds and a dispersion sub-model: several extra parameters, whose pairs
    come from the second derivatives in both."""
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(70), 6)
    x = rng.normal(size=len(g))
    latent = 0.6 * x + rng.normal(0, 0.8, 70)[g] + rng.logistic(size=len(g))
    df = pd.DataFrame({"g": g, "x": x, "y": np.digitize(latent, [-1.0, 0.3, 1.5]) + 1})
    exact, differences = _hessians(_fit("y ~ x", "~ 1 | g", df, "cumulative"))
    assert exact.shape == (5, 5)  # slope, variance, three thresholds
    np.testing.assert_allclose(exact, differences, rtol=0, atol=2e-6 * np.abs(exact).max())
    df["grp"] = np.where(g % 2 == 0, "a", "b")
    df["z"] = x + rng.normal(0, 0.5, 70)[g] + rng.normal(size=len(g)) * np.where(g % 2, 2, 0.5)
    fit = _fit("z ~ x", "~ 1 | g", df, "gaussian", disp_fixed="~ grp")
    exact, differences = _hessians(fit)
    np.testing.assert_allclose(exact, differences, rtol=0, atol=2e-6 * np.abs(exact).max())


@pytest.mark.parametrize(
    "q, diagonal",
    [(1, False), (2, False), (3, False), (3, True), (3, Blocks(("a", "b"), (1, 2), (False,) * 2))],
)
def test_D_derivatives_equal_differences_of_the_map(q, diagonal):
    theta = np.random.default_rng(q).normal(0, 0.5, n_theta(q, diagonal))
    dD, d2D = D_derivatives(theta, q, diagonal)
    h = 1e-5
    steps = h * np.eye(len(theta))

    def differences(f):
        return np.array([(f(theta + e) - f(theta - e)) / (2 * h) for e in steps])

    first = differences(lambda t: theta_to_D(t, q, diagonal))
    second = differences(lambda t: D_derivatives(t, q, diagonal)[0])
    np.testing.assert_allclose(dD, first, atol=1e-8)
    np.testing.assert_allclose(d2D, second, atol=1e-8)


def test_one_evaluation_for_the_hessian_and_newton_steps_in_scoring(binary):
    fm1 = _fit(FIXED, "~ 1 | id", binary, "binomial")
    opt = fm1.opt_summary
    # none of its own: scoring's last evaluation, at the estimates, gave it (was 2 × 5 gradients)
    assert opt.hessian_evaluations == 0 and opt.newton_iterations == 0
    exact, _ = _hessians(fm1)  # computed afresh at the estimates
    np.testing.assert_allclose(fm1.hessian, exact, rtol=1e-10, atol=1e-10 * np.abs(exact).max())
    assert opt.scoring_iterations <= 6  # the outer product alone took 15
    # a family with an extra parameter: its row and column exact too, so one evaluation
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"g": np.repeat(np.arange(60), 5), "x": rng.normal(size=300)})
    df["y"] = rng.negative_binomial(2.0, 2.0 / (2.0 + np.exp(0.5 + 0.3 * df["x"])))
    nb = _fit("y ~ x", "~ 1 | g", df, "negative_binomial")
    assert nb.converged
    assert nb.opt_summary.hessian_evaluations in (0, 1, 2)  # at most twice if Newton moved far
