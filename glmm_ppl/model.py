"""The PyTensor graph of a mixed model: parameters → transforms → AGQ Op → objective.

``θ = (β, θ_D, log φ)``: fixed effects, the log-Cholesky parameters of ``D``
(:mod:`glmm_ppl.covariance`) and the family's extra parameters on the log scale. The graph is
``η⁰ = Xβ``, ``D = D(θ_D)``, ``φ = exp(log φ)``, ``log L = AGQLogLik(η⁰, D, φ)`` plus the log
prior of ``β`` when there is one; it is compiled once to a function returning the objective,
the log-likelihood and the gradient of the objective.
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt

from .agq import AGQ
from .covariance import D_to_theta, n_theta, theta_names, theta_to_D, theta_to_D_pt
from .design import Design
from .families import Family
from .ops import AGQLogLik
from .priors import StudentTPenalty

__all__ = ["MixedModelGraph"]


class MixedModelGraph:
    """Compiled objective of one model on one data set.

    Parameters
    ----------
    design : Design
    family : Family
    n_agq : int
    penalty : StudentTPenalty or None

    Attributes
    ----------
    engine : AGQ
        The quadrature engine behind the Op (it holds the current modes).
    names : list of str
        Names of the entries of ``θ``.
    """

    def __init__(self, design: Design, family: Family, n_agq: int, penalty: StudentTPenalty | None):
        self.design, self.family, self.penalty = design, family, penalty
        self.p = design.X.shape[1]
        self.q = design.Z.shape[1]
        self.n_theta = n_theta(self.q, design.diagonal)
        self.n_phis = family.n_phis
        self.engine = AGQ(design.y, design.Z, design.starts, family, n_agq)
        self.names = (
            list(design.fixed_names)
            + theta_names(self.q, design.diagonal)
            + [f"log({name})" for name in family.phi_names]
        )

        theta = pt.dvector("theta")
        beta, theta_D, log_phis = self._split(theta)
        eta0 = pt.dot(pt.constant(design.X), beta)
        D = theta_to_D_pt(theta_D, self.q, design.diagonal)
        loglik = AGQLogLik(self.engine)(eta0, D, pt.exp(log_phis))[0]
        objective = loglik if penalty is None else loglik + penalty.logp(beta)
        self._fn = pytensor.function(
            [theta], [objective, loglik, pytensor.grad(objective, theta)]
        )
        self._fn.trust_input = True

    def _split(self, theta):
        p, t = self.p, self.n_theta
        return theta[:p], theta[p : p + t], theta[p + t :]

    def __call__(self, theta: np.ndarray) -> tuple[float, float, np.ndarray]:
        """``(objective, log-likelihood, ∂objective/∂θ)`` at ``θ``."""
        obj, ll, grad = self._fn(np.asarray(theta, dtype=np.float64))
        return float(obj), float(ll), grad

    # ---- θ ↔ parameters ----------------------------------------------------------------
    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(β, D, φ)`` from ``θ``."""
        beta, theta_D, log_phis = self._split(np.asarray(theta, dtype=float))
        return beta, theta_to_D(theta_D, self.q, self.design.diagonal), np.exp(log_phis)

    def pack(self, beta, D, phis) -> np.ndarray:
        """``θ`` from ``(β, D, φ)``."""
        return np.concatenate(
            [np.asarray(beta, float), D_to_theta(D, self.design.diagonal), np.log(phis)]
        )

    def eta0(self, beta: np.ndarray) -> np.ndarray:
        return self.design.X @ beta
