"""Adaptive Gauss–Hermite quadrature of the marginal log-likelihood (the numerical core).

Notation: group ``i`` has rows ``j`` with response ``y_ij``, fixed part ``η⁰_ij = x_ijᵀβ (+
offset)`` and random-effects design ``z_ij``; ``b_i ~ N(0, D)``. The integrand is
``h_i(b) = Σ_j log p(y_ij | η⁰_ij + z_ijᵀb, φ) + log N(b; 0, D)``.

Adaptation: ``b̂_i`` maximises ``h_i`` (vectorised Newton over all groups with per-group
step-halving) and ``C_i`` is the Cholesky factor of ``(−∇²h_i(b̂_i))⁻¹``. With the standard
normal product rule ``(z_k, w_k)`` the nodes are ``b_ik = b̂_i + C_i z_k`` and

``log L_i ≈ log|C_i| + logsumexp_k [log w_k + ½|z_k|² + (q/2) log 2π + h_i(b_ik)]``.

For fixed nodes the gradient follows from the posterior weights ``π_ik`` (the normalised
terms of the sum): ``∂/∂η⁰_ij = Σ_k π_ik ∂ℓ_ijk/∂η``, ``∂/∂D = ½ D⁻¹ S D⁻¹ − (n/2) D⁻¹``
with ``S = Σ_ik π_ik b_ik b_ikᵀ``, and ``∂/∂φ = Σ_ijk π_ik ∂ℓ_ijk/∂φ``.
Work is done in chunks of whole groups so memory stays bounded whatever the size of the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .families import Family
from .pointwise import pointwise_derivatives
from .quadrature import product_rule

__all__ = ["AGQ", "AGQResult"]

_LOG_2PI = np.log(2.0 * np.pi)


@dataclass
class AGQResult:
    """Value and (fixed-node) gradients of the AGQ log-likelihood."""

    loglik: float
    per_group: np.ndarray
    grad_eta: np.ndarray | None = None
    grad_D: np.ndarray | None = None
    grad_phis: np.ndarray | None = None
    hess_weights: np.ndarray | None = None  # Σ_k π_ik ∂²ℓ_ijk/∂η², per row (for EM)
    second_moment: np.ndarray | None = None  # S = Σ_ik π_ik b_ik b_ikᵀ (for EM)


class AGQ:
    """AGQ marginal log-likelihood of one data set; it keeps the current modes and factors.

    Parameters
    ----------
    y : ndarray, shape (N,)
    Z : ndarray, shape (N, q)
        Random-effects design, rows sorted by group.
    starts : ndarray, shape (n + 1,)
        Row where each group starts, then ``N``.
    family : Family
    n_agq : int
        Points per dimension (the product rule has ``n_agq**q`` nodes).
    chunk_size : int
        Upper bound on rows × nodes evaluated at once.

    Examples
    --------
    >>> from glmm_ppl.families import poisson
    >>> y = np.array([1.0, 3.0, 0.0, 2.0]); Z = np.ones((4, 1))
    >>> agq = AGQ(y, Z, np.array([0, 2, 4]), poisson(), n_agq=11)
    >>> res = agq.evaluate(np.zeros(4), np.eye(1), np.array([]))
    >>> bool(np.isfinite(res.loglik))
    True
    """

    def __init__(self, y, Z, starts, family: Family, n_agq: int, chunk_size: int = 1 << 20):
        self.y = np.ascontiguousarray(y, dtype=float)[:, None]
        self.Z = np.ascontiguousarray(Z, dtype=float)
        self.N, self.q = self.Z.shape
        self.starts = np.asarray(starts, dtype=np.int64)
        self.n = len(self.starts) - 1
        counts = np.diff(self.starts)
        self.group = np.repeat(np.arange(self.n), counts)
        self.ZZ = (self.Z[:, :, None] * self.Z[:, None, :]).reshape(self.N, self.q * self.q)
        self.kernel = pointwise_derivatives(family)
        self.n_agq = int(n_agq)
        self.nodes, lw = product_rule(self.n_agq, self.q)
        self.log_w = lw + 0.5 * np.sum(self.nodes**2, axis=1) + 0.5 * self.q * _LOG_2PI
        self.modes = np.zeros((self.n, self.q))
        self.chol = np.broadcast_to(np.eye(self.q), (self.n, self.q, self.q)).copy()
        self.log_det_chol = np.zeros(self.n)
        self.chunks = self._make_chunks(counts, max(1, chunk_size // len(self.log_w)))
        self.recenter = True

    def _make_chunks(self, counts, max_rows):
        chunks, g0 = [], 0
        cum = np.cumsum(counts)
        while g0 < self.n:
            base = self.starts[g0]
            g1 = int(np.searchsorted(cum, base + max_rows, side="right"))
            g1 = min(max(g1, g0 + 1), self.n)
            rows = slice(int(self.starts[g0]), int(self.starts[g1]))
            local_starts = self.starts[g0:g1] - self.starts[g0]
            chunks.append((slice(g0, g1), rows, local_starts, self.group[rows] - g0))
            g0 = g1
        return chunks

    # ---- modes and curvature -------------------------------------------------------------
    def _h(self, b, eta0, Dinv, phis):
        """h_i(b), its gradient and Hessian for every group at ``b`` (n, q)."""
        eta = eta0 + np.einsum("jk,jk->j", self.Z, b[self.group])
        lp, d1, d2 = self.kernel(self.y, eta[:, None], phis)[:3]
        st = self.starts[:-1]
        bDb = np.einsum("ik,kl,il->i", b, Dinv, b)
        h = np.add.reduceat(lp[:, 0], st) - 0.5 * bDb
        grad = np.add.reduceat(self.Z * d1, st, axis=0) - b @ Dinv
        hess = np.add.reduceat(self.ZZ * d2, st, axis=0).reshape(self.n, self.q, self.q) - Dinv
        return h, grad, hess

    def update_modes(self, eta0, D, phis, tol: float = 1e-9, max_iter: int = 100) -> int:
        """Move the modes ``b̂_i`` and factors ``C_i`` to the current parameters.

        Returns the number of Newton iterations.
        """
        Dinv = np.linalg.inv(D)
        b = self.modes
        h, grad, hess = self._h(b, eta0, Dinv, phis)
        it = 0
        for it in range(1, max_iter + 1):
            step = np.linalg.solve(-self._pd(hess), grad[:, :, None])[:, :, 0]
            # undamped Newton can overshoot from a warm start: halve per group until h rises
            t = np.ones(self.n)
            for _ in range(30):
                b_new = b + t[:, None] * step
                h_new, g_new, hess_new = self._h(b_new, eta0, Dinv, phis)
                worse = ~(h_new >= h - 1e-10 * (1.0 + np.abs(h)))
                if not worse.any():
                    break
                t[worse] *= 0.5
            b, h, grad, hess = b_new, h_new, g_new, hess_new
            if np.max(np.abs(t[:, None] * step)) < tol:
                break
        neg_hess = -self._pd(hess)
        R = np.linalg.cholesky(neg_hess)
        self.modes = b
        self.chol = np.swapaxes(np.linalg.inv(R), 1, 2)
        self.log_det_chol = -np.sum(np.log(np.diagonal(R, axis1=1, axis2=2)), axis=1)
        return it

    @staticmethod
    def _pd(hess):
        """Make per-group Hessians negative definite (families whose density is not
        log-concave can give an indefinite curvature away from the mode)."""
        eig = np.linalg.eigvalsh(hess)
        bad = eig[:, -1] >= -1e-10
        if not bad.any():
            return hess
        hess = hess.copy()
        shift = eig[bad, -1] + 1e-6 * (1.0 + np.abs(eig[bad, 0]))
        hess[bad] -= shift[:, None, None] * np.eye(hess.shape[1])
        return hess

    def posterior_covariance(self) -> np.ndarray:
        """``C_i C_iᵀ``: inverse curvature at the modes, shape (n, q, q)."""
        return self.chol @ np.swapaxes(self.chol, 1, 2)

    # ---- the integral ----------------------------------------------------------------------
    def node_values(self) -> np.ndarray:
        """Nodes ``b_ik = b̂_i + C_i z_k``, shape (n, K, q)."""
        return self.modes[:, None, :] + np.einsum("ikl,Kl->iKk", self.chol, self.nodes)

    def evaluate(self, eta0, D, phis, grad: bool = True, em: bool = False) -> AGQResult:
        """AGQ log-likelihood at ``(η⁰, D, φ)``; re-centres first unless ``recenter`` is off."""
        eta0 = np.asarray(eta0, dtype=float)
        phis = np.asarray(phis, dtype=float)
        D = np.atleast_2d(np.asarray(D, dtype=float))
        if self.recenter:
            self.update_modes(eta0, D, phis)
        Dinv = np.linalg.inv(D)
        _, logdetD = np.linalg.slogdet(D)
        B = self.node_values()
        log_prior = -0.5 * (
            self.q * _LOG_2PI + logdetD + np.einsum("iKk,kl,iKl->iK", B, Dinv, B)
        )
        base = log_prior + self.log_w
        per_group = np.empty(self.n)
        n_phis = len(phis)
        g_eta = np.empty(self.N) if grad else None
        g_phis = np.zeros(n_phis)
        S = np.zeros((self.q, self.q))
        W = np.empty(self.N) if em else None
        for groups, rows, local_starts, local_group in self.chunks:
            Bc = B[groups]
            eta = eta0[rows, None] + np.einsum("jk,jKk->jK", self.Z[rows], Bc[local_group])
            out = self.kernel(self.y[rows], eta, phis)
            a = np.add.reduceat(out[0], local_starts, axis=0) + base[groups]
            m = a.max(axis=1)
            p = np.exp(a - m[:, None])
            s = p.sum(axis=1)
            per_group[groups] = m + np.log(s) + self.log_det_chol[groups]
            if not (grad or em):
                continue
            post = p / s[:, None]
            post_rows = post[local_group]
            g_eta[rows] = np.einsum("jK,jK->j", post_rows, out[1])
            S += np.einsum("iK,iKk,iKl->kl", post, Bc, Bc)
            for m_ in range(n_phis):
                g_phis[m_] += np.einsum("jK,jK->", post_rows, out[3 + m_])
            if em:
                W[rows] = np.einsum("jK,jK->j", post_rows, out[2])
        res = AGQResult(float(per_group.sum()), per_group)
        if grad or em:
            res.grad_eta = g_eta
            res.grad_D = 0.5 * Dinv @ S @ Dinv - 0.5 * self.n * Dinv
            res.grad_phis = g_phis
            res.second_moment = S
            res.hess_weights = W
        return res
