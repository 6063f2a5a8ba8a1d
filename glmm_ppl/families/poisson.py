"""Poisson family for counts: ``log p(y | η) = y η − e^η − log y!`` (log link)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor.tensor as pt

from .base import Family

__all__ = ["poisson"]


class poisson(Family):
    """Poisson family for non-negative integer counts, log link.

    Examples
    --------
    >>> from glmm_ppl.families import poisson
    >>> poisson()
    poisson(link='log')
    """

    name = "poisson"
    discrete = True
    links = ("log",)

    def logp(self, y, eta, phis):
        return y * eta - pt.exp(eta) - pt.gammaln(y + 1.0)

    def check_response(self, y: pd.Series, column: str) -> np.ndarray:
        return self._counts(y, column)

    def response_variance(self, eta, phis, **data):
        """``μ = e^η``: the variance of a Poisson count is its mean.

        Examples
        --------
        >>> from glmm_ppl.families import poisson
        >>> poisson().response_variance(np.log([0.5, 3.0]), [])
        array([0.5, 3. ])
        """
        return self.mean(np.asarray(eta, dtype=float))

    def simulate(self, eta, phis, rng):
        return rng.poisson(self.mean(eta)).astype(float)
