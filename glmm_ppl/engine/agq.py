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

The loops are numba kernels over groups (:mod:`glmm_ppl.engine.kernels`, cached on disk,
compiled once for all families) that call the family's compiled point function
(:mod:`glmm_ppl.engine.pointwise`); large data is split into blocks of groups run on several
threads. Memory is ``O(N + n K)`` whatever the number of nodes.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np

from ..families import Family
from .kernels import (
    LOG_2PI,
    NEWTON_MAX_ITER,
    NEWTON_TOL,
    inverse_kernel,
    modes_kernel,
    nodes_kernel,
)
from .pointwise import RowCache, pointwise_derivatives
from .quadrature import product_rule

__all__ = ["AGQ", "AGQResult", "run_over_groups"]

_PARALLEL_WORK = 50_000  # rows × nodes above which the groups are split across threads


def _inverse(D) -> tuple[np.ndarray, float] | None:
    """``(D⁻¹, log|D|)``, or None when ``D`` is not safely positive definite.

    Beyond a conditional standard deviation of 1e-5 times the marginal one (a correlation
    within 5e-11 of ±1) ``log|D|`` and ``bᵀD⁻¹b`` cancel catastrophically and the rule's value
    is meaningless (measured: 10 log-likelihood units too high at a correlation of 1 − 1e-15,
    whatever the number of points), so such a ``D`` counts as singular.
    """
    D = np.ascontiguousarray(np.atleast_2d(D), dtype=np.float64)
    Dinv = np.empty_like(D)
    logdet = inverse_kernel(D, Dinv)
    return None if np.isnan(logdet) else (Dinv, logdet)


def _rule(n_agq: int, q: int) -> tuple[int, np.ndarray, np.ndarray]:
    """``(n_agq, nodes, log weights)`` of the product rule of ``n_agq`` points per dimension,
    the log weights with ``½|z|² + (q/2) log 2π`` added (the rule's ``1/φ(z)``)."""
    nodes, lw = product_rule(int(n_agq), q)
    nodes = np.ascontiguousarray(nodes)
    return int(n_agq), nodes, lw + 0.5 * np.sum(nodes**2, axis=1) + 0.5 * q * LOG_2PI


@cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="glmm_ppl")


