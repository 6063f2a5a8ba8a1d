"""The marginal model's log posterior density of ``θ`` and its gradient, in one compiled call.

It is the density of :func:`glmm_ppl.to_pymc`'s marginal model: the AGQ log-likelihood plus a
log prior supplied by the caller (the penalty and the priors with the Jacobian of their
log-scale parameters). A sampler calls it thousands of times, so everything but the prior
runs in one numba kernel that releases the GIL: ``η⁰ = Xβ (+ X_zi γ) + offset``,
``D(θ_D)`` and ``φ = exp(log φ)``, the re-centring of the nodes, the quadrature, and the chain
rule back to ``θ`` (``∂/∂β = Xᵀ ∂/∂η⁰``, ``∂/∂θ_D`` through the log-Cholesky factor,
``∂/∂ log φ = φ ∂/∂φ``). Each :class:`LogDensity` holds its own modes, so several can run at
once, one per thread, as a sampler's chains do. The tests check it against PyTensor's gradient
of the PyMC model.
"""

from __future__ import annotations

import numba
import numpy as np

from .covariance import theta_to_L
from .kernels import NEWTON_MAX_ITER, NEWTON_TOL, inverse_kernel, modes_kernel, nodes_kernel
from .pointwise import extend_rows

__all__ = ["LogDensity"]


@numba.njit(cache=True, nogil=True)
def _predict_modes(eta0, last_eta0, Dinv, last_Dinv, Z, starts, d2, chol, modes, iters):
    """Move the modes of the last point to first order towards those at ``(η⁰, D⁻¹)``: from
    ``∇h_i(b̂_i) = 0``, ``δb̂_i = C_i C_iᵀ (Σ_j z_jᵀ ∇²ℓ_j δη⁰_j − δ(D⁻¹) b̂_i)`` (``d2``: the
    rows' ``∇²ℓ`` at the last modes; a change of ``φ`` is not followed). The step is at most
    three posterior standard deviations in each direction; groups whose last re-centring
    failed stay where they are. Newton then converges from there as from anywhere else."""
    E, q = Z.shape[1], Z.shape[2]
    r = np.empty(q)
    w = np.empty(q)
    u = np.empty(E)
    for i in range(starts.shape[0] - 1):
        if iters[i] < 0:
            continue
        for a in range(q):
            t = 0.0
            for c in range(q):
                t -= (Dinv[a, c] - last_Dinv[a, c]) * modes[i, c]
            r[a] = t
        for j in range(starts[i], starts[i + 1]):
            u[:] = 0.0
            k = 0
            for e in range(E):
                for f in range(e, E):
                    u[e] += d2[j, k] * (eta0[j, f] - last_eta0[j, f])
                    if f != e:
                        u[f] += d2[j, k] * (eta0[j, e] - last_eta0[j, e])
                    k += 1
            for a in range(q):
                for e in range(E):
                    r[a] += Z[j, e, a] * u[e]
        size = 0.0  # the step in the posterior's standard units: w = Cᵀ r, δb = C w
        for c in range(q):
            t = 0.0
            for a in range(q):
                t += chol[i, a, c] * r[a]
            w[c] = t
            size = max(size, abs(t))
        if not np.isfinite(size):
            continue
        shrink = 1.0 if size <= 3.0 else 3.0 / size
        for a in range(q):
            t = 0.0
            for c in range(q):
                t += chol[i, a, c] * w[c]
            modes[i, a] += shrink * t


