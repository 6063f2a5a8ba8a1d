"""Adaptive Gauss–Hermite quadrature of the marginal log-likelihood (the numerical core).

Notation: group ``i`` has rows ``j`` with response ``y_ij``, fixed part ``η⁰_ij = x_ijᵀβ (+
offset)`` and random-effects design ``z_ij``; ``b_i ~ N(0, D)``. The integrand is
``h_i(b) = Σ_j log p(y_ij | η⁰_ij + z_ijᵀb, φ) + log N(b; 0, D)``. Zero-inflated and hurdle
families have a second linear predictor per row (``E = 2``), each with its own fixed part and
its own rows of ``Z`` (one ``b_i`` holds the random effects of both); the derivatives below
then run over both predictors. Group weights ``w_i`` multiply ``log L_i``.

Adaptation: ``b̂_i`` maximises ``h_i`` (Newton with step-halving, per group) and ``C_i`` is the
Cholesky factor of ``(−∇²h_i(b̂_i))⁻¹``. With the standard normal product rule ``(z_k, w_k)``
the nodes are ``b_ik = b̂_i + C_i z_k`` and

``log L_i ≈ log|C_i| + logsumexp_k [log w_k + ½|z_k|² + (q/2) log 2π + h_i(b_ik)]``.

For fixed nodes the gradient follows from the posterior weights ``π_ik`` (the normalised
terms of the sum): ``∂/∂η⁰_ij = Σ_k π_ik ∂ℓ_ijk/∂η``, ``∂/∂D = ½ D⁻¹ S D⁻¹ − (n/2) D⁻¹``
with ``S = Σ_ik π_ik b_ik b_ikᵀ``, and ``∂/∂φ = Σ_ijk π_ik ∂ℓ_ijk/∂φ``.

The loops are numba kernels over groups (cached on disk, compiled once for all families) that
call the family's compiled point function (:mod:`glmm_ppl.pointwise`); large data is split into
blocks of groups run on several threads. Memory is ``O(N + n K)`` whatever the number of nodes.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numba
import numpy as np

from .families import Family
from .pointwise import pointwise_derivatives
from .quadrature import product_rule

__all__ = ["AGQ", "AGQResult"]

_LOG_2PI = float(np.log(2.0 * np.pi))
_PARALLEL_WORK = 50_000  # rows × nodes above which the groups are split across threads
_NEWTON_TOL, _NEWTON_MAX_ITER = 1e-9, 100  # re-centring: step size at convergence, steps


def _inverse(D) -> tuple[np.ndarray, float] | None:
    """``(D⁻¹, log|D|)``, or None when ``D`` is not safely positive definite.

    Beyond a conditional standard deviation of 1e-5 times the marginal one (a correlation
    within 5e-11 of ±1) ``log|D|`` and ``bᵀD⁻¹b`` cancel catastrophically and the rule's value
    is meaningless (measured: 10 log-likelihood units too high at a correlation of 1 − 1e-15,
    whatever the number of points), so such a ``D`` counts as singular.
    """
    D = np.ascontiguousarray(np.atleast_2d(D), dtype=np.float64)
    Dinv = np.empty_like(D)
    logdet = _inverse_kernel(D, Dinv)
    return None if np.isnan(logdet) else (Dinv, logdet)


@cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="glmm_ppl")


@dataclass
class AGQResult:
    """Value and (fixed-node) gradients of the AGQ log-likelihood."""

    loglik: float
    per_group: np.ndarray
    grad_eta: np.ndarray | None = None
    grad_D: np.ndarray | None = None
    grad_phis: np.ndarray | None = None
    hess_weights: np.ndarray | None = None  # Σ_k π_ik ∂²ℓ_ijk/∂η_e∂η_f, (N, E(E+1)/2) (for EM)
    second_moment: np.ndarray | None = None  # S = Σ_ik π_ik b_ik b_ikᵀ (for EM)
    second_moment_groups: np.ndarray | None = None  # S_i = Σ_k π_ik b_ik b_ikᵀ, (n, q, q)
    grad_phis_groups: np.ndarray | None = None  # ∂ log L_i / ∂φ, (n, n_phis)


# ---- small dense linear algebra for one group (q is small) ---------------------------------
@numba.njit(cache=True, nogil=True)
def _cholesky(A, L):
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
def _chol_solve(L, g, x):
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
def _pd_factor(A, L):
    """Cholesky of ``A`` after the smallest diagonal shift that makes it positive definite;
    False (and ``L`` undefined) when ``A`` has a value that is not finite."""
    q = A.shape[0]
    for r in range(q):
        for c in range(q):
            if not np.isfinite(A[r, c]):
                return False
    if _cholesky(A, L):
        return True
    scale = 0.0
    for r in range(q):
        scale = max(scale, abs(A[r, r]))
    shift = 1e-8 * (1.0 + scale)
    B = A.copy()
    for _ in range(200):  # 4**200 exceeds any finite scale
        for r in range(q):
            B[r, r] = A[r, r] + shift
        if _cholesky(B, L):
            return True
        shift *= 4.0
    return False


@numba.njit(cache=True, nogil=True)
def _inverse_kernel(D, Dinv):
    """``D⁻¹`` into ``Dinv`` and ``log|D|``; NaN when ``D`` is not safely positive definite
    (see :func:`_inverse`). A function of its own: NumPy's calls cost ~50 µs for a 1 × 1 ``D``."""
    q = D.shape[0]
    L = np.zeros((q, q))
    for r in range(q):
        for c in range(q):
            if not np.isfinite(D[r, c]):
                return np.nan
    if not _cholesky(D, L):
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
        _chol_solve(L, e, x)
        e[c] = 0.0
        for r in range(q):
            Dinv[r, c] = x[r]
    return logdet


