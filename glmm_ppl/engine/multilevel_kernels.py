"""The numba kernels of multilevel adaptive quadrature, over blocks of top groups.

Notation as in :mod:`.multilevel`. Units are numbered level by level ("flat" indices: the
units of level 0 in row order, then those of level 1, …); ``parent``, ``cs``/``ce`` (children)
and ``rs``/``re`` (rows) describe the tree, ``gfirst[l, i]`` is the first unit of level ``l``
in top group ``i``, and ``moff[u]`` the offset of unit ``u``'s effects in the flat modes.
Within a top group a unit's chain (its ancestors, then itself) has coordinates
``0..qoff[l + 1]``: those of the columns of ``Z``.

:func:`modes_kernel` finds the joint mode of each top group by Newton's method with
step-halving, solving each step by block elimination from the innermost units up, and stores
per unit ``C_u = chol(P_u⁻¹)`` (upper triangular), ``A_u`` and ``log|C_u|``.
:func:`nodes_kernel` walks each top group depth first: a unit's nodes are placed for every node
path of its ancestors on entering it, and its sums over its own nodes are taken on leaving it,
after its children have added theirs; the posterior expectations of the gradient are collapsed
over each unit's nodes at the same time, so no array holds rows × all node paths.
"""

from __future__ import annotations

import numba
import numpy as np

from .kernels import LOG_2PI, chol_solve, pd_factor

__all__ = ["modes_kernel", "nodes_kernel"]


@numba.njit(cache=True, nogil=True)
def _h(point, i, ql, qoff, parent, rs, re, gfirst, soff, Y, eta0, Z, Dinv, phis, b, G, g,
       want, buf, yb, eb, bc):  # fmt: skip
    """``h(b) = Σ_rows ℓ − ½ Σ_u b_uᵀ D_l⁻¹ b_u`` of top group ``i`` (``b`` by slot); with
    ``want`` each unit's gradient ``g`` and −Hessian ``G`` on its chain (the rows' terms on the
    innermost units' chains, the priors on every unit's own block)."""
    L, Q = ql.shape[0], Z.shape[1]
    h = 0.0
    for lv in range(L):
        o, q = qoff[lv], ql[lv]
        for u in range(gfirst[lv, i], gfirst[lv, i + 1]):
            s = soff[lv] + u - gfirst[lv, i]
            if want:
                for r in range(qoff[lv + 1]):
                    g[s, r] = 0.0
                    for c in range(qoff[lv + 1]):
                        G[s, r, c] = 0.0
            for r in range(q):
                t = 0.0
                for c in range(q):
                    t += Dinv[o + r, o + c] * b[s, c]
                h -= 0.5 * b[s, r] * t
                if want:
                    g[s, o + r] -= t
                    for c in range(q):
                        G[s, o + r, o + c] += Dinv[o + r, o + c]
    phis_p, buf_p, yb_p, eb_p = phis.ctypes, buf.ctypes, yb.ctypes, eb.ctypes
    lv = L - 1
    for v in range(gfirst[lv, i], gfirst[lv, i + 1]):
        s = soff[lv] + v - gfirst[lv, i]
        w = v
        for m in range(lv, -1, -1):  # the chain's effects
            sw = soff[m] + w - gfirst[m, i]
            for t in range(ql[m]):
                bc[qoff[m] + t] = b[sw, t]
            w = parent[w]
        for j in range(rs[v], re[v]):
            for c in range(Y.shape[1]):
                yb[c] = Y[j, c]
            e = eta0[j]
            for c in range(Q):
                e += Z[j, c] * bc[c]
            eb[0] = e
            point(yb_p, eb_p, phis_p, buf_p)
            h += buf[0]
            if want:
                for r in range(Q):
                    z = Z[j, r]
                    g[s, r] += buf[1] * z
                    for c in range(r + 1):
                        G[s, r, c] -= buf[2] * z * Z[j, c]
        if want:
            for r in range(Q):
                for c in range(r + 1, Q):
                    G[s, r, c] = G[s, c, r]
    return h


