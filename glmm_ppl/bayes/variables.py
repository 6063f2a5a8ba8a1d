"""The posterior's variables, as every Bayesian output of the package names them.

Draws of ``θ`` map to ``beta``, ``gamma`` (zero part), ``theta_D`` (log-Cholesky parameters of
``D``), ``log_phi`` (the extra entries of ``θ``) and, on natural scales, ``sd``, ``corr`` and
``phi`` — or, for extra parameters reported as coefficients, a variable named after their
sub-model (``thresholds``, ``dispersion``); their coordinates name the fixed effects, random
effects, ``D`` parameters, extra parameters and groups. The PyMC
models, both samplers, the MAP fit's ``InferenceData`` and the comparisons share them.
"""

from __future__ import annotations

import numpy as np

from ..engine.covariance import has_correlations, theta_names, theta_to_D

__all__ = [
    "extra_variable",
    "posterior_coords",
    "posterior_dims",
    "natural_variables",
    "theta_draws",
]


def extra_variable(fit) -> str:
    """The name of the posterior variable of the extra parameters as reported: ``phi``
    (natural scale), or their sub-model's name (``thresholds``, ``dispersion``)."""
    return fit.family.extra_sub_model or "phi"


def extra_values(family, log_phi):
    """The reported values of the extra parameters from the extra entries of ``θ`` along the
    last axis (numpy or PyTensor)."""
    if family.extra_sub_model:
        return family.coefficient_values(log_phi)
    return np.exp(log_phi) if isinstance(log_phi, np.ndarray) else log_phi.exp()


def posterior_coords(fit) -> dict:
    d = fit.design
    coords = {
        "fixed": list(d.fixed_names),
        "random": list(d.random_names),
        "D_parameter": theta_names(d.q, d.diagonal),
        "group": [str(g) for g in d.groups],
    }
    if d.X_zi is not None:
        coords["zero_part"] = list(d.zi_fixed_names)
    if fit.family.n_phis:
        coords["extra"] = list(fit.family.phi_names)
    if has_correlations(d.q, d.diagonal):
        coords["random_"] = list(d.random_names)
    return coords


def theta_draws(posterior, fit) -> np.ndarray:
    """``θ`` per draw, shape (chain, draw, k), from posterior variables."""
    names = ["beta"] + (["gamma"] if fit.design.X_zi is not None else []) + ["theta_D"]
    names += ["log_phi"] if fit.family.n_phis else []
    return np.concatenate([np.asarray(posterior[n]) for n in names], axis=-1)


def natural_variables(fit, theta: np.ndarray) -> dict:
    """Posterior variables (as :func:`to_pymc` names them) from draws of ``θ``."""
    d, blocks = fit.design, fit.layout.blocks
    out = {"beta": theta[..., blocks["fixed-effects"]], "theta_D": theta[..., blocks["var-cov"]]}
    if d.X_zi is not None:
        out["gamma"] = theta[..., blocks["zero_part"]]
    if fit.family.n_phis:
        out["log_phi"] = theta[..., blocks["extra"]]
        out[extra_variable(fit)] = extra_values(fit.family, out["log_phi"])
    Ds = np.apply_along_axis(
        lambda t: theta_to_D(t, d.q, d.diagonal).ravel(), -1, out["theta_D"]
    ).reshape(theta.shape[:-1] + (d.q, d.q))
    sd = np.sqrt(np.diagonal(Ds, axis1=-2, axis2=-1))
    out["sd"] = sd
    if has_correlations(d.q, d.diagonal):
        out["corr"] = Ds / (sd[..., :, None] * sd[..., None, :])
    return out


def posterior_dims(fit) -> dict:
    dims = {"beta": ["fixed"], "theta_D": ["D_parameter"], "sd": ["random"]}
    if fit.design.X_zi is not None:
        dims["gamma"] = ["zero_part"]
    if fit.family.n_phis:
        dims["log_phi"] = dims[extra_variable(fit)] = ["extra"]
    if has_correlations(fit.design.q, fit.design.diagonal):
        dims["corr"] = ["random", "random_"]
    return dims
