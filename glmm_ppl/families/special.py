"""Special functions the densities share, in forms that stay accurate where the obvious ones
cancel (PyTensor, elementwise)."""

from __future__ import annotations

import pytensor.tensor as pt

__all__ = ["log_rising", "beta_shapes", "beta_logpdf"]

_LARGE = 100.0  # Stirling's error there is 1e-17; the plain difference's ~ 4e-14


def _stirling_tail(x):
    """``log Γ(x) − [(x − ½) log x − x + ½ log 2π]`` for ``x ≥ 100`` (error below 1e-17)."""
    x2 = 1.0 / (x * x)
    return (1.0 / 12.0 - x2 * (1.0 / 360.0 - x2 / 1260.0)) / x


def log_rising(a, k, log_a=None):
    """``log Γ(a + k) − log Γ(a)``, the log rising factorial, for ``a > 0`` and ``k ≥ 0``.

    ``log Γ(a + k) − log Γ(a)`` loses every digit once ``a`` is large (a negative-binomial size
    or a beta-binomial precision running towards its Poisson or binomial limit: at ``a = e⁴⁰``
    the difference of two numbers near 10¹⁸ is taken). Beyond ``a = 100`` Stirling's series
    gives it as ``(a − ½) log1p(k/a) + k log(a + k) − k`` plus the series' tails, without the
    cancellation. With ``log_a`` given, the other branch uses ``log Γ(a) = log Γ(1 + a) − log a``,
    finite when ``a`` underflows to 0. Both branches are finite everywhere, so the derivatives
    of either are.

    Examples
    --------
    >>> import numpy as np
    >>> a, k = pt.dscalars("a", "k")
    >>> f = log_rising(a, k)
    >>> round(float(f.eval({a: 2.0, k: 3.0})), 10)  # log(2·3·4)
    3.1780538303
    >>> float(f.eval({a: np.exp(40.0), k: 3.0})) - 120.0  # 3 log a, to rounding
    0.0
    """
    large = a > _LARGE
    a_big = pt.switch(large, a, _LARGE)
    a_small = pt.switch(large, 1.0, a)
    stirling = (
        (a_big - 0.5) * pt.log1p(k / a_big)
        + k * pt.log(a_big + k)
        - k
        + _stirling_tail(a_big + k)
        - _stirling_tail(a_big)
    )
    if log_a is None:
        exact = pt.gammaln(a_small + k) - pt.gammaln(a_small)
    else:
        exact = pt.gammaln(a_small + k) - pt.gammaln(1.0 + a_small) + pt.switch(large, 0.0, log_a)
    return pt.switch(large, stirling, exact)


def beta_shapes(link, eta, phi):
    """Shapes ``a = μφ`` and ``b = (1 − μ)φ`` of a beta with mean ``μ = g⁻¹(η)`` and precision
    ``φ``, with their logarithms from the link's log ``μ`` and log ``(1 − μ)`` (accurate where
    ``μ`` is near 0 or 1): ``(log a, log b, a, b)``."""
    log_phi = pt.log(phi)
    log_a = log_phi + link.log_inverse_pt(eta)
    log_b = log_phi + link.log1m_inverse_pt(eta)
    return log_a, log_b, pt.exp(log_a), pt.exp(log_b)


def beta_logpdf(y, link, eta, phi):
    """Log density of the beta with mean ``g⁻¹(η)`` and precision ``φ`` at ``y`` in (0, 1);
    ``log Γ(a) = log Γ(1 + a) − log a`` keeps small shapes accurate."""
    log_a, log_b, a, b = beta_shapes(link, eta, phi)
    return (
        pt.gammaln(phi)
        + log_a
        - pt.gammaln(1.0 + a)
        + log_b
        - pt.gammaln(1.0 + b)
        + (a - 1.0) * pt.log(y)
        + (b - 1.0) * pt.log1p(-y)
    )