@numba.njit(cache=True, nogil=True)
def _eliminate(i, ql, qoff, parent, gfirst, soff, G, g, Gw, gw, Pch, Aw, cw, step, B, Lb, x, rhs):
    """Block elimination of the Newton system of top group ``i``, innermost units first: each
    unit's ``P_u`` (its Cholesky factor into ``Pch``), ``A_u = −P_u⁻¹ H_u,anc`` and
    ``c_u = P_u⁻¹ g_u``; then the step by back substitution, outermost first. False when a
    block is not finite."""
    L = ql.shape[0]
    for lv in range(L):
        for u in range(gfirst[lv, i], gfirst[lv, i + 1]):
            s = soff[lv] + u - gfirst[lv, i]
            for r in range(qoff[lv + 1]):
                gw[s, r] = g[s, r]
                for c in range(qoff[lv + 1]):
                    Gw[s, r, c] = G[s, r, c]
    for lv in range(L - 1, -1, -1):
        o, q = qoff[lv], ql[lv]
        for u in range(gfirst[lv, i], gfirst[lv, i + 1]):
            s = soff[lv] + u - gfirst[lv, i]
            Pv, Lv = B[: q * q].reshape((q, q)), Lb[: q * q].reshape((q, q))
            xv, rv = x[:q], rhs[:q]
            for r in range(q):
                rv[r] = gw[s, o + r]
                for c in range(q):
                    Pv[r, c] = Gw[s, o + r, o + c]
            if not pd_factor(Pv, Lv):
                return False
            chol_solve(Lv, rv, xv)
            for r in range(q):
                cw[s, r] = xv[r]
                for c in range(q):
                    Pch[s, r, c] = Lv[r, c]
            for a in range(o):
                for r in range(q):
                    rv[r] = Gw[s, o + r, a]
                chol_solve(Lv, rv, xv)
                for r in range(q):
                    Aw[s, r, a] = -xv[r]
            if lv == 0:
                continue
            p = parent[u]
            sp = soff[lv - 1] + p - gfirst[lv - 1, i]
            for r in range(o):
                t = gw[s, r]
                for k in range(q):
                    t += Aw[s, k, r] * gw[s, o + k]
                gw[sp, r] += t
                for c in range(o):
                    t = Gw[s, r, c]
                    for k in range(q):
                        t += Gw[s, r, o + k] * Aw[s, k, c]
                    Gw[sp, r, c] += t
    for lv in range(L):
        o, q = qoff[lv], ql[lv]
        for u in range(gfirst[lv, i], gfirst[lv, i + 1]):
            s = soff[lv] + u - gfirst[lv, i]
            w = parent[u]
            for m in range(lv - 1, -1, -1):  # the ancestors' steps
                sw = soff[m] + w - gfirst[m, i]
                for t in range(ql[m]):
                    rhs[qoff[m] + t] = step[sw, t]
                w = parent[w]
            for r in range(q):
                t = cw[s, r]
                for a in range(o):
                    t += Aw[s, r, a] * rhs[a]
                step[s, r] = t
    return True


@numba.njit(cache=True, nogil=True)
def _move(i, ql, gfirst, soff, b, step, t, out):
    """``out = b + t step`` over the slots of top group ``i``; the largest ``|step|``."""
    size = 0.0
    for lv in range(ql.shape[0]):
        for s in range(soff[lv], soff[lv] + gfirst[lv, i + 1] - gfirst[lv, i]):
            for r in range(ql[lv]):
                out[s, r] = b[s, r] + t * step[s, r]
                size = max(size, abs(step[s, r]))
    return size