@numba.njit(cache=True, nogil=True)
def _h_group(point, j0, j1, Y, eta0, Z, b, Dinv, phis, buf, yb, eb, grad, negH, want_derivs, d2):
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
    phis_p, buf_p, yb_p, eb_p = phis.ctypes, buf.ctypes, yb.ctypes, eb.ctypes
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


@numba.njit(cache=True, nogil=True)
def _modes_kernel(
    point, n_out, g0, g1, Y, eta0, Z, starts, Dinv, phis, b_all, chol, log_det, iters, tol,
    max_iter, d2,
):  # fmt: skip
    """Newton from ``b_all`` to the modes, per group; the factors ``C_i`` and ``log|C_i|``; the
    rows' ``∂²ℓ/∂η²`` at the modes into ``d2`` unless it is empty."""
    q = b_all.shape[1]
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
        for r in range(q):
            b[r] = b_all[i, r]
        h = _h_group(point, j0, j1, Y, eta0, Z, b, Dinv, phis, buf, yb, eb, grad, negH, True, d2)
        it = 0
        ok = True
        while it < max_iter:
            it += 1
            if not (np.isfinite(h) and _pd_factor(negH, L)):
                ok = False
                break
            _chol_solve(L, grad, step)
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
                h_new = _h_group(
                    point, j0, j1, Y, eta0, Z, b_new, Dinv, phis, buf, yb, eb, grad, negH, True, d2
                )
                if h_new >= h - 1e-10 * (1.0 + abs(h)):
                    rose = True
                    break
                t *= 0.5
            if not rose:  # no step along the Newton direction helps: the mode is as good as
                h = _h_group(  # floating point allows (grad and negH refreshed at b)
                    point, j0, j1, Y, eta0, Z, b, Dinv, phis, buf, yb, eb, grad, negH, True, d2
                )
                break
            for r in range(q):
                b[r] = b_new[r]
            h = h_new
            if t * size < tol:
                break
        if not (ok and np.isfinite(h) and _pd_factor(negH, L)):
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
def _nodes_kernel(
    point,
    n_out,
    g0,
    g1,
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
):
    q = b_hat.shape[1]
    E = Z.shape[1]
    n_d2 = E * (E + 1) // 2
    K = znodes.shape[0]
    n_phi = phis.shape[0]
    o_phi = 1 + E + n_d2
    # one linear predictor and nothing but ℓ and ∂ℓ/∂η wanted: a loop with nothing else in it
    # (a quarter faster than the general one)
    simple = E == 1 and n_phi == 0 and not want_em
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
    d2 = np.empty((m_max, K, n_d2)) if want_em else np.empty((0, 0, 0))
    dphi = np.empty((K, n_phi))
    phis_p, buf_p, yb_p, eb_p = phis.ctypes, buf.ctypes, yb.ctypes, eb.ctypes
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
            a[k] = log_w[k] - 0.5 * (q * _LOG_2PI + logdetD + quad)
        for j in range(j0, j1):  # row by row: the row's data are read once for all nodes
            for c in range(Y.shape[1]):
                yb[c] = Y[j, c]
            for e in range(E):
                for k in range(K):
                    eta[k, e] = eta0[j, e]
                for r in range(q):
                    z = Z[j, e, r]
                    for k in range(K):
                        eta[k, e] += z * B[k, r]
            if simple:
                for k in range(K):
                    eb[0] = eta[k, 0]
                    point(yb_p, eb_p, phis_p, buf_p)
                    a[k] += buf[0]
                    d1[j - j0, k, 0] = buf[1]
                continue
            for k in range(K):
                for e in range(E):
                    eb[e] = eta[k, e]
                point(yb_p, eb_p, phis_p, buf_p)
                a[k] += buf[0]
                if want_grad:
                    for e in range(E):
                        d1[j - j0, k, e] = buf[1 + e]
                    for p in range(n_phi):
                        dphi[k, p] += buf[o_phi + p]
                if want_em:
                    for e in range(n_d2):
                        d2[j - j0, k, e] = buf[1 + E + e]
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
                for e in range(n_d2):
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
        for p in range(n_phi):
            t = 0.0
            for k in range(K):
                t += a[k] * dphi[k, p]
            gphi_g[i, p] = t


