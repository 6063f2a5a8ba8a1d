"""Binomial family: 0/1 responses (Bernoulli trials) or successes out of a number of trials.

``log p(y | η) = log C(n, y) + y log μ + (n − y) log(1 − μ)`` with ``μ = g⁻¹(η)`` (``n = 1`` for
binary data); the link's accurate ``log μ`` and ``log(1 − μ)`` keep the density finite far in
the tails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor.tensor as pt

from .base import Family

__all__ = ["binomial", "log_choose"]


def log_choose(n, k):
    """``log C(n, k)`` (PyTensor)."""
    return pt.gammaln(n + 1.0) - pt.gammaln(k + 1.0) - pt.gammaln(n - k + 1.0)


class binomial(Family):
    """Binomial family: 0/1 responses, or successes out of ``trials``.

    A binary response may be 0/1 numbers, booleans, or a column with two levels (the first
    level, in category order or sorted, is the failure, as in R). With trials (``trials=`` in
    :func:`glmm_ppl.mixed_model`, or a response ``p(successes, trials)`` or
    ``cbind(successes, failures)``) the response counts successes.

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
    trials = "optional"

    def logp(self, y, eta, phis, trials=None):
        n = 1.0 if trials is None else trials
        if self.link.name == "logit":  # the same density, with one softplus instead of two
            lp = y * eta - n * pt.softplus(eta)
        else:
            lp = y * self.link.log_inverse_pt(eta) + (n - y) * self.link.log1m_inverse_pt(eta)
        return lp if trials is None else lp + log_choose(trials, y)

    def check_response(self, y: pd.Series, column: str, trials=None) -> np.ndarray:
        if trials is not None:
            values = self._counts(y, column)
            return self._require(values, values > trials, column, "at most the number of trials")
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
            raise self._not_allowed(
                "binomial", column, "0 or 1 (or two levels; counts need trials=)", bad, values
            )
        return values

    def simulate(self, eta, phis, rng, trials=None):
        if trials is None:
            return (rng.random(np.shape(eta)) < self.mean(eta)).astype(float)
        return rng.binomial(np.asarray(trials, dtype=np.int64), self.mean(eta)).astype(float)