@numba.njit(cache=True, nogil=True)
def modes_kernel(point, n_out, g0, g1, Y, eta0, Z, ql, qoff, parent, rs, re, moff, gfirst,
                 Dinv, phis, modes, Cst, Ast, ldc, iters, tol, max_iter):  # fmt: skip
    """Newton from ``modes`` to each top group's joint mode; the units' ``C_u``, ``A_u`` and
    ``log|C_u|`` (``−∞`` for the top unit of a group whose integrand is not finite)."""
    L, Q = ql.shape[0], Z.shape[1]
    qmax = 0
    for lv in range(L):
        qmax = max(qmax, ql[lv])
    soff = np.zeros(L + 1, dtype=np.int64)  # slots of a group's units, level by level
    for lv in range(L):
        most = 0
        for i in range(g0, g1):
            most = max(most, gfirst[lv, i + 1] - gfirst[lv, i])
        soff[lv + 1] = soff[lv] + most
    ns = soff[L]
    b, b_new, step = np.zeros((ns, qmax)), np.zeros((ns, qmax)), np.zeros((ns, qmax))
    G, Gw = np.zeros((ns, Q, Q)), np.zeros((ns, Q, Q))
    g, gw = np.zeros((ns, Q)), np.zeros((ns, Q))
    Pch, Aw, cw = np.zeros((ns, qmax, qmax)), np.zeros((ns, qmax, Q)), np.empty((ns, qmax))
    B, Lb, Linv = np.zeros(qmax * qmax), np.zeros(qmax * qmax), np.zeros((qmax, qmax))
    x, rhs = np.empty(max(Q, 1)), np.empty(max(Q, 1))
    buf, yb, eb, bc = np.empty(n_out), np.empty(Y.shape[1]), np.empty(1), np.empty(Q)
    for i in range(g0, g1):
        for lv in range(L):
            for u in range(gfirst[lv, i], gfirst[lv, i + 1]):
                s = soff[lv] + u - gfirst[lv, i]
                for r in range(ql[lv]):
                    b[s, r] = modes[moff[u] + r]
        h = _h(point, i, ql, qoff, parent, rs, re, gfirst, soff, Y, eta0, Z, Dinv, phis, b, G,
               g, True, buf, yb, eb, bc)  # fmt: skip
        it = 0
        ok, fresh = True, False
        while it < max_iter:
            it += 1
            if not (np.isfinite(h) and _eliminate(
                i, ql, qoff, parent, gfirst, soff, G, g, Gw, gw, Pch, Aw, cw, step, B, Lb, x, rhs
            )):  # fmt: skip
                ok = False
                break
            size = _move(i, ql, gfirst, soff, b, step, 0.0, b_new)
            if size < tol:  # converged: the last (tiny) step without evaluating again
                _move(i, ql, gfirst, soff, b, step, 1.0, b)
                fresh = True  # the factors are those of the last evaluation
                break
            t = 1.0
            rose = False
            for _ in range(40):
                _move(i, ql, gfirst, soff, b, step, t, b_new)
                h_new = _h(point, i, ql, qoff, parent, rs, re, gfirst, soff, Y, eta0, Z, Dinv,
                           phis, b_new, G, g, True, buf, yb, eb, bc)  # fmt: skip
                if h_new >= h - 1e-10 * (1.0 + abs(h)):
                    rose = True
                    break
                t *= 0.5
            if not rose:  # no step along the Newton direction helps: refresh at b and stop
                h = _h(point, i, ql, qoff, parent, rs, re, gfirst, soff, Y, eta0, Z, Dinv, phis,
                       b, G, g, True, buf, yb, eb, bc)  # fmt: skip
                break
            _move(i, ql, gfirst, soff, b_new, step, 0.0, b)
            h = h_new
            if t * size < tol:
                break
        if ok and not fresh:  # the factors at the last evaluation
            ok = np.isfinite(h) and _eliminate(
                i, ql, qoff, parent, gfirst, soff, G, g, Gw, gw, Pch, Aw, cw, step, B, Lb, x, rhs
            )
        for lv in range(L):
            q = ql[lv]
            for u in range(gfirst[lv, i], gfirst[lv, i + 1]):
                s = soff[lv] + u - gfirst[lv, i]
                Ast[u] = 0.0
                Cst[u] = 0.0
                if not ok:  # the group's likelihood is reported as 0; modes stay
                    for r in range(q):
                        Cst[u, r, r] = 1.0
                    ldc[u] = -np.inf if lv == 0 else 0.0
                    continue
                # C = L⁻ᵀ (C Cᵀ = P⁻¹), log|C| = −Σ log L_rr
                for c in range(q):
                    for r in range(c, q):
                        v = 1.0 if r == c else 0.0
                        for k in range(c, r):
                            v -= Pch[s, r, k] * Linv[k, c]
                        Linv[r, c] = v / Pch[s, r, r]
                ld = 0.0
                for r in range(q):
                    ld -= np.log(Pch[s, r, r])
                    modes[moff[u] + r] = b[s, r]
                    for c in range(q):
                        Cst[u, r, c] = Linv[c, r] if c >= r else 0.0
                    for a in range(qoff[lv]):
                        Ast[u, r, a] = Aw[s, r, a]
                ldc[u] = ld
        iters[i] = it if ok else -1


