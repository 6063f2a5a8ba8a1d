"""The marginal model's log posterior density of ``θ`` and its gradient, in NumPy.

It is the density of :func:`glmm_ppl.to_pymc`'s marginal model: the AGQ log-likelihood, plus
the penalty, plus the priors with the Jacobian of their log-scale parameters (flat where there
is no prior). The chain rule through ``η⁰ = Xβ (+ X_zi γ)``, ``D(θ_D)`` and ``φ = exp(log φ)``
is written out rather than compiled, and each :class:`LogDensity` holds its own engine (its
own modes), so several can run at once, one per thread, as a sampler's chains do. The tests
check it against PyTensor's gradient of the PyMC model.
"""

from __future__ import annotations

import numpy as np

from .covariance import theta_to_D_vjp
from .model import MixedModelGraph

__all__ = ["LogDensity"]


class LogDensity:
    """``θ ↦ (log density, gradient, per-group log-likelihoods)`` of a fitted model.

    Parameters
    ----------
    graph : MixedModelGraph
        The model; its engine is copied (data shared, modes private).
    modes : ndarray (n, q), optional
        Where the quadrature starts (the fit's empirical Bayes modes).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.model import MixedModelGraph
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> graph = MixedModelGraph(fm1.design, fm1.family, fm1.n_agq, fm1.penalty, fm1.priors)
    >>> value, grad, per_group = LogDensity(graph, fm1.modes)(fm1.theta)
    >>> bool(abs(value - fm1.loglik) < 1e-6), grad.shape, per_group.shape
    (True, (3,), (100,))
    """

    def __init__(self, graph: MixedModelGraph, modes=None):
        self.graph = graph
        self.engine = graph.engine.copy()
        if modes is not None:
            self.engine.modes = np.array(modes, dtype=float).reshape(self.engine.modes.shape)
        self._designs = graph.fixed_designs()
        self._priors = None if graph.priors is None else graph.priors.compiled(True).copy()

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        g = self.graph
        theta = np.asarray(theta, dtype=float)
        parts = g.split(theta)
        fixed, D, phis = g.unpack(theta)
        res = self.engine.evaluate(g.fixed_part(fixed), D, phis)
        grad = np.zeros(len(theta))
        if not np.isfinite(res.loglik):
            return -np.inf, grad, res.per_group
        grad_eta = np.reshape(res.grad_eta, (g.design.nobs, -1))
        fixed_grad = [X.T @ grad_eta[:, e] for e, X in enumerate(self._designs)]
        p, t = g.p + g.p_zi, g.n_theta
        grad[:p] = np.concatenate(fixed_grad)
        grad[p : p + t] = theta_to_D_vjp(parts["theta_D"], res.grad_D, g.q, g.design.diagonal)
        grad[p + t :] = res.grad_phis * phis
        value = res.loglik
        if g.penalty is not None:
            value += g.penalty.logp_numpy(parts["beta"])
            grad[: g.p] += g.penalty.grad_numpy(parts["beta"])
        if self._priors is not None:
            lp, g_prior = self._priors(theta)
            value, grad = value + float(lp), grad + g_prior
        return float(value), grad, res.per_group
