"""Fitting: starting values, EM warm start, L-BFGS, Newton polish and the Hessian.

1. Start from a GLM without random effects for ``β`` (and ``φ``) and a diagonal ``D``.
2. EM: the random effects are missing data; with posterior weights ``π_ik`` at the AGQ nodes,
   ``D ← S/n`` in closed form and ``β`` takes one Newton step on the expected complete-data
   log-likelihood. ``φ`` stays where the GLM put it until step 3.
3. Scoring (:func:`_scoring`) with the exact fixed-node Hessian where the graph has it (the
   outer product of the per-group scores elsewhere and towards a boundary); where it stalls,
   L-BFGS (scipy) on ``−(log L + log prior)/n`` with the compiled value and gradient. The
   quadrature is re-centred at every evaluation (warm-started Newton for the modes).
4. Newton refinement to the fixed point (:func:`_refine`) with the fixed-node Hessian of the
   objective (the graph's :meth:`~.graph.MixedModelGraph.hessian`); ``½ gᵀ(−H)⁻¹g`` (the Newton
   decrement) measures how far the optimum may still be, and decides convergence.
5. With several random effects, one Newton step on the reported objective itself
   (:func:`_polish`).

Rules of at most three points per dimension (``n_agq=1`` is the Laplace approximation) start
from a fit with a finer rule (7 points, 4 beyond two random effects) and maximise their own
reported objective (see :func:`fit_mixed`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields

import numpy as np
from scipy import optimize

from ..engine.covariance import Blocks, D_to_theta, project
from .glm import central_differences
from .graph import MixedModelGraph

__all__ = [
    "Control",
    "OptSummary",
    "fit_mixed",
    "ConvergenceWarning",
    "small_rule",
]


class ConvergenceWarning(UserWarning):
    """The optimizer did not settle; estimates may be unreliable. The fit is still returned,
    with ``converged`` False and the reason in ``opt_summary.problem`` and ``summary()``.

    Examples
    --------
    >>> import warnings, glmm_ppl as gp
    >>> df = gp.load_vignette("binary")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     fit = gp.mixed_model("y ~ time", "~ 1 | id", df, "binomial",
    ...                          control={"em_iter": 0, "max_iter": 1, "newton_iter": 0})
    >>> fit.converged, any(w.category is gp.ConvergenceWarning for w in caught)
    (False, True)
    """


@dataclass(frozen=True)
class Control:
    """Settings of the fit (all keyword arguments of ``control=``).

    Examples
    --------
    >>> Control.from_user({"em_iter": 5}).em_iter
    5

    Attributes
    ----------
    em_iter : int
        Maximum number of EM iterations of the warm start (0 skips it).
    em_tol : float
        EM stops when the log-likelihood rises by less than ``em_tol`` per group.
    max_iter : int
        Maximum number of L-BFGS iterations.
    gtol : float
        Scoring and L-BFGS stop when every gradient entry of the per-group objective is below
        ``gtol``; the Newton refinement then takes the estimates to the optimum.
    converge_tol : float
        The fit counts as converged when the Newton decrement at the end is below this
        (log-likelihood units).
    hessian_step : float
        Relative step of the central differences for the Hessian.
    newton_iter, newton_tol : int, float
        Maximum number of Newton steps of the final refinement, and the Newton decrement
        (log-likelihood units) below which it stops.
    rule_tol : float
        The change of the log-likelihood at the estimates under a finer quadrature rule above
        which the rule counts as too coarse (a warning; ``n_agq="auto"`` adds points).
    """

    em_iter: int = 5
    em_tol: float = 1e-4
    max_iter: int = 1000
    gtol: float = 1e-3
    converge_tol: float = 1e-3
    hessian_step: float = 1e-4
    newton_iter: int = 10
    newton_tol: float = 1e-6
    rule_tol: float = 0.005

    @classmethod
    def from_user(cls, control) -> Control:
        if control is None:
            return cls()
        if isinstance(control, Control):
            return control
        if not isinstance(control, dict):
            raise TypeError(f"control must be a dict or Control, got {type(control).__name__}")
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(control) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown control setting(s) {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(valid)}"
            )
        for name, value in control.items():
            counts = name in ("em_iter", "max_iter", "newton_iter")
            ok = isinstance(value, (int, np.integer)) if counts else isinstance(value, (int, float))
            if isinstance(value, bool) or not ok or not (value >= 0 if counts else value > 0):
                what = "a non-negative integer" if counts else "a positive number"
                raise ValueError(f"control setting {name!r} must be {what}, got {value!r}")
        return cls(**control)


@dataclass(frozen=True)
class OptSummary:
    """What the optimizer did: settings, iterations, evaluations, time and outcome.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> fit.opt_summary.optimizer, fit.opt_summary.converged
    ('EM + scoring + Newton', True)

    Attributes
    ----------
    initial : ndarray
        Starting ``θ`` (after the GLM).
    em_iterations, scoring_iterations, qn_iterations, evaluations : int
        EM iterations, scoring iterations, L-BFGS iterations (0 when scoring reached the
        tolerance) and evaluations of the objective in scoring and L-BFGS.
    hessian_evaluations : int
        Evaluations spent on the Hessian and, with several random effects, the final polish.
    newton_decrement : float
        ``½ gᵀ(−H)⁻¹g`` at the end (log-likelihood units).
    newton_iterations : int
        Newton steps of the final refinement.
    message : str
        How the main phase ended.
    converged : bool
    problem : str
        Why the fit did not converge ("" when it did); :func:`glmm_ppl.mixed_model` warns with
        it.
    time_s : float
        Wall time of the whole fit, compilation excluded.
    """

    optimizer: str
    n_agq: int
    control: Control
    initial: np.ndarray
    em_iterations: int
    scoring_iterations: int
    qn_iterations: int
    evaluations: int
    hessian_evaluations: int
    newton_decrement: float
    max_abs_gradient: float
    newton_iterations: int
    message: str
    converged: bool
    problem: str
    time_s: float
    em_loglik: list = field(default_factory=list, repr=False)


def _initial(graph: MixedModelGraph, initial_values: dict | None) -> np.ndarray:
    fixed, D, phis = graph.start()
    if initial_values is not None:
        fixed, D, phis = _user_initial(graph, initial_values, fixed, D, phis)
    return graph.pack(fixed, project(D, graph.design.diagonal), phis)


def _user_initial(graph: MixedModelGraph, values, fixed, D, phis):
    """Starting values from ``initial_values``, checked; defaults where a key is absent."""
    keys = ["betas", "gammas", "D", "phis"] if graph.p_zi else ["betas", "D", "phis"]
    valid = ", ".join(map(repr, keys))
    if not isinstance(values, dict):
        raise TypeError(
            f"initial_values must be a dict with keys {valid}, got {type(values).__name__}"
        )
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise ValueError(
            f"unknown initial_values key(s) {', '.join(map(repr, unknown))}; valid: {valid}"
        )
    shapes = {
        "betas": (graph.p,),
        "gammas": (graph.p_zi,),
        "D": (graph.q, graph.q),
        "phis": (graph.n_phis,),
    }
    out = {"betas": fixed[: graph.p], "gammas": fixed[graph.p :], "D": D, "phis": phis}
    for key in keys:
        if key not in values:
            continue
        v = np.asarray(values[key], dtype=float)
        v = np.atleast_2d(v) if key == "D" else np.atleast_1d(v)
        if v.shape != shapes[key]:
            raise ValueError(
                f"initial_values[{key!r}] must have shape {shapes[key]}, got {v.shape}"
            )
        if not np.all(np.isfinite(v)):
            raise ValueError(f"initial_values[{key!r}] must be finite, got {v.tolist()}")
        out[key] = v
    if np.any(out["phis"] <= 0):
        raise ValueError(f"initial_values['phis'] must be positive, got {out['phis'].tolist()}")
    try:
        D_to_theta(out["D"], graph.design.diagonal)
    except ValueError as err:
        raise ValueError(f"initial_values['D']: {err}") from None
    return np.concatenate([out["betas"], out["gammas"]]), out["D"], out["phis"]


def _n_effective(design) -> float:
    """Number of groups, or the sum of the group weights: the scale of the log-likelihood."""
    return float(design.n_groups if design.weights is None else design.weights.sum())


def _em(graph: MixedModelGraph, theta: np.ndarray, control: Control) -> tuple[np.ndarray, list]:
    d = graph.design
    n = _n_effective(d)
    history: list[float] = []
    best = theta
    for _ in range(control.em_iter):
        fixed, _, phis = graph.unpack(theta)
        loglik, g, H, moment = graph.em_statistics(theta)
        pen, pen_grad = graph.log_prior(theta)
        ll = loglik + pen
        if history and ll < history[-1]:
            break  # EM with a Newton M-step is not monotone: keep the best point
        best = theta
        if history and ll - history[-1] < control.em_tol * n:
            history.append(ll)
            break
        history.append(ll)
        nf = len(fixed)
        g[:nf] = g[:nf] + pen_grad[:nf]
        step = np.linalg.lstsq(-H, g, rcond=None)[0]  # in (β, γ) and perhaps log φ
        if len(step) > nf:
            step = _capped(step, list(range(nf, len(step))))
            phis = phis * np.exp(step[nf:])
        try:
            theta = graph.pack(fixed + step[:nf], project(moment, d.diagonal), phis)
        except ValueError:
            break  # D became singular: leave it to L-BFGS
    return best, history


def _scoring(graph: MixedModelGraph, theta: np.ndarray, control: Control):
    """:func:`_scoring_steps`, and the fixed-node Hessian of the log-likelihood at the θ where
    they end, the nodes centred there, where they computed it (None otherwise): ``(θ,
    iterations, evaluations, reached, Hessian)``."""
    hessians: dict = {}
    theta, its, evals, reached = _scoring_steps(graph, theta, control, hessians)
    H = hessians.get(theta.tobytes())
    return theta, its, evals, reached, H if H is not None and np.all(np.isfinite(H)) else None


def _scoring_steps(graph: MixedModelGraph, theta: np.ndarray, control: Control, hessians):
    """Scoring with the graph's information (:meth:`~.graph.MixedModelGraph.scoring_statistics`:
    the exact fixed-node Hessian where it has one, else the outer product of the per-group
    scores, BHHH): every evaluation gives the step's matrix; step-halving keeps the objective
    rising. Once a step rises beyond its quadratic model (a variance going to 0 on the log
    scale), the outer product alone, whose steps run out to the boundary. A Newton step that
    fails where the gradient is within ``gtol`` ends it (the refinement goes on). It gives up
    (for L-BFGS to take over) when four halvings do not help, which happens on flat
    likelihoods such as a correlation tending to ±1.

    Returns ``(θ, iterations, evaluations, reached)``; ``reached`` says whether the per-group
    gradient fell below ``control.gtol``. ``hessians`` gets the fixed-node Hessian of the
    log-likelihood (or None) at each θ where the information was computed.
    """
    n = _n_effective(graph.design)
    extra = graph.layout.blocks["extra"]
    log_phis = [k for k in graph.layout.log_scale if extra.start <= k < extra.stop]

    def value(th):
        loglik, res = graph.scoring_value(th)
        return loglik + graph.log_prior(th)[0], res

    exact = True  # Newton's information while the likelihood does not flatten

    def gradient(th, res):
        total, info, hessians[th.tobytes()] = graph.scoring_statistics(th, res, exact)
        return info, total + graph.log_prior(th)[1]

    obj, res = value(theta)
    evals, it = 1, 0
    if not np.isfinite(obj):  # no scores at an impossible point: L-BFGS backs off from it
        return theta, it, evals, False
    info, g = gradient(theta, res)
    overshot = False
    for it in range(1, min(control.max_iter, 50) + 1):
        if not np.all(np.isfinite(g)):
            return theta, it, evals, False
        # scoring converges fast near the optimum: go 10 times past gtol, so that the Newton
        # refinement barely moves and the Hessian computed before it holds at the estimates
        size = np.max(np.abs(g)) / n
        if size < 0.1 * control.gtol:
            return theta, it, evals, True
        try:
            step = np.linalg.solve(info + 1e-10 * np.trace(info) * np.eye(len(g)), g)
        except np.linalg.LinAlgError:
            return theta, it, evals, False
        step = _capped(step, log_phis)
        t = 1.0
        while True:
            new_obj, new_res = value(theta + t * step)
            evals += 1
            if new_obj > obj or t < 0.1:
                break
            t /= 2
        if not new_obj > obj and exact and size < control.gtol:
            # Newton's step fails where the gradient is within gtol: near the fixed point the
            # re-centred objective's own gradient differs from the fixed-node one by the
            # gradient of the rule's error (see _polish), and no step along the latter rises;
            # the Newton refinement, whose line search holds the nodes, goes on from here
            return theta, it, evals, True
        if not new_obj > obj and exact:  # Newton's step fails here: the outer product's
            exact = False
            info, g = gradient(theta, res)
            continue
        if not new_obj > obj:  # the outer-product information is poor here too: hand over,
            return theta, it, evals, size < control.gtol  # unless gtol is met already
        if exact and t == 1.0 and new_obj - obj > 1.2 * predicted(step, info, g):
            # a rise beyond the quadratic model's: the likelihood flattens towards a boundary
            # (a variance to 0 on the log scale, where Newton's steps shrink to a constant);
            # the outer product's steps, which run out there, from now on
            exact = False
        new_theta = theta + t * step
        new_info, new_g = gradient(new_theta, new_res)
        slope, new_slope = g @ step, new_g @ step
        past = t == 1.0 and new_slope < 0 < slope
        if past and overshot:
            # past the maximum along the step again: the outer product understates the
            # curvature in this direction and the steps zig-zag; the secant's point instead
            t = slope / (slope - new_slope)
            cand_obj, cand_res = value(theta + t * step)
            evals += 1
            if cand_obj > new_obj:
                new_theta, new_obj, new_res = theta + t * step, cand_obj, cand_res
                new_info, new_g = gradient(new_theta, new_res)
        overshot = past
        theta, obj, res, info, g = new_theta, new_obj, new_res, new_info, new_g
    return theta, it, evals, False


#: The largest change of a log extra parameter in one scoring or EM step (a factor of 20):
#: where the likelihood flattens towards a boundary at infinity (a negative binomial's size when
#: the counts are Poisson), Newton's step in that direction is as long as the curvature is
#: small, and can land where the density is not computable.
MAX_LOG_STEP = 3.0


def _capped(step: np.ndarray, at: list[int]) -> np.ndarray:
    """``step`` shortened so that none of its entries ``at`` is longer than
    :data:`MAX_LOG_STEP`."""
    longest = np.max(np.abs(step[at]), initial=0.0)
    return step * (MAX_LOG_STEP / longest) if longest > MAX_LOG_STEP else step


def predicted(step: np.ndarray, info: np.ndarray, g: np.ndarray) -> float:
    """The rise of the quadratic model ``gᵀs − ½ sᵀ I s`` along the step ``s``."""
    return float(g @ step - 0.5 * step @ info @ step)


def _hessian(graph: MixedModelGraph, theta: np.ndarray, step: float, likelihood=None):
    """The fixed-node Hessian of the objective with the nodes centred at ``θ`` (from
    ``likelihood``, that of the log-likelihood, when it is at hand)."""
    if likelihood is None:
        graph.centre(theta)  # the last evaluation may have been elsewhere
    return graph.hessian(theta, step, likelihood)


def _moved(theta, theta_ref, H) -> float:
    """Largest move from ``theta_ref`` in units of the standard errors implied by ``H``
    (infinite when ``H`` is not finite: it must then be computed again)."""
    if not np.all(np.isfinite(H)):
        return np.inf
    se = np.sqrt(np.abs(np.diag(np.linalg.pinv(-H))))
    return float(np.max(np.abs(theta - theta_ref) / np.maximum(se, 1e-8)))


def _newton(graph, theta, H, iterations: int, tol: float):
    """Newton steps to the fixed point, with ``H`` held; returns ``(θ, objective at θ,
    decrement, steps)``.

    Each step re-centres at ``θ``, then halves the step until the fixed-node objective rises.
    """
    decrement = np.inf
    for its in range(iterations + 1):
        obj, _, grad = graph(theta)  # re-centres at theta
        try:
            step = np.linalg.solve(-H, grad)
        except np.linalg.LinAlgError:
            return theta, obj, np.inf, its
        decrement = 0.5 * float(grad @ step)
        if not decrement >= 0:
            return theta, obj, np.inf, its
        # a step costs two evaluations and squares the distance: go on to 1e-3 of ``tol``
        if decrement < 1e-3 * tol or its == iterations:
            return theta, obj, decrement, its
        with graph.fixed_nodes():
            t = 1.0
            while t > 1e-3 and not graph(theta + t * step)[0] >= obj:
                t /= 2
        if t <= 1e-3:
            return theta, obj, decrement, its
        theta = theta + t * step
    raise AssertionError("unreachable: the last iteration returns")


def _refine(graph: MixedModelGraph, theta: np.ndarray, control: Control, likelihood=None):
    """Newton iterations to the point where the gradient with the nodes centred there is zero.

    The adaptive rule's value is not exactly differentiable along with its nodes, so the
    estimate is defined as GLMMadaptive defines it: re-centre, step on the fixed-node
    objective, repeat until the Newton decrement vanishes. The Hessian is computed where the
    main phase (scoring or L-BFGS) stopped, and once more if the Newton steps move the
    estimates far enough for the
    standard errors to change: the curvature changes by about ``d/√n`` over ``d`` standard
    errors, so the bound is ``max(0.02, 0.005 √n)`` standard errors (changes of ~0.5% at most).
    ``likelihood``: the fixed-node Hessian of the log-likelihood at ``θ`` when the main phase
    left it (the first Hessian then costs no evaluation).
    """
    H = _hessian(graph, theta, control.hessian_step, likelihood)
    hess_evals = graph.hessian_evaluations if likelihood is None else 0
    start = h_at = theta.copy()
    theta, obj, decrement, steps = _newton(graph, theta, H, control.newton_iter, control.newton_tol)
    if _moved(theta, start, H) > max(0.02, 0.005 * np.sqrt(graph.design.n_groups)):
        H, h_at = _hessian(graph, theta, control.hessian_step), theta.copy()
        hess_evals += graph.hessian_evaluations
        theta, obj, decrement, more = _newton(
            graph, theta, H, control.newton_iter, control.newton_tol
        )
        steps += more
    final = None
    if _largest_block(graph.design) >= 2:
        theta, final = _polish(graph, theta, obj, H, control.hessian_step)
        hess_evals += len(theta) + 1
    if graph.exact_hessian and not np.array_equal(theta, h_at):
        # cheap: the standard errors from the Hessian at the estimates themselves
        H, final = _hessian(graph, theta, control.hessian_step), None
        hess_evals += graph.hessian_evaluations
    obj, ll, grad = final if final is not None else graph(theta)  # centred at theta
    return theta, obj, ll, grad, H, decrement, steps, hess_evals


def _largest_block(design) -> int:
    """The most random effects that one group's (or one unit's) integral has."""
    if isinstance(design.diagonal, Blocks):
        return max(design.diagonal.sizes)
    return design.q


def _polish(graph: MixedModelGraph, theta: np.ndarray, obj: float, H: np.ndarray, step: float):
    """One Newton step on the adaptive objective itself (nodes re-centred at every point).

    With several random effects per group (per unit, with several grouping factors) the
    rule's integration error has a gradient of its own, so
    the fixed point of :func:`_refine` and the maximum of the reported log-likelihood differ
    (by up to ~0.1 standard errors at 10,000 groups), and the fixed point's log-likelihood is
    lower, under finer rules too. The gradient of the reported objective ``O`` is taken by
    forward differences corrected by the curvature ``H`` already at hand,
    ``g_j = (O(θ + h e_j) − O(θ))/h − ½ h H_jj``: their error is of order ``h²``, as that of
    central differences, at half the evaluations (``H`` is the fixed-node Hessian, whose
    difference from ``O``'s adds ``h/2`` times that difference). The step is kept only if it
    raises the objective (a second step was measured to add under 1e-5). Returns
    ``(θ, graph(θ) if it was the last evaluation else None)``.
    """
    h = step * np.maximum(np.abs(theta), 1.0)  # the steps of central_differences
    g = np.empty(len(theta))
    for j in range(len(theta)):
        e = np.zeros(len(theta))
        e[j] = h[j]
        g[j] = (graph(theta + e)[0] - obj) / h[j] - 0.5 * h[j] * H[j, j]
    if not np.all(np.isfinite(g)):
        return theta, None
    try:
        delta = np.linalg.solve(-H, g)
    except np.linalg.LinAlgError:
        return theta, None
    new = graph(theta + delta)
    return (theta + delta, new) if new[0] > obj else (theta, None)


#: Rules with at most this many points per dimension are "small": with the nodes held fixed,
#: the gradient misses how the rule's scale moves with ``D``, which is most of the gradient of
#: a one-point (Laplace) rule (the fixed-point estimate of fm1 with one point has ``D → 0``).
_SMALL_RULE = 3


def small_rule(graph: MixedModelGraph) -> bool:
    """Whether the graph's gradient misses how its rule's nodes move (a rule of at most
    ``_SMALL_RULE`` points whose engine has no exact gradient): its reported objective is
    then differentiated by central differences instead."""
    exact = getattr(graph.engine, "exact_gradient", False)
    return not exact and graph.engine.n_agq <= _SMALL_RULE


def _lbfgs(fun, theta: np.ndarray, control: Control):
    """scipy's L-BFGS-B on ``fun(θ) → (value, gradient)`` (a scaled negative objective)."""
    return optimize.minimize(
        fun,
        theta,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": control.max_iter, "gtol": control.gtol, "ftol": 1e-15, "maxcor": 20},
    )


def _verdict(H: np.ndarray, decrement: float, control: Control) -> tuple[bool, str]:
    """Whether the fit converged (negative definite Hessian, Newton decrement below
    ``control.converge_tol``) and, if not, why."""
    pd_hessian = bool(np.all(np.isfinite(H))) and bool(np.all(np.linalg.eigvalsh(-H) > 0))
    if pd_hessian and decrement < control.converge_tol:
        return True, ""
    return False, "the fit did not converge: " + (
        "the Hessian is not negative definite at the estimates"
        if not pd_hessian
        else f"the estimated distance to the optimum (Newton decrement) is {decrement:.3g} "
        "log-likelihood units"
    )


def _pilot_points(q: int) -> int:
    """Points per dimension of the pilot fit of a small rule: 7 up to two random effects, 4
    beyond (4**q nodes per group: a start, not an estimate)."""
    return 7 if q <= 2 else 4


def _fit_small_rule(graph: MixedModelGraph, control: Control, initial_values):
    """A fit with a small rule: a pilot fit with a finer rule, then L-BFGS on the reported
    objective of the small rule with central-difference gradients, its Hessian by central
    differences of those gradients, and a last Newton step kept if the objective rises."""
    t0 = time.perf_counter()
    k = _pilot_points(graph.q)
    pilot = MixedModelGraph(graph.design, graph.family, k, graph.penalty, graph.priors)
    theta, _, _, _, pilot_opt = fit_mixed(pilot, control, initial_values)
    n = _n_effective(graph.design)
    counter = {"n": 0}

    def objective(th):
        counter["n"] += 1
        obj = graph(th)[0]
        return obj if np.isfinite(obj) else -np.inf

    def gradient(th):
        return central_differences(objective, th, 1e-6)

    res = _lbfgs(lambda th: (-objective(th) / n, -gradient(th) / n), theta, control)
    theta, obj = res.x, -res.fun * n
    evaluations = counter["n"]
    H = central_differences(gradient, theta, control.hessian_step)
    H = 0.5 * (H + H.T)
    hess_evals = counter["n"] - evaluations
    grad = gradient(theta)
    newton = 0
    try:
        step = np.linalg.solve(-H, grad)
        decrement = 0.5 * float(grad @ step)
    except np.linalg.LinAlgError:
        step, decrement = None, np.inf
    if step is not None and np.all(np.isfinite(step)) and objective(theta + step) > obj:
        theta, newton = theta + step, 1
        grad = gradient(theta)
        decrement = 0.5 * float(grad @ np.linalg.solve(-H, grad))
    obj, ll, _ = graph(theta)  # last: the engine's modes are those at the estimates
    converged, problem = _verdict(H, decrement, control)
    opt = OptSummary(
        optimizer=f"{k}-point pilot fit + L-BFGS-B on the {graph.engine.n_agq}-point "
        "log-likelihood (central-difference gradients) + Newton",
        n_agq=graph.engine.n_agq,
        control=control,
        initial=pilot_opt.initial,
        em_iterations=pilot_opt.em_iterations,
        scoring_iterations=pilot_opt.scoring_iterations,
        qn_iterations=int(res.nit),
        evaluations=pilot_opt.evaluations + counter["n"] - hess_evals,
        hessian_evaluations=hess_evals,
        newton_decrement=float(decrement),
        max_abs_gradient=float(np.max(np.abs(grad))),
        newton_iterations=newton,
        message=str(res.message),
        converged=converged,
        problem=problem,
        time_s=time.perf_counter() - t0,
        em_loglik=pilot_opt.em_loglik,  # the pilot's (its rule is finer)
    )
    return theta, obj, ll, H, opt


def _fit_exact(graph: MixedModelGraph, control: Control, initial_values):
    """A fit whose engine gives the exact gradient of its log-likelihood (the joint Laplace
    approximation): L-BFGS from the GLM's estimates, the Hessian by central differences of
    the gradient, then Newton steps with that Hessian (step-halving keeps the objective
    rising) until the Newton decrement is below a thousandth of ``control.newton_tol``; the
    Hessian once more where they end if they moved the estimates by more than a hundredth of
    a standard error (it gives the standard errors)."""
    t0 = time.perf_counter()
    theta0 = _initial(graph, initial_values)
    n = _n_effective(graph.design)
    counter = {"n": 0}

    def fun(th):
        counter["n"] += 1
        obj, _, grad = graph(th)
        if not np.isfinite(obj):
            return np.inf, np.zeros_like(th)
        return -obj / n, -grad / n

    def hessian(th):
        H = central_differences(lambda t: graph(t)[2], th, control.hessian_step)
        return 0.5 * (H + H.T)

    res = _lbfgs(fun, theta0, control)
    H = hessian(res.x)
    theta, decrement, steps = _newton_exact(graph, res.x, H, control)
    hess_evals = 2 * len(theta)
    if _moved(theta, res.x, H) > 0.01:
        H = hessian(theta)
        hess_evals += 2 * len(theta)
        theta, decrement, more = _newton_exact(graph, theta, H, control)
        steps += more
    obj, ll, grad = graph(theta)  # last: the engine's modes are those at the estimates
    converged, problem = _verdict(H, decrement, control)
    opt = OptSummary(
        optimizer="L-BFGS-B on the Laplace approximation (exact gradients) + Newton",
        n_agq=graph.engine.n_agq,
        control=control,
        initial=theta0,
        em_iterations=0,
        scoring_iterations=0,
        qn_iterations=int(res.nit),
        evaluations=counter["n"],
        hessian_evaluations=hess_evals,
        newton_decrement=float(decrement),
        max_abs_gradient=float(np.max(np.abs(grad))),
        newton_iterations=steps,
        message=str(res.message),
        converged=converged,
        problem=problem,
        time_s=time.perf_counter() - t0,
        em_loglik=[],
    )
    return theta, obj, ll, H, opt


def _newton_exact(graph: MixedModelGraph, theta: np.ndarray, H: np.ndarray, control: Control):
    """Newton steps with ``H`` held on an objective with exact gradients; ``(θ, decrement,
    steps)`` (the decrement is infinite when a step does not give a rise)."""
    for steps in range(control.newton_iter + 1):
        obj, _, grad = graph(theta)
        try:
            step = np.linalg.solve(-H, grad)
        except np.linalg.LinAlgError:
            return theta, np.inf, steps
        decrement = 0.5 * float(grad @ step)
        if not decrement >= 0:
            return theta, np.inf, steps
        # a step costs one evaluation: go on to a thousandth of the tolerance
        if decrement < 1e-3 * control.newton_tol or steps == control.newton_iter:
            return theta, decrement, steps
        t = 1.0
        while t > 1e-3 and not graph(theta + t * step)[0] >= obj:
            t /= 2
        if t <= 1e-3:
            return theta, decrement, steps
        theta = theta + t * step
    raise AssertionError("unreachable: the last iteration returns")


def fit_mixed(graph: MixedModelGraph, control: Control, initial_values=None):
    """Run the whole fit.

    With a rule of at most three points per dimension the estimate maximises the rule's
    reported log-likelihood (:func:`_fit_small_rule`) rather than solving the fixed-node
    equations, which are biased for such rules.

    Returns
    -------
    theta : ndarray
        Estimates.
    objective, loglik : float
        At ``theta``, with the quadrature centred there.
    hessian : ndarray
        Of the objective at ``theta``.
    opt : OptSummary
    """
    if getattr(graph.engine, "exact_gradient", False):
        return _fit_exact(graph, control, initial_values)
    if small_rule(graph):
        return _fit_small_rule(graph, control, initial_values)
    t0 = time.perf_counter()
    theta0 = _initial(graph, initial_values)
    theta, em_history = _em(graph, theta0, control)
    n = _n_effective(graph.design)
    theta, scoring_its, scoring_evals, reached, likelihood = _scoring(graph, theta, control)
    qn_its, counter = 0, {"n": 0}
    if not reached:

        def fun(th):
            counter["n"] += 1
            obj, _, grad = graph(th)
            if not np.isfinite(obj):
                return np.inf, np.zeros_like(th)
            return -obj / n, -grad / n

        res = _lbfgs(fun, theta, control)
        theta, qn_its = res.x, int(res.nit)
    theta, obj, ll, grad, H, decrement, newton_its, hess_evals = _refine(
        graph, theta, control, likelihood if reached else None
    )
    converged, problem = _verdict(H, decrement, control)
    opt = OptSummary(
        optimizer="EM + scoring + " + ("L-BFGS-B + " if not reached else "") + "Newton",
        n_agq=graph.engine.n_agq,
        control=control,
        initial=theta0,
        em_iterations=len(em_history),
        scoring_iterations=scoring_its,
        qn_iterations=qn_its,
        evaluations=scoring_evals + counter["n"],
        hessian_evaluations=hess_evals,
        newton_decrement=float(decrement),
        max_abs_gradient=float(np.max(np.abs(grad))),
        newton_iterations=newton_its,
        message="scoring reached gtol" if reached else "scoring handed over to L-BFGS-B",
        converged=converged,
        problem=problem,
        time_s=time.perf_counter() - t0,
        em_loglik=em_history,
    )
    return theta, obj, ll, H, opt