@numba.njit(cache=True, nogil=True)
def _enter(u, lv, cur, ql, qoff, moff, modes, Cst, Ast, znodes, zoff, log_w, Kl, P, aoff,
           soff2, Dinv, logdetD, want, Bn, a, X, sh):  # fmt: skip
    """Place unit ``u``'s nodes for every node path of its ancestors (``cur``), with their
    log weights and prior densities in ``a`` and their ``b bᵀ`` in ``X``."""
    q, o, K, Pl = ql[lv], qoff[lv], Kl[lv], P[lv]
    for p in range(Pl):  # A_u (b_anc(p) − b̂_anc)
        for r in range(q):
            sh[p, r] = 0.0
        for m in range(lv):
            anc = cur[m]
            idx = aoff[m] + p // (Pl // P[m + 1])
            for t in range(ql[m]):
                dev = Bn[idx, t] - modes[moff[anc] + t]
                for r in range(q):
                    sh[p, r] += Ast[u, r, qoff[m] + t] * dev
    for p in range(Pl):
        for k in range(K):
            row = aoff[lv] + p * K + k
            for r in range(q):
                v = modes[moff[u] + r] + sh[p, r]
                for c in range(r, q):
                    v += Cst[u, r, c] * znodes[zoff[lv] + k, c]
                Bn[row, r] = v
            quad = 0.0
            for r in range(q):
                t = 0.0
                for c in range(q):
                    t += Dinv[o + r, o + c] * Bn[row, c]
                quad += Bn[row, r] * t
            a[row] = log_w[zoff[lv] + k] - 0.5 * (q * LOG_2PI + logdetD[lv] + quad)
            if want:
                X[row, :] = 0.0
                for r in range(q):
                    for c in range(q):
                        X[row, soff2[lv] + r * q + c] = Bn[row, r] * Bn[row, c]


@numba.njit(cache=True, nogil=True)
def _rows(point, v, j0, ql, qoff, rs, re, Y, eta0, Z, phis, Kl, P, aoff, n_s, want, em, Bn,
          a, X, ep, et, d1, d2, buf, yb, eb):  # fmt: skip
    """The rows of innermost unit ``v`` at every node path: ``ℓ`` into ``a``, ``∂ℓ/∂η`` and
    ``∂²ℓ/∂η²`` into ``d1``/``d2`` (rows of ``v`` × paths), ``∂ℓ/∂φ`` into ``X``."""
    L = ql.shape[0]
    lv = L - 1
    K, Pa, o, q = Kl[lv], P[lv], qoff[lv], ql[lv]
    n_phi = phis.shape[0]
    simple = want and n_phi == 0 and not em
    phis_p, buf_p, yb_p, eb_p = phis.ctypes, buf.ctypes, yb.ctypes, eb.ctypes
    for j in range(rs[v], re[v]):
        for c in range(Y.shape[1]):
            yb[c] = Y[j, c]
        for m in range(lv):  # the ancestors' parts of η, path prefix by prefix
            for p in range(P[m]):
                base = eta0[j] if m == 0 else ep[aoff[m - 1] + p]
                for k in range(Kl[m]):
                    row = aoff[m] + p * Kl[m] + k
                    e = base
                    for c in range(ql[m]):
                        e += Z[j, qoff[m] + c] * Bn[row, c]
                    ep[row] = e
        for p in range(Pa):  # every path's η first (a loop the compiler vectorises)
            base = eta0[j] if lv == 0 else ep[aoff[lv - 1] + p]
            for k in range(K):
                et[p * K + k] = base
        for c in range(q):
            z = Z[j, o + c]
            for pk in range(Pa * K):
                et[pk] += z * Bn[aoff[lv] + pk, c]
        jl = j - j0
        if simple:  # nothing but ℓ and ∂ℓ/∂η: a loop with nothing else in it
            for pk in range(Pa * K):
                eb[0] = et[pk]
                point(yb_p, eb_p, phis_p, buf_p)
                a[aoff[lv] + pk] += buf[0]
                d1[jl, pk] = buf[1]
            continue
        for pk in range(Pa * K):
            row = aoff[lv] + pk
            eb[0] = et[pk]
            point(yb_p, eb_p, phis_p, buf_p)
            a[row] += buf[0]
            if want:
                d1[jl, pk] = buf[1]
                for f in range(n_phi):
                    X[row, n_s + f] += buf[3 + f]
            if em:
                d2[jl, pk] = buf[2]


