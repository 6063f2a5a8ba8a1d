"""Generalized linear models without random effects, on arrays: the mixed model's starting
values and the numerics behind :func:`glmm_ppl.glm`.

Newton's method on ``β`` with step-halving, using the family's compiled derivatives; the extra
parameters ``φ`` and a zero part (if any) are then fitted jointly with ``β`` by Newton's method
on ``(β, log φ)`` with the exact Hessian, or by L-BFGS-B within bounds where Newton's steps
leave them. Hessians by central differences (:func:`central_differences`) where no analytic
one is at hand.
"""

from __future__ import annotations

from inspect import signature

import numpy as np
from scipy import optimize, special

from ..engine.pointwise import RowCache, output_layout, pointwise_derivatives
from ..families import Family

__all__ = ["central_differences", "fit_glm_arrays", "log_phi_hessian"]


def central_differences(f, theta: np.ndarray, step: float, which: slice = slice(None)):
    """Central differences of ``f`` (scalar or vector valued) in each entry of ``theta`` (or
    in those of ``which``), with steps ``step · max(|θ_j|, 1)``; column ``j`` holds the
    derivative in ``θ_j`` (not a number where ``f`` is infinite on both sides)."""
    h = step * np.maximum(np.abs(theta), 1.0)
    columns = []
    for j in range(len(theta))[which]:
        hj = h[j]
        e = np.zeros(len(theta))
        e[j] = hj
        up, down = np.asarray(f(theta + e)), np.asarray(f(theta - e))
        with np.errstate(invalid="ignore"):
            columns.append((up - down) / (2 * hj))
    return np.stack(columns, axis=-1)


