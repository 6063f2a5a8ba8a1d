"""What the zero-inflated and hurdle families share: the zero part's logistic probability,
the main distributions' probability of zero, draws of the zero part and moment-based starting
values of a negative-binomial size."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from scipy import optimize, special

from .base import PHI_MAX, PHI_MIN

__all__ = [
    "log_main_part",
    "log_zero_part",
    "logaddexp",
    "nb_log_p0",
    "poisson_logpmf",
    "draw_shape",
    "size_moments",
    "zero_draws",
]


# ---- PyTensor helpers (elementwise) -----------------------------------------------------------
def log_zero_part(eta_zi):
    """``log π`` with ``π = logistic(η_zi)``."""
    return -pt.softplus(-eta_zi)


def log_main_part(eta_zi):
    """``log(1 − π)``."""
    return -pt.softplus(eta_zi)


def logaddexp(a, b):
    """``log(eᵃ + eᵇ)`` for finite ``a`` and ``b``; each branch is finite everywhere."""
    return pt.switch(a > b, a + pt.softplus(b - a), b + pt.softplus(a - b))


def poisson_logpmf(y, eta):
    """``log Pois(y; μ = e^η)``."""
    return y * eta - pt.exp(eta) - pt.gammaln(y + 1.0)


def nb_log_p0(eta, size):
    """``log NB(0; μ = e^η, θ) = −θ log(1 + μ/θ)``."""
    return -size * pt.softplus(eta - pt.log(size))


# ---- numpy helpers ----------------------------------------------------------------------------
def zero_draws(eta_zi, shape, rng):
    """Indicators of the zero part, ``True`` with probability ``logistic(η_zi)``."""
    return rng.random(shape) < special.expit(eta_zi)


def draw_shape(*arrays):
    return np.broadcast_shapes(*(np.shape(a) for a in arrays))


def size_moments(y: np.ndarray) -> np.ndarray:
    """NB size by the method of moments on the non-zero counts, which follow the zero-truncated
    NB in both the zero-inflated and the hurdle model.

    Given ``y > 0``: ``m₁ = E[y] = μ/(1 − p₀)`` and ``E[y²]/m₁ − 1 = μ(1 + 1/θ) = r`` with
    ``p₀ = (1 + μ/θ)^{−θ}``; ``θ = μ/(r − μ)`` and ``μ`` solves ``m₁(1 − p₀) = μ`` on
    ``(0, r)``. Counts no more dispersed than the zero-truncated Poisson give the upper bound;
    too few counts, or no root, give 1.
    """
    pos = np.asarray(y, float)
    pos = pos[np.isfinite(pos) & (pos > 0)]
    if len(pos) < 2:
        return np.array([1.0])
    m1 = pos.mean()
    r = np.mean(pos**2) / m1 - 1.0
    if r <= 0:
        return np.array([PHI_MAX])

    def excess(mu):
        size = mu / (r - mu)
        return m1 * -np.expm1(-size * np.log1p(r - mu)) - mu

    lo, hi = r * 1e-8, r * (1.0 - 1e-8)
    if excess(hi) >= 0:
        return np.array([PHI_MAX])
    if excess(lo) <= 0:
        return np.array([1.0])
    mu = optimize.brentq(excess, lo, hi, xtol=1e-12 * r)
    return np.array([np.clip(mu / (r - mu), PHI_MIN, PHI_MAX)])
