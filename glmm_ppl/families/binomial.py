"""Binomial family for binary responses (Bernoulli trials).

``log p(y | η) = y log μ + (1 − y) log(1 − μ)`` with ``μ = g⁻¹(η)``; the link's accurate
``log μ`` and ``log(1 − μ)`` keep the density finite far in the tails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor.tensor as pt

from .base import Family

__all__ = ["binomial"]


class binomial(Family):
    """Binomial (Bernoulli) family for 0/1 responses.

    The response may be 0/1 numbers, booleans, or a column with two levels (the first level,
    in category order or sorted, is the failure, as in R).

    Parameters
    ----------
    link : {"logit", "probit", "cloglog"}

    Examples
    --------
    >>> from glmm_ppl.families import binomial
    >>> binomial(link="probit")
    binomial(link='probit')
    """

    name = "binomial"
    links = ("logit", "probit", "cloglog")

    def logp(self, y, eta, phis):
        if self.link.name == "logit":  # the same density, with one softplus instead of two
            return y * eta - pt.softplus(eta)
        return y * self.link.log_inverse_pt(eta) + (1.0 - y) * self.link.log1m_inverse_pt(eta)

    def check_response(self, y: pd.Series, column: str) -> np.ndarray:
        if isinstance(y.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(y):
            if pd.api.types.is_bool_dtype(y):
                return y.to_numpy(dtype=float)
            levels = (
                list(y.cat.categories)
                if isinstance(y.dtype, pd.CategoricalDtype)
                else sorted(pd.unique(y))
            )
            if len(levels) != 2:
                raise ValueError(
                    f"binomial: response column {column!r} must have two levels, found "
                    f"{len(levels)}: {levels[:5]}"
                )
            return (y == levels[1]).to_numpy(dtype=float)
        values = y.to_numpy(dtype=float)
        bad = (values != 0) & (values != 1)
        if bad.any():
            raise self._not_allowed("binomial", column, "0 or 1 (or two levels)", bad, values)
        return values

    def simulate(self, eta, phis, rng):
        return (rng.random(np.shape(eta)) < self.mean(eta)).astype(float)
