"""What the optimizer asks of one evaluation of the AGQ engine, reduced to ``θ``'s size.

EM needs ``Σ_e X_eᵀ ∂/∂η⁰_e``, ``Σ_ef X_eᵀ diag(w_ef) X_f`` and the second moments of the
random effects; Fisher scoring needs the per-group scores ``s_i = w_i ∂ log L_i/∂θ``, summed
and as the outer product ``Σ_i s_i s_iᵀ / w_i``. Each is a sum over groups, so a model split
into shards of whole groups adds up the shards' pieces (:mod:`glmm_ppl.distributed`).
"""

from __future__ import annotations

import numpy as np

from ..engine.covariance import Blocks, D_derivatives, project, theta_to_D
from .glm import central_differences, fit_glm_arrays, log_phi_hessian

__all__ = [
    "fixed_gradient",
    "fixed_hessian",
    "glm_start",
    "louis_hessian",
    "per_group_scores",
    "scoring_information",
    "second_moment_units",
    "unit_counts",
]


def fixed_gradient(designs: list[np.ndarray], grad_eta: np.ndarray) -> np.ndarray:
    """``Σ_e X_eᵀ ∂/∂η⁰_e``: the gradient in the fixed effects ``(β, γ)``."""
    grad_eta = grad_eta.reshape(len(grad_eta), -1)
    return np.concatenate([X.T @ grad_eta[:, e] for e, X in enumerate(designs)])


