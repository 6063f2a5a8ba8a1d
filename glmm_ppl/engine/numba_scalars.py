"""Scalar functions PyTensor's numba backend runs in Python object mode, given numba versions.

PyTensor's numba backend has no implementation of ``tri_gamma`` (ψ₁, the second derivative
of ``log Γ``), which appears in the second derivatives of the beta, beta-binomial, gamma and
negative-binomial densities; the fallback holds the GIL and is slow. This module registers
the algorithm of PyTensor's own C implementation (recurrence ``ψ₁(x) = ψ₁(x + 1) + 1/x²`` up to
``x ≥ 12``, then the asymptotic series through ``B₁₀``; relative error below 1e-13), so the
family kernels stay in nopython mode. Importing the module registers it.
"""

from __future__ import annotations

from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.link.numba.dispatch.basic import register_funcify_and_cache_key
from pytensor.link.numba.dispatch.scalar import scalar_op_cache_key
from pytensor.scalar.math import TriGamma

__all__: list[str] = []


@register_funcify_and_cache_key(TriGamma)
def _numba_funcify_trigamma(op, node, **kwargs):
    @numba_basic.numba_njit(error_model="numpy")  # x → 0 gives inf, never an exception
    def tri_gamma(x):
        if x <= 0.0:  # as PyTensor's C implementation (the densities never go there)
            return 0.0
        value = 0.0
        z = x
        while z < 12.0:
            value += 1.0 / (z * z)
            z += 1.0
        y = 1.0 / (z * z)
        # 1 + Σ B₂ₖ/z²ᵏ with B₂…B₁₀ = 1/6, −1/30, 1/42, −1/30, 5/66
        series = 1.0 + y * (1 / 6 + y * (-1 / 30 + y * (1 / 42 + y * (-1 / 30 + y * 5 / 66))))
        return value + 0.5 * y + series / z

    # the module's name too: a cached function's environment is rebuilt by importing it
    return tri_gamma, scalar_op_cache_key(op, cache_version=f"{__name__}-3")  # bump on change
