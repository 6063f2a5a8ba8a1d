"""One shard of a model on a cluster: whole groups, their design and their quadrature engine.

A :class:`Shard` lives on one worker (a Dask actor) for the whole fit. It builds its design
from its rows with the model's formulas (factor levels fixed by the driver, so every shard has
the same columns) and keeps its engine, whose modes and curvatures stay warm between
evaluations. Each method takes ``θ`` and returns a few numbers whose size does not depend on
the number of groups: the driver adds up the shards' answers
(:class:`~glmm_ppl.distributed.graph.ShardedGraph`).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from ..design.matrices import column_sizes

__all__ = ["Shard"]


class Shard:
    """The part of a model held by one worker.

    Parameters
    ----------
    spec : dict
        ``build_design``'s arguments but the data (formulas, family, columns), plus ``n_agq``
        (None: the default for the model's number of random effects).
    *parts : pandas.DataFrame
        The shard's rows; a group's rows are all in this shard.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> df = gp.load_vignette("binary")
    >>> spec = {"fixed": "y ~ time", "random": "~ 1 | id", "family": "binomial", "n_agq": 11}
    >>> shard = Shard(spec, df[df.id <= 50], df[(df.id > 50) & (df.id <= 100)])
    >>> shard.sizes()["n_groups"]
    100
    """

    def __init__(self, spec: dict, *parts: pd.DataFrame):
        from ..design.matrices import build_design
        from ..families import get_family
        from ..fitting.graph import MixedModelGraph
        from ..fitting.identification import check_identified, scale_advice
        from ..fitting.rule import check_nodes, default_points

        spec = dict(spec)
        n_agq = spec.pop("n_agq")
        spec["family"] = get_family(spec["family"])
        data = pd.concat(parts) if len(parts) > 1 else parts[0]
        data = data.sort_index(kind="stable")  # within a group, rows in the data's order
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.design = build_design(data=data, part=True, **spec)
        self.warnings = [str(w.message) for w in caught if "dropped" not in str(w.message)]
        self.warnings += scale_advice(self.design, self.design.family)
        try:  # what makes every group uninformative: of all shards' groups (the driver asks)
            check_identified(self.design, self.design.family)
            self.problem = None
        except ValueError as err:
            self.problem = str(err)
        n_agq = default_points(self.design.q) if n_agq is None else n_agq
        check_nodes(n_agq, self.design.q)
        self.graph = MixedModelGraph(self.design, self.design.family, n_agq, None)
        self.graph.engine.threads = 1  # one thread per worker: the cluster is the parallelism
        self._scoring_state = None
        self._fit_modes, self._densities = None, {}

    # ---- what the driver needs once ------------------------------------------------------
    def sizes(self) -> dict:
        """What the driver combines: rows, groups, dropped rows, the group weights, the sums of
        the response and of its square, ``XᵀX`` and the largest ``|x|`` of each fixed-effects
        design (for the rank check), and the design's warnings."""
        d = self.design
        designs = self.graph.fixed_designs()
        return {
            "nobs": d.nobs,
            "n_groups": d.n_groups,
            "n_dropped": d.n_dropped,
            "weights": d.weights,
            "y_sum": float(np.sum(d.y)),
            "y_sq_sum": float(np.sum(np.square(d.y))),
            "crossprod": [X.T @ X for X in designs],
            "max_abs": [column_sizes(X) for X in designs],
            "warnings": self.warnings,
            "problem": self.problem,
            "groups": d.groups,
        }

    def metadata(self):
        """The shard's design without its arrays (names, formulas, specs and family), for the
        fit object on the driver."""
        from .design import without_rows

        return without_rows(self.design)

    def groups(self) -> pd.Index:
        """The shard's groups, sorted."""
        return self.design.groups

    def start(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The shard's starting values (:func:`~glmm_ppl.fitting.statistics.glm_start`)."""
        return self.graph.start()

    # ---- per evaluation -----------------------------------------------------------------
    def value(self, theta: np.ndarray, recenter: bool = True) -> tuple[float, np.ndarray]:
        """``(log L, ∂log L/∂θ)`` of the shard's groups."""
        self.graph.engine.recenter = recenter
        try:
            _, ll, grad = self.graph(theta)
        finally:
            self.graph.engine.recenter = True
        return ll, grad

    def em_statistics(self, theta: np.ndarray):
        """``(log L, ∂/∂(β, γ), Σ Xᵀ diag(w) X, Σ_i w_i S_i, Σ_i w_i)``: EM's sums over the
        shard's groups (one grouping factor: the second moments divide by the groups)."""
        ll, g, H, moment = self.graph.em_statistics(theta)
        d = self.design
        n = float(d.n_groups if d.weights is None else d.weights.sum())
        return ll, g, H, moment * n, n

    def scoring_value(self, theta: np.ndarray) -> float:
        """``log L`` at ``θ``; the evaluation is kept for :meth:`scoring_parts`."""
        ll, self._scoring_state = self.graph.scoring_value(theta)
        return ll

    def scoring_parts(self, theta: np.ndarray) -> tuple:
        """The shard's sums for scoring at the last :meth:`scoring_value`'s ``θ``
        (:meth:`~glmm_ppl.fitting.graph.MixedModelGraph.scoring_parts`)."""
        return self.graph.scoring_parts(theta, self._scoring_state)

    def fixed_node_hessian(self, theta: np.ndarray):
        """The exact fixed-node Hessian of the shard's log-likelihood at ``θ``, the nodes
        where they are (:meth:`~glmm_ppl.fitting.graph.MixedModelGraph.fixed_node_hessian`)."""
        return self.graph.fixed_node_hessian(theta)

    def loglik_with_points(self, theta: np.ndarray, points: int) -> float:
        """``log L`` of the shard's groups at ``θ`` with a rule of ``points`` points."""
        return self.graph.objective_with_points(theta, points)

    def centre(self, theta: np.ndarray) -> None:
        self.graph.centre(theta)

    # ---- after the fit ------------------------------------------------------------------
    def simulate(self, fit, nsim: int, rng, new_random_effects: bool):
        """Draws for the shard's rows from ``fit`` (the driver's, whose modes cover all
        groups); returns each row's group position in the fit and the draws ``(N, nsim)``."""
        from ..postfit.simulate import simulate

        position = fit.design.groups.get_indexer(self.design.groups)
        local = dataclasses.replace(
            fit, design=self.design, modes=fit.modes[position], post_cov=fit.post_cov[position]
        )
        rows = np.repeat(position, np.diff(self.design.starts))
        return rows, simulate(local, nsim, rng, new_random_effects)

    def modes(self, theta: np.ndarray) -> tuple[pd.Index, np.ndarray, np.ndarray]:
        """The groups, their modes and posterior covariances with the rule centred at ``θ``
        (the fit's estimates: samplers' densities start from these modes)."""
        self.graph.centre(theta)
        engine = self.graph.engine
        self._fit_modes = engine.modes.copy()
        return self.design.groups, engine.modes.copy(), engine.posterior_covariance()

    def density(self, key: int, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The shard's marginal log-likelihood and its gradient at ``θ`` for the sampler's
        density ``key``, whose modes follow its own path
        (:class:`~glmm_ppl.engine.log_density.LogDensity`)."""
        density = self._densities.get(key)
        if density is None:
            density = self._densities[key] = self.graph.log_density(self._fit_modes)
        value, grad, _ = density(theta)
        return value, grad
