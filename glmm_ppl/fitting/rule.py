"""Is the quadrature rule fine enough for the fit? One evaluation with a finer rule at ``θ̂``.

With ``k`` points per random effect the adaptive rule is exact for integrands that are
polynomials of degree ``2k − 1`` times the normal density centred at the mode; with few rows
per group, large variances or several correlated effects the integrands are far from that
and the log-likelihood moves with ``k`` — enough, on the vignette's model with correlated
random intercepts and slopes at 11 points, to pull the correlation to the boundary.
:func:`check_rule` measures the move at the estimates with a finer rule (its modes are the
same, so it costs one evaluation); :func:`next_points` is the ladder ``n_agq="auto"`` climbs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .graph import MixedModelGraph
from .identification import boundary_problem
from .optimize import fit_mixed

__all__ = [
    "MAX_NODES",
    "MAX_POINTS",
    "QuadratureWarning",
    "RuleCheck",
    "check_nodes",
    "check_points",
    "check_rule",
    "default_points",
    "finer_points",
    "fit_checked",
    "next_points",
]

MAX_NODES = 100_000  # quadrature nodes per group
MAX_POINTS = 100  # per random effect (lme4 allows 25)
_CHECK_COST = 4  # the check's rule has at most this many times the fit's nodes per group


def check_points(n_agq) -> None:
    """Refuse an ``n_agq`` that is not a number of points from 1 to ``MAX_POINTS``.

    Examples
    --------
    >>> check_points(11)
    >>> check_points(0)
    Traceback (most recent call last):
    ...
    ValueError: n_agq must be a positive integer (points per random effect) or 'auto', got 0
    """
    if isinstance(n_agq, bool) or not isinstance(n_agq, (int, np.integer)) or n_agq < 1:
        raise ValueError(
            f"n_agq must be a positive integer (points per random effect) or 'auto', got {n_agq!r}"
        )
    if n_agq > MAX_POINTS:
        raise ValueError(
            f"n_agq={n_agq}: at most {MAX_POINTS} points per random effect. The rule is "
            "centred and scaled at each group's mode, so its error falls fast with the points "
            "(check_quadrature shows it), while the cost grows as n_agq**q per group; use "
            "check_quadrature(fit) to compare rules"
        )


def check_nodes(n_agq: int, q: int) -> None:
    """Refuse a product rule of more than ``MAX_NODES`` nodes per group.

    Examples
    --------
    >>> check_nodes(11, 2)
    >>> try:
    ...     check_nodes(11, 6)
    ... except ValueError as err:
    ...     print(str(err)[:57])
    n_agq=11 with 6 random effects gives 1,771,561 quadrature
    """
    if n_agq**q > MAX_NODES:
        raise ValueError(
            f"n_agq={n_agq} with {q} random effects gives {n_agq**q:,} quadrature nodes per "
            f"group (at most {MAX_NODES:,}); use fewer points or fewer random effects"
        )


class QuadratureWarning(UserWarning):
    """The quadrature rule looks too coarse: a finer rule moves the log-likelihood at the
    estimates by more than the tolerance (``control={"rule_tol": ...}``, 0.005 by default).
    The fit is still returned; its summary repeats the message, and ``n_agq="auto"`` adds
    points until the rule is fine enough.

    Examples
    --------
    >>> import warnings, glmm_ppl as gp
    >>> df = gp.load_vignette("binary")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     fit = gp.mixed_model("y ~ sex * time", "~ time | id", df, "binomial")
    >>> [w.category.__name__ for w in caught]
    ['QuadratureWarning', 'SingularFitWarning']
    >>> gp.mixed_model("y ~ sex * time", "~ time | id", df, "binomial", n_agq="auto").n_agq
    17
    """


def default_points(q: int, nested: bool = False) -> int:
    """GLMMadaptive's default: 11 points per random effect when a group's integral has at most
    two dimensions, 7 otherwise. With nested factors a top-level group's integral has the
    effects of all its units (a school's and each of its classes'), so 7.

    Examples
    --------
    >>> default_points(2), default_points(3), default_points(2, nested=True)
    (11, 7, 7)
    """
    return 11 if q <= 2 and not nested else 7


def _odd_at_most(k: float) -> int:
    k = int(math.floor(k))
    return k if k % 2 else k - 1  # odd rules have a node at the mode


def _cap(q: int, nodes: float) -> int:
    """The most points per effect with at most ``nodes`` (and :data:`MAX_NODES`) nodes."""
    limit = min(MAX_NODES, nodes)
    k = int(limit ** (1.0 / q)) + 1
    while k**q > limit:
        k -= 1
    return k


def finer_points(n_agq: int, q: int) -> int | None:
    """The rule that checks a fit with ``n_agq`` points: ``2 n_agq + 1`` points, fewer when
    that would cost more than four times the fit's nodes per group (or 100,000); None when no
    finer rule fits under those limits.

    Examples
    --------
    >>> finer_points(11, 1), finer_points(11, 2), finer_points(7, 3), finer_points(100, 3)
    (23, 21, 11, None)
    """
    k = _odd_at_most(min(2 * n_agq + 1, _cap(q, _CHECK_COST * n_agq**q)))
    return k if k > n_agq else None


def next_points(n_agq: int, q: int) -> int | None:
    """The next rule of ``n_agq="auto"``: about 1.5 times the points (odd), at most 100 points
    per random effect and 100,000 nodes per group; None at the top.

    Examples
    --------
    >>> next_points(11, 2), next_points(17, 2), next_points(7, 3), next_points(99, 1)
    (17, 27, 11, None)
    """
    k = _odd_at_most(min(math.ceil(1.5 * n_agq) + 1, _cap(q, MAX_NODES), MAX_POINTS))
    return k if k > n_agq else None


@dataclass(frozen=True)
class RuleCheck:
    """The log-likelihood at the estimates with a finer rule.

    Attributes
    ----------
    n_agq, finer : int
        Points per random effect of the fit and of the check.
    change : float
        Log-likelihood with ``finer`` points minus that with ``n_agq``, at the estimates.
    tol : float
        The change (absolute) above which the rule counts as too coarse.
    """

    n_agq: int
    finer: int
    change: float
    tol: float

    @property
    def coarse(self) -> bool:
        """Whether the change exceeds the tolerance (or is not a number)."""
        return not abs(self.change) <= self.tol

    def message(self, auto: bool = False) -> str:
        """The warning for a coarse rule, with what to do."""
        change = (
            f"the log-likelihood at the estimates changes by {self.change:.3g} with "
            f"{self.finer} points per random effect instead of {self.n_agq}"
        )
        if auto:
            return (
                f"n_agq='auto' stopped at {self.n_agq} points per random effect, the most it "
                f"tries (at most {MAX_POINTS} points and {MAX_NODES:,} nodes per group), and "
                f"the rule may still be too coarse: {change}"
            )
        return (
            f"the quadrature rule may be too coarse: {change}; refit with "
            f"n_agq={self.finer} or n_agq='auto' (which adds points until the log-likelihood "
            "is stable)"
        )

    def boundary_advice(self) -> str:
        """What to do about a boundary fit with a rule this coarse."""
        return (
            f"with {self.n_agq} points the rule may have put it there (see the quadrature "
            f"warning): refit with n_agq={self.finer} or n_agq='auto' before simplifying the "
            "random effects"
        )


def check_rule(graph, theta: np.ndarray, objective: float, tol: float):
    """:class:`RuleCheck` of the fit ``theta`` of ``graph`` (a
    :class:`~glmm_ppl.fitting.graph.MixedModelGraph` whose engine holds the fit's modes), whose
    objective there is ``objective``; None when no finer rule fits under the limits.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.fitting.graph import MixedModelGraph
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> graph = MixedModelGraph(fm1.design, fm1.family, 11, None)
    >>> graph.engine.modes = fm1.modes.copy()
    >>> check = check_rule(graph, fm1.theta, fm1.loglik, 0.005)
    >>> check.finer, check.coarse, bool(abs(check.change) < 1e-3)
    (23, False, True)
    """
    if graph.design.crossed:  # the joint Laplace approximation has no finer rule
        return None
    n_agq, q = graph.engine.n_agq, graph.q
    finer = finer_points(n_agq, q)
    if finer is None:
        return None
    change = float(graph.objective_with_points(theta, finer) - objective)
    return RuleCheck(n_agq, finer, change, tol) if np.isfinite(change) else None


def _start(graph, theta: np.ndarray) -> dict:
    """``initial_values`` of a refit from ``θ``, with the correlations halved: a coarse rule
    can put ``D`` at its boundary, where the log-Cholesky parameters are far out and a refit
    that starts there stays."""
    fixed, D, phis = graph.unpack(theta)
    sd = np.sqrt(np.diag(D))
    D = 0.5 * (D + np.diag(sd**2))
    start = {"betas": fixed[: graph.p], "D": D, "phis": phis}
    return start | ({"gammas": fixed[graph.p :]} if graph.p_zi else {})


def _fit(graph, control, initial_values):
    """:func:`~glmm_ppl.fitting.optimize.fit_mixed`, and once more from its estimates with the
    correlations halved when it stopped on the boundary without converging (where the
    log-Cholesky parameters run far out, the optimizer can stall at a worse boundary point);
    the better of the two."""
    fit = fit_mixed(graph, control, initial_values)
    theta, objective, opt = fit[0], fit[1], fit[4]
    if opt.converged or not np.isfinite(objective):
        return fit
    if boundary_problem(graph.unpack(theta)[1], graph.design.random_names) is None:
        return fit
    again = fit_mixed(graph, control, _start(graph, theta))
    if not again[1] > objective:
        return fit
    spent = opt.time_s + again[4].time_s
    return (*again[:4], dataclasses.replace(again[4], time_s=spent))


def fit_checked(graph, control, initial_values=None, auto: bool = False):
    """Fit (:func:`_fit`) and check the rule; with ``auto``, refit with :func:`next_points`
    points, from the last estimates, until the check passes or no finer rule fits.

    Returns
    -------
    graph, theta, objective, hessian, opt, check
        The graph of the last rule, its fit as :func:`fit_mixed` gives it, and its
        :class:`RuleCheck` (None when no finer rule fits or the fit has no finite value).
    """
    theta, objective, _, H, opt = _fit(graph, control, initial_values)
    check = check_rule(graph, theta, objective, control.rule_tol)
    spent = opt.time_s
    while auto and check is not None and check.coarse:
        points = next_points(graph.engine.n_agq, graph.q)
        if points is None:
            break
        start = _start(graph, theta)
        graph = MixedModelGraph(graph.design, graph.family, points, graph.penalty, graph.priors)
        theta, objective, _, H, opt = _fit(graph, control, start)
        spent += opt.time_s
        check = check_rule(graph, theta, objective, control.rule_tol)
    return graph, theta, objective, H, dataclasses.replace(opt, time_s=spent), check
