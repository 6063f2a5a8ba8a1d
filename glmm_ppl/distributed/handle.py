"""What a cluster fit keeps of its shards: the actors (so the rows stay where they are) and
the post-fit work that needs the rows, run on the shards."""

from __future__ import annotations

import dataclasses

import numpy as np

from .graph import TIMEOUT, call_shards

__all__ = ["ClusterShards"]


@dataclasses.dataclass
class ClusterShards:
    """The shards of a fit on a dask DataFrame (``fit.cluster``).

    The shards live as long as the fit object (and the client): each holds its rows, its
    design and its engine on its worker. A pickled or copied fit keeps the numbers but not
    the shards.

    Attributes
    ----------
    shards : list
        The Dask actors (:class:`~glmm_ppl.distributed.shard.Shard`).
    workers : list of str
        Each shard's worker.
    start_s : float
        Seconds to shuffle the data by group and start the shards.
    evaluations, bytes : int
        Calls to all shards during the fit, and the bytes sent and received (pickled).
    graph : ShardedGraph
        The model's objective on the shards (what :func:`glmm_ppl.sample` samples).
    """

    shards: list
    workers: list
    start_s: float
    evaluations: int
    bytes: int
    graph: object = dataclasses.field(default=None, repr=False)

    def __getstate__(self) -> dict:
        return dict(self.__dict__, shards=[], graph=None)

    def _live(self) -> list:
        if not self.shards:
            raise RuntimeError(
                "this copy of a cluster fit has no shards (they are not pickled): simulate and "
                "sample from the fit object that mixed_model returned, while its client is open"
            )
        return self.shards

    def simulate(self, fit, nsim: int, seed, new_random_effects: bool) -> np.ndarray:
        """:meth:`~glmm_ppl.postfit.results.MixedModelFit.simulate` on the shards: each
        draws its rows (with its own stream of the seed), and the draws come back in the
        fit's order (sorted by group)."""
        shards = self._live()
        seeds = np.random.SeedSequence(seed if isinstance(seed, int) else None).spawn(len(shards))
        local = dataclasses.replace(fit, cluster=None)
        rngs = [(local, nsim, np.random.default_rng(sq), new_random_effects) for sq in seeds]
        parts = call_shards(shards, self.workers, "simulate", rngs, TIMEOUT)
        position = np.concatenate([p for p, _ in parts])
        draws = np.concatenate([d for _, d in parts])
        return draws[np.argsort(position, kind="stable")]

    def sampling_graph(self):
        """The objective on the shards, for :func:`glmm_ppl.sample`: its ``log_density``
        evaluates the marginal density of ``θ`` on the shards, each chain with its own modes."""
        self._live()
        return self.graph
