"""Robust (sandwich) covariance of the estimates, from the groups' scores.

With ``s_i = ∂ log L_i / ∂θ`` the score of group ``i`` at ``θ̂`` and ``H`` the Hessian of the
objective, ``V = H⁻¹ (Σ_i w_i s_i s_iᵀ) H⁻¹`` (``w_i`` the group weights, 1 without):
the model-based ``(−H)⁻¹`` of :meth:`MixedModelFit.vcov` corrected by the observed spread of
the scores, consistent when the random-effects distribution or the variance function is
misspecified (as long as the mean model holds). Groups are the independent units, so the
scores are clustered by group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..fitting.graph import MixedModelGraph
from ..fitting.statistics import per_group_scores

__all__ = ["group_scores", "sandwich_vcov"]

_PARMS = ("all", "fixed-effects", "zero_part", "var-cov", "extra")


def _check_groups(design) -> None:
    """Refuse crossed grouping factors: the scores are clustered by independent groups."""
    if design.crossed:
        names = " and ".join(repr(f.name) for f in design.factors)
        raise ValueError(
            f"the sandwich covariance needs independent groups, and the crossed grouping "
            f"factors {names} have none: the likelihood does not split into groups whose "
            "scores could be clustered; use vcov() (the inverse Hessian)"
        )


def group_scores(fit) -> pd.DataFrame:
    """Each group's score ``∂ log L_i / ∂θ`` at the estimates (the group weight left out).

    The quadrature is centred at ``θ̂`` and the scores are the derivatives of the groups'
    log-likelihoods with the nodes held there (the definition of the estimate, where the
    weighted scores sum to zero up to the fit's tolerance and any penalty's gradient).

    Parameters
    ----------
    fit : MixedModelFit

    Returns
    -------
    pandas.DataFrame
        One row per group (index: the group labels), one column per entry of ``θ``
        (``fit.names``).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.postfit.sandwich import group_scores
    >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> s = group_scores(fit)
    >>> s.shape, bool(abs(s.sum()).max() < 0.1)
    ((100, 3), True)
    """
    d = fit.design
    _check_groups(d)
    graph = MixedModelGraph(d, fit.family, fit.n_agq, fit.penalty)
    engine = graph.engine
    fixed, D, phis = graph.unpack(fit.theta)
    eta0 = graph.fixed_part(fixed)
    engine.modes = np.array(fit.modes, dtype=float)  # warm start of the modes' Newton steps
    engine.update_modes(eta0, D, phis)
    engine.recenter = False
    try:
        res = engine.evaluate(eta0, D, phis, grad=True)
    finally:
        engine.recenter = True
    scores = per_group_scores(graph, fit.theta, res)  # w_i s_i
    if d.weights is not None:
        scores = scores / d.weights[:, None]
    return pd.DataFrame(scores, index=d.groups, columns=list(fit.names))


def sandwich_vcov(fit, parm: str = "fixed-effects") -> pd.DataFrame:
    """Robust covariance ``H⁻¹ (Σ_i w_i s_i s_iᵀ) H⁻¹`` of the estimates.

    Parameters
    ----------
    fit : MixedModelFit
    parm : {"fixed-effects", "zero_part", "var-cov", "extra", "all"}
        Which block, as in :meth:`MixedModelFit.vcov` (same scales and names): the whole
        matrix is computed and this block returned.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    ValueError
        For an unknown ``parm``, ``"zero_part"`` without a zero part, a singular Hessian, or
        crossed grouping factors (which have no independent groups).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.postfit.sandwich import sandwich_vcov
    >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> V = sandwich_vcov(fit)
    >>> V.index.tolist()
    ['(Intercept)', 'time']
    >>> bool(np.all(np.diag(V) > 0))
    True
    """
    if parm not in _PARMS:
        raise ValueError(f"unknown parm {parm!r}; valid: {', '.join(map(repr, _PARMS))}")
    d = fit.design
    if parm == "zero_part" and d.X_zi is None:
        raise ValueError(
            f"the {fit.family.name} family has no zero part; parm='zero_part' applies to "
            "zero-inflated and hurdle families"
        )
    _check_groups(d)
    s = fit.layout.blocks[parm]
    try:
        bread = np.linalg.inv(-np.asarray(fit.hessian, dtype=float))
    except np.linalg.LinAlgError:
        raise ValueError(
            "the Hessian is singular at the estimates, so there is no sandwich covariance; "
            "the fit did not converge (see summary() and opt_summary)"
        ) from None
    scores = group_scores(fit).to_numpy()
    w = np.ones(d.n_groups) if d.weights is None else d.weights
    meat = scores.T @ (scores * w[:, None])
    V = bread @ meat @ bread.T
    V = 0.5 * (V + V.T)[s, s]
    names = d.zi_fixed_names if parm == "zero_part" else fit.names[s]
    return pd.DataFrame(V, index=list(names), columns=list(names))
