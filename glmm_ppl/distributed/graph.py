"""The model's objective on the driver, evaluated by the shards on the workers.

:class:`ShardedGraph` answers everything the optimizer asks of a model
(:func:`~glmm_ppl.fitting.optimize.fit_mixed`): the objective and its gradient, EM's and
scoring's statistics, re-centring and fixed nodes. Each call sends ``θ`` to every shard at
once and adds up their answers, whose size is ``O(p + q²)`` (scoring's outer product
``O(k²)``, ``k`` the length of ``θ``), whatever the number of groups. The log penalty and
priors are added once, on the driver.
"""

from __future__ import annotations

import itertools
import pickle
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..fitting.graph import ModelParameters
from ..fitting.statistics import scoring_information

__all__ = ["TIMEOUT", "ClusterEngine", "ShardLostError", "ShardedGraph", "call_shards"]


_densities = itertools.count()  # keys of the samplers' densities on the shards

#: Seconds to wait for one shard's answer to one call before the fit stops.
TIMEOUT = 600.0


def call_shards(shards: list, workers: list, method: str, args: list, timeout: float) -> list:
    """``shard.method(*args[k])`` on every shard ``k`` at once; the answers in shard order.

    A shard whose worker was lost, or that does not answer within ``timeout`` seconds, raises
    :class:`ShardLostError` (errors of the call itself, such as bad data, are raised as they
    are)."""
    futures = [
        _lost_as_error(_start, (shard, method, args[k]), k, workers, method)
        for k, shard in enumerate(shards)
    ]
    return [
        _lost_as_error(future.result, (timeout,), k, workers, method)
        for k, future in enumerate(futures)
    ]


def _start(shard, method: str, args: tuple):
    return getattr(shard, method)(*args)  # an actor's lost worker raises here already


def _lost_as_error(call, args: tuple, k: int, workers: list, method: str):
    try:
        return call(*args)
    except (ValueError, TypeError, np.linalg.LinAlgError):
        raise
    except Exception as err:  # a lost worker shows as a RuntimeError, a closed comm, a
        raise ShardLostError(  # cancellation or a timeout, depending on when it went
            f"shard {k} (worker {workers[k]}) did not answer {method}(): "
            f"{type(err).__name__}: {err}. Its rows and modes were on that worker, so this "
            "stops rather than go on without them; fit again once the cluster has its "
            "workers back (during a fit, the error's theta is the last parameter vector "
            "evaluated)"
        ) from err


class ShardLostError(RuntimeError):
    """A shard's worker was lost, or did not answer in time, during a cluster fit.

    The shard's rows and modes were on that worker: the fit stops (it does not go on without
    them, nor wait for ever); fit again once the cluster has its workers back.

    Attributes
    ----------
    theta : ndarray or None
        The last parameter vector the shards evaluated (laid out as ``fit.theta``).

    Examples
    --------
    >>> issubclass(ShardLostError, RuntimeError)
    True
    """

    theta = None


@dataclass
class ClusterEngine:
    """What the optimizer reads of an engine: its rule (the shards hold the engines)."""

    n_agq: int
    exact_gradient: bool = False
    uses_blas: bool = False


