"""The PyTensor graph of a mixed model: parameters → transforms → AGQ Op → objective.

``θ = (β, γ, θ_D, log φ)``: fixed effects, fixed effects of the zero part (zero-inflated and
hurdle families only), the log-Cholesky parameters of ``D`` (:mod:`glmm_ppl.engine.covariance`;
the layout of ``θ`` is :class:`~glmm_ppl.fitting.parameters.ParameterLayout`) and the
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

import threading
import weakref
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import pytensor
import pytensor.tensor as pt

from ..design.matrices import Design
from ..engine.agq import AGQ
from ..engine.covariance import Blocks, D_to_theta, theta_to_D, theta_to_D_pt
from ..engine.log_density import LogDensity
from ..engine.ops import COMPILE_LOCK, NUMPY_MODE, AGQLogLik
from ..families import Family
from .glm import central_differences, log_phi_hessian
from .parameters import ParameterLayout
from .penalty import StudentTPenalty, student_t_kernel_logp
from .statistics import (
    fixed_gradient,
    fixed_hessian,
    glm_start,
    louis_hessian,
    per_group_scores,
    scoring_information,
    second_moment_units,
)

__all__ = ["MixedModelGraph", "ModelParameters", "quadrature_engine"]


_PER_THREAD = threading.local()  # each thread's copies of the compiled functions


@lru_cache(maxsize=64)
def _compiled(sizes: ParameterLayout, zero_part: bool, penalized: bool):
    """The compiled objective of one model structure (``sizes``: a layout whose names are
    placeholders), and its Op."""
    theta = pt.dvector("theta")
    X, X_zi, offset = pt.dmatrix("X"), pt.dmatrix("X_zi"), pt.dmatrix("offset")
    pen_mu, pen_sigma, pen_df = pt.dvector("pen_mu"), pt.dvector("pen_sigma"), pt.dscalar("pen_df")
    parts = sizes.split(theta)
    beta, gamma = parts["beta"], parts["gamma"]
    eta0 = pt.dot(X, beta)[:, None]
    if zero_part:
        eta0 = pt.concatenate([eta0, pt.dot(X_zi, gamma)[:, None]], axis=1)
    op = AGQLogLik(None)
    D = theta_to_D_pt(parts["theta_D"], sizes.q, sizes.diagonal)
    loglik = op(eta0 + offset, D, pt.exp(parts["log_phis"]))[0]
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


def _for_thread(structure: tuple):
    """The compiled objective of one model structure for the calling thread, and its Op: a
    compiled function holds its inputs and outputs in storage of its own, so each thread calls
    its own copy (2 ms to make, kept while the thread lives); the Op reads the engine bound in
    the calling thread."""
    functions = _PER_THREAD.__dict__.setdefault("objectives", {})
    found = functions.get(structure)
    if found is None:
        with COMPILE_LOCK:
            fn, op = _compiled(*structure)
            own = fn.copy()
        own.trust_input = True
        found = functions[structure] = (own, op)
    return found


def _priors_for_thread(priors, jacobian: bool):
    """The compiled log prior of ``priors`` for the calling thread (a copy per thread, as the
    objective; forgotten with the priors)."""
    by_spec = _PER_THREAD.__dict__.setdefault("priors", weakref.WeakKeyDictionary())
    mine = by_spec.setdefault(priors, {})
    if jacobian not in mine:
        with COMPILE_LOCK:
            mine[jacobian] = priors.compiled(jacobian).copy()
    return mine[jacobian]


def quadrature_engine(design: Design, family: Family, n_agq: int):
    """The quadrature engine of the design: multilevel with several nested grouping
    factors, the joint Laplace approximation with crossed ones (and with nested ones at one
    point, where it is the same approximation with exact gradients, while its dense block
    stays small: its cost grows as the cube of that block, the multilevel engine's linearly
    in the units)."""
    if design.crossed or (design.nested and n_agq == 1 and _dense_block(design) <= 1000):
        from ..engine.laplace import JointLaplace

        if n_agq != 1:
            raise ValueError(
                f"n_agq={n_agq} with crossed grouping factors: their likelihood does not split "
                "into independent groups, so it cannot be integrated group by group by "
                "quadrature; crossed factors are fitted by the Laplace approximation "
                "(n_agq=1, the default for them)"
            )
        levels = design.levels
        return JointLaplace(
            design.response_data(), design.Z, levels, tuple(f.q for f in design.factors),
            family, weights=design.weights, groups=None if design.crossed else levels[:, 0],
        )  # fmt: skip
    if design.nested:
        from ..engine.multilevel import MultilevelAGQ

        return MultilevelAGQ(
            design.response_data(),
            design.Z,
            design.levels,
            tuple(f.q for f in design.factors),
            family,
            n_agq,
            weights=design.weights,
        )
    return AGQ(
        design.response_data(),
        design.Z_by_predictor(),
        design.starts,
        family,
        n_agq,
        weights=design.weights,
    )


def _dense_block(design: Design) -> int:
    """The random effects of every factor but the largest (the joint Laplace engine's dense
    block)."""
    sizes = [f.n_units * f.q for f in design.factors]
    return sum(sizes) - max(sizes)


class ModelParameters:
    """What a model's objective does with ``θ`` apart from the likelihood: the maps between
    ``θ`` and ``(fixed effects, D, φ)`` and the log penalty and priors. Subclasses set
    ``design``, ``layout``, ``penalty``, ``priors``, ``p`` and ``q``."""

    def log_prior(self, theta: np.ndarray, jacobian: bool = False) -> tuple[float, np.ndarray]:
        """Log penalty plus log priors at ``θ`` and their gradient (NumPy); ``jacobian``: with
        the log-Jacobian of the priors' log-scale parameters (the density of ``θ`` that a
        sampler needs, where the MAP objective has none)."""
        return _log_prior(theta, self.p, self.penalty, self._priors_fn(jacobian))

    #: Whether :meth:`fixed_node_hessian` answers (one grouping factor).
    exact_hessian = False

    @property
    def hessian_evaluations(self) -> int:
        """The evaluations one :meth:`hessian` costs."""
        return 1 if self.exact_hessian else 2 * self.layout.size

    def fixed_node_hessian(self, theta: np.ndarray) -> np.ndarray | None:
        """The exact fixed-node Hessian of the log-likelihood at ``θ``, the nodes where they
        are (:func:`~.statistics.louis_hessian`), where :attr:`exact_hessian`; None where it
        cannot be had (a singular ``D``)."""
        raise NotImplementedError

    def hessian(self, theta: np.ndarray, step: float, likelihood=None) -> np.ndarray:
        """Hessian of the objective at ``θ`` with the nodes where they are.

        Where :attr:`exact_hessian`, :meth:`fixed_node_hessian` from one evaluation (or
        ``likelihood``, that Hessian when it is at hand), with the penalty's and priors'
        Hessian by central differences of their gradients (steps of ``step``); otherwise
        central differences of the objective's gradient in every column.
        """
        H = None
        if self.exact_hessian:
            H = self.fixed_node_hessian(theta) if likelihood is None else likelihood.copy()
        if H is None or not np.all(np.isfinite(H)):
            with self.fixed_nodes():
                H = central_differences(lambda t: self(t)[2], theta, step)
            return 0.5 * (H + H.T)
        if self.penalty is not None or self.priors is not None:
            prior = central_differences(lambda t: self.log_prior(t)[1], theta, step)
            H += 0.5 * (prior + prior.T)
        return H

    def _priors_fn(self, jacobian: bool):
        return None if self.priors is None else _priors_for_thread(self.priors, jacobian)

    # ---- θ ↔ parameters ----------------------------------------------------------------
    def split(self, theta: np.ndarray) -> dict:
        """The blocks of ``θ``: ``beta``, ``gamma`` (zero part), ``theta_D``, ``log_phis``."""
        return self.layout.split(theta)

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


class MixedModelGraph(ModelParameters):
    """Compiled objective of one model on one data set.

    ``θ = (β, γ, θ_D, log φ)``: fixed effects, zero-part fixed effects (none without a zero
    part), the parameters of ``D`` and the log extra parameters, laid out by :attr:`layout`.

    Parameters
    ----------
    design : Design
    family : Family
    n_agq : int
    penalty : StudentTPenalty or None
    priors : PriorSpec or None
        The model's PyMC priors (:func:`glmm_ppl.bayes.priors.make_priors`).

    Attributes
    ----------
    engine : AGQ
        The quadrature engine behind the Op (it holds the current modes).
    layout : ParameterLayout
        Where each block of ``θ`` sits and its names; ``p``, ``p_zi``, ``q``, ``n_theta``
        and ``n_phis`` are its sizes.
    names : list of str
        Names of the entries of ``θ`` (zero-part effects prefixed ``zi_``).
    X, X_zi, offset : ndarray
        The fixed-effects designs (``X_zi`` has no columns without a zero part) and the
        offsets of each linear predictor, ``(N, E)``.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.design.matrices import build_design
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
        priors=None,
    ):
        self.design, self.family, self.penalty, self.priors = design, family, penalty, priors
        self.layout = layout = ParameterLayout.of(design, family)
        self.p, self.p_zi, self.q = layout.p, layout.p_zi, layout.q
        self.n_theta, self.n_phis = layout.n_theta_D, layout.n_phis
        self.names = layout.names
        self.engine = quadrature_engine(design, family, n_agq)
        # one grouping factor: the exact fixed-node Hessian from one pass (Louis' identity)
        self.exact_hessian = type(self.engine) is AGQ
        structure = layout.diagonal
        if isinstance(structure, Blocks):
            structure = Blocks(("",) * len(structure.sizes), structure.sizes, structure.diagonal)
        sizes = ParameterLayout(  # the compiled graph depends on the sizes only
            ("",) * layout.p, ("",) * layout.p_zi, ("",) * layout.q, structure,
            ("",) * layout.n_phis,
        )  # fmt: skip
        self._structure = (sizes, design.n_eta == 2, penalty is not None)
        N = design.nobs
        self.X = np.ascontiguousarray(design.X, dtype=np.float64)
        X_zi = design.X_zi if design.X_zi is not None else np.zeros((N, 0))
        self.X_zi = np.ascontiguousarray(X_zi, dtype=np.float64)
        offset = design.offset if design.offset is not None else np.zeros((N, design.n_eta))
        self.offset = np.ascontiguousarray(offset, dtype=np.float64)
        if penalty is None:
            self._pen = (np.zeros(0), np.zeros(0), np.asarray(1.0))
        else:
            mu, sigma, df = penalty.values()
            self._pen = (np.asarray(mu, float), np.asarray(sigma, float), np.asarray(df, float))

    def __call__(self, theta: np.ndarray) -> tuple[float, float, np.ndarray]:
        """``(objective, log-likelihood, ∂objective/∂θ)`` at ``θ``; the objective adds the log
        penalty (in the graph) and the log priors (without Jacobian: the MAP objective)."""
        fn, op = _for_thread(self._structure)
        theta = np.asarray(theta, dtype=np.float64)
        # far out along a line search exp(θ) overflows and D has infinities: the objective
        # is then not finite, which the optimizers handle, without NumPy's warnings
        with op.bound(self.engine), np.errstate(over="ignore", invalid="ignore"):
            obj, ll, grad = fn(theta, self.X, self.X_zi, self.offset, *self._pen)
        if self.priors is not None:
            lp, g = _priors_for_thread(self.priors, False)(theta)
            obj, grad = obj + lp, grad + g
        return float(obj), float(ll), grad

    def log_density(self, modes=None) -> LogDensity:
        """The density of ``θ`` for samplers (:class:`~glmm_ppl.engine.log_density.LogDensity`):
        the log-likelihood plus the penalty and the priors with their Jacobian. It has its own
        copy of the engine's modes and of the compiled priors, so each thread can have one."""
        priors_fn = None
        if self.priors is not None:  # the density's own copy: it may move to another thread
            with COMPILE_LOCK:
                priors_fn = self.priors.compiled(True).copy()
        log_prior = None
        if self.penalty is not None or priors_fn is not None:
            p, penalty = self.p, self.penalty

            def log_prior(theta):
                return _log_prior(theta, p, penalty, priors_fn)

        if self.design.nested:
            from .density import EngineDensity

            return EngineDensity(self, log_prior=log_prior, modes=modes)
        diagonal = self.design.diagonal
        return LogDensity(
            self.engine, self.X, self.X_zi, self.offset, diagonal, log_prior=log_prior, modes=modes
        )

    # ---- what the optimizer asks (a model on shards answers the same) ---------------------
    def start(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(fixed effects, D, φ)`` to start from (:func:`~.statistics.glm_start`)."""
        return glm_start(self)

    def em_statistics(self, theta: np.ndarray):
        """``(log L, gradient, Hessian of the expected complete-data log-likelihood, D's EM
        update)`` at ``θ``: what an EM iteration needs (:mod:`~glmm_ppl.fitting.statistics`).
        The gradient and Hessian are in ``(β, γ)``, and in ``log φ`` too where the engine
        gives the second derivatives in ``φ`` (:attr:`exact_hessian`), so that the M-step
        moves the extra parameters with the fixed effects."""
        fixed, D, phis = self.unpack(theta)
        designs = self.fixed_designs()
        with_phis = self.exact_hessian and self.n_phis > 0
        extra = {"designs": designs} if with_phis else {}
        res = self.engine.evaluate(self.fixed_part(fixed), D, phis, grad=True, em=True, **extra)
        d = self.design
        n = float(d.n_groups if d.weights is None else d.weights.sum())
        g = fixed_gradient(designs, res.grad_eta)
        H = fixed_hessian(designs, res.hess_weights)
        if with_phis and res.hess_phis is not None:
            cross, H_phis = log_phi_hessian(
                designs, res.hess_eta_phis, res.hess_phis, res.grad_phis, phis
            )
            g = np.concatenate([g, phis * res.grad_phis])
            H = np.block([[H, cross], [cross.T, H_phis]])
        return res.loglik, g, H, res.second_moment / second_moment_units(self.design, res, n)

    def scoring_value(self, theta: np.ndarray):
        """``(log L, state)`` at ``θ``, the state for :meth:`scoring_statistics`."""
        fixed, D, phis = self.unpack(theta)
        extra = {"designs": self.fixed_designs()} if self.exact_hessian else {}
        res = self.engine.evaluate(self.fixed_part(fixed), D, phis, grad=True, **extra)
        return res.loglik, res

    def scoring_statistics(self, theta: np.ndarray, state, exact: bool = True):
        """``(Σ_i s_i, information, ∇²log L or None)`` at ``θ`` from the state
        :meth:`scoring_value` gave there (:func:`~.statistics.scoring_information` of
        :meth:`scoring_parts`; the exact fixed-node Hessian where there is one)."""
        total, outer, block = self.scoring_parts(theta, state)
        info = scoring_information(outer, block if exact else None)
        return total, info, None if block is None else -block

    def scoring_parts(self, theta: np.ndarray, state):
        """``(Σ_i s_i, Σ_i s_i s_iᵀ / w_i, −∇²log L or None)`` at ``θ``, ``s_i`` the per-group
        scores; sums over groups, which shards add up."""
        scores = per_group_scores(self, theta, state)
        w = self.design.weights
        outer = scores.T @ (scores if w is None else scores / w[:, None])
        block = None
        if getattr(state, "score_covariance", None) is not None:
            block = -louis_hessian(self, theta, state, self.fixed_designs())
        return scores.sum(axis=0), outer, block

    def fixed_node_hessian(self, theta: np.ndarray) -> np.ndarray | None:
        fixed, D, phis = self.unpack(theta)
        designs = self.fixed_designs()
        with self.fixed_nodes():
            res = self.engine.evaluate(self.fixed_part(fixed), D, phis, designs=designs)
        if res.score_covariance is None or not np.isfinite(res.loglik):
            return None
        return louis_hessian(self, theta, res, designs)

    def objective_with_points(self, theta: np.ndarray, points: int) -> float:
        """The objective at ``θ`` with a rule of ``points`` points per dimension, centred at
        the current modes (which do not depend on the rule)."""
        if type(self.engine) is AGQ:  # its log-likelihood alone: no gradient, no graph
            fixed, D, phis = self.unpack(theta)
            res = self.engine.with_points(points).evaluate(
                self.fixed_part(fixed), D, phis, grad=False
            )
            return res.loglik + self.log_prior(theta)[0]
        fine = MixedModelGraph(self.design, self.family, points, self.penalty, self.priors)
        fine.engine.modes = np.array(self.engine.modes, dtype=float)
        return fine(theta)[0]

    def centre(self, theta: np.ndarray) -> None:
        """Move the quadrature's nodes to ``θ``."""
        fixed, D, phis = self.unpack(theta)
        self.engine.update_modes(self.fixed_part(fixed), D, phis)

    @contextmanager
    def fixed_nodes(self):
        """Hold the nodes where they are while the block runs."""
        self.engine.recenter = False
        try:
            yield
        finally:
            self.engine.recenter = True

    def fixed_part(self, fixed: np.ndarray) -> np.ndarray:
        """``η⁰`` (N, E) of the fixed effects ``(β, γ)``, offsets included."""
        fixed = np.asarray(fixed, dtype=float)
        return self.design.fixed_part(fixed[: self.p], fixed[self.p :])

    def fixed_designs(self) -> list[np.ndarray]:
        """The fixed-effects design of each linear predictor."""
        return [self.X] + ([self.X_zi] if self.design.n_eta == 2 else [])


def _log_prior(theta, p: int, penalty, priors_fn) -> tuple[float, np.ndarray]:
    """Log penalty of ``β`` plus the compiled log priors at ``θ``, and their gradient."""
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    value, grad = 0.0, np.zeros(len(theta))
    if penalty is not None:
        beta = theta[:p]
        value += penalty.logp_numpy(beta)
        grad[:p] += penalty.grad_numpy(beta)
    if priors_fn is not None:
        lp, g = priors_fn(theta)
        value, grad = value + float(lp), grad + g
    return value, grad
