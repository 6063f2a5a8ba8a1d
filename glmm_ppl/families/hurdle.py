"""Hurdle families: zeros come from the zero part only, positive values from a main distribution
truncated (or restricted) to ``y > 0``.

With ``π = logistic(η_zi)`` and ``f`` the main distribution,

``P(y = 0) = π``,   ``p(y) = (1 − π) f(y) / (1 − f(0))`` for ``y > 0``

(``f(0) = 0`` for the continuous lognormal and beta parts). ``log(1 − f(0))`` is evaluated by a
series where ``f(0)`` is close to 1, so the density and its derivatives stay finite for small
means.
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
    nb_log_p0,
    poisson_logpmf,
    size_moments,
    zero_draws,
)
from .base import PHI_MAX, PHI_MIN, Family
from .negative_binomial import nb_logpmf
from .special import beta_logpdf

__all__ = ["hurdle_poisson", "hurdle_negative_binomial", "hurdle_lognormal", "hurdle_beta"]

_LOG_2PI = float(np.log(2.0 * np.pi))
# below μ = 1e-4 the series for log(1 − e^{−μ}) is exact to double precision
_LOG_SERIES = float(np.log(1e-4))


# ---- PyTensor helpers (elementwise) -----------------------------------------------------------
def _log1m_exp_neg(x):
    """``log(1 − e^{−x})`` for ``x`` not small: ``−e^{−x}`` above 20 (exact to ``e^{−40}``),
    whose derivatives stay finite where those of ``log1mexp`` overflow."""
    high = x > 20.0
    x_mid = pt.switch(high, 20.0, x)
    x_high = pt.switch(high, x, 20.0)
    return pt.switch(high, -pt.exp(-x_high), pt.log1mexp(-x_mid))


def _poisson_log_positive(eta):
    """``log(1 − e^{−μ})``, ``μ = e^η``: ``η − μ/2 + μ²/24`` for small ``μ``."""
    low = eta < _LOG_SERIES
    eta_low = pt.switch(low, eta, _LOG_SERIES)
    eta_high = pt.switch(low, _LOG_SERIES, eta)
    mu = pt.exp(eta_low)
    series = eta_low - mu / 2.0 + mu**2 / 24.0
    return pt.switch(low, series, _log1m_exp_neg(pt.exp(eta_high)))


def _nb_log_positive(eta, size):
    """``log(1 − NB(0))`` with ``NB(0) = e^{−x}``, ``x = θ log(1 + u)``, ``u = μ/θ``.

    For small ``u`` and ``μ``: ``log x = η − u/2 + 5u²/24 − u³/8`` and
    ``log(1 − e^{−x}) = log x − x/2 + x²/24``.
    """
    log_size = pt.log(size)
    edge = _LOG_SERIES + pt.minimum(log_size, 0.0)
    low = eta < edge
    eta_low = pt.switch(low, eta, edge)
    eta_high = pt.switch(low, edge, eta)
    u = pt.exp(eta_low - log_size)
    x = size * pt.log1p(u)
    series = eta_low - u / 2.0 + 5.0 * u**2 / 24.0 - u**3 / 8.0 - x / 2.0 + x**2 / 24.0
    return pt.switch(low, series, _log1m_exp_neg(-nb_log_p0(eta_high, size)))


# ---- numpy helpers ----------------------------------------------------------------------------
def _zero_truncated_poisson(mu, rng):
    """Draws of ``Pois(μ)`` given ``y > 0``: the first event of a rate-``μ`` process on
    ``[0, 1]`` at ``T`` (drawn given ``T ≤ 1``), then ``1 + Pois(μ(1 − T))`` events."""
    mu = np.maximum(np.asarray(mu, float), np.finfo(float).tiny)
    t = -np.log1p(rng.random(mu.shape) * np.expm1(-mu)) / mu
    return 1.0 + rng.poisson(mu * np.clip(1.0 - t, 0.0, None))


def _zero_truncated_nb(mu, size, rng):
    """Draws of ``NB(μ, θ)`` given ``y > 0``.

    NB is Poisson with a ``Gamma(θ, rate r = θ/μ)`` mean ``λ``; given ``y > 0``, ``λ`` has
    density ``∝ g(λ)(1 − e^{−λ}) = ∫₀¹ λ e^{−λs} g(λ) ds``, a mixture over ``s`` (density
    ``∝ (r + s)^{−θ−1}`` on ``[0, 1]``, drawn by inversion) of ``Gamma(θ + 1, rate r + s)``;
    then ``y`` is zero-truncated Poisson given ``λ``.
    """
    mu = np.maximum(np.asarray(mu, float), np.finfo(float).tiny)
    rate = size / mu
    one_minus_p0 = -np.expm1(-size * np.log1p(mu / size))
    s = rate * np.expm1(-np.log1p(-rng.random(mu.shape) * one_minus_p0) / size)
    lam = rng.gamma(size + 1.0, 1.0 / (rate + s))
    return _zero_truncated_poisson(lam, rng)


def _positive(y) -> np.ndarray:
    y = np.asarray(y, float)
    return y[np.isfinite(y) & (y > 0)]


# ---- families ---------------------------------------------------------------------------------
class hurdle_poisson(Family):
    r"""Hurdle Poisson family for counts, log link.

    With ``μ = exp(η)`` and ``π = logistic(η_zi)``:

    .. math::

        P(y = 0) = π, \qquad
        P(y) = (1 − π) \frac{μ^y e^{−μ}}{y!\,(1 − e^{−μ})} \quad (y > 0).

    Parameters
    ----------
    link : {"log"}

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from glmm_ppl.families.hurdle import hurdle_poisson
    >>> y, eta, eta_zi = pt.dscalars("y", "eta", "eta_zi")
    >>> lp = hurdle_poisson().logp(y, eta, [], eta_zi=eta_zi)
    >>> round(float(lp.eval({y: 1.0, eta: 0.0, eta_zi: 0.0})), 6)  # log(0.5 e⁻¹ / (1 − e⁻¹))
    -1.234472
    """

    name = "hurdle_poisson"
    discrete = True
    links = ("log",)
    zero_part = True

    def logp(self, y, eta, phis, eta_zi):
        y_pos = pt.switch(y > 0, y, 1.0)
        positive = log_main_part(eta_zi) + poisson_logpmf(y_pos, eta) - _poisson_log_positive(eta)
        return pt.switch(y > 0, positive, log_zero_part(eta_zi))

    def check_response(self, y: pd.Series, column: str) -> np.ndarray:
        return self._counts(y, column)

    def response_mean(self, eta, phis, eta_zi):
        mu = np.maximum(np.exp(np.asarray(eta, dtype=float)), np.finfo(float).tiny)
        return special.expit(-np.asarray(eta_zi)) * mu / -np.expm1(-mu)  # zero-truncated mean

    def response_variance(self, eta, phis, eta_zi):
        """``(1 − π) E₊[y²] − E[y]²`` with ``E₊`` the zero-truncated Poisson moments,
        ``E₊[y] = μ/(1 − e^{−μ})`` and ``E₊[y²] = (μ + μ²)/(1 − e^{−μ})``.

        Evaluated as ``(1 − π)(V₊ + π E₊[y]²)`` with the truncated variance
        ``V₊ = E₊[y] P(N ≥ 2)/(1 − e^{−μ})``, ``N ~ Pois(μ)``, free of cancellation for
        small ``μ``.

        Examples
        --------
        >>> from glmm_ppl.families import hurdle_poisson
        >>> fam = hurdle_poisson()
        >>> v = fam.response_variance(np.log(2.0), [], eta_zi=0.0)
        >>> m = 2.0 / (1.0 - np.exp(-2.0))  # E₊[y]
        >>> bool(np.isclose(v, 0.5 * m * 3.0 - (0.5 * m) ** 2))
        True
        """
        mu = np.maximum(np.exp(np.asarray(eta, dtype=float)), np.finfo(float).tiny)
        positive = -np.expm1(-mu)
        m1 = mu / positive
        var_positive = m1 * special.gammainc(2.0, mu) / positive
        pi = special.expit(np.asarray(eta_zi, dtype=float))
        keep = special.expit(-np.asarray(eta_zi, dtype=float))
        return keep * (var_positive + pi * m1**2)

    def simulate(self, eta, phis, rng, eta_zi):
        shape = draw_shape(eta, eta_zi)
        counts = _zero_truncated_poisson(np.broadcast_to(np.exp(eta), shape), rng)
        return np.where(zero_draws(eta_zi, shape, rng), 0.0, counts)


class hurdle_negative_binomial(Family):
    r"""Hurdle negative binomial family for counts, log link.

    With ``μ = exp(η)``, size ``θ`` (variance ``μ + μ²/θ`` before truncation) and
    ``π = logistic(η_zi)``:

    .. math::

        \mathrm{NB}(y) = \frac{Γ(y + θ)}{Γ(θ)\, y!}
            \Bigl(\frac{θ}{θ + μ}\Bigr)^{θ} \Bigl(\frac{μ}{θ + μ}\Bigr)^{y},

        P(y = 0) = π, \qquad P(y) = (1 − π) \frac{\mathrm{NB}(y)}{1 − \mathrm{NB}(0)}
        \quad (y > 0).

    Parameters
    ----------
    link : {"log"}

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from glmm_ppl.families.hurdle import hurdle_negative_binomial
    >>> y, eta, eta_zi, size = pt.dscalars("y", "eta", "eta_zi", "size")
    >>> lp = hurdle_negative_binomial().logp(y, eta, [size], eta_zi=eta_zi)
    >>> round(float(lp.eval({y: 1.0, eta: 0.0, eta_zi: 0.0, size: 1.0})), 6)  # log(0.5 · 0.5)
    -1.386294
    """

    name = "hurdle_negative_binomial"
    discrete = True
    links = ("log",)
    phi_names = ("size",)
    zero_part = True

    def logp(self, y, eta, phis, eta_zi):
        size = phis[0]
        y_pos = pt.switch(y > 0, y, 1.0)
        positive = log_main_part(eta_zi) + nb_logpmf(y_pos, eta, size) - _nb_log_positive(eta, size)
        return pt.switch(y > 0, positive, log_zero_part(eta_zi))

    def check_response(self, y: pd.Series, column: str) -> np.ndarray:
        return self._counts(y, column)

    def initial_phis(self, y, mu):
        return size_moments(y)

    def response_mean(self, eta, phis, eta_zi):
        mu = np.maximum(np.exp(np.asarray(eta, dtype=float)), np.finfo(float).tiny)
        size = np.asarray(phis[0], dtype=float)
        positive = -np.expm1(-size * np.log1p(mu / size))  # 1 − P(0), accurate for tiny μ
        return special.expit(-np.asarray(eta_zi)) * mu / positive  # zero-truncated mean

    def response_variance(self, eta, phis, eta_zi):
        """``(1 − π) E₊[y²] − E[y]²`` with ``E₊`` the zero-truncated negative-binomial moments,
        ``E₊[y] = μ/(1 − p₀)`` and ``E₊[y²] = (μ + μ²/θ + μ²)/(1 − p₀)``,
        ``p₀ = (1 + μ/θ)^{−θ}``.

        Evaluated as ``(1 − π)(V₊ + π E₊[y]²)`` with the truncated variance
        ``V₊ = E₊[y] (1 + μ/θ) P(N ≥ 2)/(1 − p₀)``, ``N ~ NB(μ, θ)``, free of cancellation
        for small ``μ``.

        Examples
        --------
        >>> from glmm_ppl.families import hurdle_negative_binomial
        >>> fam = hurdle_negative_binomial()
        >>> float(fam.response_variance(0.0, [1.0], eta_zi=0.0))  # ½ · 6 − 1
        2.0
        """
        size = np.asarray(phis[0], dtype=float)
        mu = np.maximum(np.exp(np.asarray(eta, dtype=float)), np.finfo(float).tiny)
        positive = -np.expm1(-size * np.log1p(mu / size))
        m1 = mu / positive
        at_least_two = special.betainc(2.0, size, mu / (size + mu))
        var_positive = m1 * (1.0 + mu / size) * at_least_two / positive
        pi = special.expit(np.asarray(eta_zi, dtype=float))
        keep = special.expit(-np.asarray(eta_zi, dtype=float))
        return keep * (var_positive + pi * m1**2)

    def simulate(self, eta, phis, rng, eta_zi):
        shape = draw_shape(eta, eta_zi)
        size = np.broadcast_to(np.asarray(phis[0], dtype=float), shape)
        counts = _zero_truncated_nb(np.broadcast_to(np.exp(eta), shape), size, rng)
        return np.where(zero_draws(eta_zi, shape, rng), 0.0, counts)


class hurdle_lognormal(Family):
    r"""Hurdle lognormal family for non-negative continuous responses with exact zeros.

    The main part is lognormal with ``meanlog = η`` (identity link on the log scale) and
    ``sdlog = σ``; with ``π = logistic(η_zi)``:

    .. math::

        P(y = 0) = π, \qquad
        p(y) = \frac{1 − π}{y σ \sqrt{2π}} \exp\Bigl(−\frac{(\log y − η)^2}{2σ^2}\Bigr)
        \quad (y > 0).

    Parameters
    ----------
    link : {"identity"}

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from glmm_ppl.families.hurdle import hurdle_lognormal
    >>> fam = hurdle_lognormal()
    >>> fam.phi_names
    ('sigma',)
    >>> y, eta, eta_zi, sigma = pt.dscalars("y", "eta", "eta_zi", "sigma")
    >>> lp = fam.logp(y, eta, [sigma], eta_zi=eta_zi)
    >>> round(float(lp.eval({y: 1.0, eta: 0.0, eta_zi: 0.0, sigma: 1.0})), 6)  # log(0.5/√(2π))
    -1.612086
    """

    name = "hurdle_lognormal"
    links = ("identity",)
    phi_names = ("sigma",)
    zero_part = True

    def logp(self, y, eta, phis, eta_zi):
        sigma = phis[0]
        log_y = pt.log(pt.switch(y > 0, y, 1.0))
        positive = (
            log_main_part(eta_zi)
            - log_y
            - pt.log(sigma)
            - 0.5 * _LOG_2PI
            - 0.5 * ((log_y - eta) / sigma) ** 2
        )
        return pt.switch(y > 0, positive, log_zero_part(eta_zi))

    def check_response(self, y: pd.Series, column: str) -> np.ndarray:
        values = self._numeric(y, column)
        return self._require(values, values < 0, column, "non-negative numbers")

    def initial_phis(self, y, mu):
        log_y = np.log(_positive(y))
        sigma = np.std(log_y) if len(log_y) > 1 else 1.0
        return np.array([np.clip(sigma if sigma > 0 else 1.0, PHI_MIN, PHI_MAX)])

    def response_mean(self, eta, phis, eta_zi):
        sigma = np.asarray(phis[0], dtype=float)
        return special.expit(-np.asarray(eta_zi)) * np.exp(np.asarray(eta, float) + sigma**2 / 2)

    def response_variance(self, eta, phis, eta_zi):
        """``(1 − π) e^{2η + 2σ²} − E[y]²``, evaluated as
        ``(1 − π) e^{2η + σ²} (e^{σ²} − 1 + π)``.

        Examples
        --------
        >>> from glmm_ppl.families import hurdle_lognormal
        >>> v = hurdle_lognormal().response_variance(0.0, [1.0], eta_zi=0.0)
        >>> bool(np.isclose(v, 0.5 * np.exp(2.0) - (0.5 * np.exp(0.5)) ** 2))
        True
        """
        s2 = np.asarray(phis[0], dtype=float) ** 2
        pi = special.expit(np.asarray(eta_zi, dtype=float))
        keep = special.expit(-np.asarray(eta_zi, dtype=float))
        return keep * np.exp(2.0 * np.asarray(eta, dtype=float) + s2) * (np.expm1(s2) + pi)

    def simulate(self, eta, phis, rng, eta_zi):
        shape = draw_shape(eta, eta_zi)
        sigma = np.asarray(phis[0], dtype=float)
        values = np.exp(np.broadcast_to(eta, shape) + sigma * rng.standard_normal(shape))
        return np.where(zero_draws(eta_zi, shape, rng), 0.0, values)


class hurdle_beta(Family):
    r"""Hurdle beta family for proportions in ``[0, 1)`` with exact zeros, logit link.

    The main part is beta with mean ``m = logistic(η)`` and precision ``φ`` (shapes ``mφ`` and
    ``(1 − m)φ``); with ``π = logistic(η_zi)``:

    .. math::

        P(y = 0) = π, \qquad
        p(y) = (1 − π) \frac{Γ(φ)}{Γ(mφ)\,Γ((1 − m)φ)} y^{mφ − 1} (1 − y)^{(1 − m)φ − 1}
        \quad (0 < y < 1).

    Parameters
    ----------
    link : {"logit"}

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from glmm_ppl.families.hurdle import hurdle_beta
    >>> fam = hurdle_beta()
    >>> fam.phi_names
    ('precision',)
    >>> y, eta, eta_zi, phi = pt.dscalars("y", "eta", "eta_zi", "phi")
    >>> lp = fam.logp(y, eta, [phi], eta_zi=eta_zi)
    >>> round(float(lp.eval({y: 0.5, eta: 0.0, eta_zi: 0.0, phi: 2.0})), 6)  # Beta(1, 1): log 0.5
    -0.693147
    """

    name = "hurdle_beta"
    links = ("logit",)
    phi_names = ("precision",)
    zero_part = True

    def logp(self, y, eta, phis, eta_zi):
        y_pos = pt.switch(y > 0, y, 0.5)
        positive = log_main_part(eta_zi) + beta_logpdf(y_pos, self.link, eta, phis[0])
        return pt.switch(y > 0, positive, log_zero_part(eta_zi))

    def check_response(self, y: pd.Series, column: str) -> np.ndarray:
        values = self._numeric(y, column)
        return self._require(values, (values < 0) | (values >= 1), column, "in [0, 1)")

    def initial_phis(self, y, mu):
        pos = _positive(y)
        pos = pos[pos < 1]
        if len(pos) < 2 or np.var(pos) == 0:
            return np.array([1.0])
        m, v = pos.mean(), pos.var()
        return np.array([np.clip(m * (1.0 - m) / v - 1.0, PHI_MIN, PHI_MAX)])

    def response_mean(self, eta, phis, eta_zi):
        return special.expit(-np.asarray(eta_zi)) * special.expit(np.asarray(eta, dtype=float))

    def response_variance(self, eta, phis, eta_zi):
        """``(1 − π)(μ(1 − μ)/(1 + φ) + μ²) − E[y]²``, evaluated as
        ``(1 − π)(μ(1 − μ)/(1 + φ) + πμ²)``, with ``μ = logistic(η)`` and precision ``φ``.

        Examples
        --------
        >>> from glmm_ppl.families import hurdle_beta
        >>> float(hurdle_beta().response_variance(0.0, [2.0], eta_zi=0.0))  # ½ (1/12 + 1/8)
        0.10416666666666666
        """
        eta = np.asarray(eta, dtype=float)
        mu, nu = special.expit(eta), special.expit(-eta)
        pi = special.expit(np.asarray(eta_zi, dtype=float))
        keep = special.expit(-np.asarray(eta_zi, dtype=float))
        return keep * (mu * nu / (1.0 + np.asarray(phis[0], dtype=float)) + pi * mu**2)

    def simulate(self, eta, phis, rng, eta_zi):
        shape = draw_shape(eta, eta_zi)
        phi = np.asarray(phis[0], dtype=float)
        eta = np.broadcast_to(eta, shape)
        values = rng.beta(special.expit(eta) * phi, special.expit(-eta) * phi)
        # draws that round to an endpoint are kept inside (0, 1), the main part's support
        values = np.clip(values, np.finfo(float).tiny, np.nextafter(1.0, 0.0))
        return np.where(zero_draws(eta_zi, shape, rng), 0.0, values)
