"""Multilevel adaptive Gauss–Hermite quadrature for nested random effects.

Notation: levels ``l = 0, …, L−1``, outermost first (schools, then classes within schools, …).
Each unit ``u`` of level ``l`` has effects ``b_u ~ N(0, D_l)`` of dimension ``q_l``; row ``r``
lies in one unit of every level and ``η_r = η⁰_r + Σ_l z_{r,l}ᵀ b_{unit_l(r)}``. Top group ``i``
(a unit of level 0 with everything below it) has the likelihood
``L_i = ∫ Π_rows p(y_r | η_r, φ) Π_units N(b_u; 0, D_l) db``.

Adaptation (Pinheiro & Chao 2006; Rabe-Hesketh, Skrondal & Pickles 2005): the joint mode
``b̂`` of the integrand's log ``h`` by Newton's method. The negative Hessian couples a unit only
with its ancestors, so each step is a block elimination from the innermost units up:
``P_u = H_uu − Σ_children H_uc P_c⁻¹ H_cu`` is the precision of ``b_u`` given its ancestors
(its descendants integrated out in the Gaussian approximation) and, with
``A_u = −P_u⁻¹ H^eff_{u,anc}``, the mode of ``b_u`` given its ancestors' values is
``b̂_u + A_u (b_anc − b̂_anc)``. With ``C_u = chol(P_u⁻¹)`` and the standard normal product rule
``(z_k, w_k)`` of ``n_agq**q_l`` nodes, a unit's nodes given a node path of its ancestors are
``b̂_u + A_u (b_anc − b̂_anc) + C_u z_k`` and, from the innermost units out,

``log L_u(path) = log|C_u| + logsumexp_k [log w_k + ½|z_k|² + (q_l/2) log 2π
+ log N(b_uk; 0, D_l) + Σ_rows of u ℓ + Σ_children log L_c(path, k)]``,

``log L_i = log L_top``. The work is linear in the units: each innermost row costs
``Π_l n_agq**q_l`` evaluations of its density. With ``n_agq = 1`` this is the Laplace
approximation ``h(b̂) + (Q/2) log 2π − ½ log|H|``.

Gradients hold the nodes fixed (as :class:`~glmm_ppl.engine.agq.AGQ`): with the posterior
weights of the node paths, ``∂/∂η⁰_r = E[∂ℓ_r/∂η]``, ``∂/∂D_l = ½ D_l⁻¹ S_l D_l⁻¹ −
(n_l/2) D_l⁻¹`` with ``S_l = Σ_{units of level l} E[b_u b_uᵀ]``, ``∂/∂φ = E[Σ_r ∂ℓ_r/∂φ]``.
The kernels are in :mod:`~glmm_ppl.engine.multilevel_kernels`.
"""

from __future__ import annotations

import copy
import os

import numpy as np

from ..families import Family
from .agq import AGQResult, run_over_groups
from .kernels import LOG_2PI, NEWTON_MAX_ITER, NEWTON_TOL, block_inverses
from .multilevel_kernels import modes_kernel, nodes_kernel
from .pointwise import RowCache, pointwise_derivatives
from .quadrature import product_rule

__all__ = ["MultilevelAGQ"]


def _check_levels(levels: np.ndarray, L: int) -> list[np.ndarray]:
    """Validate the unit indices; the rows where each level's units start."""
    if levels.ndim != 2 or levels.shape[1] != L:
        raise ValueError(f"levels must have shape (N, {L}), one column per level")
    if len(levels) == 0:
        raise ValueError("there must be at least one row")
    starts = []
    for lv in range(L):
        col = levels[:, lv]
        ids = np.unique(col)
        if ids[0] != 0 or ids[-1] != len(ids) - 1:
            raise ValueError(f"the units of level {lv} must be numbered 0, ..., n - 1, each used")
        if lv > 0:
            pairs = np.unique(levels[:, lv - 1 : lv + 1], axis=0)
            child, count = np.unique(pairs[:, 1], return_counts=True)
            if np.any(count > 1):
                raise ValueError(
                    f"the levels are not nested: unit {child[count > 1][0]} of level {lv} lies "
                    f"in more than one unit of level {lv - 1}"
                )
        st = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
        if len(st) != len(ids):
            run_ids, count = np.unique(col[st], return_counts=True)
            raise ValueError(
                f"the rows of each unit must be contiguous: unit {run_ids[count > 1][0]} of "
                f"level {lv} is split (sort the rows by the levels, outermost first)"
            )
        starts.append(st)
    return starts