def run_over_groups(kernel, point, n_out: int, n: int, threads: int, work: int, *args) -> None:
    """Run a kernel ``kernel(point, n_out, g0, g1, *args)`` over the groups ``0..n``: in blocks
    on several threads when the work (rows × nodes) is large; the kernels release the GIL and
    write disjoint slices."""
    if threads == 1 or work < _PARALLEL_WORK or n < 2:
        kernel(point, n_out, 0, n, *args)
        return
    bounds = np.linspace(0, n, min(threads, n) + 1).astype(np.int64)
    jobs = [
        _pool(threads).submit(kernel, point, n_out, g0, g1, *args)
        for g0, g1 in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    for job in jobs:
        job.result()


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
    # Σ_i w_i Cov_π(u_ik), u_ik = (∂ log f_ik/∂(β, γ), vec(b_ik b_ikᵀ), ∂ log f_ik/∂φ) (for the
    # Hessian), and the rest of Louis' identity in φ: Σ_k π_ik ∂²ℓ_ijk/∂η_e∂φ_m, (N, E n_phis),
    # e major, and Σ_i w_i Σ_jk π_ik ∂²ℓ_ijk/∂φ_m∂φ_l (m ≤ l)
    score_covariance: np.ndarray | None = None
    hess_eta_phis: np.ndarray | None = None
    hess_phis: np.ndarray | None = None


# ---- small dense linear algebra for one group (q is small) ---------------------------------


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
    point, n_out : numba cfunc, int
        The family's compiled point function and its number of outputs
        (:class:`~glmm_ppl.engine.pointwise.PointwiseDerivatives`).

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
        self.point, self.n_out = pw.point, pw.n_out
        # the family's block function, and whether the kernels use it
        self.points, self.blocks = pw.points, pw.blocks
        self.rows = RowCache(pw, self.Y)  # the rows as the point function reads them
        self.n_agq, self.nodes, self.log_w = _rule(n_agq, self.q)
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

    def with_points(self, n_agq: int) -> AGQ:
        """A copy (:meth:`copy`) with a rule of ``n_agq`` points per dimension: the modes
        and factors, which do not depend on the rule, are the current ones.

        Examples
        --------
        >>> from glmm_ppl.families import poisson
        >>> agq = AGQ(np.array([1.0, 3.0, 0.0, 2.0]), np.ones((4, 1)), np.array([0, 2, 4]),
        ...           poisson(), n_agq=5)
        >>> fine = agq.with_points(21)
        >>> fine.nodes.shape, agq.nodes.shape
        ((21, 1), (5, 1))
        """
        new = self.copy()
        new.n_agq, new.nodes, new.log_w = _rule(n_agq, self.q)
        return new

    def _run(self, kernel, *args) -> None:
        run_over_groups(
            kernel, self.point, self.n_out, self.n, self.threads, self.N * len(self.log_w), *args
        )

    def _eta0(self, eta0) -> np.ndarray:
        """The fixed part as an ``(N, E)`` array (a vector is accepted for one predictor)."""
        return np.ascontiguousarray(np.asarray(eta0, dtype=np.float64).reshape(self.N, self.E))

    def update_modes(
        self, eta0, D, phis, tol: float = NEWTON_TOL, max_iter: int = NEWTON_MAX_ITER
    ) -> int:
        """Move the modes ``b̂_i`` and factors ``C_i`` to the current parameters.

        Returns the largest number of Newton iterations any group needed.
        """
        inv = _inverse(D)
        if inv is None:
            return 0
        return self._recenter(self._eta0(eta0), inv[0], phis, tol, max_iter)

    def _recenter(
        self, eta0, Dinv, phis, tol: float = NEWTON_TOL, max_iter: int = NEWTON_MAX_ITER
    ) -> int:
        modes = self.modes.copy()
        self._run(
            modes_kernel,
            self.points,
            self.blocks,
            self.rows.at(phis),
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

    def evaluate(
        self, eta0, D, phis, grad: bool = True, em: bool = False, designs=None
    ) -> AGQResult:
        """AGQ log-likelihood at ``(η⁰, D, φ)``; re-centres first unless ``recenter`` is off.

        ``η⁰`` is ``(N,)`` or ``(N, E)``; ``grad_eta`` comes back in the same shape. Totals
        (``loglik``, the gradients, ``second_moment``, ``hess_weights``) carry the group
        weights; the per-group fields do not. With ``designs``, the fixed-effects design of
        each linear predictor, ``score_covariance`` too (and EM's fields): with the nodes
        fixed, ``∇² log L_i = E_π[∇² log f_ik] + Cov_π(∇ log f_ik)`` (Louis' identity), whose
        second part this is, in ``(β, γ)``, in ``b bᵀ`` (on which the score in ``D`` depends
        linearly) and in ``φ``; and the parts of the first that involve ``φ``
        (``hess_eta_phis``, ``hess_phis``).
        """
        em = em or designs is not None
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
        louis = designs is not None
        n_pp = n_phi * (n_phi + 1) // 2 if louis else 0
        gphi_g = np.empty((n if want else 0, n_phi + n_pp))
        W = np.empty((self.N if em else 0, n_d2 + (E * n_phi if louis else 0)))
        empty = np.empty((0, 0))
        X, X_zi = (list(designs) + [empty])[:2] if louis else (empty, empty)
        n_cov = X.shape[1] + X_zi.shape[1] + q * q + n_phi if louis else 0
        gw = np.ones(n) if self.weights is None else self.weights
        covariances = []

        def kernel(*args):  # each block of groups sums its own
            covariances.append(np.zeros((n_cov, n_cov)))
            nodes_kernel(*args, X, X_zi, gw, covariances[-1])

        self._run(
            kernel,
            self.points,
            self.blocks,
            self.rows.at(phis),
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
            # near a singular D the gradient in D is not finite (the callers step back)
            with np.errstate(over="ignore", invalid="ignore"):
                res.grad_D = 0.5 * Dinv @ S @ Dinv - 0.5 * n_eff * Dinv
            totals = gphi_g.sum(axis=0) if w is None else w @ gphi_g
            res.grad_phis = totals[:n_phi]
            res.second_moment = S
            res.hess_weights = W[:, :n_d2] if em else None
            res.second_moment_groups = S_g
            res.grad_phis_groups = gphi_g[:, :n_phi]
        if louis:
            cov = np.sum(covariances, axis=0)
            res.score_covariance = np.triu(cov) + np.triu(cov, 1).T
            res.hess_eta_phis, res.hess_phis = W[:, n_d2:], totals[n_phi:]
        return res
