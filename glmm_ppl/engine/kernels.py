"""The numba kernels of adaptive quadrature, over blocks of groups (notation: :mod:`.agq`).

:func:`modes_kernel` finds each group's mode ``b̂_i`` of ``h_i`` by Newton's method with
step-halving and the Cholesky factor ``C_i`` of ``(−∇²h_i(b̂_i))⁻¹``; :func:`nodes_kernel`
evaluates ``h_i`` at the nodes ``b̂_i + C_i z_k`` and returns ``log L_i`` and its gradients
(and EM's moments). Both call the family's compiled point function, passed as a first-class
function, so they are compiled (and cached on disk) once for every family. The AGQ engine
(:class:`~glmm_ppl.engine.agq.AGQ`) and the sampler's density
(:mod:`~glmm_ppl.engine.log_density`) run them.
"""

from __future__ import annotations

import numba
import numpy as np

from .block_kernels import address, block_space, block_terms, h_group_block, newton_1d

__all__ = [
    "LOG_2PI",
    "NEWTON_MAX_ITER",
    "NEWTON_TOL",
    "chol_solve",
    "cholesky",
    "h_group",
    "block_inverses",
    "inverse_kernel",
    "modes_kernel",
    "nodes_kernel",
    "pd_factor",
]

NEWTON_TOL, NEWTON_MAX_ITER = 1e-9, 100  # re-centring: step size at convergence, steps
LOG_2PI = float(np.log(2.0 * np.pi))


@numba.njit(cache=True, nogil=True)
def cholesky(A, L):
    """Lower Cholesky factor of ``A`` into ``L``; False if ``A`` is not positive definite."""
    q = A.shape[0]
    for r in range(q):
        for c in range(r + 1):
            s = A[r, c]
            for k in range(c):
                s -= L[r, k] * L[c, k]
            if r == c:
                if not s > 0.0:
                    return False
                L[r, r] = np.sqrt(s)
            else:
                L[r, c] = s / L[c, c]
        for c in range(r + 1, q):
            L[r, c] = 0.0
    return True


@numba.njit(cache=True, nogil=True)
def chol_solve(L, g, x):
    """Solve ``L Lᵀ x = g``."""
    q = L.shape[0]
    for r in range(q):
        s = g[r]
        for k in range(r):
            s -= L[r, k] * x[k]
        x[r] = s / L[r, r]
    for r in range(q - 1, -1, -1):
        s = x[r]
        for k in range(r + 1, q):
            s -= L[k, r] * x[k]
        x[r] = s / L[r, r]


@numba.njit(cache=True, nogil=True)
def pd_factor(A, L):
    """Cholesky of ``A`` after the smallest diagonal shift that makes it positive definite;
    False (and ``L`` undefined) when ``A`` has a value that is not finite."""
    q = A.shape[0]
    for r in range(q):
        for c in range(q):
            if not np.isfinite(A[r, c]):
                return False
    if cholesky(A, L):
        return True
    scale = 0.0
    for r in range(q):
        scale = max(scale, abs(A[r, r]))
    shift = 1e-8 * (1.0 + scale)
    B = A.copy()
    for _ in range(200):  # 4**200 exceeds any finite scale
        for r in range(q):
            B[r, r] = A[r, r] + shift
        if cholesky(B, L):
            return True
        shift *= 4.0
    return False


@numba.njit(cache=True, nogil=True)
def inverse_kernel(D, Dinv):
    """``D⁻¹`` into ``Dinv`` and ``log|D|``; NaN when ``D`` is not safely positive definite
    (see :func:`_inverse`). A function of its own: NumPy's calls cost ~50 µs for a 1 × 1 ``D``."""
    q = D.shape[0]
    L = np.zeros((q, q))
    for r in range(q):
        for c in range(q):
            if not np.isfinite(D[r, c]):
                return np.nan
    if not cholesky(D, L):
        return np.nan
    logdet = 0.0
    for r in range(q):
        if L[r, r] < 1e-5 * np.sqrt(D[r, r]):
            return np.nan
        logdet += 2.0 * np.log(L[r, r])
    e = np.zeros(q)
    x = np.empty(q)
    for c in range(q):
        e[c] = 1.0
        chol_solve(L, e, x)
        e[c] = 0.0
        for r in range(q):
            Dinv[r, c] = x[r]
    return logdet


