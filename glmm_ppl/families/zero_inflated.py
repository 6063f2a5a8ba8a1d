"""Zero-inflated families: a point mass at zero mixed with a count distribution.

With ``π = logistic(η_zi)`` the probability of the zero part and ``f`` the main distribution,

``P(y = 0) = π + (1 − π) f(0)``,   ``P(y > 0) = (1 − π) f(y)``.

The zero row is evaluated as ``logaddexp(log π, log(1 − π) + log f(0))`` with
``log π = −softplus(−η_zi)`` and ``log(1 − π) = −softplus(η_zi)``, so both tails stay accurate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor.tensor as pt
from scipy import special

from ._zero_part import (
    draw_shape,
    log_main_part,
    log_zero_part,
    logaddexp,
    nb_log_p0,
    poisson_logpmf,
    size_moments,
    zero_draws,
)
from .base import Family
from .binomial import log_choose, success_failure
from .negative_binomial import nb_logpmf

__all__ = ["zi_poisson", "zi_negative_binomial", "zi_binomial"]


# ---- families ---------------------------------------------------------------------------------
class zi_poisson(Family):
    r"""Zero-inflated Poisson family for counts, log link.

    With ``μ = exp(η)`` and ``π = logistic(η_zi)``:

    .. math::

        P(y = 0) = π + (1 − π) e^{−μ}, \qquad P(y) = (1 − π) \frac{μ^y e^{−μ}}{y!}
        \quad (y > 0).

    Parameters
    ----------
    link : {"log"}

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from glmm_ppl.families.zero_inflated import zi_poisson
    >>> y, eta, eta_zi = pt.dscalars("y", "eta", "eta_zi")
    >>> lp = zi_poisson().logp(y, eta, [], eta_zi=eta_zi)
    >>> round(float(lp.eval({y: 0.0, eta: 0.0, eta_zi: 0.0})), 6)  # log(0.5 + 0.5 e^{-1})
    -0.379885
    """

    name = "zi_poisson"
    discrete = True
    links = ("log",)
    zero_part = True

    def logp(self, y, eta, phis, eta_zi):
        zero = logaddexp(log_zero_part(eta_zi), log_main_part(eta_zi) - pt.exp(eta))
        positive = log_main_part(eta_zi) + poisson_logpmf(y, eta)
        return pt.switch(y > 0, positive, zero)

    def check_response(self, y: pd.Series, column: str) -> np.ndarray:
        return self._counts(y, column)

    def response_mean(self, eta, phis, eta_zi, **data):
        return special.expit(-np.asarray(eta_zi)) * np.exp(np.asarray(eta, dtype=float))

    def response_variance(self, eta, phis, eta_zi, **data):
        """``E[y²] − E[y]² = (1 − π) μ (1 + πμ)`` with ``μ = e^η`` and ``π = logistic(η_zi)``.

        Examples
        --------
        >>> from glmm_ppl.families import zi_poisson
        >>> float(zi_poisson().response_variance(np.log(2.0), [], eta_zi=0.0))  # ½ · 2 · 2
        2.0
        """
        mu = np.exp(np.asarray(eta, dtype=float))
        pi = special.expit(np.asarray(eta_zi, dtype=float))
        return special.expit(-np.asarray(eta_zi, dtype=float)) * mu * (1.0 + pi * mu)

    def simulate(self, eta, phis, rng, eta_zi):
        shape = draw_shape(eta, eta_zi)
        counts = rng.poisson(np.broadcast_to(np.exp(eta), shape)).astype(float)
        return np.where(zero_draws(eta_zi, shape, rng), 0.0, counts)


class zi_negative_binomial(Family):
    r"""Zero-inflated negative binomial family for counts, log link.

    With ``μ = exp(η)``, size ``θ`` (variance ``μ + μ²/θ``) and ``π = logistic(η_zi)``:

    .. math::

        \mathrm{NB}(y) = \frac{Γ(y + θ)}{Γ(θ)\, y!}
            \Bigl(\frac{θ}{θ + μ}\Bigr)^{θ} \Bigl(\frac{μ}{θ + μ}\Bigr)^{y},

        P(y = 0) = π + (1 − π) \mathrm{NB}(0), \qquad P(y) = (1 − π) \mathrm{NB}(y)
        \quad (y > 0).

    Parameters
    ----------
    link : {"log"}

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from glmm_ppl.families.zero_inflated import zi_negative_binomial
    >>> fam = zi_negative_binomial()
    >>> fam.phi_names
    ('size',)
    >>> y, eta, eta_zi, size = pt.dscalars("y", "eta", "eta_zi", "size")
    >>> lp = fam.logp(y, eta, [size], eta_zi=eta_zi)
    >>> round(float(lp.eval({y: 0.0, eta: 0.0, eta_zi: 0.0, size: 1.0})), 6)  # log(0.5 + 0.5²)
    -0.287682
    """

    name = "zi_negative_binomial"
    discrete = True
    links = ("log",)
    phi_names = ("size",)
    zero_part = True

    def logp(self, y, eta, phis, eta_zi):
        size = phis[0]
        zero = logaddexp(log_zero_part(eta_zi), log_main_part(eta_zi) + nb_log_p0(eta, size))
        positive = log_main_part(eta_zi) + nb_logpmf(y, eta, size)
        return pt.switch(y > 0, positive, zero)

    def check_response(self, y: pd.Series, column: str) -> np.ndarray:
        return self._counts(y, column)

    def initial_phis(self, y, mu):
        return size_moments(y)

    def response_mean(self, eta, phis, eta_zi, **data):
        return special.expit(-np.asarray(eta_zi)) * np.exp(np.asarray(eta, dtype=float))

    def response_variance(self, eta, phis, eta_zi, **data):
        """``E[y²] − E[y]² = (1 − π) μ (1 + μ/θ + πμ)`` with ``μ = e^η``, size ``θ`` and
        ``π = logistic(η_zi)``.

        Examples
        --------
        >>> from glmm_ppl.families import zi_negative_binomial
        >>> fam = zi_negative_binomial()
        >>> float(fam.response_variance(np.log(2.0), [4.0], eta_zi=0.0))  # ½ · 2 · (1 + ½ + 1)
        2.5
        """
        mu = np.exp(np.asarray(eta, dtype=float))
        pi = special.expit(np.asarray(eta_zi, dtype=float))
        keep = special.expit(-np.asarray(eta_zi, dtype=float))
        return keep * mu * (1.0 + mu / np.asarray(phis[0], dtype=float) + pi * mu)

    def simulate(self, eta, phis, rng, eta_zi):
        shape = draw_shape(eta, eta_zi)
        size = np.asarray(phis[0], dtype=float)
        mu = np.broadcast_to(np.exp(eta), shape)
        counts = rng.negative_binomial(size, size / (size + mu)).astype(float)
        return np.where(zero_draws(eta_zi, shape, rng), 0.0, counts)


class zi_binomial(Family):
    r"""Zero-inflated binomial family: 0/1 responses, or successes out of ``trials``.

    With ``p = g⁻¹(η)``, ``n = 1`` (0/1 responses) or the number of trials, and
    ``π = logistic(η_zi)``:

    .. math::

        P(y = 0) = π + (1 − π)(1 − p)^n, \qquad
        P(y) = (1 − π) \binom{n}{y} p^y (1 − p)^{n − y} \quad (y > 0).

    Parameters
    ----------
    link : {"logit", "probit", "cloglog"}

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from glmm_ppl.families.zero_inflated import zi_binomial
    >>> fam = zi_binomial(link="probit")
    >>> fam
    zi_binomial(link='probit')
    >>> y, eta, eta_zi, n = pt.dscalars("y", "eta", "eta_zi", "n")
    >>> lp = fam.logp(y, eta, [], eta_zi=eta_zi, trials=n)
    >>> round(float(lp.eval({y: 1.0, eta: 0.0, eta_zi: 0.0, n: 2.0})), 6)  # log(0.5 * 2 * 0.25)
    -1.386294
    """

    name = "zi_binomial"
    discrete = True
    links = ("logit", "probit", "cloglog")
    trials = "optional"
    zero_part = True

    def logp(self, y, eta, phis, eta_zi, trials=None):
        n = 1.0 if trials is None else trials
        log_p = self.link.log_inverse_pt(eta)
        log_q = self.link.log1m_inverse_pt(eta)
        zero = logaddexp(log_zero_part(eta_zi), log_main_part(eta_zi) + n * log_q)
        positive = log_main_part(eta_zi) + y * log_p + (n - y) * log_q
        if trials is not None:
            positive = positive + log_choose(trials, y)
        return pt.switch(y > 0, positive, zero)

    def check_response(self, y: pd.Series, column: str, trials=None) -> np.ndarray:
        if trials is not None:
            values = self._counts(y, column)
            return self._require(values, values > trials, column, "at most the number of trials")
        if pd.api.types.is_bool_dtype(y):
            return y.to_numpy(dtype=float)
        values = self._numeric(y, column)
        return self._require(
            values, (values != 0) & (values != 1), column, "0 or 1 (counts need trials=)"
        )

    def response_mean(self, eta, phis, eta_zi, trials=None):
        n = 1.0 if trials is None else trials
        return special.expit(-np.asarray(eta_zi)) * n * self.mean(np.asarray(eta, dtype=float))

    def response_variance(self, eta, phis, eta_zi, trials=None):
        """``E[y²] − E[y]² = (1 − π)(n p (1 − p) + π n² p²)`` with ``p = g⁻¹(η)``, ``n`` the
        trials (1 for 0/1 responses) and ``π = logistic(η_zi)``.

        Examples
        --------
        >>> from glmm_ppl.families import zi_binomial
        >>> float(zi_binomial().response_variance(0.0, [], eta_zi=0.0, trials=4.0))
        1.5
        """
        n = 1.0 if trials is None else np.asarray(trials, dtype=float)
        p, q = success_failure(self.link, eta)
        pi = special.expit(np.asarray(eta_zi, dtype=float))
        keep = special.expit(-np.asarray(eta_zi, dtype=float))
        return keep * n * p * (q + pi * n * p)

    def simulate(self, eta, phis, rng, eta_zi, trials=None):
        n = 1 if trials is None else np.asarray(trials, dtype=np.int64)
        shape = draw_shape(eta, eta_zi, n)
        counts = rng.binomial(n, np.broadcast_to(self.mean(eta), shape)).astype(float)
        return np.where(zero_draws(eta_zi, shape, rng), 0.0, counts)