def log_phi_hessian(designs, eta_phis, pairs, grad_phis, phis) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a Hessian in ``log φ``: ``∂²/∂(β, γ)∂log φ_m = φ_m Σ_e X_eᵀ ∂²/∂η_e∂φ_m``
    (``eta_phis``, ``(N, E M)``, ``e`` major, per row) and ``∂²/∂log φ_m∂log φ_l =
    φ_m φ_l ∂²/∂φ_m∂φ_l + [m = l] φ_m ∂/∂φ_m`` (``pairs``, the sums over rows of
    ``∂²/∂φ_m∂φ_l`` for ``m ≤ l``, row by row; ``grad_phis``, those of ``∂/∂φ``).

    Examples
    --------
    >>> X = np.ones((2, 1))
    >>> cross, H = log_phi_hessian([X], np.array([[1.0], [2.0]]), np.array([-3.0]),
    ...                            np.array([0.5]), np.array([2.0]))
    >>> cross.tolist(), H.tolist()  # 2 (1 + 2); 4 (−3) + 2 (0.5)
    ([[6.0]], [[-11.0]])
    """
    M = len(phis)
    eta_phis = eta_phis.reshape(len(eta_phis), len(designs), M)
    cross = np.vstack([X.T @ eta_phis[:, e] for e, X in enumerate(designs)]) * phis
    H = np.zeros((M, M))
    H[np.triu_indices(M)] = pairs
    H = np.triu(H) + np.triu(H, 1).T
    return cross, np.outer(phis, phis) * H + np.diag(phis * grad_phis)


def _start(X: np.ndarray, Y: np.ndarray, family: Family) -> np.ndarray:
    """Starting coefficients of the main predictor: zero, but the intercept (a column of
    ones) at the link of the mean response, where that is finite."""
    beta = np.zeros(X.shape[1])
    ones = np.flatnonzero(np.all(X == 1.0, axis=0))
    if len(ones):
        y = Y[:, 0]
        mean = y.mean() if "trials" not in family.aux_names else y.sum() / max(Y[:, 1].sum(), 1)
        if family.link.name in ("logit", "probit", "cloglog"):
            mean = np.clip(mean, 0.02, 0.98)
        elif family.link.name == "log":
            mean = max(mean, 1e-2)
        with np.errstate(all="ignore"):
            start = float(family.link.link(np.asarray(mean)))
        if np.isfinite(start):
            beta[ones[0]] = start
    return beta


def _disp_start(family: Family, Y: np.ndarray, phis: np.ndarray) -> np.ndarray:
    """``exp(γ)`` of the dispersion sub-model whose rows all have the pooled moment estimate
    ``φ`` (``γ`` by least squares of ``log φ`` on the sub-model's columns, so any coding of
    them starts at the same per-row values)."""
    columns = [1 + family.aux_names.index(f"disp:{n}") for n in family.disp_names]
    Xd = Y[:, columns]
    gamma = np.linalg.lstsq(Xd, np.full(len(Y), np.log(phis[0])), rcond=None)[0]
    return np.exp(gamma)


def _negative_definite(H: np.ndarray) -> np.ndarray:
    """``H`` with its eigenvalues made at most ``−1e-8 · max|λ|`` (a modified Newton step is
    then an ascent direction)."""
    lam, V = np.linalg.eigh(0.5 * (H + H.T))
    bound = 1e-8 * max(np.max(np.abs(lam)), 1e-12)
    return (V * np.minimum(lam, -bound)) @ V.T


def fit_glm_arrays(
    Xs: list[np.ndarray],
    Y: np.ndarray,
    family: Family,
    offset: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-10,
    polish: bool = True,
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Maximum-likelihood GLM on arrays.

    Parameters
    ----------
    Xs : list of ndarray
        The fixed-effects design of each linear predictor (two with a zero part).
    Y : ndarray (N,) or (N, 1 + n_aux)
        The response, then the family's per-row data.
    offset : ndarray (N, E), optional
    polish : bool
        Whether Newton steps follow L-BFGS-B when it is needed (a few 1e-5 of log-likelihood;
        a mixed model's starting values go without).

    Returns
    -------
    coef, phis, loglik, hessian
        ``coef`` joins the coefficients of the predictors; ``hessian`` is the Hessian of the
        log-likelihood in ``(coef, log φ)``, or in ``coef`` alone without the ``polish``.
    """
    kernel = pointwise_derivatives(family)
    Y = np.ascontiguousarray(np.asarray(Y, dtype=float).reshape(len(Y), -1))
    N, E = len(Y), len(Xs)
    offset = np.zeros((N, E)) if offset is None else np.asarray(offset, dtype=float)
    sizes = np.cumsum([0] + [X.shape[1] for X in Xs])
    at, M = output_layout(E, family.n_phis), family.n_phis
    rows = RowCache(kernel, Y)  # the first Newton phase evaluates at one φ again and again

    def eta(coef):
        pairs = zip(Xs, sizes, sizes[1:], strict=False)
        return np.column_stack([X @ coef[a:b] for X, a, b in pairs]) + offset

    def parts(coef, phis):
        out = kernel.at_rows(rows.at(phis), eta(coef)[:, None, :], phis)
        out = [o[:, 0] for o in out]
        g = np.concatenate([Xs[e].T @ out[at.d1 + e] for e in range(E)])
        H = np.zeros((sizes[-1], sizes[-1]))
        k = at.d2
        for e in range(E):
            for f in range(e, E):
                block = Xs[e].T @ (out[k][:, None] * Xs[f])
                H[sizes[e] : sizes[e + 1], sizes[f] : sizes[f + 1]] = block
                H[sizes[f] : sizes[f + 1], sizes[e] : sizes[e + 1]] = block.T
                k += 1
        dphi = np.array([out[at.phi + m].sum() for m in range(M)])
        return out[0].sum(), g, H, dphi, out

    def joint(par):  # the log-likelihood, its gradient and Hessian in (coef, log φ)
        k, phis = sizes[-1], np.exp(par[sizes[-1] :])
        ll, g, H_coef, dphi, out = parts(par[:k], phis)
        eta_phis = np.stack(out[at.eta_phi : at.phi_phi], axis=1) if M else np.zeros((N, 0))
        pairs = np.array([o.sum() for o in out[at.phi_phi : at.total]])
        cross, H_phis = log_phi_hessian(Xs, eta_phis, pairs, dphi, phis)
        H = np.block([[H_coef, cross], [cross.T, H_phis]])
        return ll, np.concatenate([g, dphi * phis]), H

    p0 = Xs[0].shape[1]
    coef = np.zeros(sizes[-1])
    coef[:p0] = _start(Xs[0], Y, family)
    if E == 2:  # the zero part starts with half the zeros as structural ones
        ones = np.flatnonzero(np.all(Xs[1] == 1.0, axis=0))
        if len(ones):
            coef[p0 + ones[0]] = special.logit(np.clip(np.mean(Y[:, 0] == 0) / 2, 0.05, 0.5))

    data = {}
    if "trials" in family.aux_names and "trials" in signature(family.initial_phis).parameters:
        data["trials"] = Y[:, 1 + family.aux_names.index("trials")]

    def moments(coef):  # the extra parameters by moments, given the main predictor's mean
        with np.errstate(all="ignore"):
            mu = family.mean(eta(coef)[:, 0])
            phis = np.asarray(family.initial_phis(Y[:, 0], mu, **data), float)
        phis = np.where(np.isfinite(phis) & (phis > 0), phis, 1.0)
        return _disp_start(family, Y, phis) if family.disp_names else phis

    # Newton in the main part's coefficients, the rest held: with the zero part free, Newton
    # tends to run its probability to 0 while the dispersion is still a moment estimate
    phis = moments(coef)
    ll, g, H, _, _ = parts(coef, phis)
    for _ in range(max_iter if p0 else 0):  # an ordinal model may have thresholds only
        if not (np.isfinite(ll) and np.all(np.isfinite(H))):
            break
        step = np.zeros_like(coef)
        step[:p0] = np.linalg.solve(-_negative_definite(H[:p0, :p0]), g[:p0])
        t = 1.0
        for _ in range(40):
            ll_new, g_new, H_new, _, _ = parts(coef + t * step, phis)
            if ll_new >= ll - 1e-12 * abs(ll):
                break
            t /= 2
        else:
            break
        coef, ll, g, H = coef + t * step, ll_new, g_new, H_new
        if np.max(np.abs(t * step)) < tol:
            break
    if family.n_phis or E == 2:  # then everything jointly; as starting values, the zero part
        k = sizes[-1]  # stays within ±10 and the extra parameters within e^±7 of their moment
        phis = moments(coef)  # estimates, away from degenerate limits (e.g. NB size → 0)
        bounds = [(None, None)] * p0 + [(-10.0, 10.0)] * (k - p0)
        bounds += [(np.log(v) - 7.0, np.log(v) + 7.0) for v in phis]
        start = np.r_[coef, np.log(phis)]
        found = _bounded_newton(joint, start, bounds)
        if found is not None:
            x, ll, H = found
            coef, phis = x[:k], np.exp(x[k:])
            return coef, phis, float(ll), H if family.n_phis and polish else H[:k, :k]

        def negll(par):
            ll, g, _, dphi, _ = parts(par[:k], np.exp(par[k:]))
            if not np.isfinite(ll):
                return np.inf, np.zeros_like(par)
            return -ll, -np.concatenate([g, dphi * np.exp(par[k:])])

        res = optimize.minimize(negll, start, jac=True, method="L-BFGS-B", bounds=bounds)
        x = res.x
        if family.n_phis and polish:
            x, H = _newton_polish(joint, x, bounds)
        coef, phis = x[:k], np.exp(x[k:])
        ll, g, H_coef, _, _ = parts(coef, phis)
        if not (family.n_phis and polish):
            H = H_coef
    return coef, phis, float(ll), H


