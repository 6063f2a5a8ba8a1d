"""The kernels' evaluation of a family's density by blocks of points, which vectorises.

For a family with one linear predictor and no extra parameter, the AGQ kernels
(:mod:`.kernels`) evaluate a group's rows (Newton's search for its mode) and its rows × nodes
(the quadrature) by one call of the family's block function
(:data:`~glmm_ppl.engine.pointwise.POINTS_SIGNATURE`) rather than one call of its point
function per point: the block function's loop runs on the processor's vector units
(:mod:`.vector_math`). The inputs are laid out by column, each column padded to a multiple of
:data:`BLOCK_WIDTH` points. With one random effect the Newton search runs in scalars
(:func:`newton_1d`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

__all__ = ["BLOCK_WIDTH", "address", "block_space", "block_terms", "h_group_block", "newton_1d"]


@intrinsic
def address(typingctx, array):
    """Pointer to the data of ``array``, for a family's compiled functions: unlike
    ``array.ctypes``, it holds no reference, so it costs nothing to take."""

    def codegen(context, builder, signature, args):
        return context.make_array(signature.args[0])(context, builder, args[0]).data

    return types.CPointer(array.dtype)(array), codegen


#: A block function's calls are padded to a multiple of this many points: its vectorised loop
#: takes them 8 at a time (AVX-512), and a remainder runs point by point at several times
#: the cost (8 points took 71 ns, 7 took 186 ns, for the binary logit density).
BLOCK_WIDTH = 8


@numba.njit(cache=True, nogil=True, inline="always")
def _padded(n):
    """``n`` rounded up to a multiple of :data:`BLOCK_WIDTH`."""
    return (n + BLOCK_WIDTH - 1) // BLOCK_WIDTH * BLOCK_WIDTH


@numba.njit(cache=True, nogil=True)
def block_space(points_per_group, n_y):
    """Work space of a block function (:func:`h_group_block`, :func:`block_terms`) for up to
    ``points_per_group`` points with ``n_y`` row values: ``(y, η, out)`` (all empty for 0
    points). What the padding points compute (at zeros) is never read."""
    n = _padded(points_per_group)
    return np.zeros(n_y * n), np.zeros(n), np.empty(3 * n)


@numba.njit(cache=True, nogil=True, inline="always")
def _pad(block, n_y, n, n_pad):
    """Zeros in the padding ``n..n_pad`` of the block's inputs (laid out with stride
    ``n_pad``)."""
    y, eta = block[0], block[1]
    for c in range(n_y):
        for i in range(n, n_pad):
            y[c * n_pad + i] = 0.0
    for i in range(n, n_pad):
        eta[i] = 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def _rows_data(block, Y, j0, j1):
    """The data of rows ``j0..j1`` into the block, one point per row, padded; the stride of
    its columns."""
    y = block[0]
    n = j1 - j0
    s = _padded(n)
    for c in range(Y.shape[1]):
        for i in range(n):
            y[c * s + i] = Y[j0 + i, c]
    _pad(block, Y.shape[1], n, s)
    return s


@numba.njit(cache=True, nogil=True)
def h_group_block(points, j0, j1, Y, eta0, Z, b, Dinv, phis_p, block, grad, negH, want_derivs, d2):
    """:func:`~glmm_ppl.engine.kernels.h_group` for one linear predictor and no extra
    parameter, the rows ``j0..j1`` evaluated by one call of the block function ``points``."""
    y, eta, out = block
    q = Z.shape[2]
    n = j1 - j0
    s = _rows_data(block, Y, j0, j1)
    for j in range(j0, j1):
        v = eta0[j, 0]
        for r in range(q):
            v += Z[j, 0, r] * b[r]
        eta[j - j0] = v
    points(address(y), address(eta), phis_p, address(out), s)
    h = 0.0
    for i in range(n):
        h += out[i]
    for r in range(q):  # the prior's part
        t = 0.0
        for c in range(q):
            t += Dinv[r, c] * b[c]
        h -= 0.5 * b[r] * t
        if want_derivs:
            grad[r] = -t
            for c in range(q):
                negH[r, c] = Dinv[r, c]
    if not want_derivs:
        return h
    if d2.shape[0] > 0:
        for i in range(n):
            d2[j0 + i, 0] = out[2 * s + i]
    for i in range(n):
        j = j0 + i
        d, dd = out[s + i], out[2 * s + i]
        for r in range(q):
            z = Z[j, 0, r]
            grad[r] += d * z
            for c in range(r + 1):
                negH[r, c] -= dd * z * Z[j, 0, c]
    for r in range(q):
        for c in range(r + 1, q):
            negH[r, c] = negH[c, r]
    return h


@numba.njit(cache=True, nogil=True)
def _h_1d(points, j0, j1, eta0, Z, b, Dinv, phis_p, block, d2):
    """``h_i(b)``, ``h_i'(b)`` and ``−h_i''(b)`` of a group with one random effect, by the
    block function (its rows' data already in ``block``); the rows' ``∂²ℓ/∂η²`` into ``d2``
    unless it is empty."""
    y, eta, out = block
    n = j1 - j0
    s = _padded(n)
    for i in range(n):
        eta[i] = eta0[j0 + i, 0] + Z[j0 + i, 0, 0] * b
    points(address(y), address(eta), phis_p, address(out), s)
    h, g, H = 0.0, 0.0, 0.0
    for i in range(n):
        z = Z[j0 + i, 0, 0]
        h += out[i]
        g += out[s + i] * z
        H += out[2 * s + i] * z * z
    if d2.shape[0] > 0:
        for i in range(n):
            d2[j0 + i, 0] = out[2 * s + i]
    return h - 0.5 * Dinv * b * b, g - Dinv * b, Dinv - H


@numba.njit(cache=True, nogil=True)
def newton_1d(points, j0, j1, Y, eta0, Z, b, Dinv, phis_p, block, tol, max_iter, d2):
    """:func:`~glmm_ppl.engine.kernels.modes_kernel`'s Newton for a group with one random
    effect, in scalars: the mode, ``−h''`` there and the number of iterations, or ``−1``
    iterations where ``−h''`` is not positive or ``h`` not finite along the way (the general
    code then takes the group)."""
    _rows_data(block, Y, j0, j1)  # the same at every point of the search
    h, g, H = _h_1d(points, j0, j1, eta0, Z, b, Dinv, phis_p, block, d2)
    it = 0
    while it < max_iter:
        it += 1
        if not (np.isfinite(h) and H > 0.0):
            return b, H, -1
        step = g / H
        size = abs(step)
        if size < tol:  # converged: take the last (tiny) step without evaluating again
            return b + step, H, it
        t = 1.0
        rose = False
        for _ in range(40):
            b_new = b + t * step
            h_new, g_new, H_new = _h_1d(points, j0, j1, eta0, Z, b_new, Dinv, phis_p, block, d2)
            if h_new >= h - 1e-10 * (1.0 + abs(h)):
                rose = True
                break
            t *= 0.5
        if not rose:  # no step helps: the mode is as good as floating point allows
            h, g, H = _h_1d(points, j0, j1, eta0, Z, b, Dinv, phis_p, block, d2)
            break
        b, h, g, H = b_new, h_new, g_new, H_new
        if t * size < tol:
            break
    if not (np.isfinite(h) and H > 0.0):
        return b, H, -1
    return b, H, it


@numba.njit(cache=True, nogil=True)
def block_terms(points, j0, j1, Y, eta0, Z, B, phis_p, block, a, d1):
    """Add ``ℓ_j`` at the nodes ``B`` of rows ``j0..j1`` (one linear predictor) to ``a`` and
    write their ``∂ℓ/∂η`` into ``d1``, by one call of the block function ``points`` on the
    group's rows × nodes. ``block`` is the work space ``(y, η, out)``; the values lie by
    column, as ``points`` reads them."""
    y, eta, out = block
    K, q = B.shape
    n = (j1 - j0) * K
    s = _padded(n)  # the stride of the columns
    for j in range(j0, j1):
        at = (j - j0) * K
        for c in range(Y.shape[1]):
            v = Y[j, c]
            for k in range(K):
                y[c * s + at + k] = v
        v = eta0[j, 0]
        for k in range(K):
            eta[at + k] = v
        for r in range(q):
            z = Z[j, 0, r]
            for k in range(K):
                eta[at + k] += z * B[k, r]
    _pad(block, Y.shape[1], n, s)
    points(address(y), address(eta), phis_p, address(out), s)
    for j in range(j1 - j0):
        for k in range(K):
            a[k] += out[j * K + k]
            d1[j, k, 0] = out[s + j * K + k]
