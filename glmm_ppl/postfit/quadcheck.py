"""Is the quadrature rule fine enough? The log-likelihood at the estimates under finer rules.

With ``k`` points per random effect the adaptive rule integrates each group's likelihood
exactly for polynomials of degree ``2k − 1`` in the standardised random effects; when the
integrands are far from normal (few observations per group, large variances, several
correlated effects) the log-likelihood at ``θ̂`` moves with ``k``. :func:`check_quadrature`
evaluates it with finer rules (and, on request, refits with them); every fit already holds
one such check (``fit.rule_check``, :mod:`glmm_ppl.fitting.rule`).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd

from ..engine.covariance import theta_to_D
from ..fitting.graph import MixedModelGraph
from ..fitting.optimize import ConvergenceWarning, fit_mixed
from ..fitting.rule import MAX_NODES

__all__ = ["check_quadrature"]

_DELTA = "max |Δθ|/SE"


def _default_rules(n_agq: int, q: int) -> list[int]:
    """``[n_agq + 4, 2 n_agq + 1]``, each capped at ``n_agq**q ≤ 100,000``, finer than the fit."""
    cap = int(round(MAX_NODES ** (1.0 / q)))
    cap = cap - 1 if cap**q > MAX_NODES else cap
    rules = sorted({min(k, cap) for k in (n_agq + 4, 2 * n_agq + 1)})
    return [k for k in rules if k > n_agq]


def _rules(fit, n_agq) -> list[int]:
    q = fit.design.q
    if n_agq is None:
        return _default_rules(fit.n_agq, q)
    if isinstance(n_agq, numbers.Integral) or not isinstance(
        n_agq, list | tuple | range | np.ndarray
    ):
        values = [n_agq]
    else:
        values = list(n_agq)
    if any(v is None for v in values):
        if len(values) > 1:
            raise ValueError("n_agq must be None (the default rules) or integers, not a mix")
        return _default_rules(fit.n_agq, q)
    out = []
    for k in values:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(
                f"n_agq must hold positive integers (points per random effect), got {k!r}"
            )
        if int(k) ** q > MAX_NODES:
            raise ValueError(
                f"n_agq={k} with {q} random effects gives {int(k) ** q:,} quadrature nodes per "
                f"group (at most {MAX_NODES:,}); use fewer points"
            )
        out.append(int(k))
    if not out:
        raise ValueError("n_agq is empty: give at least one number of points")
    return out


def _initial_values(fit) -> dict:
    d = fit.design
    D = theta_to_D(fit.theta[fit.layout.blocks["var-cov"]], d.q, d.diagonal)
    values = {"betas": fit.fixef().to_numpy(), "D": D}
    if fit.design.X_zi is not None:
        values["gammas"] = fit.fixef("zero_part").to_numpy()
    if fit.family.n_phis:
        values["phis"] = np.exp(fit.theta[fit.layout.blocks["extra"]])
    return values


def check_quadrature(fit, n_agq=None, refit: bool = False) -> pd.DataFrame:
    """The log-likelihood at the estimates under finer quadrature rules.

    Parameters
    ----------
    fit : MixedModelFit
    n_agq : int, sequence of int or None
        Points per random effect of the rules to try. None (or ``[None]``): two finer rules,
        ``fit.n_agq + 4`` and ``2 fit.n_agq + 1``, each capped so that a group has at most
        100,000 nodes (rules not finer than the fit's are left out).
    refit : bool
        Also refit the model with each rule, starting from the estimates, and report how
        far the estimates move.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``n_agq``. ``logLik``: the log-likelihood at ``θ̂`` with that rule, on the
        scale of ``fit.loglik`` (so including the penalty of a penalized fit); ``change``:
        ``logLik − fit.loglik``. With ``refit=True``, ``max |Δθ|/SE``: the largest change of
        an estimate (any entry of ``θ``) after the refit, in units of its standard error.

    Raises
    ------
    ValueError
        For numbers of points that are not positive integers, or that give more than
        100,000 nodes per group; for a fit with crossed grouping factors (the Laplace
        approximation, which has no finer rule).

    Warns
    -----
    ConvergenceWarning
        When a refit does not converge (its row is then unreliable).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.postfit.quadcheck import check_quadrature
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> t = check_quadrature(fm1)
    >>> t.index.tolist(), bool(t["change"].abs().max() < 1e-3)
    ([15, 23], True)
    """
    d = fit.design
    if d.crossed:
        raise ValueError(
            "check_quadrature compares quadrature rules, and a fit with crossed grouping "
            f"factors ({', '.join(repr(f.name) for f in d.factors)}) has none: its likelihood "
            "does not split into independent groups to integrate by quadrature, so it is the "
            "Laplace approximation over all random effects jointly, with no finer rule"
        )
    rules = _rules(fit, n_agq)
    rows = {}
    if refit:
        try:
            se = np.sqrt(np.diag(fit.vcov("all").to_numpy()))
        except ValueError:
            se = np.full(len(fit.theta), np.nan)
    for k in rules:
        graph = MixedModelGraph(d, fit.family, k, fit.penalty)
        graph.engine.modes = np.array(fit.modes, dtype=float)  # the modes do not depend on k
        objective = graph(fit.theta)[0]
        row = {"logLik": objective, "change": objective - fit.loglik}
        if refit:
            theta, _, _, _, opt = fit_mixed(graph, fit.opt_summary.control, _initial_values(fit))
            if not opt.converged:
                warnings.warn(
                    f"the refit with n_agq={k}: {opt.problem}; its '{_DELTA}' is unreliable",
                    ConvergenceWarning,
                    stacklevel=2,
                )
            row[_DELTA] = float(np.max(np.abs(theta - fit.theta) / se))
        rows[k] = row
    columns = ["logLik", "change"] + ([_DELTA] if refit else [])
    out = pd.DataFrame.from_dict(rows, orient="index", columns=columns, dtype=float)
    out.index = pd.Index(list(rows), name="n_agq", dtype=int)
    return out
