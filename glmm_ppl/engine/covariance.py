"""The covariance matrix ``D`` of the random effects and its unconstrained parameters ``θ``.

Full ``D`` (terms joined by ``|``): ``D = L Lᵀ`` with ``L`` lower triangular; ``θ`` holds the
lower triangle of ``L`` row by row, with the diagonal on the log scale (log-Cholesky).
Diagonal ``D`` (terms joined by ``||``): ``θ_k = log D_kk / 2`` (log standard deviations), so
both parametrisations agree on the diagonal of ``L``.
The parameters are named ``D_jk`` (``j ≤ k``) after the position of their entry of ``L``
(``D_12`` is ``L_21``), as GLMMadaptive names them; they are not the entries of ``D``.

With several grouping factors ``D`` is block diagonal, one block per factor (:class:`Blocks`,
given where one factor gives the bool ``diagonal``): ``θ`` holds each block's parameters in
turn, named ``<factor>.D_jk``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numba
import numpy as np
import pytensor.tensor as pt

__all__ = [
    "Blocks",
    "D_derivatives",
    "n_theta",
    "free_entries",
    "has_correlations",
    "project",
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


@dataclass(frozen=True)
class Blocks:
    """A block-diagonal ``D``: one block per grouping factor.

    Parameters
    ----------
    names : tuple of str
        The factors (``"school"``, ``"school:class"``).
    sizes : tuple of int
        Each block's number of random effects.
    diagonal : tuple of bool
        Whether each block is diagonal.

    Examples
    --------
    >>> b = Blocks(("school", "school:class"), (1, 2), (False, True))
    >>> b.q, list(b.slices())
    (3, [slice(0, 1, None), slice(1, 3, None)])
    >>> n_theta(3, b), theta_names(3, b)
    (3, ['school.D_11', 'school:class.D_11', 'school:class.D_22'])
    """

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    diagonal: tuple[bool, ...]

    @property
    def q(self) -> int:
        """Size of ``D``."""
        return sum(self.sizes)

    def slices(self):
        """The rows (and columns) of ``D`` of each block."""
        edges = np.cumsum((0, *self.sizes))
        return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]

    def theta_slices(self):
        """The entries of ``θ_D`` of each block."""
        counts = [n_theta(k, d) for k, d in zip(self.sizes, self.diagonal, strict=True)]
        edges = np.cumsum((0, *counts))
        return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]

    def parts(self):
        """``(name, size, diagonal, rows of D, entries of θ_D)`` of each block."""
        return zip(
            self.names, self.sizes, self.diagonal, self.slices(), self.theta_slices(), strict=True
        )

    def __bool__(self):
        raise TypeError("a block-diagonal D is not diagonal or full: ask each block")


def _check_q(q: int, blocks: Blocks) -> None:
    if q != blocks.q:
        raise ValueError(f"the blocks of D have {blocks.q} random effects, not {q}")


def n_theta(q: int, diagonal) -> int:
    """Number of unconstrained parameters of a ``q × q`` covariance matrix (``diagonal`` a
    bool, or the :class:`Blocks` of a block-diagonal one)."""
    if isinstance(diagonal, Blocks):
        _check_q(q, diagonal)
        return sum(n_theta(k, d) for k, d in zip(diagonal.sizes, diagonal.diagonal, strict=True))
    return q if diagonal else q * (q + 1) // 2


def project(D: np.ndarray, diagonal) -> np.ndarray:
    """``D`` with the entries the structure fixes at zero set to zero (off the diagonal of a
    diagonal ``D``, off the blocks and off the diagonal of diagonal blocks).

    Examples
    --------
    >>> project(np.ones((3, 3)), Blocks(("a", "b"), (1, 2), (False, False))).astype(int)
    array([[1, 0, 0],
           [0, 1, 1],
           [0, 1, 1]])
    """
    D = np.asarray(D, dtype=float)
    if not isinstance(diagonal, Blocks):
        return np.diag(np.diag(D)) if diagonal else D
    out = np.zeros_like(D)
    for _, _, diag, rows, _ in diagonal.parts():
        out[rows, rows] = project(D[rows, rows], diag)
    return out


def free_entries(q: int, diagonal) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the entries of ``D`` on and above the diagonal that the structure
    leaves free (the variances, and the covariances of correlated effects).

    Examples
    --------
    >>> rows, cols = free_entries(3, Blocks(("a", "b"), (1, 2), (False, False)))
    >>> rows.tolist(), cols.tolist()
    ([0, 1, 1, 2], [0, 1, 2, 2])
    """
    rows, cols = np.triu_indices(q)
    free = project(np.ones((q, q)), diagonal)[rows, cols] != 0
    return rows[free], cols[free]


def has_correlations(q: int, diagonal) -> bool:
    """Whether the structure leaves a covariance free (correlated random effects).

    Examples
    --------
    >>> has_correlations(2, False), has_correlations(2, True), has_correlations(1, False)
    (True, False, False)
    """
    rows, cols = free_entries(q, diagonal)
    return bool(np.any(rows != cols))


