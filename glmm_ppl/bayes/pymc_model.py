"""The fitted model as a PyMC model on the AGQ likelihood (or with every random effect latent).

With crossed grouping factors the marginal likelihood is the engine's Laplace approximation
over all random effects jointly; the latent model has each factor's effects, as with nested
ones.

:func:`to_pymc` builds a ``pm.Model`` whose likelihood is the custom AGQ Op: the random
effects are integrated out and NUTS explores only ``θ`` (β, γ, the log-Cholesky parameters of
``D``, ``log φ``) — the parameters the MAP fit maximises over, with the same priors (flat where
none is given) and the same penalty. Deterministics give the standard deviations, correlations
and extra parameters on their natural scales.

Flat priors on the log standard deviations give, strictly, an improper posterior (its tail
towards a standard deviation of 0 is flat); in practice NUTS stays where the likelihood is,
but give ``priors={"sd": ...}`` for a proper posterior — :func:`glmm_ppl.sample` warns when
none is set.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..engine.covariance import has_correlations, theta_to_D, theta_to_D_pt
from ..engine.ops import AGQLogLik
from ..fitting.graph import MixedModelGraph
from ..fitting.penalty import student_t_kernel_logp
from ..postfit.factors import ranef_by_factor
from .variables import extra_values, extra_variable, posterior_coords

__all__ = ["to_pymc", "per_group_loglik"]


def to_pymc(fit, marginal: bool = True) -> pm.Model:
    """A PyMC model of the fit's specification, priors and data.

    Parameters
    ----------
    fit : MixedModelFit
    marginal : bool
        ``True``: the random effects integrated out by the AGQ Op (only ``θ`` is sampled).
        ``False``: the conventional latent model with every ``b_i`` explicit, non-centred:
        ``b_i = L z_i`` with ``z_i ~ N(0, I)`` and ``L`` the Cholesky factor of ``D`` from the
        same ``θ_D``, the likelihood ``Σ_ij log p(y_ij | x_ijᵀβ + z_ijᵀb_i + offset, φ)``.
        The parameters, priors and penalty are those of the marginal model, so integrating
        the latent model's density over the ``z_i`` gives the marginal model's density.
        Group weights have no latent counterpart (a weight replicates a whole group, its
        random effects included) and are refused.

    Returns
    -------
    pymc.Model
        Free variables ``beta`` (dims ``fixed``), ``gamma`` (``zero_part``, with a zero part),
        ``theta_D``, ``log_phi`` (``extra``); deterministics ``sd`` (``random``), ``corr``
        and ``phi``; potentials for the log-likelihood, the priors and the penalty. The latent
        model adds the free variable ``z`` and the deterministic ``b`` (dims ``group``,
        ``random``), starting at the fit's empirical Bayes modes; with several grouping
        factors (nested or crossed), ``z[<factor>]`` and ``b[<factor>]`` for each factor
        (dims: the factor and ``random[<factor>]``).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> model = to_pymc(fm1)
    >>> sorted(v.name for v in model.free_RVs)
    ['beta', 'theta_D']
    >>> sorted(v.name for v in to_pymc(fm1, marginal=False).free_RVs)
    ['beta', 'theta_D', 'z']
    """
    if not marginal:
        return _latent_model(fit)
    d = fit.design
    graph = MixedModelGraph(d, fit.family, fit.n_agq, fit.penalty, fit.priors)
    graph.engine.modes = fit.modes.copy()
    parts = graph.split(fit.theta)
    with pm.Model(coords=posterior_coords(fit)) as model:
        beta, gamma, theta_D, phis, pieces = _parameters(fit, parts)
        eta0 = pt.dot(pt.constant(d.X), beta)[:, None]
        if gamma is not None:
            eta0 = pt.concatenate([eta0, pt.dot(pt.constant(d.X_zi), gamma)[:, None]], axis=1)
        if d.offset is not None:
            eta0 = eta0 + pt.constant(d.offset)
        D = theta_to_D_pt(theta_D, d.q, d.diagonal)
        op = AGQLogLik(graph.engine)
        pm.Potential("loglik", op(eta0, D, phis)[0])
        _variance_and_priors(fit, D, beta, pieces)
    return model


def _parameters(fit, parts: dict):
    """The parameters both models share (inside their ``with model:``), flat, starting at the
    MAP: ``β``, ``γ`` (None without a zero part), ``θ_D`` and ``φ = exp(log φ)`` (with its
    deterministic), and the free variables in the order of ``θ``."""
    beta = pm.Flat("beta", dims="fixed", initval=parts["beta"])
    gamma = None
    if fit.design.X_zi is not None:
        gamma = pm.Flat("gamma", dims="zero_part", initval=parts["gamma"])
    theta_D = pm.Flat("theta_D", dims="D_parameter", initval=parts["theta_D"])
    pieces = [v for v in (beta, gamma, theta_D) if v is not None]
    phis = pt.zeros(0)
    if fit.family.n_phis:
        log_phi = pm.Flat("log_phi", dims="extra", initval=parts["log_phis"])
        pieces.append(log_phi)
        phis = pt.exp(log_phi)
        pm.Deterministic(extra_variable(fit), extra_values(fit.family, log_phi), dims="extra")
    return beta, gamma, theta_D, phis, pieces


def _variance_and_priors(fit, D, beta, pieces) -> None:
    """The parts both models share (inside their ``with model:``): the deterministic standard
    deviations and correlations, the penalty, and the priors with their Jacobian."""
    d = fit.design
    sd = pt.sqrt(pt.diag(D))
    pm.Deterministic("sd", sd, dims="random")
    if has_correlations(d.q, d.diagonal):
        pm.Deterministic("corr", D / pt.outer(sd, sd), dims=("random", "random_"))
    if fit.penalty is not None:
        mu, sigma, df = fit.penalty.values()
        pm.Potential("penalty", student_t_kernel_logp(beta, mu, sigma, df))
    if fit.priors is not None:
        theta = pt.concatenate(pieces)
        pm.Potential("log_prior", fit.priors.log_prior(theta, jacobian=True))


def _cholesky_pt(theta_D, q: int, diagonal: bool):
    """The Cholesky factor ``L`` of ``D = L Lᵀ`` from ``θ_D``
    (:mod:`glmm_ppl.engine.covariance`)."""
    if diagonal:
        return pt.diag(pt.exp(theta_D))
    rows, cols = np.tril_indices(q)
    L = pt.set_subtensor(pt.zeros((q, q))[rows, cols], theta_D)
    idx = np.arange(q)
    return pt.set_subtensor(L[idx, idx], pt.exp(L[idx, idx]))


def _latent_model(fit) -> pm.Model:
    """:func:`to_pymc` with ``marginal=False``: every group's random effects explicit."""
    d, family = fit.design, fit.family
    if d.weights is not None:
        raise NotImplementedError(
            "the latent model (marginal=False) has no group weights: a weight replicates a "
            "group's marginal likelihood, random effects included; use marginal=True"
        )
    parts = MixedModelGraph(d, family, fit.n_agq, fit.penalty, fit.priors).split(fit.theta)
    offset = d.offset if d.offset is not None else np.zeros((d.nobs, d.n_eta))
    with pm.Model(coords=posterior_coords(fit)) as model:
        beta, gamma, theta_D, phis, pieces = _parameters(fit, parts)
        eta = pt.dot(pt.constant(d.X), beta) + offset[:, 0]
        if gamma is not None:
            eta_zi = pt.dot(pt.constant(d.X_zi), gamma) + offset[:, 1]
        D = theta_to_D_pt(theta_D, d.q, d.diagonal)
        if d.nested:
            eta = eta + _nested_effects(fit, parts["theta_D"], theta_D)
        else:
            L0 = np.linalg.cholesky(theta_to_D(parts["theta_D"], d.q, d.diagonal))
            z0 = np.linalg.solve(L0, np.asarray(fit.modes, dtype=float).T).T
            group = np.repeat(np.arange(d.n_groups), np.diff(d.starts))
            L = _cholesky_pt(theta_D, d.q, d.diagonal)
            z = pm.Normal("z", 0.0, 1.0, dims=("group", "random"), initval=z0)
            b = pm.Deterministic("b", pt.dot(z, L.T), dims=("group", "random"))
            b_rows = b[group]  # (N, q): each row's group
            eta = eta + pt.sum(pt.constant(d.Z) * b_rows[:, : d.q_main], axis=1)
        data = {name: pt.constant(d.aux[:, k]) for k, name in enumerate(family.aux_names)}
        if family.zero_part:
            if d.Z_zi is not None:
                eta_zi = eta_zi + pt.sum(pt.constant(d.Z_zi) * b_rows[:, d.q_main :], axis=1)
            data["eta_zi"] = eta_zi
        phi_list = [phis[m] for m in range(family.n_phis)]
        logp = family.row_logp(pt.constant(d.y), eta, phi_list, **data)
        pm.Potential("loglik", pt.sum(logp))
        _variance_and_priors(fit, D, beta, pieces)
    return model


