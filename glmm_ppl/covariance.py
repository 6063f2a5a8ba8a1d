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

import numpy as np
import pytensor.tensor as pt

__all__ = [
    "n_theta",
    "theta_names",
    "theta_to_D",
    "theta_to_D_pt",
    "theta_to_D_vjp",
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


def theta_to_D(theta: np.ndarray, q: int, diagonal: bool) -> np.ndarray:
    """``D`` from ``θ`` (numpy).

    Examples
    --------
    >>> theta_to_D(np.array([0.0, 0.5, np.log(2.0)]), 2, diagonal=False)
    array([[1.  , 0.5 ],
           [0.5 , 4.25]])
    """
    theta = np.asarray(theta, dtype=float)
    if diagonal:
        return np.diag(np.exp(2.0 * theta))
    L = np.zeros((q, q))
    L[_tril(q)] = theta
    L[np.diag_indices(q)] = np.exp(np.diag(L))
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


def theta_to_D_vjp(theta: np.ndarray, grad_D: np.ndarray, q: int, diagonal: bool) -> np.ndarray:
    """``∂f/∂θ`` from ``G = ∂f/∂D`` (the chain rule through :func:`theta_to_D`, numpy).

    ``G`` is the gradient with the entries of ``D`` taken as free (so symmetric when ``f`` is
    a function of a symmetric matrix): ``∂f/∂L = (G + Gᵀ) L``, then the log-scale diagonal.

    Examples
    --------
    >>> theta_to_D_vjp(np.array([0.0, 0.5, 0.0]), np.eye(2), 2, diagonal=False)
    array([2., 1., 2.])
    """
    theta = np.asarray(theta, dtype=float)
    G = np.asarray(grad_D, dtype=float)
    if diagonal:
        return 2.0 * np.diag(G) * np.exp(2.0 * theta)
    L = np.zeros((q, q))
    L[_tril(q)] = theta
    diag = np.exp(np.diag(L))
    L[np.diag_indices(q)] = diag
    gL = (G + G.T) @ L
    gL[np.diag_indices(q)] *= diag
    return gL[_tril(q)]


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
