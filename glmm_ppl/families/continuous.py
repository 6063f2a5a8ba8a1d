r"""Families for continuous responses: Gaussian, Student's t, gamma, beta and censored normal.

With ``μ = g⁻¹(η)`` and the extra parameter ``φ`` (positive, fitted on the log scale):

- ``gaussian``: ``y ~ N(η, σ²)``;
- ``students_t``: ``y = η + σ t_ν`` with ``ν`` fixed;
- ``gamma``: ``y ~ Gamma(shape k, scale μ/k)``, ``μ = e^η``, so ``Var y = μ²/k``;
- ``beta``: ``y ~ Beta(μφ, (1 − μ)φ)``, ``μ = logistic(η)``, so ``Var y = μ(1 − μ)/(1 + φ)``;
- ``censored_normal``: ``N(η, σ²)`` with left (``log Φ(z)``) or right (``log(1 − Φ(z))``)
  censored rows, ``z = (y − η)/σ``.

The beta density uses ``log Γ(a) = log Γ(1 + a) − log a`` with ``log a`` from the link's
accurate ``log μ``, so it stays finite when ``μ`` is within rounding of 0 or 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor.tensor as pt
from scipy import special, stats

from .base import PHI_MAX, PHI_MIN, Family
from .links import log_ndtr_pt
from .special import beta_logpdf

__all__ = ["gaussian", "students_t", "gamma", "beta", "censored_normal"]

_SCALE_MIN, _SCALE_MAX = 1e-30, 1e30  # sigma is in the response's units
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def _positive(value, lo: float = PHI_MIN, hi: float = PHI_MAX, default: float = 1.0):
    """``value`` clipped to ``[lo, hi]`` as a one-element array; ``default`` when it is not a
    positive finite number."""
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        value = default
    return np.array([min(max(value, lo), hi)])


def _finite(y, mu):
    y, mu = np.broadcast_arrays(np.asarray(y, float), np.asarray(mu, float))
    ok = np.isfinite(y) & np.isfinite(mu)
    return y[ok], mu[ok]


def _rms(r) -> float:
    return float(np.sqrt(np.mean(np.square(r)))) if len(r) else np.nan


def _normal_logpdf(y, eta, sigma):
    z = (y - eta) / sigma
    return -0.5 * z**2 - pt.log(sigma) - _LOG_SQRT_2PI


class gaussian(Family):
    r"""Gaussian family, identity link: ``y ~ N(η, σ²)``.

    .. math::

        \log p(y \mid η, σ) = -\frac{(y - η)^2}{2σ^2} - \log σ - \tfrac12 \log 2π

    Parameters
    ----------
    link : {"identity"}

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from glmm_ppl.families.continuous import gaussian
    >>> gaussian()
    gaussian(link='identity')
    >>> lp = gaussian().logp(pt.as_tensor(1.0), pt.as_tensor(0.0), [pt.as_tensor(1.0)])
    >>> round(float(lp.eval()), 6)  # log N(1; 0, 1)
    -1.418939
    """

    name = "gaussian"
    links = ("identity",)
    phi_names = ("sigma",)

    def logp(self, y, eta, phis):
        return _normal_logpdf(y, eta, phis[0])

    def response_variance(self, eta, phis, **data):
        """``σ²`` in the shape of ``η``.

        Examples
        --------
        >>> from glmm_ppl.families import gaussian
        >>> gaussian().response_variance(np.zeros(2), [3.0])
        array([9., 9.])
        """
        return np.asarray(np.ones(np.shape(eta)) * np.asarray(phis[0], dtype=float) ** 2)

    def simulate(self, eta, phis, rng):
        sigma = np.asarray(phis[0], dtype=float)
        return np.asarray(eta, float) + sigma * rng.standard_normal(np.shape(eta))

    def initial_phis(self, y, mu):
        y, mu = _finite(y, mu)
        return _positive(_rms(y - mu), _SCALE_MIN, _SCALE_MAX)


class students_t(Family):
    r"""Student's t family with fixed degrees of freedom, identity link.

    ``y = η + σ t_ν``:

    .. math::

        \log p(y \mid η, σ) = \log Γ\bigl(\tfrac{ν + 1}{2}\bigr) - \log Γ\bigl(\tfrac{ν}{2}\bigr)
            - \tfrac12 \log(νπ) - \log σ - \frac{ν + 1}{2} \log\Bigl(1 + \frac{z^2}{ν}\Bigr),
        \qquad z = \frac{y - η}{σ}

    Parameters
    ----------
    df : float, default 3
        The degrees of freedom ``ν`` (positive, finite), fixed.
    link : {"identity"}

    Raises
    ------
    ValueError
        If ``df`` is not a positive finite number.

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from glmm_ppl.families.continuous import students_t
    >>> students_t(df=4)
    students_t(df=4.0, link='identity')
    >>> lp = students_t(df=1).logp(pt.as_tensor(1.0), pt.as_tensor(0.0), [pt.as_tensor(1.0)])
    >>> round(float(lp.eval()), 6)  # Cauchy: -log(2π)
    -1.837877
    """

    name = "students_t"
    links = ("identity",)
    phi_names = ("sigma",)

    def __init__(self, df: float = 3.0, link: str = "identity"):
        try:
            value = float(df)
        except (TypeError, ValueError):
            value = np.nan
        if isinstance(df, bool) or not np.isfinite(value) or value <= 0:
            raise ValueError(f"students_t: df must be a positive finite number, got {df!r}")
        super().__init__(link)
        self.df = value

    def __repr__(self) -> str:
        return f"{self.name}(df={self.df!r}, link={self.link.name!r})"

    def logp(self, y, eta, phis):
        df = self.df
        const = special.gammaln((df + 1.0) / 2.0) - special.gammaln(df / 2.0)
        const -= 0.5 * np.log(df * np.pi)
        sigma = phis[0]
        z = (y - eta) / sigma
        return const - pt.log(sigma) - 0.5 * (df + 1.0) * pt.log1p(z**2 / df)

    def response_variance(self, eta, phis, **data):
        """``σ² ν/(ν − 2)`` for ``ν > 2``; infinite for ``ν ≤ 2``.

        Examples
        --------
        >>> from glmm_ppl.families import students_t
        >>> students_t(df=4).response_variance(np.zeros(2), [1.5])
        array([4.5, 4.5])
        >>> students_t(df=2).response_variance(0.0, [1.0])
        array(inf)
        """
        df = self.df
        value = np.asarray(phis[0], dtype=float) ** 2 * df / (df - 2.0) if df > 2.0 else np.inf
        return np.asarray(np.ones(np.shape(eta)) * value)

    def simulate(self, eta, phis, rng):
        sigma = np.asarray(phis[0], dtype=float)
        return np.asarray(eta, float) + sigma * rng.standard_t(self.df, np.shape(eta))

    def initial_phis(self, y, mu):
        # median |y − μ| = σ · (the upper quartile of t_ν), whatever ν
        y, mu = _finite(y, mu)
        r = np.abs(y - mu)
        sigma = np.median(r) / stats.t.ppf(0.75, self.df) if len(r) else np.nan
        if not np.isfinite(sigma) or sigma <= 0:
            sigma = _rms(r)
        return _positive(sigma, _SCALE_MIN, _SCALE_MAX)


class gamma(Family):
    r"""Gamma family for positive responses, log link: mean ``μ = e^η``, shape ``k``.

    ``y ~ Gamma(k, scale μ/k)``, so ``E y = μ`` and ``Var y = μ²/k``:

    .. math::

        \log p(y \mid η, k) = k \log k - \log Γ(k) - kη + (k - 1) \log y - k y e^{-η}

    Parameters
    ----------
    link : {"log"}

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from glmm_ppl.families.continuous import gamma
    >>> gamma()
    gamma(link='log')
    >>> lp = gamma().logp(pt.as_tensor(2.0), pt.as_tensor(0.0), [pt.as_tensor(1.0)])
    >>> round(float(lp.eval()), 6)  # exponential with mean 1 at y = 2
    -2.0
    """

    name = "gamma"
    links = ("log",)
    phi_names = ("shape",)

    def logp(self, y, eta, phis):
        k = phis[0]
        return (
            k * pt.log(k) - pt.gammaln(k) - k * eta + (k - 1.0) * pt.log(y) - k * y * pt.exp(-eta)
        )

    def check_response(self, y: pd.Series, column: str) -> np.ndarray:
        values = self._numeric(y, column)
        return self._require(values, ~(values > 0), column, "positive numbers")

    def response_variance(self, eta, phis, **data):
        """``μ²/k`` with ``μ = e^η`` and shape ``k``.

        Examples
        --------
        >>> from glmm_ppl.families import gamma
        >>> gamma().response_variance(np.log([1.0, 2.0]), [4.0])
        array([0.25, 1.  ])
        """
        mu = self.mean(np.asarray(eta, dtype=float))
        return mu**2 / np.asarray(phis[0], dtype=float)

    def simulate(self, eta, phis, rng):
        k = np.asarray(phis[0], dtype=float)
        return rng.gamma(k, self.mean(np.asarray(eta, float)) / k)

    def initial_phis(self, y, mu):
        # E((y − μ)/μ)² = 1/k
        y, mu = _finite(y, mu)
        if not len(y):
            return np.ones(1)
        mu = np.maximum(mu, 1e-300)
        cv2 = np.mean(((y - mu) / mu) ** 2)
        return _positive(1.0 / cv2 if cv2 > 0 else PHI_MAX)


class beta(Family):
    r"""Beta family for responses in ``(0, 1)``, logit link: mean ``μ``, precision ``φ``.

    ``y ~ Beta(a, b)`` with ``a = μφ`` and ``b = (1 − μ)φ``, so ``Var y = μ(1 − μ)/(1 + φ)``:

    .. math::

        \log p(y \mid η, φ) = \log Γ(φ) - \log Γ(a) - \log Γ(b) + (a - 1) \log y
            + (b - 1) \log(1 - y)

    ``log Γ(a)`` is evaluated as ``log Γ(1 + a) − log a`` with ``log a = log φ + log μ`` (and
    likewise for ``b``), which stays finite when ``a`` or ``b`` underflow.

    Parameters
    ----------
    link : {"logit"}

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from glmm_ppl.families.continuous import beta
    >>> beta()
    beta(link='logit')
    >>> lp = beta().logp(pt.as_tensor(0.3), pt.as_tensor(0.0), [pt.as_tensor(2.0)])
    >>> round(float(lp.eval()), 6)  # Beta(1, 1) is uniform
    0.0
    """

    name = "beta"
    links = ("logit",)
    phi_names = ("precision",)

    def logp(self, y, eta, phis):
        return beta_logpdf(y, self.link, eta, phis[0])

    def check_response(self, y: pd.Series, column: str) -> np.ndarray:
        values = self._numeric(y, column)
        return self._require(
            values, ~((values > 0) & (values < 1)), column, "numbers strictly between 0 and 1"
        )

    def response_variance(self, eta, phis, **data):
        """``μ(1 − μ)/(1 + φ)`` with ``μ = logistic(η)`` and precision ``φ``.

        Examples
        --------
        >>> from glmm_ppl.families import beta
        >>> float(beta().response_variance(0.0, [2.0]))  # Beta(1, 1): 1/12
        0.08333333333333333
        """
        eta = np.asarray(eta, dtype=float)
        phi = np.asarray(phis[0], dtype=float)
        return special.expit(eta) * special.expit(-eta) / (1.0 + phi)

    def simulate(self, eta, phis, rng):
        eta = np.asarray(eta, float)
        phi = np.asarray(phis[0], dtype=float)
        tiny = np.finfo(float).tiny
        a = np.maximum(phi * self.link.inverse(eta), tiny)
        b = np.maximum(phi * self.link.inverse(-eta), tiny)  # 1 − μ for the logit link
        return rng.beta(a, b)

    def initial_phis(self, y, mu):
        # E (y − μ)²/(μ(1 − μ)) = 1/(1 + φ)
        y, mu = _finite(y, mu)
        if not len(y):
            return np.ones(1)
        mu = np.clip(mu, 1e-6, 1.0 - 1e-6)
        ratio = np.mean((y - mu) ** 2 / (mu * (1.0 - mu)))
        return _positive(1.0 / ratio - 1.0 if ratio > 0 else PHI_MAX)


class censored_normal(Family):
    r"""Normal family with left- or right-censored rows, identity link.

    The ``censoring`` column says for each row whether ``y`` is observed (0), a left-censored
    value (1: the true value is at most ``y``) or a right-censored value (2: at least ``y``).
    With ``z = (y − η)/σ``:

    .. math::

        \log p(y \mid η, σ) =
        \begin{cases}
            -z^2/2 - \log σ - \tfrac12 \log 2π & \text{observed} \\
            \log Φ(z) & \text{left censored} \\
            \log(1 - Φ(z)) = \log Φ(-z) & \text{right censored}
        \end{cases}

    ``log Φ`` uses the scaled complementary error function in the lower tail, so the density
    and its derivatives stay finite far from the censoring limit.

    Parameters
    ----------
    link : {"identity"}

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from glmm_ppl.families.continuous import censored_normal
    >>> fam = censored_normal()
    >>> fam, fam.aux_names
    (censored_normal(link='identity'), ('censoring',))
    >>> lp = fam.logp(pt.as_tensor(0.0), pt.as_tensor(0.0), [pt.as_tensor(1.0)],
    ...               censoring=pt.as_tensor(1.0))
    >>> round(float(lp.eval()), 6)  # log Φ(0) = log 1/2
    -0.693147
    """

    name = "censored_normal"
    links = ("identity",)
    phi_names = ("sigma",)
    data_names = ("censoring",)

    def logp(self, y, eta, phis, censoring):
        sigma = phis[0]
        z = (y - eta) / sigma
        observed = -0.5 * z**2 - pt.log(sigma) - _LOG_SQRT_2PI
        left = log_ndtr_pt(z)
        right = log_ndtr_pt(-z)
        return pt.switch(
            pt.eq(censoring, 1.0), left, pt.switch(pt.eq(censoring, 2.0), right, observed)
        )

    def check_data(self, name: str, values: np.ndarray, column: str) -> None:
        bad = ~np.isin(values, (0.0, 1.0, 2.0))
        if name == "censoring" and bad.any():
            raise ValueError(
                f"censoring column {column!r} must be 0 (observed), 1 (left censored) or 2 "
                f"(right censored); {int(bad.sum())} row(s) are not (for example "
                f"{values[bad][0]:g})"
            )

    def response_variance(self, eta, phis, **data):
        """``σ²``, the variance of the uncensored response, in the shape of ``η``.

        ``censoring`` is accepted for a uniform call and ignored.

        Examples
        --------
        >>> from glmm_ppl.families import censored_normal
        >>> censored_normal().response_variance(np.zeros(2), [2.0], censoring=np.ones(2))
        array([4., 4.])
        """
        return np.asarray(np.ones(np.shape(eta)) * np.asarray(phis[0], dtype=float) ** 2)

    def simulate(self, eta, phis, rng, censoring=None):
        """Draws of the uncensored normal response ``N(η, σ²)``.

        The censoring limits of new data are not known, so no censoring is applied;
        ``censoring`` is accepted for a uniform call and ignored.
        """
        sigma = np.asarray(phis[0], dtype=float)
        return np.asarray(eta, float) + sigma * rng.standard_normal(np.shape(eta))

    def initial_phis(self, y, mu):
        y, mu = _finite(y, mu)
        return _positive(_rms(y - mu), _SCALE_MIN, _SCALE_MAX)