class ShardedGraph(ModelParameters):
    """The objective of a model whose groups are split over shards (Dask actors).

    Parameters
    ----------
    shards : list of dask actors of :class:`~glmm_ppl.distributed.shard.Shard`
    workers : list of str
        The address of each shard's worker (for error messages).
    design : ClusterDesign
    family : Family
    layout : ParameterLayout
    n_agq : int
    penalty, priors
        As :class:`~glmm_ppl.fitting.graph.MixedModelGraph`'s.
    timeout : float
        Seconds to wait for a shard's answer before the fit stops with
        :class:`ShardLostError`.

    Attributes
    ----------
    traffic : dict
        ``calls`` (evaluations sent to all shards) and ``bytes`` (pickled ``θ`` sent plus
        answers received, all shards).
    """

    def __init__(self, shards, workers, design, family, layout, n_agq, penalty, priors, timeout):
        self.shards, self.workers = list(shards), list(workers)
        self.design, self.family, self.layout = design, family, layout
        self.penalty, self.priors, self.timeout = penalty, priors, float(timeout)
        self.p, self.p_zi, self.q = layout.p, layout.p_zi, layout.q
        self.n_theta, self.n_phis, self.names = layout.n_theta_D, layout.n_phis, layout.names
        self.engine = ClusterEngine(int(n_agq))
        self._recenter = True
        self.traffic = {"calls": 0, "bytes": 0}
        self.last_theta = None

    def _all(self, method: str, *args) -> list:
        """Call ``method(*args)`` on every shard at once; their answers in shard order."""
        sent = len(pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)) * len(self.shards)
        try:
            out = call_shards(
                self.shards, self.workers, method, [args] * len(self.shards), self.timeout
            )
        except ShardLostError as err:
            err.theta = self.last_theta
            raise
        received = sum(len(pickle.dumps(o, protocol=pickle.HIGHEST_PROTOCOL)) for o in out)
        self.traffic["calls"] += 1
        self.traffic["bytes"] += sent + received
        if args and isinstance(args[0], np.ndarray):
            self.last_theta = args[0]
        return out

    # ---- what the optimizer asks ----------------------------------------------------------
    def __call__(self, theta: np.ndarray) -> tuple[float, float, np.ndarray]:
        theta = np.asarray(theta, dtype=np.float64)
        parts = self._all("value", theta, self._recenter)
        ll = float(sum(v for v, _ in parts))
        grad = np.sum([g for _, g in parts], axis=0)
        with np.errstate(over="ignore", invalid="ignore"):
            lp, g_prior = self.log_prior(theta)
        return ll + lp, ll, grad + g_prior

    def start(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first shard's starting values: a GLM on its groups (only a start: EM and
        scoring use every shard)."""
        return call_shards(self.shards[:1], self.workers[:1], "start", [()], self.timeout)[0]

    def em_statistics(self, theta: np.ndarray):
        parts = self._all("em_statistics", np.asarray(theta, dtype=np.float64))
        ll, g, H, S, n = (sum(x) for x in zip(*parts, strict=True))
        return float(ll), g, H, S / n

    def scoring_value(self, theta: np.ndarray):
        return float(sum(self._all("scoring_value", np.asarray(theta, dtype=np.float64)))), None

    def scoring_statistics(self, theta: np.ndarray, state, exact: bool = True):
        parts = self._all("scoring_parts", np.asarray(theta, dtype=np.float64))
        total, outer = sum(p[0] for p in parts), sum(p[1] for p in parts)
        blocks = [p[2] for p in parts]
        block = sum(blocks) if all(b is not None for b in blocks) else None
        info = scoring_information(outer, block if exact else None)
        return total, info, None if block is None else -block

    exact_hessian = True  # the shards' graphs have one grouping factor

    def fixed_node_hessian(self, theta: np.ndarray):
        parts = self._all("fixed_node_hessian", np.asarray(theta, dtype=np.float64))
        return None if any(p is None for p in parts) else sum(parts)

    def objective_with_points(self, theta: np.ndarray, points: int) -> float:
        theta = np.asarray(theta, dtype=np.float64)
        ll = sum(self._all("loglik_with_points", theta, int(points)))
        return float(ll + self.log_prior(theta)[0])

    def centre(self, theta: np.ndarray) -> None:
        self._all("centre", np.asarray(theta, dtype=np.float64))

    @contextmanager
    def fixed_nodes(self):
        self._recenter = False
        try:
            yield
        finally:
            self._recenter = True

    # ---- after the fit ------------------------------------------------------------------
    def log_density(self, modes=None):
        """``θ ↦ (log density, gradient, None)``: the marginal log-likelihood summed over the
        shards (each keeps this density's own modes, starting from the fit's) plus the
        penalty and the priors with their Jacobian, for samplers. No per-group values: they
        would bring ``n`` numbers back from every evaluation."""
        key = next(_densities)
        n = len(self.shards)

        def density(theta):
            theta = np.asarray(theta, dtype=np.float64)
            parts = call_shards(
                self.shards, self.workers, "density", [(key, theta)] * n, self.timeout
            )
            value = float(sum(v for v, _ in parts))
            if not np.isfinite(value):
                return -np.inf, np.zeros(len(theta)), None
            lp, g_prior = self.log_prior(theta, jacobian=True)
            return value + lp, np.sum([g for _, g in parts], axis=0) + g_prior, None

        return density

    def modes(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The modes ``(n, q)`` and posterior covariances ``(n, q, q)`` of all groups, centred
        at ``θ``, in the order of ``design.groups``."""
        parts = self._all("modes", np.asarray(theta, dtype=np.float64))
        labels = np.concatenate([np.asarray(g, dtype=object) for g, _, _ in parts])
        order = self.design.groups.get_indexer(labels)
        modes = np.empty((len(order), self.q))
        cov = np.empty((len(order), self.q, self.q))
        modes[order] = np.concatenate([m for _, m, _ in parts])
        cov[order] = np.concatenate([c for _, _, c in parts])
        return modes, cov