def fixed_hessian(designs: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """``Σ_ef X_eᵀ diag(w_ef) X_f`` from per-row second-derivative weights (upper triangle of
    the predictors' pairs, as :func:`glmm_ppl.engine.pointwise.output_layout`)."""
    sizes = np.cumsum([0] + [X.shape[1] for X in designs])
    H = np.zeros((sizes[-1], sizes[-1]))
    k = 0
    for e in range(len(designs)):
        for f in range(e, len(designs)):
            block = designs[e].T @ (weights[:, k][:, None] * designs[f])
            H[sizes[e] : sizes[e + 1], sizes[f] : sizes[f + 1]] = block
            H[sizes[f] : sizes[f + 1], sizes[e] : sizes[e + 1]] = block.T
            k += 1
    return H


def louis_hessian(graph, theta: np.ndarray, res, designs: list[np.ndarray]) -> np.ndarray:
    """The Hessian of the log-likelihood in ``θ = (β, γ, θ_D, log φ)`` with the nodes fixed,
    exactly, from one evaluation with ``designs``.

    Louis' identity, per group: ``∇² log L_i = E_π[∇² log f_ik] + Cov_π(∇ log f_ik)`` over
    the nodes' posterior weights. The first part is ``Σ_ef X_eᵀ diag(w_ef) X_f`` for the fixed
    effects; for ``D``, the Hessian of ``−(n/2) log|D| − ½ tr(D⁻¹S)`` at the fixed second
    moments ``S``; for ``φ``, ``Σ_e X_eᵀ E_π[∂²ℓ/∂η_e∂φ]`` and ``E_π[Σ ∂²ℓ/∂φ∂φ]`` (0
    between ``D`` and ``φ``). The second is ``res.score_covariance``, mapped to ``θ`` (the
    score in ``θ_D`` is ``½ tr(D⁻¹ ∂D D⁻¹ b bᵀ)`` plus a constant, that in ``log φ`` is ``φ``
    times that in ``φ``).
    """
    d = graph.design
    nf, q, M = graph.p + graph.p_zi, graph.q, graph.n_phis
    _, D, phis = graph.unpack(theta)
    dD, d2D = D_derivatives(graph.split(theta)["theta_D"], q, d.diagonal)
    T = len(dD)
    Dinv = np.linalg.inv(D)
    n = float(d.n_groups if d.weights is None else d.weights.sum())
    outer = Dinv @ res.second_moment @ Dinv
    G = 0.5 * outer - 0.5 * n * Dinv  # ∂/∂D
    dG = -0.5 * (Dinv @ dD @ outer + outer @ dD @ Dinv) + 0.5 * n * (Dinv @ dD @ Dinv)
    H = np.zeros((graph.layout.size, graph.layout.size))
    H[:nf, :nf] = fixed_hessian(designs, res.hess_weights)
    D_block = slice(nf, nf + T)
    H[D_block, D_block] = np.einsum("ab,tsab->ts", G, d2D) + np.einsum("sab,tab->ts", dG, dD)
    phi = slice(nf + T, nf + T + M)
    if M:
        cross, H[phi, phi] = log_phi_hessian(
            designs, res.hess_eta_phis, res.hess_phis, res.grad_phis, phis
        )
        H[:nf, phi], H[phi, :nf] = cross, cross.T
    to_theta = np.zeros((nf + T + M, nf + q * q + M))
    to_theta[:nf, :nf] = np.eye(nf)
    to_theta[D_block, nf : nf + q * q] = 0.5 * (Dinv @ dD @ Dinv).reshape(T, q * q)
    to_theta[nf + T :, nf + q * q :] = np.diag(phis)
    H[: nf + T + M, : nf + T + M] += to_theta @ res.score_covariance @ to_theta.T
    return H


def scoring_information(outer: np.ndarray, block: np.ndarray | None) -> np.ndarray:
    """The scoring step's information: the outer product of the per-group scores, with the
    exact ``−∇²log L`` in place of its leading block where that is given and the whole stays
    positive definite (the steps are then Newton's in those parameters)."""
    if block is None:
        return outer
    mixed = outer.copy()
    k = len(block)
    mixed[:k, :k] = block
    try:
        np.linalg.cholesky(mixed)
    except np.linalg.LinAlgError:
        return outer
    return mixed


def second_moment_units(design, res, n: float):
    """What EM divides the second moments by: the (weighted) number of groups ``n``, or with
    several grouping factors each block's number of levels (1 off the blocks, which are 0)."""
    if not isinstance(design.diagonal, Blocks):
        return n
    return np.maximum(unit_counts(design, res).sum(axis=0), 1.0)


def unit_counts(design, res) -> np.ndarray | float:
    """Per group, the number of units of each factor behind each entry of ``D``, (n, q, q)
    (1 with one grouping factor)."""
    if not isinstance(design.diagonal, Blocks):
        return 1.0
    out = np.zeros((len(res.unit_counts), design.q, design.q))
    for k, (_, _, _, rows, _) in enumerate(design.diagonal.parts()):
        out[:, rows, rows] = res.unit_counts[:, k, None, None]
    return out


def per_group_scores(graph, theta: np.ndarray, res) -> np.ndarray:
    """Per-group scores ``w_i ∂ log L_i / ∂θ`` (n × k) from one evaluation with gradients
    (``w_i`` the group weights, 1 without).

    ``∂/∂β = X_iᵀ ∂/∂η⁰_i`` (and ``X_zi,iᵀ`` for ``γ``); ``∂/∂D = ½ D⁻¹ S_i D⁻¹ − ½ D⁻¹``
    chained to the log-Cholesky parameters; ``∂/∂ log φ = φ ∂/∂φ``.
    """
    d = graph.design
    _, D, phis = graph.unpack(theta)
    Dinv = np.linalg.inv(D)
    q = graph.q
    grad_eta = res.grad_eta.reshape(d.nobs, -1)
    rows = np.hstack([X * grad_eta[:, [e]] for e, X in enumerate(graph.fixed_designs())])
    s_fixed = np.add.reduceat(rows, d.starts[:-1], axis=0)
    G = 0.5 * (Dinv @ res.second_moment_groups @ Dinv - Dinv * unit_counts(d, res))
    J = central_differences(
        lambda th: theta_to_D(th, q, d.diagonal).ravel(), graph.split(theta)["theta_D"], 1e-6
    )
    s_D = G.reshape(len(G), q * q) @ J
    s_phi = res.grad_phis_groups * phis
    if d.weights is not None:
        s_D, s_phi = s_D * d.weights[:, None], s_phi * d.weights[:, None]
    return np.hstack([s_fixed, s_D, s_phi])


def glm_start(graph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fixed effects, D, φ)`` to start from: a GLM without random effects for the fixed
    effects and ``φ``, and a diagonal ``D`` scaled to the random-effects design."""
    d = graph.design
    fixed, phis, _, _ = fit_glm_arrays(
        graph.fixed_designs(), d.response_data(), graph.family, d.offset, polish=False
    )
    sd = np.concatenate([d.Z.std(axis=0)] + ([d.Z_zi.std(axis=0)] if d.Z_zi is not None else []))
    scale = np.where(sd > 0, 1.0 / np.maximum(sd, 1.0), 1.0)
    if graph.family.link.name == "identity" and graph.family.n_eta == 1:
        # the linear predictor is on the response's scale: random effects of the size of the
        # GLM's residuals, whatever the units (a response in 1e12 or 1e-8 starts where it is)
        eta = graph.fixed_part(fixed)[:, 0]
        spread = float(np.sqrt(np.mean((d.y - eta) ** 2)))
        if np.isfinite(spread) and spread > 0:
            scale = scale * spread
    return fixed, project(np.diag(scale**2), d.diagonal), phis
