"""The random effects' posterior after sampling the marginal model.

NUTS on the marginal model (:func:`glmm_ppl.sample`) draws ``θ`` only. For each draw ``θ_s``
the groups' random effects follow ``p(b_i | y_i, θ_s) ∝ p(y_i | b_i, θ_s) N(b_i; 0, D_s)``.
This module draws from it by sampling importance resampling: ``M`` proposals from a
multivariate t with 4 degrees of freedom around the mode ``b̂_i(θ_s)`` with scale ``C_i(θ_s)``
(the mode and inverse curvature the quadrature is built on), weighted by target over
proposal, one of them kept with probability proportional to its weight. The draws are exact
as ``M`` grows (the bias is of order ``1/M`` and small already when the proposal is close, as
here); ``method="normal"`` draws from ``N(b̂_i, C_i C_iᵀ)`` instead, exact for Gaussian
responses only.
"""

from __future__ import annotations

import arviz as az
import numpy as np

from ..engine.pointwise import pointwise_derivatives
from ..fitting.graph import MixedModelGraph
from .variables import posterior_coords, theta_draws

__all__ = ["sample_random_effects"]

_T_DF = 4.0  # the proposal's degrees of freedom: heavier tails than any posterior here


def sample_random_effects(
    fit, idata: az.InferenceData, seed=None, method: str = "importance", proposals: int = 32
) -> az.InferenceData:
    """Add draws of every group's random effects to ``idata.posterior`` (as ``b``).

    Parameters
    ----------
    fit : MixedModelFit
        The fit ``idata`` was sampled from.
    idata : arviz.InferenceData
        From :func:`glmm_ppl.sample` (marginal model) or :func:`glmm_ppl.to_inference_data`.
    seed : int, optional
    method : {"importance", "normal"}
        ``"importance"``: sampling importance resampling from a t proposal at the mode (see
        the module's description); ``"normal"``: the normal approximation at the mode.
    proposals : int
        Proposals per group and draw for ``"importance"``.

    Returns
    -------
    arviz.InferenceData
        ``idata`` with ``posterior["b"]``, shape (chain, draw, group, random).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> idata = gp.to_inference_data(fm1, draws=50, seed=1)
    >>> sample_random_effects(fm1, idata, seed=2).posterior["b"].shape
    (1, 50, 100, 1)
    """
    if method not in ("importance", "normal"):
        raise ValueError(f"method must be 'importance' or 'normal', got {method!r}")
    if fit.design.nested:
        raise NotImplementedError(
            "draws of the random effects of several grouping factors are not available; "
            "to_pymc(fit, marginal=False) samples them with the parameters"
        )
    if int(proposals) < 1:
        raise ValueError(f"proposals must be a positive integer, got {proposals!r}")
    rng = np.random.default_rng(seed)
    graph = MixedModelGraph(fit.design, fit.family, fit.n_agq, None)
    engine = graph.engine
    theta = theta_draws(idata.posterior, fit)
    chains, draws = theta.shape[:2]
    b = np.empty((chains, draws, fit.n_groups, fit.design.q))
    for c in range(chains):
        engine.modes = fit.modes.copy()
        for s in range(draws):
            fixed, D, phis = graph.unpack(theta[c, s])
            eta0 = graph.fixed_part(fixed)
            engine.update_modes(eta0, D, phis)
            if method == "normal":
                z = rng.standard_normal(engine.modes.shape)
                b[c, s] = engine.modes + np.einsum("gij,gj->gi", engine.chol, z)
            else:
                b[c, s] = _resample(engine, eta0, D, phis, int(proposals), rng)
    coords = posterior_coords(fit)
    idata.posterior["b"] = (("chain", "draw", "group", "random"), b)
    idata.posterior = idata.posterior.assign_coords(group=coords["group"], random=coords["random"])
    return idata


def _resample(engine, eta0, D, phis, M: int, rng) -> np.ndarray:
    """One draw of every group's ``b_i`` from ``p(b_i | y_i, θ)`` by importance resampling."""
    n, q = engine.modes.shape
    z = rng.standard_normal((n, M, q)) * np.sqrt(_T_DF / rng.chisquare(_T_DF, (n, M, 1)))
    prop = engine.modes[:, None, :] + np.einsum("gij,gmj->gmi", engine.chol, z)  # (n, M, q)
    log_q = -0.5 * (_T_DF + q) * np.log1p(np.sum(z**2, axis=2) / _T_DF)  # up to a constant
    rows = np.repeat(np.arange(n), np.diff(engine.starts))
    eta = np.asarray(eta0, dtype=float).reshape(engine.N, 1, engine.E) + np.einsum(
        "jeq,jmq->jme", engine.Z, prop[rows]
    )
    lp = pointwise_derivatives(engine.family)(engine.Y, eta, phis)[0]  # (N, M)
    log_target = np.add.reduceat(lp, engine.starts[:-1], axis=0)  # Σ_j per group: (n, M)
    log_target -= 0.5 * np.einsum("gmi,ij,gmj->gm", prop, np.linalg.inv(D), prop)
    log_w = log_target - log_q
    log_w -= log_w.max(axis=1, keepdims=True)
    w = np.exp(log_w)
    cdf = np.cumsum(w, axis=1)
    pick = np.sum(cdf < rng.uniform(size=(n, 1)) * cdf[:, -1:], axis=1)
    return prop[np.arange(n), np.minimum(pick, M - 1)]
