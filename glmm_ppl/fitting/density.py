"""The density of ``θ`` for samplers from any quadrature engine.

:class:`~glmm_ppl.engine.log_density.LogDensity` fuses the one-level engine's Newton steps,
quadrature and gradient into one compiled call; models with several grouping factors take
this plainer route: the engine's log-likelihood and gradients (fixed-node ones of the
multilevel quadrature for nested factors, the exact ones of the joint Laplace approximation
for crossed factors, whose per-group values are the one total), chained to ``θ`` in NumPy,
plus the log prior. It has its own copy of the engine (and of its modes), so each thread can
have one; the engine re-centres its modes at every ``θ``, from where the last call left them.
"""

from __future__ import annotations

import numpy as np

from ..engine.covariance import theta_to_D
from .glm import central_differences

__all__ = ["EngineDensity"]


class EngineDensity:
    """``θ ↦ (log density, gradient, per-group log-likelihoods)`` of a
    :class:`~glmm_ppl.fitting.graph.MixedModelGraph`'s model.

    Parameters
    ----------
    graph : MixedModelGraph
    log_prior : callable or None
        ``θ ↦ (log prior, gradient)``, with the Jacobian of the log-scale parameters.
    modes : ndarray, optional
        Where the engine's modes start.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fit = gp.mixed_model("y ~ x + ses + (1 | school/class)", data=gp.load_schools(),
    ...                      family="binomial")
    >>> from glmm_ppl.fitting.graph import MixedModelGraph
    >>> graph = MixedModelGraph(fit.design, fit.family, fit.n_agq, None)
    >>> value, grad, per_group = EngineDensity(graph, None, fit.modes)(fit.theta)
    >>> round(value - fit.loglik, 8), per_group.shape
    (0.0, (60,))
    """

    def __init__(self, graph, log_prior=None, modes=None):
        self.graph, self.log_prior = graph, log_prior
        self.engine = graph.engine.copy()
        if modes is not None:
            self.engine.modes = np.array(modes, dtype=float).reshape(self.engine.modes.shape)

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        g, theta = self.graph, np.asarray(theta, dtype=float)
        fixed, D, phis = g.unpack(theta)
        res = self.engine.evaluate(g.fixed_part(fixed), D, phis, grad=True)
        if not np.isfinite(res.loglik):
            return -np.inf, np.zeros(len(theta)), res.per_group
        grad_eta = res.grad_eta.reshape(len(g.X), -1)
        parts = g.split(theta)
        J = central_differences(
            lambda t: theta_to_D(t, g.q, g.design.diagonal).ravel(), parts["theta_D"], 1e-6
        )
        grad = np.concatenate(
            [X.T @ grad_eta[:, e] for e, X in enumerate(g.fixed_designs())]
            + [J.T @ res.grad_D.ravel(), phis * res.grad_phis]
        )
        value = float(res.loglik)
        if self.log_prior is not None:
            lp, g_prior = self.log_prior(theta)
            value, grad = value + float(lp), grad + g_prior
        return value, grad, res.per_group
