"""The covariance matrix ``D`` of the random effects and its unconstrained parameters ``θ``.

Full ``D`` (terms joined by ``|``): ``D = L Lᵀ`` with ``L`` lower triangular; ``θ`` holds the
lower triangle of ``L`` row by row, with the diagonal on the log scale (log-Cholesky).
Diagonal ``D`` (terms joined by ``||``): ``θ_k = log D_kk / 2`` (log standard deviations), so
both parametrisations agree on the diagonal of ``L``.
The parameters are named ``D_jk`` (``j ≤ k``) after the position of their entry of ``L``
(``D_12`` is ``L_21``), as GLMMadaptive names them; they are not the entries of ``D``.
"""

from __future__ import annotations

from functools import cache

import numba
import numpy as np
import pytensor.tensor as pt

__all__ = [
    "n_theta",
    "theta_names",
    "theta_to_D",
    "theta_to_D_pt",
    "theta_to_L",
    "D_to_theta",
]


@cache
def _tril(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower-triangle indices, row by row (computed once per size: the fit maps θ to D often)."""
    return np.tril_indices(q)


def n_theta(q: int, diagonal: bool) -> int:
    """Number of unconstrained parameters of a ``q × q`` covariance matrix."""
    return q if diagonal else q * (q + 1) // 2


def theta_names(q: int, diagonal: bool) -> list[str]:
    """Names ``D_jk`` of the parameters (1-based, ``j ≤ k``), in the order of ``θ``.

    Examples
    --------
    >>> theta_names(2, diagonal=False)
    ['D_11', 'D_12', 'D_22']
    """
    if diagonal:
        return [f"D_{k + 1}{k + 1}" for k in range(q)]
    rows, cols = _tril(q)
    return [f"D_{c + 1}{r + 1}" for r, c in zip(rows, cols, strict=False)]


@numba.njit(cache=True, nogil=True)
def theta_to_L(theta: np.ndarray, q: int, diagonal: bool) -> np.ndarray:
    """The factor ``L`` of ``D = L Lᵀ`` from ``θ`` (compiled: the density of ``θ`` that a
    sampler evaluates builds it in its own kernel). ``θ`` must have :func:`n_theta` entries."""
    L = np.zeros((q, q))
    if diagonal:
        for r in range(q):
            L[r, r] = np.exp(theta[r])
        return L
    k = 0
    for r in range(q):
        for c in range(r + 1):
            L[r, c] = np.exp(theta[k]) if r == c else theta[k]
            k += 1
    return L


def theta_to_D(theta: np.ndarray, q: int, diagonal: bool) -> np.ndarray:
    """``D`` from ``θ`` (numpy).

    Examples
    --------
    >>> theta_to_D(np.array([0.0, 0.5, np.log(2.0)]), 2, diagonal=False)
    array([[1.  , 0.5 ],
           [0.5 , 4.25]])
    """
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    if theta.shape != (n_theta(q, diagonal),):
        raise ValueError(
            f"a {q} x {q} {'diagonal ' if diagonal else ''}covariance matrix has "
            f"{n_theta(q, diagonal)} parameters, got an array of shape {theta.shape}"
        )
    L = theta_to_L(theta, q, bool(diagonal))
    return L @ L.T


def theta_to_D_pt(theta, q: int, diagonal: bool):
    """``D`` from ``θ`` as a PyTensor expression (the same map as :func:`theta_to_D`)."""
    if diagonal:
        return pt.diag(pt.exp(2.0 * theta))
    rows, cols = _tril(q)
    L = pt.zeros((q, q))
    L = pt.set_subtensor(L[rows, cols], theta)
    idx = np.arange(q)
    L = pt.set_subtensor(L[idx, idx], pt.exp(L[idx, idx]))
    return L @ L.T


def D_to_theta(D: np.ndarray, diagonal: bool) -> np.ndarray:
    """``θ`` from a positive-definite ``D`` (numpy); the inverse of :func:`theta_to_D`.

    Raises
    ------
    ValueError
        If ``D`` is not symmetric positive definite.

    Examples
    --------
    >>> D_to_theta(np.array([[1.0, 0.5], [0.5, 4.25]]), diagonal=False).round(6)
    array([0.      , 0.5     , 0.693147])
    """
    D = np.atleast_2d(np.asarray(D, dtype=float))
    if D.shape[0] != D.shape[1] or not np.allclose(D, D.T, rtol=1e-10, atol=1e-12):
        raise ValueError(f"D must be a symmetric square matrix, got {D.tolist()}")
    if diagonal:
        d = np.diag(D)
        if np.any(d <= 0) or not np.all(np.isfinite(d)):
            raise ValueError(f"the variances on the diagonal of D must be positive, got {d}")
        return 0.5 * np.log(d)
    try:
        L = np.linalg.cholesky(D)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"D must be symmetric positive definite; got eigenvalues {np.linalg.eigvalsh(D)}"
        ) from None
    L[np.diag_indices_from(L)] = np.log(np.diag(L))
    return L[_tril(D.shape[0])]
