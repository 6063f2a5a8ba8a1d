"""Gauss–Hermite rules normalised to the standard normal, and their product grids.

Notation: a rule with nodes ``z_k`` and weights ``w_k`` integrates against N(0, 1):
``E[f(Z)] ≈ Σ_k w_k f(z_k)`` with ``Σ_k w_k = 1``. A product rule in ``q`` dimensions
has ``n**q`` nodes ``z`` (rows) and weights equal to the products of the 1-D weights.
Rules are computed once and cached.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.special import roots_hermitenorm

__all__ = ["gauss_hermite", "product_rule"]


@cache
def gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the ``n``-point Gauss–Hermite rule for N(0, 1).

    Parameters
    ----------
    n : int
        Number of points, at least 1.

    Returns
    -------
    nodes, weights : ndarray
        ``weights`` sum to one; the rule is exact for polynomials of degree ``2n - 1``. Nodes
        whose weight underflows to 0 (beyond about 38 standard deviations, from some 400
        points on) are left out.

    Notes
    -----
    SciPy computes the rule stably at any size (Golub–Welsch on the symmetric tridiagonal
    Jacobi matrix, an asymptotic expansion for large ``n``).

    Examples
    --------
    >>> z, w = gauss_hermite(5)
    >>> round(float(w @ z**4), 12)  # E[Z^4] = 3
    3.0
    >>> z, w = gauss_hermite(1000)
    >>> round(float(w.sum()), 12), round(float(w @ z**2), 12)
    (1.0, 1.0)
    """
    if int(n) != n or n < 1:
        raise ValueError(f"the number of quadrature points must be a positive integer, got {n!r}")
    z, w = roots_hermitenorm(int(n))
    keep = w > 0.0
    z, w = z[keep], w[keep] / np.sqrt(2.0 * np.pi)
    z.setflags(write=False)
    w.setflags(write=False)
    return z, w


@cache
def product_rule(n: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Product Gauss–Hermite rule for the ``q``-variate standard normal.

    Returns
    -------
    nodes : ndarray, shape (m**q, q)
        ``m = n`` but for rules of some 400 points or more, whose outermost nodes carry
        weights that underflow (:func:`gauss_hermite`).
    log_weights : ndarray, shape (m**q,)
        Logarithms of the product weights (they sum to one on the natural scale).

    Examples
    --------
    >>> z, lw = product_rule(3, 2)
    >>> z.shape, round(float(np.exp(lw).sum()), 12)
    ((9, 2), 1.0)
    """
    z1, w1 = gauss_hermite(n)
    grids = np.meshgrid(*([z1] * q), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=1)
    lw_grids = np.meshgrid(*([np.log(w1)] * q), indexing="ij")
    log_weights = np.sum([g.ravel() for g in lw_grids], axis=0)
    nodes.setflags(write=False)
    log_weights.setflags(write=False)
    return nodes, log_weights
