"""The random effects' posterior after sampling the marginal model.

NUTS on the marginal model (:func:`glmm_ppl.sample`) draws ``θ`` only. For each draw
``θ_s`` the groups' random effects follow ``p(b_i | y_i, θ_s)``; this module draws ``b_i`` from
its normal approximation ``N(b̂_i(θ_s), C_i(θ_s) C_i(θ_s)ᵀ)`` — the mode and inverse curvature
the quadrature is built on (exact for Gaussian responses, a close approximation otherwise) —
and adds them to the posterior as ``b`` with dims ``(group, random)``.
"""

from __future__ import annotations

import arviz as az
import numpy as np

from .model import MixedModelGraph

__all__ = ["sample_random_effects"]


def sample_random_effects(fit, idata: az.InferenceData, seed=None) -> az.InferenceData:
    """Add draws of every group's random effects to ``idata.posterior`` (as ``b``).

    Parameters
    ----------
    fit : MixedModelFit
        The fit ``idata`` was sampled from.
    idata : arviz.InferenceData
        From :func:`glmm_ppl.sample` (marginal model).
    seed : int, optional

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
    from .bayes import _coords, _theta_draws

    rng = np.random.default_rng(seed)
    graph = MixedModelGraph(fit.design, fit.family, fit.n_agq, None)
    engine = graph.engine
    theta = _theta_draws(idata.posterior, fit)
    chains, draws = theta.shape[:2]
    b = np.empty((chains, draws, fit.n_groups, fit.design.q))
    for c in range(chains):
        engine.modes = fit.modes.copy()
        for s in range(draws):
            fixed, D, phis = graph.unpack(theta[c, s])
            engine.update_modes(graph.fixed_part(fixed), D, phis)
            z = rng.standard_normal(engine.modes.shape)
            b[c, s] = engine.modes + np.einsum("gij,gj->gi", engine.chol, z)
    coords = _coords(fit)
    idata.posterior["b"] = (
        ("chain", "draw", "group", "random"),
        b,
    )
    idata.posterior = idata.posterior.assign_coords(group=coords["group"], random=coords["random"])
    return idata