@numba.njit(cache=True, nogil=True)
def _leave(u, lv, g0r, ql, rs, re, ldc, Kl, P, aoff, want, em, a, X, d1, d2, Er, Er2, top):
    """Sum over unit ``u``'s nodes for each ancestor path: its ``log L_u`` into the parent's
    ``a`` (or ``top[0]``), and the posterior expectations (``X``, the rows' ``Er``/``Er2``)
    collapsed over its nodes into the parent's (or ``top[1:]``)."""
    L = ql.shape[0]
    K, Pl = Kl[lv], P[lv]
    n_acc = X.shape[1]
    for p in range(Pl):
        base = aoff[lv] + p * K
        amax = -np.inf
        for k in range(K):
            amax = max(amax, a[base + k])
        tot = 0.0
        for k in range(K):
            a[base + k] = np.exp(a[base + k] - amax)
            tot += a[base + k]
        lse = amax + np.log(tot) + ldc[u]
        for k in range(K):
            a[base + k] /= tot  # the node's posterior weight given the path
        if lv > 0:
            a[aoff[lv - 1] + p] += lse
        else:
            top[0] = lse
        if not (want or em):
            continue
        for t in range(n_acc):
            s = 0.0
            for k in range(K):
                s += a[base + k] * X[base + k, t]
            if lv > 0:
                X[aoff[lv - 1] + p, t] += s
            else:
                top[1 + t] = s
        for j in range(rs[u], re[u]):
            jl = j - g0r
            s, s2 = 0.0, 0.0
            for k in range(K):
                w = a[base + k]
                if lv == L - 1:
                    s += w * d1[j - rs[u], p * K + k]
                    if em:
                        s2 += w * d2[j - rs[u], p * K + k]
                else:
                    s += w * Er[jl, p * K + k]
                    if em:
                        s2 += w * Er2[jl, p * K + k]
            Er[jl, p] = s  # in place: later paths read indices ≥ p K ≥ p
            if em:
                Er2[jl, p] = s2