def block_inverses(D, sizes) -> tuple[list[np.ndarray], np.ndarray] | None:
    """The inverse and ``log|D_k|`` of each diagonal block of ``D`` (blocks of ``sizes``, in
    turn); None when a block is not safely positive definite (:func:`inverse_kernel`).

    Examples
    --------
    >>> invs, logdets = block_inverses(np.diag([2.0, 4.0]), (1, 1))
    >>> [float(i[0, 0]) for i in invs], np.round(logdets, 4).tolist()
    ([0.5, 0.25], [0.6931, 1.3863])
    """
    invs, logdets, start = [], [], 0
    for size in sizes:
        block = np.ascontiguousarray(D[start : start + size, start : start + size])
        inv = np.empty_like(block)
        logdet = inverse_kernel(block, inv)
        if np.isnan(logdet):
            return None
        invs.append(inv)
        logdets.append(logdet)
        start += size
    return invs, np.array(logdets)


@numba.njit(cache=True, nogil=True)
def h_group(point, j0, j1, Y, eta0, Z, b, Dinv, phis, buf, yb, eb, grad, negH, want_derivs, d2):
    """h_i(b); with ``want_derivs`` also its gradient and −Hessian, and the rows' ``∂²ℓ/∂η²``
    into ``d2`` (N, E(E+1)/2) unless it is empty."""
    E, q = Z.shape[1], Z.shape[2]
    keep = d2.shape[0] > 0
    h = 0.0
    if want_derivs:
        for r in range(q):
            grad[r] = 0.0
            for c in range(q):
                negH[r, c] = Dinv[r, c]
    phis_p, buf_p, yb_p, eb_p = address(phis), address(buf), address(yb), address(eb)
    for j in range(j0, j1):
        for c in range(Y.shape[1]):  # the row's data and linear predictors, for the point
            yb[c] = Y[j, c]  # function (written out here: a helper taking array views
        for e in range(E):  # costs reference counting per row)
            v = eta0[j, e]
            for r in range(q):
                v += Z[j, e, r] * b[r]
            eb[e] = v
        point(yb_p, eb_p, phis_p, buf_p)
        h += buf[0]
        if not want_derivs:
            continue
        if keep:
            for e in range(d2.shape[1]):
                d2[j, e] = buf[1 + E + e]
        if E == 1:  # one linear predictor: ∇ℓ = ℓ' z, ∇²ℓ = ℓ'' z zᵀ
            for r in range(q):
                z = Z[j, 0, r]
                grad[r] += buf[1] * z
                for c in range(r + 1):
                    negH[r, c] -= buf[2] * z * Z[j, 0, c]
            continue
        for r in range(q):
            g = 0.0
            for e in range(E):
                g += buf[1 + e] * Z[j, e, r]
            grad[r] += g
        for r in range(q):
            for c in range(r + 1):
                s = 0.0
                k = 1 + E
                for e in range(E):
                    for f in range(e, E):
                        if e == f:
                            s += buf[k] * Z[j, e, r] * Z[j, e, c]
                        else:
                            s += buf[k] * (Z[j, e, r] * Z[j, f, c] + Z[j, f, r] * Z[j, e, c])
                        k += 1
                negH[r, c] -= s
    if want_derivs:
        for r in range(q):
            for c in range(r + 1, q):
                negH[r, c] = negH[c, r]
    for r in range(q):
        t = 0.0
        for c in range(q):
            t += Dinv[r, c] * b[c]
        h -= 0.5 * b[r] * t
        if want_derivs:
            grad[r] -= t
    return h


