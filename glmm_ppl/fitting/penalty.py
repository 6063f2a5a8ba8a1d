"""Priors on the fixed effects that join the objective of a MAP fit.

``penalized=True`` is GLMMadaptive's penalty: a multivariate Student-t kernel on the vector of
all fixed effects, ``log π(β) = −(ν + p)/2 · log(1 + (β − μ)ᵀ Σ⁻¹ (β − μ)/ν)`` with
``Σ = diag(σ²)``, ``ν = 3``, ``μ = 0``, ``σ = 1``. It is the log density of PyMC's
``MvStudentT`` without its normalising constant, so that the reported log-likelihood (which
includes the penalty) is the same number GLMMadaptive reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt

__all__ = ["StudentTPenalty", "make_penalty", "student_t_kernel_logp"]

_DEFAULTS = {"pen_mu": 0.0, "pen_sigma": 1.0, "pen_df": 3.0}


@dataclass(frozen=True)
class StudentTPenalty:
    """Multivariate Student-t penalty on the fixed effects.

    Examples
    --------
    >>> pen = make_penalty(True, 2)
    >>> round(pen.logp_numpy(np.array([1.0, 0.0])), 6)  # -(3 + 2)/2 * log(1 + 1/3)
    -0.719205
    """

    mu: np.ndarray
    sigma: np.ndarray
    df: float

    def values(self) -> tuple[np.ndarray, np.ndarray, float]:
        """``(μ, σ, ν)``: the inputs of :func:`student_t_kernel_logp`."""
        return self.mu, self.sigma, self.df

    def logp_numpy(self, beta: np.ndarray) -> float:
        """The penalty evaluated with numpy (for reporting and tests)."""
        r = (np.asarray(beta) - self.mu) / self.sigma
        return float(-0.5 * (self.df + len(r)) * np.log1p(r @ r / self.df))

    def grad_numpy(self, beta: np.ndarray) -> np.ndarray:
        """Gradient of :meth:`logp_numpy` (for the EM warm start, which works outside the
        graph)."""
        r = (np.asarray(beta) - self.mu) / self.sigma
        return -(self.df + len(r)) * r / self.sigma / (self.df + r @ r)

    def describe(self) -> str:
        return f"Student-t(df={self.df:g}, mu={_fmt(self.mu)}, sigma={_fmt(self.sigma)})"


def student_t_kernel_logp(beta, mu, sigma, df):
    """The penalty as a PyTensor expression: PyMC's ``MvStudentT`` log density of ``beta``
    (location ``mu``, scale ``diag(sigma²)``, ``df`` degrees of freedom) less its normalising
    constant. ``mu``, ``sigma`` and ``df`` may be symbolic, so one compiled graph serves every
    setting of the penalty."""
    import pymc as pm

    p = beta.shape[0]
    dist = pm.MvStudentT.dist(nu=df, mu=mu, scale=pt.diag(sigma**2))
    log_const = (
        pt.gammaln((df + p) / 2)
        - pt.gammaln(df / 2)
        - 0.5 * p * pt.log(df * np.pi)
        - pt.sum(pt.log(sigma))
    )
    return pm.logp(dist, beta) - log_const


def _fmt(v: np.ndarray) -> str:
    return f"{v[0]:g}" if np.all(v == v[0]) else "[" + ", ".join(f"{x:g}" for x in v) + "]"


def make_penalty(penalized, p: int) -> StudentTPenalty | None:
    """The penalty asked for by ``penalized`` (``False``, ``True`` or a dict) for ``p`` effects.

    Raises
    ------
    ValueError
        For unknown keys, a non-positive ``pen_sigma`` or ``pen_df``, or a length that is
        neither 1 nor ``p``.
    """
    if penalized is False or penalized is None:
        return None
    if penalized is True:
        settings = dict(_DEFAULTS)
    elif isinstance(penalized, dict):
        unknown = sorted(set(penalized) - set(_DEFAULTS))
        if unknown:
            raise ValueError(
                f"unknown penalized setting(s) {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(_DEFAULTS)}"
            )
        settings = {**_DEFAULTS, **penalized}
    else:
        raise TypeError(
            f"penalized must be True, False or a dict with keys {', '.join(_DEFAULTS)}; "
            f"got {penalized!r}"
        )
    values = {}
    for key in ("pen_mu", "pen_sigma"):
        v = np.atleast_1d(np.asarray(settings[key], dtype=float))
        if v.size not in (1, p):
            raise ValueError(
                f"{key} must have length 1 or {p} (one per fixed effect), got {v.size}"
            )
        values[key] = np.broadcast_to(v, (p,)).copy()
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{key} must be finite, got {settings[key]!r}")
    if np.any(values["pen_sigma"] <= 0):
        raise ValueError(f"pen_sigma must be positive, got {settings['pen_sigma']!r}")
    df = float(settings["pen_df"])
    if not (df > 0 and np.isfinite(df)):
        raise ValueError(f"pen_df must be a positive finite number, got {settings['pen_df']!r}")
    return StudentTPenalty(values["pen_mu"], values["pen_sigma"], df)
