"""Densities at the limits of their dispersion: the log rising factorial stays accurate where
log Γ(a + k) − log Γ(a) cancels, so the negative binomial tends to the Poisson and the
beta-binomial to the binomial instead of to nonsense."""

import math

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import special, stats

from glmm_ppl.engine.pointwise import pointwise_derivatives
from glmm_ppl.families import (
    beta_binomial,
    hurdle_negative_binomial,
    negative_binomial,
    zi_negative_binomial,
)
from glmm_ppl.families.special import log_rising


@pytest.mark.parametrize("a", [1e-3, 0.5, 3.0, 99.9, 100.1, 1e3, 1e6, 1e12, 1e20])
@pytest.mark.parametrize("k", [0, 1, 3, 50, 1000])
def test_log_rising_equals_sum_of_logs(a, k):
    x, n = pt.dscalars("a", "k")
    value = float(log_rising(x, n).eval({x: a, n: float(k)}))
    expected = math.fsum(math.log(a + i) for i in range(k))  # Γ(a + k)/Γ(a) = Π (a + i)
    assert value == pytest.approx(expected, rel=1e-13, abs=1e-13)


def test_log_rising_with_log_a_is_finite_when_a_underflows():
    x, n, lx = pt.dscalars("a", "k", "log_a")
    f = pytensor.function([x, n, lx], log_rising(x, n, log_a=lx))
    # a = e^-800 underflows to 0; log Γ(a + 3) − log Γ(a) = Σ log(a + i) → -800 + log 2
    assert f(0.0, 3.0, -800.0) == pytest.approx(-800.0 + math.log(2.0), rel=1e-14)


ETA = np.array([-3.0, 0.0, 0.5, 2.0])


@pytest.mark.parametrize("family", [negative_binomial(), zi_negative_binomial()])
@pytest.mark.parametrize("log_size", [30.0, 40.0, 100.0, 300.0])
def test_negative_binomial_tends_to_poisson(family, log_size):
    y = np.arange(8.0)
    Y, E = np.repeat(y, len(ETA)), np.tile(ETA, len(y))
    eta = np.column_stack([E, np.full_like(E, -800.0)])[:, : family.n_eta]
    out = pointwise_derivatives(family)(Y, eta[:, None, :], np.array([np.exp(log_size)]))
    # the zero part's probability is e^-800 here, so the density is the NB's
    np.testing.assert_allclose(out[0][:, 0], stats.poisson.logpmf(Y, np.exp(E)), rtol=1e-12)
    d_size = out[-1][:, 0] * np.exp(log_size)  # ∂ℓ/∂ log size → 0 at the Poisson limit
    np.testing.assert_allclose(d_size, 0.0, atol=1e-9)


def test_hurdle_negative_binomial_tends_to_hurdle_poisson():
    y = np.arange(1.0, 8.0)
    Y, E = np.repeat(y, len(ETA)), np.tile(ETA, len(y))
    eta = np.column_stack([E, np.zeros_like(E)])[:, None, :]
    out = pointwise_derivatives(hurdle_negative_binomial())(Y, eta, np.array([np.exp(60.0)]))
    mu = np.exp(E)
    expected = np.log(0.5) + stats.poisson.logpmf(Y, mu) - np.log(-np.expm1(-mu))
    np.testing.assert_allclose(out[0][:, 0], expected, rtol=1e-12)


@pytest.mark.parametrize("log_precision", [30.0, 35.0, 100.0])
def test_beta_binomial_tends_to_binomial(log_precision):
    n = 7.0
    y = np.arange(n + 1)
    Y, E = np.repeat(y, len(ETA)), np.tile(ETA, len(y))
    data = np.column_stack([Y, np.full_like(Y, n)])
    out = pointwise_derivatives(beta_binomial())(
        data, E[:, None], np.array([np.exp(log_precision)])
    )
    expected = stats.binom.logpmf(Y, n, special.expit(E))
    np.testing.assert_allclose(out[0][:, 0], expected, rtol=1e-11)
    assert np.all(out[0][:, 0] <= 0.0)  # a probability, not the +11 of the cancelling form