@numba.njit(cache=True, nogil=True, inline="always")
def _h(point, j0, j1, Y, eta0, Z, b, Dinv, phis, buf, yb, eb, grad, negH, d2, points, block):
    """:func:`h_group` with its derivatives, by the block function when ``block`` has room
    (the family has one)."""
    if block[1].shape[0] > 0:
        return h_group_block(
            points, j0, j1, Y, eta0, Z, b, Dinv, address(phis), block, grad, negH, True, d2
        )
    return h_group(point, j0, j1, Y, eta0, Z, b, Dinv, phis, buf, yb, eb, grad, negH, True, d2)


@numba.njit(cache=True, nogil=True)
def modes_kernel(
    point, n_out, g0, g1, points, blocks, Y, eta0, Z, starts, Dinv, phis, b_all, chol, log_det,
    iters, tol, max_iter, d2,
):  # fmt: skip
    """Newton from ``b_all`` to the modes, per group; the factors ``C_i`` and ``log|C_i|``; the
    rows' ``∂²ℓ/∂η²`` at the modes into ``d2`` unless it is empty. With ``blocks`` (a family
    with one linear predictor and no extra parameter), a group's rows are evaluated by one
    call of the family's block function ``points`` (:mod:`.block_kernels`)."""
    q = b_all.shape[1]
    m_max = 0
    if blocks:
        for i in range(g0, g1):
            m_max = max(m_max, starts[i + 1] - starts[i])
    block = block_space(m_max, Y.shape[1])
    # work space of one group, reused by all (an allocation per group costs as much as a row)
    buf = np.empty(n_out)
    yb = np.empty(Y.shape[1])
    eb = np.empty(Z.shape[1])
    grad = np.empty(q)
    negH = np.empty((q, q))
    L = np.zeros((q, q))
    Linv = np.empty((q, q))
    step = np.empty(q)
    b = np.empty(q)
    b_new = np.empty(q)
    for i in range(g0, g1):
        j0, j1 = starts[i], starts[i + 1]
        if blocks and q == 1:
            b1, H, it = newton_1d(
                points, j0, j1, Y, eta0, Z, b_all[i, 0], Dinv[0, 0], address(phis), block,
                tol, max_iter, d2,
            )  # fmt: skip
            if it > 0:  # C = 1/√(−h''), log|C| = −log √(−h'')
                root = np.sqrt(H)
                chol[i, 0, 0] = 1.0 / root
                log_det[i] = -np.log(root)
                b_all[i, 0] = b1
                iters[i] = it
                continue
        for r in range(q):
            b[r] = b_all[i, r]
        h = _h(point, j0, j1, Y, eta0, Z, b, Dinv, phis, buf, yb, eb, grad, negH, d2, points, block)
        it = 0
        ok = True
        while it < max_iter:
            it += 1
            if not (np.isfinite(h) and pd_factor(negH, L)):
                ok = False
                break
            chol_solve(L, grad, step)
            size = 0.0
            for r in range(q):
                size = max(size, abs(step[r]))
            if size < tol:  # converged: take the last (tiny) step without evaluating again
                for r in range(q):
                    b[r] += step[r]
                break
            # the trial points carry their derivatives: the accepted one needs them next
            t = 1.0
            rose = False
            for _ in range(40):
                for r in range(q):
                    b_new[r] = b[r] + t * step[r]
                h_new = _h(
                    point, j0, j1, Y, eta0, Z, b_new, Dinv, phis, buf, yb, eb, grad, negH, d2,
                    points, block,
                )  # fmt: skip
                if h_new >= h - 1e-10 * (1.0 + abs(h)):
                    rose = True
                    break
                t *= 0.5
            if not rose:  # no step along the Newton direction helps: the mode is as good as
                h = _h(  # floating point allows (grad and negH refreshed at b)
                    point, j0, j1, Y, eta0, Z, b, Dinv, phis, buf, yb, eb, grad, negH, d2, points,
                    block,
                )  # fmt: skip
                break
            for r in range(q):
                b[r] = b_new[r]
            h = h_new
            if t * size < tol:
                break
        if not (ok and np.isfinite(h) and pd_factor(negH, L)):
            # the integrand is not finite here (extreme parameters): the group's likelihood
            # is reported as 0 (log −∞) and its mode is left where it was
            for r in range(q):
                for c in range(q):
                    chol[i, r, c] = 1.0 if r == c else 0.0
            log_det[i] = -np.inf
            iters[i] = -1
            continue
        # C = L⁻ᵀ (so C Cᵀ = (−∇²h)⁻¹), log|C| = −Σ log L_rr
        Linv[:] = 0.0
        for c in range(q):
            for r in range(c, q):
                s = 1.0 if r == c else 0.0
                for k in range(c, r):
                    s -= L[r, k] * Linv[k, c]
                Linv[r, c] = s / L[r, r]
        ld = 0.0
        for r in range(q):
            ld -= np.log(L[r, r])
            for c in range(q):
                chol[i, r, c] = Linv[c, r]
        log_det[i] = ld
        b_all[i] = b
        iters[i] = it


