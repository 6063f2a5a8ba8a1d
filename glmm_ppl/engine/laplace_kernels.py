"""The numba kernels of the joint Laplace approximation (notation: :mod:`.laplace`).

The negative Hessian ``H`` of the joint log density in the random effects is held as the
blocks of the largest factor's units (``A_a``, one small matrix per unit), their coupling to
the other factors' effects (``B_a``, only the columns that unit's rows touch) and the dense
Schur complement ``S = C − Σ_a B_aᵀ A_a⁻¹ B_a`` of the rest. :func:`assemble` builds
``A_a⁻¹``, ``M_a = A_a⁻¹ B_a`` and ``S``; :func:`forward` and :func:`backward` are the two
halves of a solve with ``H`` around the dense solve with ``S``; :func:`row_variances` gives
``z_rᵀ H⁻¹ z_r`` of every row and each unit's block of ``H⁻¹``.
"""

from __future__ import annotations

import numba
import numpy as np

from .kernels import chol_solve, cholesky

__all__ = ["assemble", "backward", "forward", "mirror_lower", "row_pass", "row_variances"]


@numba.njit(cache=True, nogil=True)
def assemble(w, X0, ustart, rcol, rval, rloc, aptr, acol, D0inv, Ainv, logdetA, M, S):
    """Blocks of ``H`` at row weights ``w = −∂²ℓ/∂η²``: each unit's ``A_a⁻¹`` and
    ``log|A_a|``, ``M_a = A_a⁻¹ B_a`` (flat, unit after unit, ``q0 × k_a`` each) and, added
    into ``S`` (which holds the prior precision of the other factors' effects), ``C`` minus
    ``B_aᵀ M_a`` of every unit; only the lower triangle of ``S`` is written (the Cholesky
    factorisation reads no more). False when some ``A_a`` is not positive definite."""
    n0, q0 = Ainv.shape[0], Ainv.shape[1]
    qr = rcol.shape[1]
    m = S.shape[1]
    Sf = S.reshape(-1)  # flat indexing: twice as fast in the inner loops
    A = np.empty((q0, q0))
    L = np.zeros((q0, q0))
    e = np.zeros(q0)
    x = np.empty(q0)
    for a in range(n0):
        k0, k = aptr[a], aptr[a + 1] - aptr[a]
        for i in range(q0):
            for j in range(q0):
                A[i, j] = D0inv[i, j]
        B = np.zeros((q0, k))
        for r in range(ustart[a], ustart[a + 1]):
            wr = w[r]
            for i in range(q0):
                xi = wr * X0[r, i]
                for j in range(q0):
                    A[i, j] += xi * X0[r, j]
                for c in range(qr):
                    B[i, rloc[r, c]] += xi * rval[r, c]
            for c in range(qr):
                vc = wr * rval[r, c]
                gc = rcol[r, c]
                for d in range(qr):
                    if rcol[r, d] <= gc:
                        Sf[gc * m + rcol[r, d]] += vc * rval[r, d]
        if not cholesky(A, L):
            return False
        ld = 0.0
        for i in range(q0):
            ld += 2.0 * np.log(L[i, i])
        logdetA[a] = ld
        for c in range(q0):
            e[c] = 1.0
            chol_solve(L, e, x)
            e[c] = 0.0
            for i in range(q0):
                Ainv[a, i, c] = x[i]
        base = q0 * k0
        for i in range(q0):
            for c in range(k):
                s = 0.0
                for j in range(q0):
                    s += Ainv[a, i, j] * B[j, c]
                M[base + i * k + c] = s
        for c in range(k):  # the lower triangle (a unit's columns are sorted)
            row = acol[k0 + c] * m
            for i in range(q0):
                bic = B[i, c]
                mb = base + i * k
                for d in range(c + 1):
                    Sf[row + acol[k0 + d]] -= bic * M[mb + d]
    return True


@numba.njit(cache=True, nogil=True)
def forward(g0, Ainv, M, aptr, acol, t, r2):
    """First half of ``H Δ = g``: ``t_a = A_a⁻¹ g0_a`` and ``r2 ← r2 − Σ_a M_aᵀ g0_a`` (``r2``
    holds the other factors' part of ``g``)."""
    n0, q0 = g0.shape
    for a in range(n0):
        k0, k = aptr[a], aptr[a + 1] - aptr[a]
        base = q0 * k0
        for i in range(q0):
            s = 0.0
            for j in range(q0):
                s += Ainv[a, i, j] * g0[a, j]
            t[a, i] = s
        for c in range(k):
            s = 0.0
            for i in range(q0):
                s += M[base + i * k + c] * g0[a, i]
            r2[acol[k0 + c]] -= s


