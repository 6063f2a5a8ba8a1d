"""Link functions: the numpy and PyTensor versions of each link side by side.

A link ``g`` maps the mean ``μ`` to the linear predictor ``η = g(μ)``. Besides ``g`` and its
inverse, a link gives ``log μ`` and ``log(1 − μ)`` as PyTensor expressions that stay accurate in
the tails, which the Bernoulli log density needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt
from scipy import special

__all__ = ["Link", "get_link", "LINKS"]


def log_ndtr_pt(x):
    # log Φ(x); for x < -5 use the scaled complementary error function to avoid underflow.
    # Both branches are evaluated (and differentiated): clamp each to where it is finite.
    low = x < -5.0
    tail_x = pt.switch(low, x, -5.0)
    body_x = pt.switch(low, -5.0, x)
    tail = pt.log(0.5 * pt.erfcx(-tail_x / np.sqrt(2.0))) - 0.5 * tail_x**2
    body = pt.log(0.5 * pt.erfc(-body_x / np.sqrt(2.0)))
    return pt.switch(low, tail, body)


def _cloglog_log_mu_pt(eta):
    # log(1 − exp(−e^η)); for η > 3 it equals −exp(−e^η) to 1e-9, a form whose derivatives
    # stay finite (the arguments are clamped so the branch not taken is finite too).
    high = eta > 3.0
    eta_low = pt.switch(high, 3.0, eta)
    # a switch rather than a minimum: a minimum's gradient multiplies by a boolean mask, on
    # which some of PyTensor's rewrites fail (with logged errors)
    eta_high = pt.switch(high, pt.switch(eta > 30.0, 30.0, eta), 3.0)
    return pt.switch(high, -pt.exp(-pt.exp(eta_high)), pt.log1mexp(-pt.exp(eta_low)))


def _cloglog_log1m_mu_pt(eta):
    # log(1 − μ) = −e^η, clamped far beyond any fitted value so that 0 · (−∞) cannot occur.
    return -pt.exp(pt.switch(eta > 700.0, 700.0, eta))


@dataclass(frozen=True)
class Link:
    """A link function with numpy and PyTensor versions side by side.

    Attributes
    ----------
    name : str
    link, inverse : callable
        numpy ``g(μ)`` and ``g⁻¹(η)``.
    inverse_pt : callable
        PyTensor ``g⁻¹(η)``.
    log_inverse_pt, log1m_inverse_pt : callable
        PyTensor ``log g⁻¹(η)`` and ``log(1 − g⁻¹(η))``.

    Examples
    --------
    >>> LINKS["logit"].inverse(np.array([0.0]))
    array([0.5])
    """

    name: str
    link: Callable[[np.ndarray], np.ndarray]
    inverse: Callable[[np.ndarray], np.ndarray]
    inverse_pt: Callable
    log_inverse_pt: Callable
    log1m_inverse_pt: Callable

    def __repr__(self) -> str:
        return f"Link({self.name!r})"


LINKS: dict[str, Link] = {
    "logit": Link(
        "logit",
        special.logit,
        special.expit,
        pt.sigmoid,
        lambda eta: -pt.softplus(-eta),
        lambda eta: -pt.softplus(eta),
    ),
    "probit": Link(
        "probit",
        special.ndtri,
        special.ndtr,
        lambda eta: 0.5 * pt.erfc(-eta / np.sqrt(2.0)),
        log_ndtr_pt,
        lambda eta: log_ndtr_pt(-eta),
    ),
    "cloglog": Link(
        "cloglog",
        lambda mu: np.log(-np.log1p(-mu)),
        lambda eta: -np.expm1(-np.exp(eta)),
        lambda eta: -pt.expm1(-pt.exp(eta)),
        _cloglog_log_mu_pt,
        _cloglog_log1m_mu_pt,
    ),
    "log": Link(
        "log",
        np.log,
        np.exp,
        pt.exp,
        lambda eta: eta,
        lambda eta: pt.log1mexp(eta),
    ),
    "identity": Link(
        "identity",
        lambda mu: mu,
        lambda eta: eta,
        lambda eta: eta,
        pt.log,
        lambda eta: pt.log1p(-eta),
    ),
}


def get_link(link: str | Link, allowed: tuple[str, ...]) -> Link:
    """Look up a link by name, among those a family allows.

    Raises
    ------
    ValueError
        Naming the valid links when ``link`` is not one of ``allowed``.
    """
    if isinstance(link, Link):
        name = link.name
    else:
        name = link
    if name not in allowed:
        raise ValueError(f"unknown link {link!r}; valid links here: {', '.join(allowed)}")
    return LINKS[name]