@numba.njit(cache=True, nogil=True)
def nodes_kernel(point, n_out, g0, g1, Y, eta0, Z, ql, qoff, cs, ce, rs, re, moff,
                 gfirst, modes, Cst, Ast, ldc, znodes, zoff, log_w, Kl, P, Dinv, logdetD, phis,
                 want, em, per_group, g_eta, S_g, gphi_g, W):  # fmt: skip
    """``log L_i`` of top groups ``g0..g1`` and, with ``want``, their fixed-node gradients:
    the rows' ``E[∂ℓ/∂η]`` (and ``E[∂²ℓ/∂η²]`` into ``W`` with ``em``), the block-diagonal
    ``S_i`` and ``E[∂ℓ/∂φ]``."""
    L = ql.shape[0]
    n_phi = phis.shape[0]
    qmax = 0
    aoff = np.zeros(L + 1, dtype=np.int64)
    soff2 = np.zeros(L + 1, dtype=np.int64)
    for lv in range(L):
        qmax = max(qmax, ql[lv])
        aoff[lv + 1] = aoff[lv] + P[lv + 1]
        soff2[lv + 1] = soff2[lv] + ql[lv] * ql[lv]
    n_s = soff2[L]
    m_group, m_inner = 1, 1
    for i in range(g0, g1):
        ut = gfirst[0, i]
        m_group = max(m_group, re[ut] - rs[ut])
        for v in range(gfirst[L - 1, i], gfirst[L - 1, i + 1]):
            m_inner = max(m_inner, re[v] - rs[v])
    need = want or em
    Bn = np.empty((aoff[L], qmax))
    a = np.empty(aoff[L])
    X = np.zeros((aoff[L] if need else 1, n_s + n_phi))
    ep = np.empty(aoff[L])
    et = np.empty(P[L])
    sh = np.empty((P[L - 1], qmax))
    d1 = np.empty((m_inner if need else 1, P[L]))
    d2 = np.empty((m_inner if em else 1, P[L] if em else 1))
    Er = np.empty((m_group if need else 1, P[L - 1]))
    Er2 = np.empty((m_group if em else 1, P[L - 1] if em else 1))
    top = np.empty(1 + n_s + n_phi)
    cur = np.empty(L, dtype=np.int64)
    buf, yb, eb = np.empty(n_out), np.empty(Y.shape[1]), np.empty(1)
    for i in range(g0, g1):
        u0 = gfirst[0, i]
        g0r = rs[u0]
        if ldc[u0] == -np.inf:
            per_group[i] = -np.inf
            if need:
                S_g[i] = 0.0
                gphi_g[i] = 0.0
                for j in range(rs[u0], re[u0]):
                    g_eta[j] = 0.0
                    if em:
                        W[j] = 0.0
            continue
        lv = 0
        cur[0] = u0
        _enter(u0, 0, cur, ql, qoff, moff, modes, Cst, Ast, znodes, zoff, log_w, Kl, P, aoff,
               soff2, Dinv, logdetD, need, Bn, a, X, sh)  # fmt: skip
        done = False
        while not done:
            while lv < L - 1:  # down to the first innermost unit
                c = cs[cur[lv]]
                lv += 1
                cur[lv] = c
                _enter(c, lv, cur, ql, qoff, moff, modes, Cst, Ast, znodes, zoff, log_w, Kl, P,
                       aoff, soff2, Dinv, logdetD, need, Bn, a, X, sh)  # fmt: skip
            v = cur[lv]
            _rows(point, v, rs[v], ql, qoff, rs, re, Y, eta0, Z, phis, Kl, P, aoff, n_s,
                  need, em, Bn, a, X, ep, et, d1, d2, buf, yb, eb)  # fmt: skip
            while True:  # leave units until one has a next sibling
                _leave(cur[lv], lv, g0r, ql, rs, re, ldc, Kl, P, aoff, need, em, a, X, d1,
                       d2, Er, Er2, top)  # fmt: skip
                if lv == 0:
                    done = True
                    break
                nxt = cur[lv] + 1
                if nxt < ce[cur[lv - 1]]:
                    cur[lv] = nxt
                    _enter(nxt, lv, cur, ql, qoff, moff, modes, Cst, Ast, znodes, zoff, log_w, Kl,
                           P, aoff, soff2, Dinv, logdetD, need, Bn, a, X, sh)  # fmt: skip
                    break
                lv -= 1
        per_group[i] = top[0]
        if not need:
            continue
        for j in range(rs[u0], re[u0]):
            g_eta[j] = Er[j - g0r, 0]
            if em:
                W[j] = Er2[j - g0r, 0]
        S_g[i] = 0.0
        for m in range(L):
            o, q = qoff[m], ql[m]
            for r in range(q):
                for c in range(q):
                    S_g[i, o + r, o + c] = top[1 + soff2[m] + r * q + c]
        for f in range(n_phi):
            gphi_g[i, f] = top[1 + n_s + f]
