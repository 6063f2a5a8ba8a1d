"""The Laplace approximation over all random effects jointly, for crossed grouping factors.

With crossed factors (every subject answers many items, every item is answered by many
subjects) the likelihood does not split into independent groups, so it is approximated over
all random effects ``b`` at once: with ``b ~ N(0, G)``, ``G`` block diagonal (``D_k`` for
every unit of factor ``k``), ``h(b) = Σ_r ℓ_r(η⁰_r + z_rᵀ b) − ½ bᵀ G⁻¹ b`` and
``H = −∇²h = Zᵀ W Z + G⁻¹`` (``W = diag(−ℓ''_r)``),

``log L ≈ h(b̂) − ½ log|G| − ½ log|H(b̂)|``,

the conditional modes ``b̂`` by Newton's method (penalised iteratively reweighted least
squares), warm-started from the last evaluation.

``H`` is factorised as lme4 and MixedModels.jl do: the effects of the factor with the most
levels come first and are eliminated unit by unit (their block of ``H`` is block diagonal,
one small ``A_a`` per unit), which leaves the dense Schur complement ``S`` of the other
factors' effects; the ordering and the sparsity pattern are computed once per design, the
numbers by the kernels of :mod:`.laplace_kernels` and LAPACK. No fill-in is possible outside
``S``, and ``S`` is dense in crossed designs anyway (every item meets every other item through
the subjects), so a general sparse Cholesky would do the same work with more overhead.

Gradients are exact derivatives of the approximation, the modes moving with the parameters
(implicit differentiation: ``H ∂b̂/∂t = ∂∇h/∂t``). With ``v_r = z_rᵀ H⁻¹ z_r``,
``g_b = Zᵀ(½ ℓ''' ⊙ v)`` (the gradient of ``−½ log|H|`` in ``b``) and ``u = H⁻¹ g_b``:

- ``∂/∂η⁰_r = ℓ'_r + ½ ℓ'''_r v_r + ℓ''_r (Zu)_r``;
- ``∂/∂D_k = ½ D_k⁻¹ Σ_u (b̂_u b̂_uᵀ + V_u) D_k⁻¹ − (n_k/2) D_k⁻¹ + Σ_u sym(D_k⁻¹ u_u b̂_uᵀ D_k⁻¹)``
  with ``V_u`` the unit's block of ``H⁻¹``;
- ``∂/∂φ = Σ_r ∂_φ ℓ_r + ½ v_r ∂_φ ℓ''_r + (Zu)_r ∂_φ ℓ'_r``.
"""

from __future__ import annotations

import copy

import numpy as np
from scipy import linalg

from ..families import Family
from .agq import AGQResult
from .kernels import NEWTON_MAX_ITER, block_inverses
from .laplace_kernels import (
    assemble,
    backward,
    forward,
    mirror_lower,
    row_pass,
    row_variances,
)
from .pointwise import RowCache, laplace_derivatives, output_layout, pointwise_derivatives

__all__ = ["JointLaplace", "MAX_DENSE"]

#: The most random effects the factors other than the largest may have together: their
#: block of the factorisation is dense (two matrices of this size squared are held).
MAX_DENSE = 12_000

_STEP_TOL = 1e-8  # Newton converged: largest change of a mode
_THREADED_BLOCK = 400  # dense blocks at least this large are factorised with BLAS threads