def theta_names(q: int, diagonal) -> list[str]:
    """Names ``D_jk`` of the parameters (1-based, ``j ≤ k``), in the order of ``θ``; with
    :class:`Blocks`, ``<factor>.D_jk``.

    Examples
    --------
    >>> theta_names(2, diagonal=False)
    ['D_11', 'D_12', 'D_22']
    """
    if isinstance(diagonal, Blocks):
        _check_q(q, diagonal)
        return [
            f"{name}.{t}" for name, k, diag, _, _ in diagonal.parts() for t in theta_names(k, diag)
        ]
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


def theta_to_D(theta: np.ndarray, q: int, diagonal) -> np.ndarray:
    """``D`` from ``θ`` (numpy).

    Examples
    --------
    >>> theta_to_D(np.array([0.0, 0.5, np.log(2.0)]), 2, diagonal=False)
    array([[1.  , 0.5 ],
           [0.5 , 4.25]])
    """
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    if isinstance(diagonal, Blocks):
        if theta.shape != (n_theta(q, diagonal),):
            raise ValueError(
                f"a block-diagonal D with blocks {diagonal.sizes} has "
                f"{n_theta(q, diagonal)} parameters, got an array of shape {theta.shape}"
            )
        D = np.zeros((q, q))
        for _, k, diag, rows, entries in diagonal.parts():
            D[rows, rows] = theta_to_D(theta[entries], k, diag)
        return D
    if theta.shape != (n_theta(q, diagonal),):
        raise ValueError(
            f"a {q} x {q} {'diagonal ' if diagonal else ''}covariance matrix has "
            f"{n_theta(q, diagonal)} parameters, got an array of shape {theta.shape}"
        )
    L = theta_to_L(theta, q, bool(diagonal))
    return L @ L.T


def theta_to_D_pt(theta, q: int, diagonal):
    """``D`` from ``θ`` as a PyTensor expression (the same map as :func:`theta_to_D`)."""
    if isinstance(diagonal, Blocks):
        D = pt.zeros((q, q))
        for _, k, diag, rows, entries in diagonal.parts():
            D = pt.set_subtensor(D[rows, rows], theta_to_D_pt(theta[entries], k, diag))
        return D
    if diagonal:
        return pt.diag(pt.exp(2.0 * theta))
    rows, cols = _tril(q)
    L = pt.zeros((q, q))
    L = pt.set_subtensor(L[rows, cols], theta)
    idx = np.arange(q)
    L = pt.set_subtensor(L[idx, idx], pt.exp(L[idx, idx]))
    return L @ L.T


def D_derivatives(theta: np.ndarray, q: int, diagonal) -> tuple[np.ndarray, np.ndarray]:
    """``∂D/∂θ_t`` (``(T, q, q)``) and ``∂²D/∂θ_t∂θ_s`` (``(T, T, q, q)``) of the map
    :func:`theta_to_D`, exactly (``D = L Lᵀ``: ``∂D = ∂L Lᵀ + L ∂Lᵀ``, and ``∂²L`` is non-zero
    only for a log-scale diagonal entry, twice over itself).

    Examples
    --------
    >>> dD, d2D = D_derivatives(np.array([np.log(2.0)]), 1, diagonal=False)
    >>> float(dD[0, 0, 0]), float(d2D[0, 0, 0, 0])  # D = exp(2θ): 2D and 4D
    (8.0, 16.0)
    """
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    if isinstance(diagonal, Blocks):
        T = n_theta(q, diagonal)
        dD, d2D = np.zeros((T, q, q)), np.zeros((T, T, q, q))
        for _, k, diag, rows, entries in diagonal.parts():
            first, second = D_derivatives(theta[entries], k, diag)
            dD[entries, rows, rows] = first
            d2D[entries, entries, rows, rows] = second
        return dD, d2D
    L = theta_to_L(theta, q, bool(diagonal))
    rows, cols = (np.arange(q), np.arange(q)) if diagonal else _tril(q)
    T = len(rows)
    dL, d2L = np.zeros((T, q, q)), np.zeros((T, q, q))
    t = np.arange(T)
    on_diagonal = rows == cols
    dL[t, rows, cols] = np.where(on_diagonal, L[rows, cols], 1.0)
    d2L[t, rows, cols] = np.where(on_diagonal, L[rows, cols], 0.0)
    dD = dL @ L.T + L @ dL.transpose(0, 2, 1)
    cross = np.einsum("tab,scb->tsac", dL, dL)
    d2D = cross + cross.transpose(1, 0, 2, 3)
    d2D[t, t] += d2L @ L.T + L @ d2L.transpose(0, 2, 1)
    return dD, d2D


def D_to_theta(D: np.ndarray, diagonal) -> np.ndarray:
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
    if isinstance(diagonal, Blocks):
        _check_q(D.shape[0], diagonal)
        return np.concatenate(
            [D_to_theta(D[rows, rows], diag) for _, _, diag, rows, _ in diagonal.parts()]
        )
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