class AGQ:
    """AGQ marginal log-likelihood of one data set; it keeps the current modes and factors.

    Parameters
    ----------
    y : ndarray, shape (N,) or (N, 1 + n_aux)
        The response, then the per-row data the family reads (its ``aux_names``).
    Z : ndarray, shape (N, q) or (N, E, q)
        Random-effects design of each linear predictor (``E = 2`` with a zero part), rows
        sorted by group.
    starts : ndarray, shape (n + 1,)
        Row where each group starts, then ``N``.
    family : Family
    n_agq : int
        Points per dimension (the product rule has ``n_agq**q`` nodes).
    weights : ndarray (n,), optional
        Multipliers of the groups' log-likelihoods.

    Attributes
    ----------
    modes : ndarray (n, q)
        Current ``b̂_i``.
    chol : ndarray (n, q, q)
        Current ``C_i``.
    recenter : bool
        Whether :meth:`evaluate` moves the nodes to the parameters it is given first.

    Examples
    --------
    >>> from glmm_ppl.families import poisson
    >>> y = np.array([1.0, 3.0, 0.0, 2.0]); Z = np.ones((4, 1))
    >>> agq = AGQ(y, Z, np.array([0, 2, 4]), poisson(), n_agq=11)
    >>> res = agq.evaluate(np.zeros(4), np.eye(1), np.array([]))
    >>> bool(np.isfinite(res.loglik))
    True
    """

    def __init__(self, y, Z, starts, family: Family, n_agq: int, weights=None):
        y = np.asarray(y, dtype=np.float64)
        self.Y = np.ascontiguousarray(y.reshape(len(y), -1))
        self.E = family.n_eta
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim == 2 and self.E == 2:
            raise ValueError("with a zero part, Z must be (N, 2, q): one design per predictor")
        self.Z = np.ascontiguousarray(Z[:, None, :] if Z.ndim == 2 else Z)
        self.N, _, self.q = self.Z.shape
        self.starts = np.ascontiguousarray(starts, dtype=np.int64)
        self.n = len(self.starts) - 1
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self._row_weights = (
            None if weights is None else np.repeat(self.weights, np.diff(self.starts))
        )
        self.family = family
        pw = pointwise_derivatives(family)
        self._point, self._n_out = pw.point, pw.n_out
        self.n_agq = int(n_agq)
        self.nodes, lw = product_rule(self.n_agq, self.q)
        self.nodes = np.ascontiguousarray(self.nodes)
        self.log_w = lw + 0.5 * np.sum(self.nodes**2, axis=1) + 0.5 * self.q * _LOG_2PI
        self.modes = np.zeros((self.n, self.q))
        self.chol = np.broadcast_to(np.eye(self.q), (self.n, self.q, self.q)).copy()
        self.log_det_chol = np.zeros(self.n)
        self.newton_iterations = np.zeros(self.n, dtype=np.int64)
        self.recenter = True
        self.threads = max(1, min(len(os.sched_getaffinity(0)), 8))

    def copy(self) -> AGQ:
        """An engine on the same data with its own modes and factors (the data are shared):
        one per thread, when several evaluate at once."""
        new = copy.copy(self)
        new.modes, new.chol = self.modes.copy(), self.chol.copy()
        new.log_det_chol = self.log_det_chol.copy()
        new.newton_iterations = self.newton_iterations.copy()
        return new

    def _run(self, kernel, *args) -> None:
        """Run a kernel over all groups: in blocks on several threads when the work is large
        (the kernels release the GIL and write disjoint slices)."""
        work = self.N * len(self.log_w)
        if self.threads == 1 or work < _PARALLEL_WORK:
            kernel(self._point, self._n_out, 0, self.n, *args)
            return
        bounds = np.linspace(0, self.n, self.threads + 1).astype(np.int64)
        jobs = [
            _pool(self.threads).submit(kernel, self._point, self._n_out, g0, g1, *args)
            for g0, g1 in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        for job in jobs:
            job.result()

    def _eta0(self, eta0) -> np.ndarray:
        """The fixed part as an ``(N, E)`` array (a vector is accepted for one predictor)."""
        return np.ascontiguousarray(np.asarray(eta0, dtype=np.float64).reshape(self.N, self.E))

    def update_modes(
        self, eta0, D, phis, tol: float = _NEWTON_TOL, max_iter: int = _NEWTON_MAX_ITER
    ) -> int:
        """Move the modes ``b̂_i`` and factors ``C_i`` to the current parameters.

        Returns the largest number of Newton iterations any group needed.
        """
        inv = _inverse(D)
        if inv is None:
            return 0
        return self._recenter(self._eta0(eta0), inv[0], phis, tol, max_iter)

    def _recenter(
        self, eta0, Dinv, phis, tol: float = _NEWTON_TOL, max_iter: int = _NEWTON_MAX_ITER
    ) -> int:
        modes = self.modes.copy()
        self._run(
            _modes_kernel,
            self.Y,
            eta0,
            self.Z,
            self.starts,
            Dinv,
            np.ascontiguousarray(phis, dtype=np.float64),
            modes,
            self.chol,
            self.log_det_chol,
            self.newton_iterations,
            tol,
            max_iter,
            np.empty((0, 1)),
        )
        self.modes = modes
        return int(self.newton_iterations.max())

    def posterior_covariance(self) -> np.ndarray:
        """``C_i C_iᵀ``: inverse curvature at the modes, shape (n, q, q)."""
        return self.chol @ np.swapaxes(self.chol, 1, 2)

    def evaluate(self, eta0, D, phis, grad: bool = True, em: bool = False) -> AGQResult:
        """AGQ log-likelihood at ``(η⁰, D, φ)``; re-centres first unless ``recenter`` is off.

        ``η⁰`` is ``(N,)`` or ``(N, E)``; ``grad_eta`` comes back in the same shape. Totals
        (``loglik``, the gradients, ``second_moment``, ``hess_weights``) carry the group
        weights; the per-group fields do not.
        """
        shape = np.shape(eta0)
        eta0 = self._eta0(eta0)
        phis = np.ascontiguousarray(phis, dtype=np.float64)  # the kernels read it by pointer
        D = np.atleast_2d(np.asarray(D, dtype=np.float64))
        inv = _inverse(D)
        E, n_d2 = self.E, self.E * (self.E + 1) // 2
        if inv is None:  # D is singular (a variance underflowed): the likelihood is 0 there
            return AGQResult(
                loglik=-np.inf,
                per_group=np.full(self.n, -np.inf),
                grad_eta=np.zeros(shape),
                grad_D=np.zeros_like(D),
                grad_phis=np.zeros(len(phis)),
                hess_weights=np.zeros((self.N, n_d2)) if em else None,
                second_moment=np.zeros_like(D),
                second_moment_groups=np.zeros((self.n, self.q, self.q)),
                grad_phis_groups=np.zeros((self.n, len(phis))),
            )
        Dinv, logdetD = inv
        if self.recenter:
            self._recenter(eta0, Dinv, phis)
        n, q, n_phi = self.n, self.q, len(phis)
        want = grad or em
        per_group = np.empty(n)
        g_eta = np.empty((self.N if want else 0, E))
        S_g = np.empty((n if want else 0, q, q))
        gphi_g = np.empty((n if want else 0, n_phi))
        W = np.empty((self.N if em else 0, n_d2))
        self._run(
            _nodes_kernel,
            self.Y,
            eta0,
            self.Z,
            self.starts,
            self.modes,
            self.chol,
            self.log_det_chol,
            self.nodes,
            self.log_w,
            Dinv,
            logdetD,
            phis,
            want,
            em,
            per_group,
            g_eta,
            S_g,
            gphi_g,
            W,
        )
        w = self.weights
        loglik = float(per_group.sum() if w is None else per_group @ w)
        res = AGQResult(loglik if np.isfinite(loglik) else -np.inf, per_group)
        if want:
            if w is not None:
                g_eta *= self._row_weights[:, None]
                W *= self._row_weights[:, None] if em else 1.0
            S = S_g.sum(axis=0) if w is None else np.einsum("i,irc->rc", w, S_g)
            n_eff = n if w is None else w.sum()
            res.grad_eta = g_eta.reshape(shape)
            res.grad_D = 0.5 * Dinv @ S @ Dinv - 0.5 * n_eff * Dinv
            res.grad_phis = gphi_g.sum(axis=0) if w is None else w @ gphi_g
            res.second_moment = S
            res.hess_weights = W if em else None
            res.second_moment_groups = S_g
            res.grad_phis_groups = gphi_g
        return res
