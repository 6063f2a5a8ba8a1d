"""Binomial family: 0/1 responses (Bernoulli trials) or successes out of a number of trials.

``log p(y | η) = log C(n, y) + y log μ + (n − y) log(1 − μ)`` with ``μ = g⁻¹(η)`` (``n = 1`` for
binary data); the link's accurate ``log μ`` and ``log(1 − μ)`` keep the density finite far in
the tails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor.tensor as pt
from scipy import special

from .base import Family

__all__ = ["binomial", "log_choose"]


def log_choose(n, k):
    """``log C(n, k)`` (PyTensor)."""
    return pt.gammaln(n + 1.0) - pt.gammaln(k + 1.0) - pt.gammaln(n - k + 1.0)


def success_failure(link, eta) -> tuple[np.ndarray, np.ndarray]:
    """``(p, 1 − p)`` with ``p = g⁻¹(η)`` (numpy); ``1 − p`` is computed without cancellation
    when ``p`` is close to 1."""
    eta = np.asarray(eta, dtype=float)
    if link.name == "logit":
        return special.expit(eta), special.expit(-eta)
    if link.name == "probit":
        return special.ndtr(eta), special.ndtr(-eta)
    if link.name == "cloglog":
        return -np.expm1(-np.exp(eta)), np.exp(-np.exp(eta))
    p = link.inverse(eta)
    return p, 1.0 - p


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
    discrete = True
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

    def response_variance(self, eta, phis, **data):
        """``n p (1 − p)`` with ``p = g⁻¹(η)`` and ``n`` the trials (1 for 0/1 responses).

        Examples
        --------
        >>> from glmm_ppl.families import binomial
        >>> binomial().response_variance(np.array([0.0, 50.0]), [])
        array([2.50000000e-01, 1.92874985e-22])
        """
        p, q = success_failure(self.link, eta)
        n = data["trials"] if self.with_trials and "trials" in data else 1.0
        return n * p * q

    def simulate(self, eta, phis, rng, trials=None):
        if trials is None:
            return (rng.random(np.shape(eta)) < self.mean(eta)).astype(float)
        return rng.binomial(np.asarray(trials, dtype=np.int64), self.mean(eta)).astype(float)
