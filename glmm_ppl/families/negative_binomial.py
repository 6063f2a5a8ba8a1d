r"""Negative binomial (NB2) family for overdispersed counts, log link.

With ``μ = e^η`` and size ``θ`` (variance ``μ + μ²/θ``; Poisson as ``θ → ∞``):

``log p(y | η, θ) = log Γ(y + θ) − log Γ(θ) − log y! + θ log(θ/(θ + μ)) + y log(μ/(θ + μ))``,

evaluated as ``… + y x − (y + θ) softplus(x)`` with ``x = η − log θ``, since
``log((θ + μ)/θ) = softplus(x)``: no exponential of ``η`` is formed, so it stays finite for any
``η``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor.tensor as pt

from .base import PHI_MAX, PHI_MIN, Family
from .special import log_rising

__all__ = ["negative_binomial", "nb_logpmf"]


def nb_logpmf(y, eta, size):
    """``log NB(y; μ = e^η, θ)`` (PyTensor), the NB2 log pmf shared by every family with a
    negative-binomial part; accurate for any size (the Poisson limit included) and ``η``."""
    x = eta - pt.log(size)  # log(μ/θ)
    return (
        log_rising(size, y)  # log Γ(y + θ) − log Γ(θ)
        - pt.gammaln(y + 1.0)
        + y * x
        - (y + size) * pt.softplus(x)
    )


class negative_binomial(Family):
    r"""Negative binomial family (NB2) for non-negative integer counts, log link.

    With ``μ = e^η`` and size ``θ``, ``E y = μ`` and ``Var y = μ + μ²/θ``:

    .. math::

        P(y \mid η, θ) = \frac{Γ(y + θ)}{Γ(θ)\, y!}
            \Bigl(\frac{θ}{θ + μ}\Bigr)^{θ} \Bigl(\frac{μ}{θ + μ}\Bigr)^{y}

    Parameters
    ----------
    link : {"log"}

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from glmm_ppl.families.negative_binomial import negative_binomial
    >>> negative_binomial()
    negative_binomial(link='log')
    >>> lp = negative_binomial().logp(pt.as_tensor(0.0), pt.as_tensor(0.0), [pt.as_tensor(1.0)])
    >>> round(float(lp.eval()), 6)  # θ = μ = 1: P(0) = 1/2
    -0.693147
    """

    name = "negative_binomial"
    discrete = True
    links = ("log",)
    phi_names = ("size",)

    def logp(self, y, eta, phis):
        return nb_logpmf(y, eta, phis[0])

    def check_response(self, y: pd.Series, column: str) -> np.ndarray:
        return self._counts(y, column)

    def response_variance(self, eta, phis, **data):
        """``μ + μ²/θ`` with ``μ = e^η`` and size ``θ``.

        Examples
        --------
        >>> from glmm_ppl.families import negative_binomial
        >>> negative_binomial().response_variance(np.log([1.0, 4.0]), [2.0])
        array([ 1.5, 12. ])
        """
        mu = self.mean(np.asarray(eta, dtype=float))
        return mu + mu**2 / np.asarray(phis[0], dtype=float)

    def simulate(self, eta, phis, rng):
        size = np.asarray(phis[0], dtype=float)
        mu = self.mean(np.asarray(eta, float))
        return rng.negative_binomial(size, 1.0 / (1.0 + mu / size)).astype(float)

    def initial_phis(self, y, mu):
        # E[(y − μ)² − μ] = μ²/θ, pooled over the rows
        y, mu = np.broadcast_arrays(np.asarray(y, float), np.asarray(mu, float))
        ok = np.isfinite(y) & np.isfinite(mu)
        y, mu = y[ok], np.maximum(mu[ok], 0.0)
        if not len(y):
            return np.ones(1)
        excess = np.sum((y - mu) ** 2 - mu)
        denom = np.sum(mu**2)
        size = denom / excess if excess > 0 and denom > 0 else PHI_MAX
        if not np.isfinite(size):
            size = 1.0
        return np.array([np.clip(size, PHI_MIN, PHI_MAX)])