def _nested_effects(fit, theta_D0: np.ndarray, theta_D):
    """Each row's ``zᵀb`` of a model with several grouping factors: per factor, free ``z`` of
    its units (dims: the factor and ``random[<factor>]``) and ``b = z Lᵀ`` named
    ``b[<factor>]``, starting at the modes."""
    d = fit.design
    model = pm.modelcontext(None)
    modes = ranef_by_factor(fit)
    total = 0.0
    for factor, (name, _, diagonal, rows, entries) in zip(
        d.factors, d.diagonal.parts(), strict=True
    ):
        q = factor.q
        L0 = np.linalg.cholesky(theta_to_D(theta_D0[entries], q, diagonal))
        z0 = np.linalg.solve(L0, modes[name].to_numpy().T).T
        effects = f"random[{name}]"
        model.add_coord(name, [str(u) for u in factor.labels])
        model.add_coord(effects, list(factor.random_names))
        L = _cholesky_pt(theta_D[entries], q, diagonal)
        z = pm.Normal(f"z[{name}]", 0.0, 1.0, dims=(name, effects), initval=z0)
        b = pm.Deterministic(f"b[{name}]", pt.dot(z, L.T), dims=(name, effects))
        total = total + pt.sum(pt.constant(d.Z[:, rows]) * b[factor.index], axis=1)
    return total


def per_group_loglik(fit, theta: np.ndarray) -> np.ndarray:
    """Each group's marginal log-likelihood at each draw of ``θ`` (shape ``(..., k)``), for
    ``az.loo``; the quadrature is re-centred at every draw. Crossed grouping factors have no
    independent groups, and are refused."""
    if fit.design.crossed:
        raise ValueError(
            "a fit with crossed grouping factors has no per-group log-likelihood: its "
            "likelihood does not split into independent groups"
        )
    graph = MixedModelGraph(fit.design, fit.family, fit.n_agq, fit.penalty, fit.priors)
    graph.engine.modes = fit.modes.copy()
    out = np.empty(theta.shape[:-1] + (fit.n_groups,))
    for idx in np.ndindex(theta.shape[:-1]):
        fixed, D, phis = graph.unpack(theta[idx])
        out[idx] = graph.engine.evaluate(graph.fixed_part(fixed), D, phis, grad=False).per_group
    return out
