"""The PyTensor graph of a mixed model: parameters → transforms → AGQ Op → objective.

``θ = (β, γ, θ_D, log φ)``: fixed effects, fixed effects of the zero part (zero-inflated and
hurdle families only), the log-Cholesky parameters of ``D`` (:mod:`glmm_ppl.covariance`) and the
family's extra parameters on the log scale. The graph is ``η⁰ = [Xβ, X_zi γ] + offset``,
``D = D(θ_D)``, ``φ = exp(log φ)``, ``log L = AGQLogLik(η⁰, D, φ)`` plus the log penalty of
``β`` when there is one, compiled to a function returning the objective, the
log-likelihood and the gradient of the objective.

The compiled function depends only on the model's structure (numbers of fixed and random
effects, diagonal or full ``D``, extra parameters, penalty or not): ``X`` and the penalty's
settings are inputs and the Op reads the data through the engine it is handed, so fitting a
new data set or a new penalty setting reuses the compiled graph.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pytensor
import pytensor.tensor as pt

from .agq import AGQ
from .covariance import D_to_theta, n_theta, theta_names, theta_to_D, theta_to_D_pt
from .design import Design
from .families import Family
from .ops import NUMPY_MODE, AGQLogLik
from .priors import StudentTPenalty, student_t_kernel_logp

if TYPE_CHECKING:  # PyMC is imported only for models with priors
    from .prior_spec import PriorSpec

__all__ = ["MixedModelGraph"]


@lru_cache(maxsize=64)
def _compiled(
    p: int, zero_part: bool, p_zi: int, q: int, diagonal: bool, n_phis: int, penalized: bool
):
    """The compiled objective of one model structure, and its Op."""
    theta = pt.dvector("theta")
    X, X_zi, offset = pt.dmatrix("X"), pt.dmatrix("X_zi"), pt.dmatrix("offset")
    pen_mu, pen_sigma, pen_df = pt.dvector("pen_mu"), pt.dvector("pen_sigma"), pt.dscalar("pen_df")
    t = n_theta(q, diagonal)
    beta, gamma = theta[:p], theta[p : p + p_zi]
    theta_D, log_phis = theta[p + p_zi : p + p_zi + t], theta[p + p_zi + t :]
    eta0 = pt.dot(X, beta)[:, None]
    if zero_part:
        eta0 = pt.concatenate([eta0, pt.dot(X_zi, gamma)[:, None]], axis=1)
    op = AGQLogLik(None)
    loglik = op(eta0 + offset, theta_to_D_pt(theta_D, q, diagonal), pt.exp(log_phis))[0]
    objective = loglik
    if penalized:
        objective = loglik + student_t_kernel_logp(beta, pen_mu, pen_sigma, pen_df)
    fn = pytensor.function(
        [theta, X, X_zi, offset, pen_mu, pen_sigma, pen_df],
        [objective, loglik, pytensor.grad(objective, theta)],
        on_unused_input="ignore",
        mode=NUMPY_MODE,
    )
    fn.trust_input = True
    return fn, op


class MixedModelGraph:
    """Compiled objective of one model on one data set.

    ``θ = (β, γ, θ_D, log φ)``: fixed effects, zero-part fixed effects (none without a zero
    part), the parameters of ``D`` and the log extra parameters.

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
        Names of the entries of ``θ`` (zero-part effects prefixed ``zi_``).

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

    def __init__(
        self,
        design: Design,
        family: Family,
        n_agq: int,
        penalty: StudentTPenalty | None,
        priors: PriorSpec | None = None,
    ):
        self.design, self.family, self.penalty, self.priors = design, family, penalty, priors
        self.p = design.X.shape[1]
        self.p_zi = 0 if design.X_zi is None else design.X_zi.shape[1]
        self.q = design.q
        self.n_theta = n_theta(self.q, design.diagonal)
        self.n_phis = family.n_phis
        self.engine = AGQ(
            design.response_data(),
            design.Z_by_predictor(),
            design.starts,
            family,
            n_agq,
            weights=design.weights,
        )
        self.names = (
            list(design.fixed_names)
            + [f"zi_{name}" for name in design.zi_fixed_names]
            + theta_names(self.q, design.diagonal)
            + [f"log({name})" for name in family.phi_names]
        )
        self._fn, self._op = _compiled(
            self.p,
            design.n_eta == 2,
            self.p_zi,
            self.q,
            design.diagonal,
            self.n_phis,
            penalty is not None,
        )
        N = design.nobs
        self._X = np.ascontiguousarray(design.X, dtype=np.float64)
        X_zi = design.X_zi if design.X_zi is not None else np.zeros((N, 0))
        self._X_zi = np.ascontiguousarray(X_zi, dtype=np.float64)
        offset = design.offset if design.offset is not None else np.zeros((N, design.n_eta))
        self._offset = np.ascontiguousarray(offset, dtype=np.float64)
        if penalty is None:
            self._pen = (np.zeros(0), np.zeros(0), np.asarray(1.0))
        else:
            mu, sigma, df = penalty.values()
            self._pen = (np.asarray(mu, float), np.asarray(sigma, float), np.asarray(df, float))

    def __call__(self, theta: np.ndarray) -> tuple[float, float, np.ndarray]:
        """``(objective, log-likelihood, ∂objective/∂θ)`` at ``θ``; the objective adds the log
        penalty and the log priors (without Jacobian: the MAP objective)."""
        self._op.engine = self.engine
        theta = np.asarray(theta, dtype=np.float64)
        obj, ll, grad = self._fn(theta, self._X, self._X_zi, self._offset, *self._pen)
        if self.priors is not None:
            lp, g = self.priors.compiled()(theta)
            obj, grad = obj + lp, grad + g
        return float(obj), float(ll), grad

    def log_prior(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log penalty plus log priors at ``θ`` and their gradient (NumPy)."""
        theta = np.asarray(theta, dtype=np.float64)
        value, grad = 0.0, np.zeros(len(theta))
        if self.penalty is not None:
            beta = theta[: self.p]
            value += self.penalty.logp_numpy(beta)
            grad[: self.p] += self.penalty.grad_numpy(beta)
        if self.priors is not None:
            lp, g = self.priors.compiled()(theta)
            value, grad = value + float(lp), grad + g
        return value, grad

    # ---- θ ↔ parameters ----------------------------------------------------------------
    def split(self, theta: np.ndarray) -> dict:
        """The blocks of ``θ``: ``beta``, ``gamma`` (zero part), ``theta_D``, ``log_phis``."""
        theta = np.asarray(theta, dtype=float)
        p, pz, t = self.p, self.p_zi, self.n_theta
        return {
            "beta": theta[:p],
            "gamma": theta[p : p + pz],
            "theta_D": theta[p + pz : p + pz + t],
            "log_phis": theta[p + pz + t :],
        }

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(fixed effects, D, φ)`` from ``θ``; the fixed effects are ``(β, γ)`` joined."""
        parts = self.split(theta)
        D = theta_to_D(parts["theta_D"], self.q, self.design.diagonal)
        fixed = np.concatenate([parts["beta"], parts["gamma"]])
        return fixed, D, np.exp(parts["log_phis"])

    def pack(self, fixed, D, phis) -> np.ndarray:
        """``θ`` from ``(fixed effects (β, γ), D, φ)``."""
        return np.concatenate(
            [np.asarray(fixed, float), D_to_theta(D, self.design.diagonal), np.log(phis)]
        )

    def fixed_part(self, fixed: np.ndarray) -> np.ndarray:
        """``η⁰`` (N, E) of the fixed effects ``(β, γ)``, offsets included."""
        fixed = np.asarray(fixed, dtype=float)
        return self.design.fixed_part(fixed[: self.p], fixed[self.p :])

    def fixed_designs(self) -> list[np.ndarray]:
        """The fixed-effects design of each linear predictor."""
        return [self._X] + ([self._X_zi] if self.design.n_eta == 2 else [])
