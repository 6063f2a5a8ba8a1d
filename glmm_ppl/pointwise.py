"""A family's log density and its derivatives, compiled once for elementwise evaluation.

For observation ``j`` and node ``k`` the AGQ engine needs ``ℓ = log p(y_j | η_jk, φ)``,
``∂ℓ/∂η``, ``∂²ℓ/∂η²`` and ``∂ℓ/∂φ_m``. All of them come from PyTensor's automatic
differentiation of :meth:`Family.logp`; nothing is written by hand per family.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytensor
import pytensor.tensor as pt

from .families import Family

__all__ = ["PointwiseDerivatives", "pointwise_derivatives"]


class PointwiseDerivatives:
    """Compiled ``(y, η, φ) ↦ (ℓ, ∂ℓ/∂η, ∂²ℓ/∂η², ∂ℓ/∂φ_1, …)``.

    ``y`` has shape ``(N, 1)`` and ``η`` shape ``(N, K)`` (``K`` nodes per observation); every
    output has the shape of ``η``.

    Examples
    --------
    >>> from glmm_ppl.families import poisson
    >>> k = pointwise_derivatives(poisson())
    >>> lp, d1, d2 = k(np.array([[2.0]]), np.array([[0.0]]), np.array([]))
    >>> float(d1[0, 0]), float(d2[0, 0])  # y - exp(eta), -exp(eta)
    (1.0, -1.0)
    """

    def __init__(self, family: Family):
        y = pt.matrix("y", shape=(None, 1), dtype="float64")
        eta = pt.matrix("eta", dtype="float64")
        phis = pt.vector("phis", dtype="float64")
        phi_full = [pt.alloc(phis[m], eta.shape[0], eta.shape[1]) for m in range(family.n_phis)]
        lp = family.logp(y, eta, phi_full)
        lp = lp + pt.zeros_like(eta)  # the density may not depend on every input
        d1 = pytensor.grad(lp.sum(), eta)
        d2 = pytensor.grad(d1.sum(), eta)
        dphi = [pytensor.grad(lp.sum(), p) for p in phi_full]
        self.family = family
        self._fn = pytensor.function(
            [y, eta, phis], [lp, d1, d2, *dphi], on_unused_input="ignore"
        )
        self._fn.trust_input = True

    def __call__(self, y: np.ndarray, eta: np.ndarray, phis: np.ndarray) -> list[np.ndarray]:
        return self._fn(y, np.ascontiguousarray(eta, dtype=np.float64), phis)


@lru_cache(maxsize=32)
def pointwise_derivatives(family: Family) -> PointwiseDerivatives:
    """The compiled derivatives of ``family`` (cached per family and link)."""
    return PointwiseDerivatives(family)
