r"""Beta-binomial family: successes out of ``trials`` with a beta-distributed probability.

With ``p = g⁻¹(η)``, precision ``φ``, ``a = pφ`` and ``b = (1 − p)φ``:

``log p(y | η, φ) = log C(n, y) + log B(y + a, n − y + b) − log B(a, b)``,

so ``E y = np``, ``Var y = np(1 − p)(n + φ)/(1 + φ)``. The beta functions are evaluated as
rising factorials ``log Γ(y + a) − log Γ(a) = log Γ(y + a) − log Γ(1 + a) + log a`` with
``log a = log φ + log p`` from the link's accurate ``log p`` (and likewise for ``b``), so the
density and its derivatives stay finite when ``p`` is within rounding of 0 or 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor.tensor as pt

from .base import PHI_MAX, PHI_MIN, Family
from .binomial import log_choose, success_failure
from .special import beta_shapes, log_rising

__all__ = ["beta_binomial"]


def _log_rising(k, a, log_a):
    """``log Γ(k + a) − log Γ(a)`` for counts ``k ≥ 0`` (PyTensor); 0 at ``k = 0``.

    Written with ``log Γ(a) = log Γ(1 + a) − log a`` so that it is finite when ``a``
    underflows; ``k`` is replaced by 1 in the branch not taken so that branch stays finite.
    """
    positive = k > 0
    k1 = pt.switch(positive, k, 1.0)
    return pt.switch(positive, log_rising(a, k1, log_a), 0.0)


class beta_binomial(Family):
    r"""Beta-binomial family: ``y`` successes out of ``trials`` ``n``, overdispersed.

    ``y | π ~ Binomial(n, π)`` with ``π ~ Beta(a, b)``, ``a = pφ``, ``b = (1 − p)φ`` and
    ``p = g⁻¹(η)``:

    .. math::

        P(y \mid η, φ) = \binom{n}{y} \frac{B(y + a, n - y + b)}{B(a, b)}

    so ``E y = np`` and ``Var y = np(1 − p)(n + φ)/(1 + φ)``. The response needs a ``trials``
    column.

    Parameters
    ----------
    link : {"logit", "probit", "cloglog"}

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from glmm_ppl.families.beta_binomial import beta_binomial
    >>> fam = beta_binomial(link="probit")
    >>> fam, fam.aux_names
    (beta_binomial(link='probit'), ('trials',))
    >>> lp = beta_binomial().logp(pt.as_tensor(1.0), pt.as_tensor(0.0), [pt.as_tensor(2.0)],
    ...                           trials=pt.as_tensor(3.0))
    >>> round(float(lp.eval()), 6)  # a = b = 1: uniform on 0..3
    -1.386294
    """

    name = "beta_binomial"
    discrete = True
    links = ("logit", "probit", "cloglog")
    phi_names = ("precision",)
    trials = "required"

    def logp(self, y, eta, phis, trials):
        phi = phis[0]
        log_a, log_b, a, b = beta_shapes(self.link, eta, phi)
        return (
            log_choose(trials, y)
            + _log_rising(y, a, log_a)
            + _log_rising(trials - y, b, log_b)
            - log_rising(phi, trials)
        )

    def check_response(self, y: pd.Series, column: str, trials) -> np.ndarray:
        values = self._counts(y, column)
        return self._require(values, values > trials, column, "at most the number of trials")

    def response_variance(self, eta, phis, trials, **data):
        """``n p (1 − p) (n + φ)/(1 + φ)`` with ``p = g⁻¹(η)``, ``n`` the trials and precision
        ``φ``.

        Examples
        --------
        >>> from glmm_ppl.families import beta_binomial
        >>> float(beta_binomial().response_variance(0.0, [2.0], trials=3.0))  # uniform on 0..3
        1.25
        """
        phi = np.asarray(phis[0], dtype=float)
        p, q = success_failure(self.link, eta)
        n = np.asarray(trials, dtype=float)
        return n * p * q * (n + phi) / (1.0 + phi)

    def simulate(self, eta, phis, rng, trials):
        phi = np.asarray(phis[0], dtype=float)
        p = self.mean(np.asarray(eta, float))
        tiny = np.finfo(float).tiny
        prob = rng.beta(np.maximum(p * phi, tiny), np.maximum((1.0 - p) * phi, tiny))
        return rng.binomial(np.asarray(trials, dtype=np.int64), prob).astype(float)

    def initial_phis(self, y, mu, trials=None):
        """Method-of-moments precision given the fitted probability ``mu = p``.

        ``E (y − np)²/(np(1 − p)) = 1 + (n − 1)ρ`` with ``ρ = 1/(1 + φ)``, pooled over the rows;
        without ``trials`` (or with only single trials, where ``φ`` is not identified) the
        starting value is 1.
        """
        if trials is None:
            return np.ones(1)
        y, p, n = np.broadcast_arrays(
            np.asarray(y, float), np.asarray(mu, float), np.asarray(trials, float)
        )
        ok = np.isfinite(y) & np.isfinite(p) & np.isfinite(n) & (n > 1)
        if not ok.any():
            return np.ones(1)
        y, p, n = y[ok], np.clip(p[ok], 1e-6, 1.0 - 1e-6), n[ok]
        rho = np.sum((y - n * p) ** 2 / (n * p * (1.0 - p)) - 1.0) / np.sum(n - 1.0)
        precision = 1.0 / rho - 1.0 if rho > 0 else PHI_MAX
        if not np.isfinite(precision) or precision <= 0:
            precision = PHI_MIN
        return np.array([np.clip(precision, PHI_MIN, PHI_MAX)])