@numba.njit(cache=True, nogil=True)
def _density_kernel(
    point, n_out, points, blocks, prep, n_hoisted, theta, p, pz, diagonal, X, X_zi, offset, Y, Z,
    starts, weights, nodes, log_w, modes, chol, log_det, iters, last_eta0, last_Dinv, d2,
    per_group, grad,
):  # fmt: skip
    """Log-likelihood at ``θ`` (−inf, with a zero gradient, where it is not finite); its
    gradient into ``grad`` and the groups' log-likelihoods into ``per_group``. ``modes``,
    ``chol``, ``log_det``, ``iters`` are the engine's state, and ``last_eta0``, ``last_Dinv``
    (NaN before the first point) and ``d2`` those of the last point; all are updated in
    place."""
    N, E, q = Z.shape
    n = starts.shape[0] - 1
    t = q if diagonal else q * (q + 1) // 2
    n_phi = theta.shape[0] - p - pz - t
    grad[:] = 0.0
    L = theta_to_L(theta[p + pz : p + pz + t], q, diagonal)
    D = L @ L.T
    Dinv = np.empty((q, q))
    logdetD = inverse_kernel(D, Dinv)
    if np.isnan(logdetD):  # D is singular (a variance underflowed): the likelihood is 0 there
        per_group[:] = -np.inf
        return -np.inf
    phis = np.exp(theta[p + pz + t :])
    if n_hoisted > 0:  # the rows as the point function reads them
        Y = extend_rows(prep, Y, phis, n_hoisted)
    eta0 = np.empty((N, E))
    for j in range(N):
        v = offset[j, 0]
        for k in range(p):
            v += X[j, k] * theta[k]
        eta0[j, 0] = v
        if E == 2:
            v = offset[j, 1]
            for k in range(pz):
                v += X_zi[j, k] * theta[p + k]
            eta0[j, 1] = v
    if np.isfinite(last_Dinv[0, 0]):
        _predict_modes(eta0, last_eta0, Dinv, last_Dinv, Z, starts, d2, chol, modes, iters)
    modes_kernel(
        point, n_out, 0, n, points, blocks, Y, eta0, Z, starts, Dinv, phis, modes, chol, log_det,
        iters, NEWTON_TOL, NEWTON_MAX_ITER, d2,
    )  # fmt: skip
    last_eta0[:] = eta0
    last_Dinv[:] = Dinv
    g_eta = np.empty((N, E))
    S_g = np.empty((n, q, q))
    gphi_g = np.empty((n, n_phi))
    nodes_kernel(
        point, n_out, 0, n, points, blocks, Y, eta0, Z, starts, modes, chol, log_det, nodes, log_w,
        Dinv, logdetD, phis, True, False, per_group, g_eta, S_g, gphi_g, np.empty((0, 1)),
        np.empty((0, 0)), np.empty((0, 0)), weights, np.empty((0, 0)),
    )  # fmt: skip
    loglik = 0.0
    for i in range(n):
        loglik += weights[i] * per_group[i]
    if not np.isfinite(loglik):
        return -np.inf
    # ∂/∂β = Xᵀ ∂/∂η⁰ (and the zero part's), ∂/∂φ, S = Σ w_i S_i
    S = np.zeros((q, q))
    n_eff = 0.0
    for i in range(n):
        w = weights[i]
        n_eff += w
        for j in range(starts[i], starts[i + 1]):
            for k in range(p):
                grad[k] += w * g_eta[j, 0] * X[j, k]
            if E == 2:
                for k in range(pz):
                    grad[p + k] += w * g_eta[j, 1] * X_zi[j, k]
        for r in range(q):
            for c in range(q):
                S[r, c] += w * S_g[i, r, c]
        for m in range(n_phi):
            grad[p + pz + t + m] += w * gphi_g[i, m] * phis[m]
    # ∂/∂D = ½ D⁻¹ S D⁻¹ − (n/2) D⁻¹, then ∂/∂L = (G + Gᵀ) L and the log-scale diagonal
    G = 0.5 * (Dinv @ S @ Dinv) - 0.5 * n_eff * Dinv
    gL = (G + G.T) @ L
    if diagonal:
        for r in range(q):
            grad[p + pz + r] = gL[r, r] * L[r, r]
    else:
        k = 0
        for r in range(q):
            for c in range(r + 1):
                grad[p + pz + k] = gL[r, c] * L[r, c] if r == c else gL[r, c]
                k += 1
    return loglik


class LogDensity:
    """``θ ↦ (log density, gradient, per-group log-likelihoods)`` of a model.

    ``θ = (β, γ, θ_D, log φ)`` as :mod:`glmm_ppl.fitting.parameters` lays it out.

    Parameters
    ----------
    engine : AGQ
        The model's quadrature engine; it is copied (data shared, modes private).
    X, X_zi : ndarray (N, p), (N, p_zi)
        Fixed-effects designs of the linear predictor and of the zero part (``p_zi = 0``
        without one).
    offset : ndarray (N, E)
        Offsets of each linear predictor.
    diagonal : bool
        Whether ``D`` is diagonal (``θ_D`` is then ``log sd``).
    log_prior : callable, optional
        ``θ ↦ (value, gradient)``: the log penalty and priors added to the log-likelihood.
    modes : ndarray (n, q), optional
        Where the quadrature starts (a fit's empirical Bayes modes). Each later call starts
        each group's Newton search from the last point's mode moved to first order towards
        the new point: along a sampler's path about one Newton evaluation in four fewer.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> from glmm_ppl.fitting import MixedModelGraph
    >>> g = MixedModelGraph(fm1.design, fm1.family, fm1.n_agq, fm1.penalty)
    >>> density = LogDensity(g.engine, g.X, g.X_zi, g.offset, False, modes=fm1.modes)
    >>> value, grad, per_group = density(fm1.theta)
    >>> bool(abs(value - fm1.loglik) < 1e-6), grad.shape, per_group.shape
    (True, (3,), (100,))
    """

    def __init__(self, engine, X, X_zi, offset, diagonal: bool, log_prior=None, modes=None):
        self.engine = engine = engine.copy()
        if modes is not None:
            engine.modes = np.array(modes, dtype=float).reshape(engine.modes.shape)
        self.log_prior = log_prior
        weights = np.ones(engine.n) if engine.weights is None else engine.weights
        self._data = (
            X.shape[1],
            X_zi.shape[1],
            bool(diagonal),
            np.ascontiguousarray(X, dtype=np.float64),
            np.ascontiguousarray(X_zi, dtype=np.float64),
            np.ascontiguousarray(offset, dtype=np.float64),
            engine.Y,
            engine.Z,
            engine.starts,
            np.ascontiguousarray(weights, dtype=np.float64),
            engine.nodes,
            engine.log_w,
        )
        E, q = engine.E, engine.q
        self._last = (  # η⁰, D⁻¹ and the rows' ∇²ℓ at the last point: where its modes move
            np.zeros((engine.N, E)),
            np.full((q, q), np.nan),
            np.zeros((engine.N, E * (E + 1) // 2)),
        )

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        e = self.engine
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        grad = np.empty(len(theta))
        per_group = np.empty(e.n)
        value = _density_kernel(
            e.point, e.n_out, e.points, e.blocks, e.rows.pw.prep, e.rows.pw.n_hoisted, theta,
            *self._data, e.modes, e.chol, e.log_det_chol, e.newton_iterations, *self._last,
            per_group, grad,
        )  # fmt: skip
        if not np.isfinite(value):
            return -np.inf, grad, per_group
        if self.log_prior is not None:
            lp, g_prior = self.log_prior(theta)
            value, grad = value + float(lp), grad + g_prior
        return float(value), grad, per_group