@numba.njit(cache=True, nogil=True)
def nodes_kernel(
    point,
    n_out,
    g0,
    g1,
    points,
    blocks,
    Y,
    eta0,
    Z,
    starts,
    b_hat,
    chol,
    log_det,
    znodes,
    log_w,
    Dinv,
    logdetD,
    phis,
    want_grad,
    want_em,
    per_group,
    g_eta,
    S_g,
    gphi_g,
    W,
    X,
    X_zi,
    gw,
    cov,
):
    q = b_hat.shape[1]
    E = Z.shape[1]
    n_d2 = E * (E + 1) // 2
    K = znodes.shape[0]
    n_phi = phis.shape[0]
    o_phi = 1 + E + n_d2
    # the posterior covariance of the nodes' scores (Louis' identity): wanted when cov has rows;
    # then, with extra parameters, also the E_π of ∂²ℓ/∂η∂φ (W's columns after the n_d2) and of
    # Σ_j ∂²ℓ/∂φ∂φ (gphi_g's after the n_phi): the rest of the Hessian in φ
    p0, p1, U = X.shape[1], X_zi.shape[1], cov.shape[0]
    n_ep = E * n_phi if U > 0 else 0
    n_pp = n_phi * (n_phi + 1) // 2 if U > 0 else 0
    n_w = n_d2 + n_ep
    # one linear predictor, no extra parameter (``blocks``) and nothing but ℓ and ∂ℓ/∂η wanted:
    # a group's rows × nodes in one call of the family's block function
    simple = blocks and not want_em
    # work space of one group, reused by all (an allocation per group costs as much as a row)
    m_max = 0
    for i in range(g0, g1):
        m_max = max(m_max, starts[i + 1] - starts[i])
    buf = np.empty(n_out)
    yb = np.empty(Y.shape[1])
    eb = np.empty(E)
    a = np.empty(K)
    B = np.empty((K, q))
    eta = np.empty((K, E))
    d1 = np.empty((m_max, K, E))
    d2 = np.empty((m_max, K, n_w)) if want_em else np.empty((0, 0, 0))
    dphi = np.empty((K, n_phi + n_pp))
    u = np.empty((K, U))
    ubar = np.empty(U)
    block = block_space(m_max * K if simple else 0, Y.shape[1])
    phis_p, buf_p, yb_p, eb_p = address(phis), address(buf), address(yb), address(eb)
    for i in range(g0, g1):
        j0, j1 = starts[i], starts[i + 1]
        dphi[:] = 0.0
        for k in range(K):
            quad = 0.0
            for r in range(q):
                v = b_hat[i, r]
                for c in range(q):
                    v += chol[i, r, c] * znodes[k, c]
                B[k, r] = v
            for r in range(q):
                t = 0.0
                for c in range(q):
                    t += Dinv[r, c] * B[k, c]
                quad += B[k, r] * t
            # log_w carries +q/2 log 2π (the rule's 1/φ(z)); N(b; 0, D) brings −q/2 log 2π
            a[k] = log_w[k] - 0.5 * (q * LOG_2PI + logdetD + quad)
        if simple:
            block_terms(points, j0, j1, Y, eta0, Z, B, phis_p, block, a, d1)
        for j in range(j0, j1 if not simple else j0):  # row by row: its data read once
            for c in range(Y.shape[1]):
                yb[c] = Y[j, c]
            for e in range(E):
                for k in range(K):
                    eta[k, e] = eta0[j, e]
                for r in range(q):
                    z = Z[j, e, r]
                    for k in range(K):
                        eta[k, e] += z * B[k, r]
            for k in range(K):
                for e in range(E):
                    eb[e] = eta[k, e]
                point(yb_p, eb_p, phis_p, buf_p)
                a[k] += buf[0]
                if want_grad:
                    for e in range(E):
                        d1[j - j0, k, e] = buf[1 + e]
                    for p in range(n_phi + n_pp):  # ∂ℓ/∂φ, then (Louis) ∂²ℓ/∂φ∂φ
                        dphi[k, p] += buf[o_phi + (p if p < n_phi else p + E * n_phi)]
                if want_em:
                    for e in range(n_w):  # ∂²ℓ/∂η∂η, then (Louis) ∂²ℓ/∂η∂φ
                        d2[j - j0, k, e] = buf[1 + E + e if e < n_d2 else o_phi + n_phi + e - n_d2]
        amax = a.max()
        tot = 0.0
        for k in range(K):
            a[k] = np.exp(a[k] - amax)
            tot += a[k]
        per_group[i] = amax + np.log(tot) + log_det[i]
        if not (want_grad or want_em):
            continue
        for k in range(K):
            a[k] /= tot  # posterior weights
        for j in range(j0, j1):
            for e in range(E):
                g = 0.0
                for k in range(K):
                    g += a[k] * d1[j - j0, k, e]
                g_eta[j, e] = g
            if want_em:
                for e in range(n_w):
                    w = 0.0
                    for k in range(K):
                        w += a[k] * d2[j - j0, k, e]
                    W[j, e] = w
        for r in range(q):
            for c in range(q):
                t = 0.0
                for k in range(K):
                    t += a[k] * B[k, r] * B[k, c]
                S_g[i, r, c] = t
        for p in range(n_phi + n_pp):
            t = 0.0
            for k in range(K):
                t += a[k] * dphi[k, p]
            gphi_g[i, p] = t
        if U == 0:
            continue
        # node k's scores in (β, γ) and its b bᵀ (to which the score in D is affine)
        for k in range(K):
            for c in range(p0):
                t = 0.0
                for j in range(j0, j1):
                    t += d1[j - j0, k, 0] * X[j, c]
                u[k, c] = t
            for c in range(p1):
                t = 0.0
                for j in range(j0, j1):
                    t += d1[j - j0, k, 1] * X_zi[j, c]
                u[k, p0 + c] = t
            for r in range(q):
                for c in range(q):
                    u[k, p0 + p1 + r * q + c] = B[k, r] * B[k, c]
            for p in range(U - p0 - p1 - q * q):  # the scores in φ (none unless wanted)
                u[k, p0 + p1 + q * q + p] = dphi[k, p]
        for c in range(U):
            t = 0.0
            for k in range(K):
                t += a[k] * u[k, c]
            ubar[c] = t
        for r in range(U):
            for c in range(r, U):
                t = 0.0
                for k in range(K):
                    t += a[k] * (u[k, r] - ubar[r]) * (u[k, c] - ubar[c])
                cov[r, c] += gw[i] * t