def _limits(bounds) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper limits of scipy-style ``bounds`` (None: unbounded)."""
    lo = np.array([-np.inf if b is None else b for b, _ in bounds])
    hi = np.array([np.inf if b is None else b for _, b in bounds])
    return lo, hi


def _bounded_newton(joint, x: np.ndarray, bounds, max_iter: int = 50, tol: float = 1e-10):
    """Newton's method with step-halving on ``joint(x) → (log-likelihood, gradient, Hessian)``
    until the Newton decrement is below ``tol``; ``(x, log-likelihood, Hessian)`` there, or
    None where the steps leave ``bounds`` or stop rising (L-BFGS-B, which keeps within them,
    is then used).

    Where the Hessian is not negative definite (far from the maximum) its eigenvalues are
    taken in absolute value, and no entry moves by more than 3 in one step: the step is then
    an ascent direction of a sensible length, where clamping the eigenvalues at a small
    negative value sends it out of bounds.
    """
    lo, hi = _limits(bounds)
    ll, g, H = joint(x)
    for _ in range(max_iter):
        if not (np.isfinite(ll) and np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
            return None
        lam, V = np.linalg.eigh(0.5 * (H + H.T))
        lam = np.maximum(np.abs(lam), 1e-8 * max(np.max(np.abs(lam)), 1e-12))
        step = V @ ((V.T @ g) / lam)
        if 0.5 * g @ step < tol:
            return x, ll, H
        step *= min(1.0, 3.0 / np.max(np.abs(step)))
        t = 1.0
        while t > 1e-3:
            new = x + t * step
            if np.all((new >= lo) & (new <= hi)):
                found = joint(new)
                if found[0] >= ll:
                    break
            t /= 2
        else:
            return None
        x, (ll, g, H) = new, found
    return None


def _newton_polish(joint, x: np.ndarray, bounds, rounds: int = 2):
    """Newton steps from where L-BFGS-B stopped (its tolerance leaves the log-likelihood up
    to about 1e-4 short), with ``joint(x) → (log-likelihood, gradient, exact Hessian)`` (one
    pass over the rows per point), within the bounds and while the log-likelihood rises;
    ``x`` and the log-likelihood's Hessian there."""
    lo, hi = _limits(bounds)
    ll, grad, H = joint(x)
    for _ in range(rounds):
        if not (np.isfinite(ll) and np.all(np.isfinite(H)) and np.all(np.isfinite(grad))):
            break
        step = np.linalg.solve(-_negative_definite(H), grad)
        if grad @ step < 1e-10:  # the Newton decrement: at the maximum already
            break
        new = np.clip(x + step, lo, hi)
        found = joint(new)
        if not found[0] > ll:
            break
        x, (ll, grad, H) = new, found
    return x, H