@numba.njit(cache=True, nogil=True)
def backward(t, M, aptr, acol, dr, d0):
    """Second half of ``H Δ = g``: ``Δ0_a = t_a − M_a Δr`` from the other factors' ``Δr``."""
    n0, q0 = t.shape
    for a in range(n0):
        k0, k = aptr[a], aptr[a + 1] - aptr[a]
        base = q0 * k0
        for i in range(q0):
            s = t[a, i]
            for c in range(k):
                s -= M[base + i * k + c] * dr[acol[k0 + c]]
            d0[a, i] = s


@numba.njit(cache=True, nogil=True)
def row_variances(X0, ustart, rval, rloc, Ainv, M, aptr, acol, Sinv, v, V0):
    """``v_r = z_rᵀ H⁻¹ z_r`` of every row and each unit's block ``V0_a`` of ``H⁻¹``.

    With ``x_r`` the row's effects design of the largest factor and ``y_r`` that of the
    others (in the unit's columns), ``S_a`` the unit's block of ``S⁻¹`` and ``P_a = M_a S_a``:
    ``V0_a = A_a⁻¹ + P_a M_aᵀ`` and ``v_r = x_rᵀ V0_a x_r − 2 x_rᵀ P_a y_r + y_rᵀ S_a y_r``
    (from ``H⁻¹``'s blocks ``A⁻¹ + M S⁻¹ Mᵀ``, ``−M S⁻¹`` and ``S⁻¹``)."""
    n0, q0 = Ainv.shape[0], Ainv.shape[1]
    qr = rval.shape[1]
    m = Sinv.shape[1]
    Sf = Sinv.reshape(-1)
    for a in range(n0):
        k0, k = aptr[a], aptr[a + 1] - aptr[a]
        base = q0 * k0
        P = np.zeros((q0, k))
        for c in range(k):
            row = acol[k0 + c] * m
            for i in range(q0):
                mic = M[base + i * k + c]
                for d in range(k):
                    P[i, d] += mic * Sf[row + acol[k0 + d]]
        for i in range(q0):
            for j in range(q0):
                s = Ainv[a, i, j]
                for d in range(k):
                    s += P[i, d] * M[base + j * k + d]
                V0[a, i, j] = s
        for r in range(ustart[a], ustart[a + 1]):
            vr = 0.0
            for i in range(q0):
                xi = X0[r, i]
                for j in range(q0):
                    vr += xi * V0[a, i, j] * X0[r, j]
                for c in range(qr):
                    vr -= 2.0 * xi * P[i, rloc[r, c]] * rval[r, c]
            for c in range(qr):
                row = acol[k0 + rloc[r, c]] * m
                for d in range(qr):
                    vr += rval[r, c] * Sf[row + acol[k0 + rloc[r, d]]] * rval[r, d]
            v[r] = vr


@numba.njit(cache=True, nogil=True)
def row_pass(point, n_out, Y, eta0, X0, unit0, b0, rcol, rval, br, phis, d1, d2, g0, gr):
    """One pass over the rows at the modes ``(b0, br)``: ``η_r``, the family's ``ℓ_r``,
    ``ℓ'_r`` and ``ℓ''_r`` (into ``d1``, ``d2``) and ``Zᵀ ℓ'`` (into ``g0`` and ``gr``, which
    start at zero); returns ``Σ_r ℓ_r``."""
    N, q0 = X0.shape
    qr = rcol.shape[1]
    buf = np.empty(n_out)
    yb = np.empty(Y.shape[1])
    eb = np.empty(1)
    phis_p, buf_p, yb_p, eb_p = phis.ctypes, buf.ctypes, yb.ctypes, eb.ctypes
    total = 0.0
    for r in range(N):
        a = unit0[r]
        eta = eta0[r]
        for i in range(q0):
            eta += X0[r, i] * b0[a, i]
        for c in range(qr):
            eta += rval[r, c] * br[rcol[r, c]]
        for c in range(Y.shape[1]):
            yb[c] = Y[r, c]
        eb[0] = eta
        point(yb_p, eb_p, phis_p, buf_p)
        total += buf[0]
        d1[r] = buf[1]
        d2[r] = buf[2]
        for i in range(q0):
            g0[a, i] += buf[1] * X0[r, i]
        for c in range(qr):
            gr[rcol[r, c]] += buf[1] * rval[r, c]
    return total


@numba.njit(cache=True, nogil=True)
def mirror_lower(A):
    """Copy the lower triangle of the square ``A`` onto its upper triangle, in place."""
    m = A.shape[0]
    for c in range(m):
        for r in range(c + 1, m):
            A[c, r] = A[r, c]
