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
    links = ("log",)

    def logp(self, y, eta, phis):
        return y * eta - pt.exp(eta) - pt.gammaln(y + 1.0)

    def check_response(self, y: pd.Series, column: str) -> np.ndarray:
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise ValueError(
                f"poisson: response column {column!r} must hold counts (non-negative integers), "
                f"got dtype {y.dtype}"
            )
        values = y.to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 0) | (values != np.floor(values))
        if bad.any():
            raise self._not_allowed("poisson", column, "non-negative integer counts", bad, values)
        return values

    def simulate(self, eta, phis, rng):
        return rng.poisson(self.mean(eta)).astype(float)
