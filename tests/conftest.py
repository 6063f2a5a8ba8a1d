"""Shared fixtures: the reference values, the vignette data, the expensive fits (fitted once
per session) and numerical helpers used by several test files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special

import glmm_ppl as gp
from glmm_ppl.engine.agq import AGQ

# reference data and values measured by other software (tests/reference/README.md)
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
REFERENCE = REFERENCE_DIR / "vignette_reference.json"
FIXED = "y ~ sex * time"


# ---- reference values and data -------------------------------------------------------------
@pytest.fixture(scope="session")
def ref() -> dict:
    """GLMMadaptive 0.9-7 / lme4 results on the vignette models."""
    with REFERENCE.open() as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def binary() -> pd.DataFrame:
    return gp.load_vignette("binary")


@pytest.fixture(scope="session")
def poisson() -> pd.DataFrame:
    return gp.load_vignette("poisson")


# ---- fits of the vignette models (the same specifications as the reference) ---------------
@pytest.fixture(scope="session")
def fm1(binary):
    return gp.mixed_model(FIXED, "~ 1 | id", binary, "binomial")


@pytest.fixture(scope="session")
def fm1_q15(binary):
    return gp.mixed_model(FIXED, "~ 1 | id", binary, "binomial", n_agq=15)


@pytest.fixture(scope="session")
def fm1_q21(binary):
    return gp.mixed_model(FIXED, "~ 1 | id", binary, "binomial", n_agq=21)


@pytest.fixture(scope="session")
def fm2(binary):
    return gp.mixed_model(FIXED, "~ time || id", binary, "binomial")


@pytest.fixture(scope="session")
def fm3(binary):
    # at 11 points the likelihood rises towards a correlation of 1 (flat there): a boundary
    # fit, said so, and the rule is too coarse, said too
    with (
        pytest.warns(gp.SingularFitWarning, match=r"correlation of \(Intercept\) and time"),
        pytest.warns(gp.QuadratureWarning, match="with 21 points per random effect instead of"),
    ):
        return gp.mixed_model(FIXED, "~ time | id", binary, "binomial")


@pytest.fixture(scope="session")
def gm1(poisson):
    return gp.mixed_model(FIXED, "~ 1 | id", poisson, "poisson")


@pytest.fixture(scope="session")
def gm2(poisson):
    return gp.mixed_model(FIXED, "~ 1 | id", poisson, "poisson", penalized=True)


@pytest.fixture(scope="session")
def gm3(poisson):
    pen = {"pen_mu": 0, "pen_sigma": 1, "pen_df": 200}
    return gp.mixed_model(FIXED, "~ 1 | id", poisson, "poisson", penalized=pen)


@pytest.fixture(scope="session")
def glm_binary(binary):
    """The GLM without random effects (null model of the LRT against fm1)."""
    return gp.glm(FIXED, binary, "binomial")


# ---- helpers ----------------------------------------------------------------------------------
def _ref_fixef(ref: dict, key: str, names) -> np.ndarray:
    return pd.Series(ref[key]["fixef"])[list(names)].to_numpy()


def _ref_se(ref: dict, key: str, names) -> np.ndarray:
    return pd.Series(ref[key]["se_fixef"])[list(names)].to_numpy()


def _engine_loglik(fit, beta, D, n_agq: int | None = None) -> float:
    """Unpenalized AGQ log-likelihood of ``fit``'s data at ``(beta, D)``, computed by a fresh
    engine (its own modes, re-centred at these parameters)."""
    d = fit.design
    engine = AGQ(d.y, d.Z, d.starts, fit.family, fit.n_agq if n_agq is None else n_agq)
    D = np.atleast_2d(np.asarray(D, dtype=float))
    return engine.evaluate(d.X @ np.asarray(beta, dtype=float), D, np.zeros(0)).loglik


def _quad_loglik_per_group(y, eta0, z, starts, sd, logpmf) -> np.ndarray:
    """Per-group marginal log-likelihood of a random-intercept (one random effect) model by
    adaptive 1-D integration with scipy (independent of the package's quadrature).

    Each group's integrand ``exp(log f(b) − log f(b̂))`` is integrated around its mode ``b̂``
    over ±40 prior standard deviations (far beyond where it is numerically non-zero).
    """
    out = np.empty(len(starts) - 1)
    log_norm_const = np.log(sd) + 0.5 * np.log(2 * np.pi)
    for i in range(len(starts) - 1):
        s = slice(starts[i], starts[i + 1])
        yi, ei, zi = y[s], eta0[s], z[s]

        def logf(b, yi=yi, ei=ei, zi=zi):
            return np.sum(logpmf(yi, ei + zi * b)) - 0.5 * (b / sd) ** 2 - log_norm_const

        mode = optimize.minimize_scalar(lambda b: -logf(b), bracket=(-1.0, 1.0)).x
        top = logf(mode)
        val, _ = integrate.quad(
            lambda b, top=top: np.exp(logf(b) - top),
            mode - 40 * sd,
            mode + 40 * sd,
            points=[mode],
            epsabs=0.0,
            epsrel=1e-12,
            limit=400,
        )
        out[i] = top + np.log(val)
    return out


def _poisson_logpmf(y, eta):
    """log Poisson(y; e^η) from scipy.special (scipy.stats.poisson.logpmf, minus its per-call
    overhead inside the quadrature loops)."""
    return special.xlogy(y, np.exp(eta)) - np.exp(eta) - special.gammaln(y + 1.0)


@pytest.fixture(scope="session")
def ref_fixef():
    """``ref_fixef(ref, key, names)``: reference fixed effects in the order ``names``."""
    return _ref_fixef


@pytest.fixture(scope="session")
def ref_se():
    """``ref_se(ref, key, names)``: reference standard errors in the order ``names``."""
    return _ref_se


@pytest.fixture(scope="session")
def engine_loglik():
    """``engine_loglik(fit, beta, D, n_agq=None)``: unpenalized AGQ log-likelihood."""
    return _engine_loglik


@pytest.fixture(scope="session")
def quad_loglik_per_group():
    """``quad_loglik_per_group(y, eta0, z, starts, sd, logpmf)``: scipy.integrate.quad."""
    return _quad_loglik_per_group


@pytest.fixture(scope="session")
def poisson_logpmf():
    return _poisson_logpmf
