"""From the optimizer's estimates to the fit object: the checks that become warnings (no
estimate, a boundary, an extra parameter at its edge, a coarse rule) and the
:class:`~glmm_ppl.postfit.results.MixedModelFit`."""

from __future__ import annotations

import dataclasses
import warnings

from .fitting.identification import (
    SingularFitWarning,
    boundary_problem,
    existence_problems,
    extra_at_edge,
)
from .fitting.optimize import ConvergenceWarning
from .fitting.rule import QuadratureWarning
from .postfit.results import MixedModelFit

__all__ = ["fit_result"]


def fit_result(
    graph, theta, objective, H, opt, rule, modes, auto=False, stacklevel=3, cluster=None
):
    """The fit object of ``graph`` at ``theta``; warns of what the checks find.

    Parameters
    ----------
    graph : MixedModelGraph or ShardedGraph
    theta, objective, H, opt
        The estimates, the objective there, its Hessian and the optimizer's summary.
    rule : RuleCheck or None
    modes : tuple of ndarray
        The modes ``(n, q)`` and posterior covariances ``(n, q, q)`` at ``theta``.
    auto : bool
        Whether the rule was chosen by ``n_agq="auto"`` (for the advice in the warning).
    stacklevel : int
        Of the warnings: the user's call.
    cluster : dict, optional
        A cluster fit's shards and traffic (``MixedModelFit.cluster``).
    """
    design, family, prior_spec = graph.design, graph.family, graph.priors
    notes = []
    edge = extra_at_edge(graph.split(theta)["log_phis"], family, design)
    singular = boundary_problem(graph.unpack(theta)[1], design.random_names)
    if not opt.problem and not getattr(design, "rows_on_workers", False):
        problems = existence_problems(
            design, family, graph.layout, theta, H, bool(edge or singular), prior_spec
        )
        if problems:  # no estimate to converge to: the fit says it did not converge
            opt = dataclasses.replace(opt, converged=False, problem="; ".join(problems))
    if opt.problem:
        warnings.warn(opt.problem, ConvergenceWarning, stacklevel=stacklevel)
        notes.append(opt.problem)
    if rule is not None and rule.coarse:
        warnings.warn(rule.message(auto), QuadratureWarning, stacklevel=stacklevel)
        notes.append(rule.message(auto))
        if singular:  # the boundary may be the rule's: more points first, not fewer effects
            singular = singular.split(";")[0] + f"; {rule.boundary_advice()}"
    for message in (edge, singular):
        if message:
            warnings.warn(message, SingularFitWarning, stacklevel=stacklevel)
            notes.append(message)
    log_prior = 0.0 if prior_spec is None else float(prior_spec.compiled()(theta)[0])
    return MixedModelFit(
        family=family,
        design=design,
        theta=theta,
        layout=graph.layout,
        hessian=H,
        loglik=objective - log_prior,  # with a penalty included, as GLMMadaptive reports it
        log_prior=log_prior,
        priors=prior_spec,
        n_agq=graph.engine.n_agq,
        penalty=graph.penalty,
        opt_summary=opt,
        modes=modes[0],
        post_cov=modes[1],
        warnings=tuple(notes),
        rule_check=rule,
        cluster=cluster,
    )
