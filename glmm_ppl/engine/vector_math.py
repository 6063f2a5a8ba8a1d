"""``exp``, ``log`` and ``log1p`` in arithmetic that a compiler can vectorise.

numba lowers ``np.exp`` and ``np.log1p`` to calls into the C library, one value at a time: a
loop around them cannot use the processor's vector units (numba's vector library, Intel's
SVML, needs an llvmlite built with it, which PyPI's is not). These versions use only
arithmetic, comparisons and the bits of a float, so LLVM vectorises a loop of them: the binary
logit density and its derivative cost about a fifth as much per point (2 ns instead of 11 on
an AMD EPYC with AVX-512). Their error is at most about 2 units in the last place (the tests
compare them with NumPy over the whole range, subnormals and special values included).

Method (as in fdlibm): ``exp(x) = 2ᵏ exp(r)`` with ``k = round(x / log 2)`` and ``|r| ≤ ½ log 2``
(Cody–Waite reduction with a two-part ``log 2``), ``exp(r)`` by its Taylor series to ``r¹³``,
and ``2ᵏ`` as two normal powers of two built from their bits (so a subnormal result is
rounded once); ``log(x) = k log 2 + log m`` with ``m ∈ [√2/2, √2)`` read from the bits, and
``log m = f − f²/2 + s (f²/2 + R(s²))``, ``f = m − 1``, ``s = f / (2 + f)``, ``R`` the series
of ``atanh``; ``log1p(x)`` is ``log(1 + x)`` corrected by the rounding error of ``1 + x``.
"""

from __future__ import annotations

import math
from hashlib import sha256
from pathlib import Path

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

__all__ = ["SOURCE_KEY", "vexp", "vlog", "vlog1p"]

#: Identifies this implementation in the cache keys of functions compiled with it.
SOURCE_KEY = sha256(Path(__file__).read_bytes()).hexdigest()

_LN2_HI = 6.93147180369123816490e-01  # log 2 to 32 bits: k · _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.4426950408889634
_SQRT2 = 1.4142135623730951
_MANTISSA = 0x000FFFFFFFFFFFFF
_ONE_BITS = 0x3FF0000000000000
_OPTIONS = {"inline": "always", "fastmath": {"contract"}, "error_model": "numpy", "cache": True}


@intrinsic
def _as_float(typingctx, bits):
    """The float64 whose bits are the int64 ``bits``."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


@intrinsic
def _as_int(typingctx, x):
    """The int64 holding the bits of the float64 ``x``."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return types.int64(types.float64), codegen


@numba.njit(**_OPTIONS)
def vexp(x):
    """``exp(x)`` for a float64."""
    xc = min(max(x, -746.0), 710.0)  # beyond: 0 or inf, which the scaling below gives
    k = math.floor(xc * _LOG2E + 0.5)
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    ki = np.int64(k)
    k1 = ki >> 1
    value = p * _as_float((k1 + 1023) << 52) * _as_float((ki - k1 + 1023) << 52)
    return value if x == x else x


@numba.njit(**_OPTIONS)
def _log_core(u, c):
    """``log(u) + c`` for a positive normal ``u`` (``c`` small beside it)."""
    bits = _as_int(u)
    k = (bits >> 52) - 1023
    m = _as_float((bits & _MANTISSA) | _ONE_BITS)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    kf = np.float64(k + 1 if big else k)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z  # the atanh series in two halves, as fdlibm does: shorter chains
    t1 = w * (2.0 / 5.0 + w * (2.0 / 9.0 + w * (2.0 / 13.0 + w * (2.0 / 17.0 + w * 2.0 / 21.0))))
    t2 = z * (2.0 / 3.0 + w * (2.0 / 7.0 + w * (2.0 / 11.0 + w * (2.0 / 15.0 + w * 2.0 / 19.0))))
    R = t1 + t2
    hfsq = 0.5 * f * f
    return kf * _LN2_HI + ((f - (hfsq - s * (hfsq + R))) + (kf * _LN2_LO + c))


@numba.njit(**_OPTIONS)
def vlog(x):
    """``log(x)`` for a float64."""
    tiny = x < 2.2250738585072014e-308  # subnormal: scaled by 2⁵⁴ first
    u = x * 18014398509481984.0 if tiny else x
    value = _log_core(u, 0.0) - (37.42994775023705 if tiny else 0.0)  # 54 log 2
    if x == 0.0:
        return -np.inf
    if not x >= 0.0 or x == np.inf:
        return np.nan if not x >= 0.0 else x
    return value


@numba.njit(**_OPTIONS)
def vlog1p(x):
    """``log(1 + x)`` for a float64, accurate near 0."""
    u = 1.0 + x
    value = _log_core(u, (x - (u - 1.0)) / u)
    if x == 0.0:  # −0 stays −0
        return x
    if x == -1.0:
        return -np.inf
    if not x >= -1.0 or x == np.inf:
        return np.nan if not x >= -1.0 else x
    return value
