"""The PyTensor graph of a mixed model: parameters → transforms → AGQ Op → objective.

``θ = (β, θ_D, log φ)``: fixed effects, the log-Cholesky parameters of ``D``
(:mod:`glmm_ppl.covariance`) and the family's extra parameters on the log scale. The graph is
``η⁰ = Xβ``, ``D = D(θ_D)``, ``φ = exp(log φ)``, ``log L = AGQLogLik(η⁰, D, φ)`` plus the log
penalty of ``β`` when there is one, compiled to a function returning the objective, the
log-likelihood and the gradient of the objective.

The compiled function depends only on the model's structure (numbers of fixed and random
effects, diagonal or full ``D``, extra parameters, penalty or not): ``X`` and the penalty's
settings are inputs and the Op reads the data through the engine it is handed, so fitting a
new data set or a new penalty setting reuses the compiled graph.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytensor
import pytensor.tensor as pt

from .agq import AGQ
from .covariance import D_to_theta, n_theta, theta_names, theta_to_D, theta_to_D_pt
from .design import Design
from .families import Family
from .ops import AGQLogLik
from .priors import StudentTPenalty, student_t_kernel_logp

__all__ = ["MixedModelGraph"]


# The graph around the Op is a few small operations: run them with NumPy (the "py" linker)
# rather than compile C for each (20-30 s on an empty cache, for ~60 µs saved per call).
_MODE = pytensor.compile.mode.Mode(linker="py", optimizer="fast_run")


@lru_cache(maxsize=64)
def _compiled(p: int, q: int, diagonal: bool, n_phis: int, penalized: bool):
    """The compiled objective of one model structure, and its Op."""
    theta = pt.dvector("theta")
    X = pt.dmatrix("X")
    pen_mu, pen_sigma, pen_df = pt.dvector("pen_mu"), pt.dvector("pen_sigma"), pt.dscalar("pen_df")
    t = n_theta(q, diagonal)
    beta, theta_D, log_phis = theta[:p], theta[p : p + t], theta[p + t :]
    op = AGQLogLik(None)
    loglik = op(pt.dot(X, beta), theta_to_D_pt(theta_D, q, diagonal), pt.exp(log_phis))[0]
    objective = loglik
    if penalized:
        objective = loglik + student_t_kernel_logp(beta, pen_mu, pen_sigma, pen_df)
    fn = pytensor.function(
        [theta, X, pen_mu, pen_sigma, pen_df],
        [objective, loglik, pytensor.grad(objective, theta)],
        on_unused_input="ignore",
        mode=_MODE,
    )
    fn.trust_input = True
    return fn, op


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

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.design import build_design
    >>> df = gp.load_vignette("binary")
    >>> fam = gp.families.binomial()
    >>> graph = MixedModelGraph(build_design("y ~ time", "~ 1 | id", df, fam), fam, 11, None)
    >>> graph.names
    ['(Intercept)', 'time', 'D_11']
    >>> objective, loglik, grad = graph(np.zeros(3))
    >>> grad.shape
    (3,)
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
        self._fn, self._op = _compiled(
            self.p, self.q, design.diagonal, self.n_phis, penalty is not None
        )
        self._X = np.ascontiguousarray(design.X, dtype=np.float64)
        if penalty is None:
            self._pen = (np.zeros(0), np.zeros(0), np.asarray(1.0))
        else:
            mu, sigma, df = penalty.values()
            self._pen = (np.asarray(mu, float), np.asarray(sigma, float), np.asarray(df, float))

    def __call__(self, theta: np.ndarray) -> tuple[float, float, np.ndarray]:
        """``(objective, log-likelihood, ∂objective/∂θ)`` at ``θ``."""
        self._op.engine = self.engine
        obj, ll, grad = self._fn(np.asarray(theta, dtype=np.float64), self._X, *self._pen)
        return float(obj), float(ll), grad

    # ---- θ ↔ parameters ----------------------------------------------------------------
    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(β, D, φ)`` from ``θ``."""
        theta = np.asarray(theta, dtype=float)
        p, t = self.p, self.n_theta
        D = theta_to_D(theta[p : p + t], self.q, self.design.diagonal)
        return theta[:p], D, np.exp(theta[p + t :])

    def pack(self, beta, D, phis) -> np.ndarray:
        """``θ`` from ``(β, D, φ)``."""
        return np.concatenate(
            [np.asarray(beta, float), D_to_theta(D, self.design.diagonal), np.log(phis)]
        )