class JointLaplace:
    """Laplace approximation of the marginal log-likelihood of random effects of several
    grouping factors, crossed or nested; it keeps the current modes (a drop-in for
    :class:`~glmm_ppl.engine.agq.AGQ` with ``n_agq=1`` whose gradient is exact).

    Parameters
    ----------
    y : ndarray, shape (N,) or (N, 1 + n_aux)
        The response, then the per-row data the family reads (its ``aux_names``).
    Z : ndarray, shape (N, q)
        Random-effects design, ``q = sum(q_levels)`` columns grouped by factor.
    levels : int ndarray, shape (N, L)
        Each row's unit of each factor, numbered ``0..n_k − 1`` per factor (any row order).
    q_levels : tuple of int
        Number of random effects per unit of each factor.
    family : Family
        A family with one linear predictor (no zero part).
    weights : None
        Group weights are not available (a ValueError otherwise).
    groups : int ndarray (N,), optional
        With nested factors, each row's top-level group (``0..n − 1``): the approximation
        then splits into independent groups and :meth:`evaluate` gives each group's value.

    Attributes
    ----------
    n, N, q, E, n_agq : int
        Independent groups (1 without ``groups``: crossed data do not split), rows, random
        effects per row, linear predictors (1), points per dimension (1: the Laplace
        approximation).
    n_units : tuple of int
        Units per factor.
    modes : ndarray
        Every unit's current ``b̂_u``, flat: factor 0's units by index, then factor 1's, …
    recenter : bool
        Whether :meth:`evaluate` moves the modes to the parameters it is given first.
    exact_gradient : bool
        True: the gradient is that of the reported log-likelihood.
    uses_blas : bool
        Whether the dense block is large enough for BLAS threads to speed its LAPACK
        factorisation up (below a few hundred effects they only cost time).
    newton_iterations : int
        Newton steps of the last re-centring.

    Examples
    --------
    Four subjects crossed with three items, random intercepts for both:

    >>> from glmm_ppl.families import poisson
    >>> y = np.array([1.0, 0, 2, 3, 1, 0, 2, 1, 4, 0, 1, 2])
    >>> levels = np.array([[s, i] for s in range(4) for i in range(3)])
    >>> lap = JointLaplace(y, np.ones((12, 2)), levels, (1, 1), poisson())
    >>> res = lap.evaluate(np.zeros(12), np.diag([0.5, 0.3]), np.array([]))
    >>> round(res.loglik, 4), res.grad_D.shape
    (-20.0484, (2, 2))
    >>> [m.shape for m in lap.modes_by_level()]
    [(4, 1), (3, 1)]
    """

    E = 1
    n_agq = 1
    exact_gradient = True

    def __init__(self, y, Z, levels, q_levels, family: Family, weights=None, groups=None):
        if family.n_eta != 1:
            raise ValueError(
                "crossed random effects are not available for families with a zero part"
            )
        if weights is not None:
            raise ValueError("crossed random effects do not take group weights")
        self.q_levels = tuple(int(v) for v in q_levels)
        y = np.asarray(y, dtype=np.float64)
        self.Y = np.ascontiguousarray(y.reshape(len(y), -1))
        self.N, self.q = len(self.Y), sum(self.q_levels)
        Z = np.asarray(Z, dtype=np.float64)
        if Z.shape != (self.N, self.q):
            raise ValueError(f"Z must have shape (N, {self.q}) with q = sum(q_levels)")
        levels = np.asarray(levels, dtype=np.int64)
        if levels.shape != (self.N, len(self.q_levels)):
            raise ValueError(f"levels must have shape (N, {len(self.q_levels)})")
        self.n_units = tuple(int(levels[:, k].max()) + 1 for k in range(levels.shape[1]))
        self.n = 1
        self.weights = None
        self.family = family
        self._point = pointwise_derivatives(family)
        self._full = laplace_derivatives(family)
        self._structure(Z, levels)
        self._groups(groups, levels)
        self.modes = np.zeros(sum(n * q for n, q in zip(self.n_units, self.q_levels, strict=True)))
        self.recenter = True
        self.newton_iterations = 0
        self._factor = None  # the factorisation at the current modes
        self._cov = None  # and the covariances from it

    @property
    def uses_blas(self) -> bool:
        return self.m >= _THREADED_BLOCK

    # ---- the pattern, once per design ---------------------------------------------------
    def _structure(self, Z: np.ndarray, levels: np.ndarray) -> None:
        """Order the rows by the units of the largest factor; the other factors' effects as
        columns of a dense block; each unit's columns and each row's place among them."""
        sizes = [n * q for n, q in zip(self.n_units, self.q_levels, strict=True)]
        self.big = big = int(np.argmax(sizes))
        rest = [k for k in range(len(sizes)) if k != big]
        qoff = np.r_[0, np.cumsum(self.q_levels)]
        self._moff = np.r_[0, np.cumsum(sizes)]  # each factor's place in the flat modes
        self.m = m = sum(sizes[k] for k in rest)
        if m > MAX_DENSE:
            raise ValueError(
                f"the grouping factors other than the largest have {m:,} random effects "
                f"together; the Laplace engine holds them in a dense block of at most "
                f"{MAX_DENSE:,}"
            )
        order = np.argsort(levels[:, big], kind="stable")
        self._order = order
        units0 = levels[order, big]
        self.n0, self.q0 = self.n_units[big], self.q_levels[big]
        self._ustart = np.searchsorted(units0, np.arange(self.n0 + 1)).astype(np.int64)
        Zs = Z[order]
        self._X0 = np.ascontiguousarray(Zs[:, qoff[big] : qoff[big + 1]])
        self._unit0 = units0
        roff, cols, vals = 0, [], []
        self._rest = []  # (factor, its offset among the other effects, its units' columns)
        for k in rest:
            qk = self.q_levels[k]
            base = roff + levels[order, k] * qk
            cols += [base + j for j in range(qk)]
            vals += [Zs[:, qoff[k] + j] for j in range(qk)]
            units = roff + np.arange(self.n_units[k])[:, None] * qk + np.arange(qk)
            self._rest.append((k, roff, units))
            roff += sizes[k]
        self._rcol = np.ascontiguousarray(np.column_stack(cols), dtype=np.int64)
        self._rval = np.ascontiguousarray(np.column_stack(vals))
        # each unit's columns among the other effects, and each entry's place there
        unit_of = np.repeat(np.arange(self.n0), np.diff(self._ustart))
        key = unit_of[:, None] * m + self._rcol
        pairs, inverse = np.unique(key.ravel(), return_inverse=True)
        pair_unit = pairs // m
        self._aptr = np.searchsorted(pair_unit, np.arange(self.n0 + 1)).astype(np.int64)
        self._acol = (pairs % m).astype(np.int64)
        first = self._aptr[unit_of]
        self._rloc = np.ascontiguousarray(inverse.reshape(key.shape) - first[:, None])
        self._M = np.zeros(self.q0 * len(self._acol))
        self._Ainv = np.zeros((self.n0, self.q0, self.q0))
        self._logdetA = np.zeros(self.n0)
        self.Y_sorted = np.ascontiguousarray(self.Y[order])
        self._rows = RowCache(self._point, self.Y_sorted)  # as the point function reads them

    def _groups(self, groups, levels: np.ndarray) -> None:
        """Each row's, big unit's and other effect's top-level group, and each group's number
        of units of every factor (one group of all units without ``groups``)."""
        if groups is None:
            self._gs = None
            self._counts = np.array([self.n_units], dtype=float)
            return
        groups = np.asarray(groups, dtype=np.int64).reshape(self.N)
        self.n = int(groups.max()) + 1
        gs = groups[self._order]
        self._gs, self._ug0 = gs, gs[self._ustart[:-1]]
        self._colg = np.zeros(self.m, dtype=np.int64)
        self._colg[self._rcol] = gs[:, None]
        self._counts = np.column_stack(
            [np.bincount(np.unique(np.column_stack([groups, levels[:, k]]), axis=0)[:, 0],
                         minlength=self.n) for k in range(levels.shape[1])]
        ).astype(float)  # fmt: skip

    def _per_group(self, eta0s, b0, br, invs, logdetD, cS, phis) -> np.ndarray:
        """Each group's share of the approximation at the modes (the factorisation's blocks
        and ``h``'s terms split by group: nested groups share no effects)."""
        n = self.n
        ll = self._point(self.Y_sorted, self._eta(eta0s, b0, br)[:, None], phis)[0][:, 0]
        out = np.bincount(self._gs, weights=ll, minlength=n)
        out -= 0.5 * np.bincount(self._ug0, np.einsum("aq,qp,ap->a", b0, invs[self.big], b0), n)
        prior_r, _ = self._prior_rest(invs, br)
        out -= 0.5 * np.bincount(self._colg, weights=br * prior_r, minlength=n)
        out -= 0.5 * self._counts @ logdetD
        out -= 0.5 * np.bincount(self._ug0, weights=self._logdetA, minlength=n)
        out -= np.bincount(self._colg, weights=np.log(np.diag(cS[0])), minlength=n)
        return out

    # ---- modes in the engine's split --------------------------------------------------------
    def _split(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The flat modes (factor after factor) as the largest factor's ``(n0, q0)`` and the
        others' vector."""
        b0 = flat[self._moff[self.big] : self._moff[self.big + 1]].reshape(self.n0, self.q0)
        br = np.concatenate([flat[self._moff[k] : self._moff[k + 1]] for k, _, _ in self._rest])
        return b0.copy(), br

    def _join(self, b0: np.ndarray, br: np.ndarray) -> np.ndarray:
        out = np.empty(len(self.modes))
        out[self._moff[self.big] : self._moff[self.big + 1]] = b0.ravel()
        for k, off, _ in self._rest:
            n = self._moff[k + 1] - self._moff[k]
            out[self._moff[k] : self._moff[k + 1]] = br[off : off + n]
        return out

    def modes_by_level(self) -> list[np.ndarray]:
        """Views of :attr:`modes`, one ``(n_k, q_k)`` array per factor."""
        return [
            self.modes[self._moff[k] : self._moff[k + 1]].reshape(n, q)
            for k, (n, q) in enumerate(zip(self.n_units, self.q_levels, strict=True))
        ]

    def copy(self) -> JointLaplace:
        """An engine on the same data with its own modes (the data are shared)."""
        other = copy.copy(self)
        other.modes = self.modes.copy()
        other._M, other._Ainv = self._M.copy(), self._Ainv.copy()
        other._logdetA = self._logdetA.copy()
        other._factor = other._cov = None
        return other

    # ---- one evaluation -----------------------------------------------------------------
    def _inverse(self, D):
        """Each factor's ``D_k⁻¹`` and ``log|D_k|``; None when a block is not safely positive
        definite."""
        D = np.atleast_2d(np.asarray(D, dtype=np.float64))
        if D.shape != (self.q, self.q):
            raise ValueError(
                f"D must be {self.q} x {self.q} (block diagonal, one block per factor)"
            )
        return block_inverses(D, self.q_levels)

    def _eta(self, eta0s, b0, br) -> np.ndarray:
        return (
            eta0s
            + np.einsum("rq,rq->r", self._X0, b0[self._unit0])
            + np.einsum("rc,rc->r", self._rval, br[self._rcol])
        )

    def _prior_rest(self, invs, br) -> tuple[np.ndarray, float]:
        """``G_r⁻¹ b_r`` and ``b_rᵀ G_r⁻¹ b_r`` of the other factors' effects."""
        out = np.empty_like(br)
        for k, off, _ in self._rest:
            n, qk = self.n_units[k], self.q_levels[k]
            sl = slice(off, off + n * qk)
            out[sl] = (br[sl].reshape(n, qk) @ invs[k]).ravel()
        return out, float(br @ out)

    def _prior_matrix(self, invs) -> np.ndarray:
        """The dense block's start: the prior precision of the other factors' effects."""
        S = np.zeros((self.m, self.m))
        for k, _, idx in self._rest:
            S[idx[:, :, None], idx[:, None, :]] = invs[k]
        return S

    def _factorise(self, w, invs):
        """Factorise ``H`` at row weights ``w``; the Cholesky factor of ``S`` and ``log|H|``,
        or None when ``H`` is not positive definite."""
        S = self._prior_matrix(invs)
        ok = assemble(
            w, self._X0, self._ustart, self._rcol, self._rval, self._rloc, self._aptr,
            self._acol, invs[self.big], self._Ainv, self._logdetA, self._M, S,
        )  # fmt: skip
        if not ok:
            return None
        try:
            cS = linalg.cho_factor(S, lower=True, overwrite_a=True, check_finite=False)
        except linalg.LinAlgError:
            return None
        logdet = float(self._logdetA.sum() + 2.0 * np.log(np.diag(cS[0])).sum())
        if not np.isfinite(logdet):
            return None
        return cS, logdet

    def _solve(self, cS, g0, gr) -> tuple[np.ndarray, np.ndarray]:
        """``H⁻¹ g`` with the current factorisation."""
        t = np.empty_like(g0)
        r2 = gr.copy()
        forward(g0, self._Ainv, self._M, self._aptr, self._acol, t, r2)
        dr = linalg.cho_solve(cS, r2, check_finite=False)
        d0 = np.empty_like(g0)
        backward(t, self._M, self._aptr, self._acol, dr, d0)
        return d0, dr

    def _h(self, eta0s, b0, br, invs, phis):
        """``h(b)``, the rows' ``ℓ'`` and ``ℓ''`` and ``∇h`` (the largest factor's part and
        the others')."""
        d1, d2 = np.empty(self.N), np.empty(self.N)
        g0, gr = np.zeros((self.n0, self.q0)), np.zeros(self.m)
        total = row_pass(
            self._point.point, self._point.n_out, self._rows.at(phis), eta0s, self._X0, self._unit0,
            b0, self._rcol, self._rval, br, phis, d1, d2, g0, gr,
        )  # fmt: skip
        prior_r, quad_r = self._prior_rest(invs, br)
        prior0 = b0 @ invs[self.big]
        h = total - 0.5 * (float(np.sum(prior0 * b0)) + quad_r)
        return h, d1, d2, (g0 - prior0, gr - prior_r)

    def _pirls(self, eta0s, invs, phis, max_iter: int = NEWTON_MAX_ITER):
        """Newton's method with step halving for the modes, from the current ones; the
        modes, ``h`` there and the factorisation there (None if ``H`` is not positive
        definite).

        The first step reuses the last evaluation's factorisation (a chord step: the parameters
        usually moved little, and the factorisation is most of a step's cost); the method only
        stops after a step with ``H`` factorised where it stands."""
        b0, br = self._split(self.modes)
        h, _, d2, g = self._h(eta0s, b0, br, invs, phis)
        if not np.isfinite(h):  # far from the last modes: start from zero
            b0, br = np.zeros_like(b0), np.zeros_like(br)
            h, _, d2, g = self._h(eta0s, b0, br, invs, phis)
        factor, last = None, self._factor
        for its in range(max_iter + 1):
            chord = its == 0 and last is not None
            if chord:
                factor = last
            else:
                factor = self._factorise(-d2, invs)
            if factor is None:
                factor = self._factorise(np.maximum(-d2, 1e-8), invs)
                if factor is None:
                    break
                factor = (factor[0], None)  # a descent direction, not the true curvature
            s0, sr = self._solve(factor[0], *g)
            size = max(np.abs(s0).max(initial=0.0), np.abs(sr).max(initial=0.0))
            self.newton_iterations = its
            if size < _STEP_TOL or its == max_iter:
                if chord:
                    continue  # converged: factorise here
                break
            t = 1.0
            while True:
                nb0, nbr = b0 + t * s0, br + t * sr
                nh, _, nd2, ng = self._h(eta0s, nb0, nbr, invs, phis)
                if nh >= h - 1e-12 * abs(h) or t < (0.25 if chord else 1e-10):
                    break
                t /= 2
            if chord and not nh >= h - 1e-12 * abs(h):
                continue  # the old curvature is no guide here: Newton from where it was
            b0, br, h, d2, g = nb0, nbr, nh, nd2, ng
        self.modes = self._join(b0, br)
        if factor is not None and factor[1] is None:
            factor = None
        self._factor, self._cov = factor, None
        return b0, br, h, factor

    def update_modes(self, eta0, D, phis, tol=None, max_iter: int = NEWTON_MAX_ITER) -> int:
        """Move the modes to the parameters; the Newton steps taken."""
        inv = self._inverse(D)
        if inv is None:
            return 0
        self._pirls(self._sorted(eta0), inv[0], np.ascontiguousarray(phis, float), max_iter)
        return self.newton_iterations

    def _sorted(self, eta0) -> np.ndarray:
        return np.asarray(eta0, dtype=np.float64).reshape(self.N)[self._order]

    def evaluate(self, eta0, D, phis, grad: bool = True, em: bool = False) -> AGQResult:
        """Laplace log-likelihood at ``(η⁰, D, φ)`` and, with ``grad``, its exact gradient;
        re-centres first unless ``recenter`` is off. The result also has ``unit_counts``
        ``(n, L)``: each group's number of units of every factor."""
        if em:
            raise ValueError("the joint Laplace engine has no EM moments")
        shape = np.shape(eta0)
        phis = np.ascontiguousarray(phis, dtype=np.float64)
        n_phi = len(phis)
        counts = self._counts.copy()
        inv = self._inverse(D)
        eta0s = self._sorted(eta0)

        def failed():
            res = AGQResult(
                -np.inf, np.full(self.n, -np.inf), np.zeros(shape), np.zeros((self.q, self.q)),
                np.zeros(n_phi),
            )  # fmt: skip
            res.unit_counts = counts
            return res

        if inv is None:
            return failed()
        invs, logdetD = inv
        if self.recenter or self._factor is None:
            b0, br, h, factor = self._pirls(eta0s, invs, phis)
        else:
            b0, br = self._split(self.modes)
            h = self._h(eta0s, b0, br, invs, phis)[0]
            factor = self._factor
        if factor is None or not np.isfinite(h):
            return failed()
        cS, logdetH = factor
        loglik = h - 0.5 * float(np.dot(self.n_units, logdetD)) - 0.5 * logdetH
        per_group = np.array([loglik])
        if self._gs is not None:
            per_group = self._per_group(eta0s, b0, br, invs, logdetD, cS, phis)
        res = AGQResult(loglik, per_group)
        res.unit_counts = counts
        if not grad:
            return res
        eta = self._eta(eta0s, b0, br)
        out = self._full(self.Y_sorted, eta[:, None], phis)
        at = output_layout(1, n_phi)
        d1, d2, d3 = out[at.d1][:, 0], out[at.d2][:, 0], out[at.total][:, 0]
        dphi = [out[at.phi + m][:, 0] for m in range(n_phi)]
        dphi1 = [out[at.eta_phi + m][:, 0] for m in range(n_phi)]
        dphi2 = [out[at.total + 1 + m][:, 0] for m in range(n_phi)]
        v, V0, Sinv = self._covariances(cS)
        c = 0.5 * d3 * v
        gb0 = _unit_sums(c[:, None] * self._X0, self._ustart)
        gbr = np.bincount(self._rcol.ravel(), weights=(c[:, None] * self._rval).ravel(),
                          minlength=self.m)  # fmt: skip
        u0, ur = self._solve(cS, gb0, gbr)
        Zu = self._eta(np.zeros(self.N), u0, ur)
        g_eta = np.empty(self.N)
        g_eta[self._order] = d1 + c + d2 * Zu
        res.grad_eta = g_eta.reshape(shape)
        rows_phi = [dphi[m] + 0.5 * v * dphi2[m] + Zu * dphi1[m] for m in range(n_phi)]
        res.grad_phis = np.array([float(np.sum(r)) for r in rows_phi])
        res.grad_D, res.second_moment_groups = self._grad_D(invs, b0, br, u0, ur, V0, Sinv)
        if self._gs is not None:  # each group's score pieces (nested groups are independent)
            res.grad_phis_groups = np.column_stack(
                [np.bincount(self._gs, weights=r, minlength=self.n) for r in rows_phi]
                or [np.zeros((self.n, 0))]
            )
        self._cov = (V0, Sinv)
        return res

    def _covariances(self, cS):
        """``v_r = z_rᵀ H⁻¹ z_r`` of every row, the largest factor's blocks of ``H⁻¹`` and the
        other effects' block ``S⁻¹``, from the factorisation at the modes."""
        Sinv = _inverse_from_cholesky(cS[0])
        v = np.empty(self.N)
        V0 = np.empty((self.n0, self.q0, self.q0))
        row_variances(
            self._X0, self._ustart, self._rval, self._rloc, self._Ainv, self._M, self._aptr,
            self._acol, Sinv, v, V0,
        )  # fmt: skip
        return v, V0, Sinv

    def _grad_D(self, invs, b0, br, u0, ur, V0, Sinv) -> tuple[np.ndarray, np.ndarray | None]:
        """``∂ log L / ∂D`` block by block (see the module's notes): ``½ D_k⁻¹ S_k D_k⁻¹ −
        (n_k/2) D_k⁻¹`` with ``S_k = Σ_u b̂_u b̂_uᵀ + V_u + u_u b̂_uᵀ + b̂_u u_uᵀ``; and, with
        groups, each group's share of ``S`` (``(n, q, q)``, for its score), else None."""
        qoff = np.r_[0, np.cumsum(self.q_levels)]
        grad = np.zeros((self.q, self.q))
        S_g = None if self._gs is None else np.zeros((self.n, self.q, self.q))
        columns = {k: idx for k, _, idx in self._rest}
        for k in range(len(self.q_levels)):
            Di = invs[k]
            if k == self.big:
                b, u, V, group = b0, u0, V0, getattr(self, "_ug0", None)
            else:
                idx = columns[k]
                b, u = br[idx], ur[idx]
                V = Sinv[idx[:, :, None], idx[:, None, :]]
                group = None if self._gs is None else self._colg[idx[:, 0]]
            per_unit = (
                b[:, :, None] * b[:, None, :] + V + u[:, :, None] * b[:, None, :]
                + b[:, :, None] * u[:, None, :]
            )  # fmt: skip
            S_k = per_unit.sum(axis=0)
            sl = slice(qoff[k], qoff[k + 1])
            grad[sl, sl] = 0.5 * Di @ S_k @ Di - 0.5 * self.n_units[k] * Di
            if S_g is not None:
                np.add.at(S_g[:, sl, sl], group, per_unit)
        return grad, S_g

    def posterior_covariance(self) -> list[np.ndarray]:
        """Each unit's posterior covariance under the Laplace approximation at the modes (its
        diagonal block of ``H⁻¹``): one ``(n_k, q_k, q_k)`` array per factor."""
        if self._cov is None:
            if self._factor is None:
                raise RuntimeError("no factorisation at the modes: call update_modes first")
            self._cov = self._covariances(self._factor[0])[1:]
        V0, Sinv = self._cov
        out = {self.big: V0.copy()}
        for k, _, idx in self._rest:
            out[k] = Sinv[idx[:, :, None], idx[:, None, :]]
        return [out[k] for k in range(len(self.q_levels))]


def _inverse_from_cholesky(L: np.ndarray) -> np.ndarray:
    """``S⁻¹`` (C order) from the lower Cholesky factor of ``S`` (LAPACK's ``potri``: a third
    of the work of solving for the identity)."""
    inv, info = linalg.lapack.dpotri(L, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"potri failed (info={info})")
    mirror_lower(inv)  # in place: the block may hold a gigabyte
    return inv.T if inv.flags.f_contiguous else inv  # symmetric: the C-ordered view


def _unit_sums(a: np.ndarray, ustart: np.ndarray) -> np.ndarray:
    """Sums of consecutive rows of ``a`` over each unit (units without rows give 0)."""
    out = np.zeros((len(ustart) - 1, a.shape[1]))
    nonempty = np.diff(ustart) > 0
    out[nonempty] = np.add.reduceat(a, ustart[:-1][nonempty], axis=0)
    return out
