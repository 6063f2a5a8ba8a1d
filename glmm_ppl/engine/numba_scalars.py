"""Scalar functions PyTensor's numba backend cannot cache on disk, given numba versions.

PyTensor's numba backend has no implementation of ``tri_gamma`` (ψ₁, the second derivative
of ``log Γ``), which appears in the second derivatives of the beta, beta-binomial, gamma and
negative-binomial densities; the fallback holds the GIL and is slow. This module registers
the algorithm of PyTensor's own C implementation (recurrence ``ψ₁(x) = ψ₁(x + 1) + 1/x²`` up to
``x ≥ 12``, then the asymptotic series through ``B₁₀``; relative error below 1e-13), so the
family kernels stay in nopython mode. ``polygamma(n, x)`` (``n ≥ 1``; in the third derivatives
the Laplace approximation's gradient needs) gets the same recurrence and series. ``erfcx``
(the scaled complementary error function of the probit link's tail), which PyTensor calls
through SciPy's Cython function and so cannot cache on disk, gets ``exp(x²) erfc(x)`` below
10 and the asymptotic series beyond. ``psi`` (ψ, the first derivative of ``log Γ``, in the first
derivatives of every density with a ``log Γ`` of a parameter) goes through SciPy's Cython
function too: a point function that calls it is compiled again by every new process. It gets
the recurrence ``ψ(x) = ψ(x + 1) − 1/x`` up to ``x ≥ 10``, then the asymptotic series through
``B₁₄`` (truncation below 2e-17), and the reflection ``ψ(x) = ψ(1 − x) − π/tan(πx)`` for
``x < 0``; its error is below 2e-15 · max(1, |ψ(x)|) for ``x > 0`` (absolute near the root
at 1.4616…, where the recurrence's terms cancel). Importing the module registers them.
"""

from __future__ import annotations

import math

import numpy as np
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.link.numba.dispatch.basic import register_funcify_and_cache_key
from pytensor.link.numba.dispatch.scalar import scalar_op_cache_key
from pytensor.scalar.math import Erfcx, PolyGamma, Psi, TriGamma

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


@register_funcify_and_cache_key(PolyGamma)
def _numba_funcify_polygamma(op, node, **kwargs):
    @numba_basic.numba_njit(error_model="numpy")
    def poly_gamma(n, x):
        # ψ⁽ⁿ⁾(x) = ψ⁽ⁿ⁾(x + 1) + (−1)ⁿ⁺¹ n!/xⁿ⁺¹ up to x ≥ 15, then
        # (−1)ⁿ⁺¹ [(n−1)!/zⁿ + n!/(2zⁿ⁺¹) + Σₖ B₂ₖ (2k+n−1)!/((2k)! z²ᵏ⁺ⁿ)]
        # (integer powers as products: LLVM's powi is not available to cached functions)
        if x <= 0.0 or n < 1:
            return np.nan
        fact = 1.0
        for k in range(2, n + 1):
            fact *= k  # n!
        value = 0.0
        z = x
        while z < 15.0:
            zn = z
            for _ in range(n):
                zn *= z
            value += fact / zn
            z += 1.0
        inv = 1.0 / z
        inv2 = inv * inv
        p = 1.0
        for _ in range(n):
            p *= inv  # z⁻ⁿ
        coef = fact / n  # (n−1)!
        series = coef * p + fact * p * inv / 2.0
        bern = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730)
        for k in range(1, 7):
            # (2k+n−1)!/(2k)! from the previous (2k+n−3)!/(2k−2)!
            coef *= (2 * k + n - 2) * (2 * k + n - 1) / ((2 * k - 1) * (2 * k))
            p *= inv2
            series += bern[k - 1] * coef * p
        return (value + series) if n % 2 == 1 else -(value + series)

    return poly_gamma, scalar_op_cache_key(op, cache_version=f"{__name__}-1")  # bump on change


@register_funcify_and_cache_key(Erfcx)
def _numba_funcify_erfcx(op, node, **kwargs):
    @numba_basic.numba_njit(error_model="numpy")
    def erfcx(x):
        if x < 10.0:  # relative error below 1e-14 (that of exp(x²) at x = 10); inf below -26.6
            return math.exp(x * x) * math.erfc(x)
        # 1/(x√π) Σₖ (−1)ᵏ (2k−1)!!/(2x²)ᵏ: at x = 10 the truncation after k = 10 is 7e-16
        y = 1.0 / (2.0 * x * x)
        term = 1.0
        total = 1.0
        for k in range(1, 11):
            term *= -(2 * k - 1) * y
            total += term
        return total / (x * math.sqrt(math.pi))

    return erfcx, scalar_op_cache_key(op, cache_version=f"{__name__}-1")  # bump on change


@register_funcify_and_cache_key(Psi)
def _numba_funcify_psi(op, node, **kwargs):
    @numba_basic.numba_njit(error_model="numpy")
    def positive_psi(x):
        # ψ(x) = ψ(x + n) − Σₖ 1/(x + k) with x + n ≥ 10, then
        # ψ(z) = log z − 1/(2z) − Σₖ B₂ₖ/(2k z²ᵏ) through B₁₄
        value = 0.0
        z = x
        while z < 10.0:
            value -= 1.0 / z
            z += 1.0
        y = 1.0 / (z * z)
        # B₂ₖ/(2k) for k = 1…7: 1/12, −1/120, 1/252, −1/240, 1/132, −691/32760, 1/12
        series = y * (
            1 / 12
            - y
            * (1 / 120 - y * (1 / 252 - y * (1 / 240 - y * (1 / 132 - y * (691 / 32760 - y / 12)))))
        )
        return value + math.log(z) - 0.5 / z - series

    @numba_basic.numba_njit(error_model="numpy")
    def psi(x):
        if x > 0.0:
            return positive_psi(x)
        if x == 0.0:  # as SciPy: −∞ at +0, +∞ at −0
            return -math.copysign(math.inf, x)
        r = x - math.floor(x)  # exact; tan has period π
        if r == 0.0:  # the poles at the negative integers
            return np.nan
        return positive_psi(1.0 - x) - math.pi / math.tan(math.pi * r)

    return psi, scalar_op_cache_key(op, cache_version=f"{__name__}-1")  # bump on change