class MultilevelAGQ:
    """Multilevel AGQ marginal log-likelihood of nested random effects; it keeps the current
    modes and factors (a drop-in for :class:`~glmm_ppl.engine.agq.AGQ`).

    Parameters
    ----------
    y : ndarray, shape (N,) or (N, 1 + n_aux)
        The response, then the per-row data the family reads (its ``aux_names``).
    Z : ndarray, shape (N, q)
        Random-effects design, ``q = sum(q_levels)`` columns grouped by level in level order.
    levels : int ndarray, shape (N, L)
        Each row's unit at each level (outermost first), units numbered ``0..n_l − 1`` per
        level; every unit's rows contiguous and units nested (rows sorted by the levels).
    q_levels : tuple of int
        Number of random effects per unit at each level.
    family : Family
        A family with one linear predictor (no zero part).
    n_agq : int
        Points per random-effect dimension at every level.
    weights : ndarray (n,), optional
        Multipliers of the top groups' log-likelihoods.

    Attributes
    ----------
    n, N, q, E : int
        Top groups, rows, random effects per row (``sum(q_levels)``), linear predictors (1).
    n_units : tuple of int
        Units per level.
    modes : ndarray
        Every unit's current ``b̂_u``, flat: level 0's units by index (``q_0`` values each),
        then level 1's, …; :meth:`modes_by_level` gives views per level.
    recenter : bool
        Whether :meth:`evaluate` moves the nodes to the parameters it is given first.
    point, n_out : numba cfunc, int
        The family's compiled point function and its number of outputs.

    Examples
    --------
    Two schools with two classes each, random intercepts at both levels:

    >>> from glmm_ppl.families import binomial
    >>> y = np.array([1.0, 0, 1, 1, 0, 0, 1, 0])
    >>> levels = np.array([[0, 0], [0, 0], [0, 1], [0, 1], [1, 2], [1, 2], [1, 3], [1, 3]])
    >>> ml = MultilevelAGQ(y, np.ones((8, 2)), levels, (1, 1), binomial(), n_agq=7)
    >>> res = ml.evaluate(np.zeros(8), np.diag([0.5, 0.3]), np.array([]))
    >>> ml.n, ml.n_units, res.per_group.shape, res.unit_counts.tolist()
    (2, (2, 4), (2,), [[1, 2], [1, 2]])
    >>> [m.shape for m in ml.modes_by_level()]
    [(2, 1), (4, 1)]
    """

    E = 1

    def __init__(self, y, Z, levels, q_levels, family: Family, n_agq: int, weights=None):
        if family.n_eta != 1:
            raise ValueError(
                "nested random effects are not available for families with a zero part"
            )
        self.q_levels = tuple(int(v) for v in q_levels)
        if not self.q_levels or min(self.q_levels) < 1:
            raise ValueError("q_levels must hold one positive integer per level")
        L = len(self.q_levels)
        y = np.asarray(y, dtype=np.float64)
        self.Y = np.ascontiguousarray(y.reshape(len(y), -1))
        self.N, self.q = len(self.Y), sum(self.q_levels)
        self.Z = np.ascontiguousarray(np.asarray(Z, dtype=np.float64))
        if self.Z.shape != (self.N, self.q):
            raise ValueError(f"Z must have shape (N, {self.q}) with q = sum(q_levels)")
        levels = np.asarray(levels)
        if levels.dtype.kind not in "iu":
            raise ValueError("levels must hold integer unit indices")
        if len(levels) != self.N:
            raise ValueError("levels must have one row per row of y")
        self._tree(_check_levels(levels.astype(np.int64), L), levels.astype(np.int64))
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.family = family
        pw = pointwise_derivatives(family)
        self.point, self.n_out = pw.point, pw.n_out
        self.rows = RowCache(pw, self.Y)  # the rows as the point function reads them
        self.n_agq = int(n_agq)
        self._rules()
        self.modes = np.zeros(self._moff_level[-1])
        n_flat = int(self._uoff[-1])
        qmax = max(self.q_levels)
        self._C = np.broadcast_to(np.eye(qmax), (n_flat, qmax, qmax)).copy()
        self._A = np.zeros((n_flat, qmax, max(self.q, 1)))
        self._log_det = np.zeros(n_flat)
        self.newton_iterations = np.zeros(self.n, dtype=np.int64)
        self.recenter = True
        self.threads = max(1, min(len(os.sched_getaffinity(0)), 8))

    def _tree(self, starts: list[np.ndarray], levels: np.ndarray) -> None:
        """Flat unit arrays (units level by level, each level in row order): parent, children,
        rows, offset of the effects in :attr:`modes`; the units of each top group."""
        L, N = len(starts), self.N
        self.n_units = tuple(len(s) for s in starts)
        self.n = self.n_units[0]
        self.starts = np.r_[starts[0], N].astype(np.int64)
        self._uoff = np.r_[0, np.cumsum(self.n_units)].astype(np.int64)
        sizes = np.array(self.n_units) * np.array(self.q_levels)
        self._moff_level = np.r_[0, np.cumsum(sizes)].astype(np.int64)
        self._qoff = np.r_[0, np.cumsum(self.q_levels)].astype(np.int64)
        parent, cs, ce, rs, re, moff = [], [], [], [], [], []
        self._gfirst = np.empty((L, self.n + 1), dtype=np.int64)
        self._ids = []
        for lv, st in enumerate(starts):
            end = np.r_[st[1:], N]
            rs.append(st)
            re.append(end)
            ids = levels[st, lv]
            self._ids.append(ids)
            moff.append(self._moff_level[lv] + ids * self.q_levels[lv])
            parent.append(
                np.full(len(st), -1)
                if lv == 0
                else np.searchsorted(starts[lv - 1], st, side="right") - 1 + self._uoff[lv - 1]
            )
            if lv + 1 < L:
                cs.append(np.searchsorted(starts[lv + 1], st) + self._uoff[lv + 1])
                ce.append(np.searchsorted(starts[lv + 1], end) + self._uoff[lv + 1])
            else:
                cs.append(np.zeros(len(st)))
                ce.append(np.zeros(len(st)))
            self._gfirst[lv] = np.r_[np.searchsorted(st, starts[0]), len(st)] + self._uoff[lv]

        def flat(parts):
            return np.ascontiguousarray(np.concatenate(parts), dtype=np.int64)

        self._parent, self._cs, self._ce = flat(parent), flat(cs), flat(ce)
        self._rs, self._re, self._moff = flat(rs), flat(re), flat(moff)
        self._top_ids = self._ids[0]
        self._ordered = bool(np.array_equal(self._top_ids, np.arange(self.n)))
        self._counts = np.diff(self._gfirst, axis=1).T.copy()  # (n, L), top groups in row order

    def _rules(self) -> None:
        """Each level's product rule, stacked: nodes (padded to the largest ``q_l``), log
        weights with ``½|z|² + (q_l/2) log 2π``, node counts and path counts."""
        qmax = max(self.q_levels)
        nodes, log_w, K = [], [], []
        for ql in self.q_levels:
            z, lw = product_rule(self.n_agq, ql)
            nodes.append(np.pad(z, ((0, 0), (0, qmax - ql))))
            log_w.append(lw + 0.5 * np.sum(z**2, axis=1) + 0.5 * ql * LOG_2PI)
            K.append(len(z))
        self._znodes = np.ascontiguousarray(np.concatenate(nodes))
        self._log_w = np.ascontiguousarray(np.concatenate(log_w))
        self._K = np.array(K, dtype=np.int64)
        self._zoff = np.r_[0, np.cumsum(K)].astype(np.int64)
        self._P = np.r_[1, np.cumprod(K)].astype(np.int64)  # node paths down to each level

    def copy(self) -> MultilevelAGQ:
        """An engine on the same data with its own modes and factors (the data are shared).

        Examples
        --------
        >>> from glmm_ppl.families import poisson
        >>> ml = MultilevelAGQ([1.0, 2, 0, 3], np.ones((4, 2)), [[0, 0], [0, 0], [0, 1], [0, 1]],
        ...                    (1, 1), poisson(), n_agq=3)
        >>> other = ml.copy(); other.modes[:] = 1.0
        >>> float(ml.modes.sum())
        0.0
        """
        other = copy.copy(self)
        other.modes, other._C, other._A = self.modes.copy(), self._C.copy(), self._A.copy()
        other._log_det = self._log_det.copy()
        other.newton_iterations = self.newton_iterations.copy()
        return other

    def modes_by_level(self) -> list[np.ndarray]:
        """Views of :attr:`modes`, one ``(n_l, q_l)`` array per level (unit ``k`` of level
        ``l`` in row ``k``).

        Examples
        --------
        >>> from glmm_ppl.families import poisson
        >>> ml = MultilevelAGQ([1.0, 2, 0, 3], np.ones((4, 2)), [[0, 0], [0, 0], [0, 1], [0, 1]],
        ...                    (1, 1), poisson(), n_agq=3)
        >>> [m.shape for m in ml.modes_by_level()]
        [(1, 1), (2, 1)]
        """
        m, off = self.modes, self._moff_level
        return [
            m[off[lv] : off[lv + 1]].reshape(self.n_units[lv], ql)
            for lv, ql in enumerate(self.q_levels)
        ]

    def _run(self, kernel, *args) -> None:
        work = self.N * int(self._P[-1])  # rows × node paths
        run_over_groups(kernel, self.point, self.n_out, self.n, self.threads, work, *args)

    def _eta0(self, eta0) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(eta0, dtype=np.float64).reshape(self.N))

    def _inverse(self, D) -> tuple[np.ndarray, np.ndarray] | None:
        """Block-diagonal ``D⁻¹`` (full q × q) and each block's ``log|D_l|``; None when a
        block is not safely positive definite (as :class:`~glmm_ppl.engine.agq.AGQ`)."""
        D = np.atleast_2d(np.asarray(D, dtype=np.float64))
        if D.shape != (self.q, self.q):
            raise ValueError(f"D must be {self.q} x {self.q} (block-diagonal, one block per level)")
        found = block_inverses(D, self.q_levels)
        if found is None:
            return None
        invs, logdet = found
        Dinv = np.zeros((self.q, self.q))
        for lv, inv in enumerate(invs):
            sl = slice(self._qoff[lv], self._qoff[lv + 1])
            Dinv[sl, sl] = inv
        return Dinv, logdet

    def update_modes(
        self, eta0, D, phis, tol: float = NEWTON_TOL, max_iter: int = NEWTON_MAX_ITER
    ) -> int:
        """Move the modes and factors to the current parameters; the largest number of Newton
        iterations any top group needed.

        Examples
        --------
        >>> from glmm_ppl.families import poisson
        >>> ml = MultilevelAGQ([1.0, 2, 0, 3], np.ones((4, 2)), [[0, 0], [0, 0], [0, 1], [0, 1]],
        ...                    (1, 1), poisson(), n_agq=3)
        >>> ml.update_modes(np.zeros(4), np.eye(2), np.array([])) > 0
        True
        """
        inv = self._inverse(D)
        if inv is None:
            return 0
        return self._recenter(self._eta0(eta0), inv[0], np.ascontiguousarray(phis, float), tol,
                              max_iter)  # fmt: skip

    def _recenter(self, eta0, Dinv, phis, tol=NEWTON_TOL, max_iter=NEWTON_MAX_ITER) -> int:
        modes = np.array(self.modes, dtype=np.float64).ravel()
        self._run(
            modes_kernel, self.rows.at(phis), eta0, self.Z, np.array(self.q_levels, dtype=np.int64),
            self._qoff, self._parent, self._rs, self._re, self._moff, self._gfirst, Dinv,
            np.ascontiguousarray(phis, dtype=np.float64), modes, self._C, self._A,
            self._log_det, self.newton_iterations, tol, max_iter,
        )  # fmt: skip
        self.modes = modes
        return int(self.newton_iterations.max())

    def posterior_covariance(self) -> list[np.ndarray]:
        """Each unit's posterior covariance under the Laplace approximation at the modes (the
        diagonal blocks of the inverse of the top group's negative Hessian): one
        ``(n_l, q_l, q_l)`` array per level, units in index order.

        From the top down, ``V_u = P_u⁻¹ + A_u V_anc A_uᵀ`` with ``V_anc`` the joint covariance
        of the ancestors' effects.

        Examples
        --------
        >>> from glmm_ppl.families import poisson
        >>> ml = MultilevelAGQ([1.0, 2, 0, 3], np.ones((4, 2)), [[0, 0], [0, 0], [0, 1], [0, 1]],
        ...                    (1, 1), poisson(), n_agq=3)
        >>> _ = ml.update_modes(np.zeros(4), np.eye(2), np.array([]))
        >>> [v.shape for v in ml.posterior_covariance()]
        [(1, 1, 1), (2, 1, 1)]
        """
        out, chain = [], None
        for lv, ql in enumerate(self.q_levels):
            u = slice(self._uoff[lv], self._uoff[lv + 1])
            C = self._C[u, :ql, :ql]
            own = C @ np.swapaxes(C, 1, 2)
            o = self._qoff[lv]
            if lv == 0:
                new = own
            else:
                A = self._A[u, :ql, :o]
                Vp = chain[self._parent[u] - self._uoff[lv - 1]]
                cross = A @ Vp
                new = np.empty((len(own), o + ql, o + ql))
                new[:, :o, :o] = Vp
                new[:, o:, :o] = cross
                new[:, :o, o:] = np.swapaxes(cross, 1, 2)
                new[:, o:, o:] = own + cross @ np.swapaxes(A, 1, 2)
            chain = new
            V = np.empty((self.n_units[lv], ql, ql))
            V[self._ids[lv]] = new[:, o:, o:]
            out.append(V)
        return out

    def evaluate(self, eta0, D, phis, grad: bool = True, em: bool = False) -> AGQResult:
        """Multilevel AGQ log-likelihood at ``(η⁰, D, φ)``; re-centres first unless
        ``recenter`` is off.

        ``η⁰`` is ``(N,)`` or ``(N, 1)``; ``grad_eta`` comes back in the same shape. ``D`` is
        the full block-diagonal ``q × q`` matrix (only its diagonal blocks are read). Totals
        carry the top groups' weights; the per-group fields do not. The result also has
        ``unit_counts`` (n, L): each top group's number of units at each level.

        Examples
        --------
        >>> from glmm_ppl.families import poisson
        >>> ml = MultilevelAGQ([1.0, 2, 0, 3], np.ones((4, 2)), [[0, 0], [0, 0], [0, 1], [0, 1]],
        ...                    (1, 1), poisson(), n_agq=5)
        >>> res = ml.evaluate(np.zeros(4), np.eye(2), np.array([]))
        >>> res.grad_D.shape, res.second_moment_groups.shape
        ((2, 2), (1, 2, 2))
        """
        shape = np.shape(eta0)
        eta0 = self._eta0(eta0)
        phis = np.ascontiguousarray(phis, dtype=np.float64)
        n, q, n_phi = self.n, self.q, len(phis)
        counts = self._by_id(self._counts).copy()
        inv = self._inverse(D)
        if inv is None:  # a block of D is singular: the likelihood is 0 there
            res = AGQResult(
                loglik=-np.inf,
                per_group=np.full(n, -np.inf),
                grad_eta=np.zeros(shape),
                grad_D=np.zeros((q, q)),
                grad_phis=np.zeros(n_phi),
                hess_weights=np.zeros((self.N, 1)) if em else None,
                second_moment=np.zeros((q, q)),
                second_moment_groups=np.zeros((n, q, q)),
                grad_phis_groups=np.zeros((n, n_phi)),
            )
            res.unit_counts = counts
            return res
        Dinv, logdetD = inv
        if self.recenter:
            self._recenter(eta0, Dinv, phis)
        want = grad or em
        per_group = np.empty(n)
        g_eta = np.empty(self.N if want else 0)
        S_g = np.empty((n if want else 0, q, q))
        gphi_g = np.empty((n if want else 0, n_phi))
        W = np.empty(self.N if em else 0)
        self._run(
            nodes_kernel, self.rows.at(phis), eta0, self.Z, np.array(self.q_levels, dtype=np.int64),
            self._qoff, self._cs, self._ce, self._rs, self._re, self._moff, self._gfirst,
            np.ascontiguousarray(self.modes, dtype=np.float64).ravel(), self._C, self._A,
            self._log_det, self._znodes, self._zoff, self._log_w, self._K, self._P, Dinv,
            logdetD, phis, want, em, per_group, g_eta, S_g, gphi_g, W,
        )  # fmt: skip
        per_group = self._by_id(per_group)
        w = self.weights
        loglik = float(per_group.sum() if w is None else per_group @ w)
        res = AGQResult(loglik if np.isfinite(loglik) else -np.inf, per_group)
        res.unit_counts = counts
        if not want:
            return res
        S_g, gphi_g = self._by_id(S_g), self._by_id(gphi_g)
        if w is not None:
            row_w = np.repeat(w[self._top_ids], np.diff(self.starts))
            g_eta *= row_w
            W *= row_w if em else 1.0
        S = S_g.sum(axis=0) if w is None else np.einsum("i,irc->rc", w, S_g)
        n_eff = counts.sum(axis=0) if w is None else w @ counts
        grad_D = np.zeros((q, q))
        for lv in range(len(self.q_levels)):
            sl = slice(self._qoff[lv], self._qoff[lv + 1])
            Di = Dinv[sl, sl]
            grad_D[sl, sl] = 0.5 * Di @ S[sl, sl] @ Di - 0.5 * n_eff[lv] * Di
        res.grad_eta = g_eta.reshape(shape)
        res.grad_D = grad_D
        res.grad_phis = gphi_g.sum(axis=0) if w is None else w @ gphi_g
        res.second_moment = S
        res.hess_weights = W.reshape(self.N, 1) if em else None
        res.second_moment_groups = S_g
        res.grad_phis_groups = gphi_g
        return res

    def _by_id(self, a: np.ndarray) -> np.ndarray:
        """Per-top-group results from row order to index order."""
        if self._ordered:
            return a
        out = np.empty_like(a)
        out[self._top_ids] = a
        return out
