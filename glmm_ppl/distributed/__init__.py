"""Fits on a Dask cluster: the groups split over long-lived shards on the workers.

``glmm_ppl.mixed_model(..., data=ddf)`` with a dask DataFrame fits here
(:func:`~glmm_ppl.distributed.fit.fit_on_cluster`); ``pip install "glmm_ppl[distributed]"``
installs Dask. Nothing here imports Dask until a cluster fit starts.
"""

from .design import ClusterDesign, RowsOnWorkersError
from .graph import ShardLostError

__all__ = ["ClusterDesign", "RowsOnWorkersError", "ShardLostError"]
