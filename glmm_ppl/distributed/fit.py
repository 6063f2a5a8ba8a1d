"""A mixed model fitted on a Dask cluster: the same fit as in one process, groups on shards.

1. The factor columns the formulas use get their levels from all the data (so every shard
   codes them alike), then the data are shuffled once by the grouping column: a group's rows
   end up in one partition.
2. The partitions are packed into one shard per worker, of similar numbers of rows; each
   shard is a long-lived Dask actor (:class:`~glmm_ppl.distributed.shard.Shard`) that builds
   its design and quadrature engine and keeps them, modes included, between evaluations.
3. The driver checks what needs all the data (the rank of the fixed effects, from the shards'
   ``XᵀX``), then runs the in-process optimizer on a
   :class:`~glmm_ppl.distributed.graph.ShardedGraph`: each evaluation sends ``θ`` and
   receives ``O(p + q²)`` numbers per shard.
4. The fit object holds the modes of all groups (gathered: ``n × q`` numbers) and a design
   without rows (:class:`~glmm_ppl.distributed.design.ClusterDesign`); the rows stay on the
   workers.
"""

from __future__ import annotations

import heapq
import re
import time
import warnings

import numpy as np
import pandas as pd

from ..design.matrices import NO_ROWS, build_design, check_rank_of_crossprod, split_fixed
from ..design.terms import random_terms
from ..fitting.blas import blas_threads
from ..fitting.optimize import Control
from ..fitting.parameters import ParameterLayout, phis_from_coefficients
from ..fitting.penalty import make_penalty
from ..fitting.rule import default_points, fit_checked
from .design import ClusterDesign
from .graph import TIMEOUT, ShardedGraph, call_shards
from .handle import ClusterShards

__all__ = ["fit_on_cluster"]


def _client(client):
    from distributed import Client, default_client

    if client is None:
        try:
            return default_client()
        except ValueError:
            raise ValueError(
                "mixed_model() on a dask DataFrame fits on a Dask cluster, and there is no "
                "client: start one (distributed.Client(), or Client(LocalCluster()) on one "
                "machine) or pass client="
            ) from None
    if not isinstance(client, Client):
        raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
    return client


def _group_column(random: str | None, zi_random: str | None) -> str:
    terms = random_terms(random if random is not None else zi_random)
    if len(terms) > 1:
        raise ValueError(
            f"several grouping factors ({random!r}) are fitted in one process only: a cluster "
            "fit splits the data by one grouping column"
        )
    if len(terms[0].columns) > 1:
        raise ValueError(
            f"the grouping {terms[0].name!r} combines several columns; on a cluster, make it "
            "one column first (its labels joined)"
        )
    return terms[0].columns[0]


def _uses(formulas: list[str], column: str) -> bool:
    return any(re.search(rf"(?<![\w.]){re.escape(column)}(?![\w.])", f) for f in formulas)


def _numeric(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _with_levels(ddf, formulas: list[str], exclude: set):
    """``ddf`` with the non-numeric columns the formulas use as categoricals whose levels are
    those of all rows complete in the formulas' columns (computed once)."""
    used = [c for c in ddf.columns if _uses(formulas, str(c))]
    factors = [c for c in used if c not in exclude and not _numeric(ddf.dtypes[c])]
    if not factors:
        return ddf
    complete = ddf[used].dropna()
    import dask

    levels = dask.compute(*[complete[c].unique() for c in factors])
    dtypes = {}
    for c, values in zip(factors, levels, strict=True):
        current = ddf.dtypes[c]
        if isinstance(current, pd.CategoricalDtype) and current.ordered:
            dtypes[c] = pd.CategoricalDtype(
                [v for v in current.categories if v in set(values)], ordered=True
            )
        else:
            dtypes[c] = pd.CategoricalDtype(sorted(pd.unique(np.asarray(values))))
    return ddf.astype(dtypes)


def _check_columns(data, spec: dict) -> None:
    """The formulas' and arguments' columns checked against the dask DataFrame's columns on
    the driver (the shards would find the same errors, each in its worker's log too)."""
    args = {k: v for k, v in spec.items() if k != "n_agq"}
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in data.dtypes.items()})
    try:
        build_design(data=empty, part=True, **args)
    except ValueError as err:
        if str(err) != NO_ROWS:  # every check that the columns alone decide has passed
            raise


def _check_cluster_points(n_agq: int) -> None:
    if n_agq <= 3:
        raise ValueError(
            f"n_agq={n_agq} on a cluster: use 4 to 100 points; rules of 1-3 points start from "
            "a finer rule's fit, in one process"
        )


def _check_workers(client) -> None:
    """Workers there, with the driver's version of glmm_ppl (the shards run its code)."""
    try:
        versions = client.run(_version)
    except (ImportError, ModuleNotFoundError) as err:
        raise ValueError(f"glmm_ppl must be installed on every worker: {err}") from err
    if not versions:
        raise ValueError("the Dask cluster has no workers")
    mine = _version()
    other = {w: v for w, v in versions.items() if v != mine}
    if other:
        listed = ", ".join(f"{w}: {v}" for w, v in sorted(other.items()))
        raise ValueError(
            f"the workers must run the driver's glmm_ppl {mine}; these do not: {listed}"
        )


def _version() -> str:
    """The installed glmm_ppl's version (on the driver, and on a worker)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("glmm_ppl")
    except PackageNotFoundError:
        return "not installed"


def _pack(sizes: list[int], n_shards: int) -> list[list[int]]:
    """Partitions into ``n_shards`` bins of similar total size (largest first, each to the
    lightest bin); empty partitions are left out."""
    bins: list[tuple[int, int, list[int]]] = [(0, k, []) for k in range(n_shards)]
    for part in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        if sizes[part] == 0:
            continue
        total, k, members = heapq.heappop(bins)
        members.append(part)
        heapq.heappush(bins, (total + sizes[part], k, members))
    return [sorted(m) for _, _, m in sorted(bins, key=lambda b: b[1]) if m]


def _column_argument(name: str, value) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(
            f"{name}= on a dask DataFrame must be a column name: the values travel with their "
            f"rows to the shards (got {type(value).__name__})"
        )


def _start_shards(client, ddf, group: str, spec: dict, n_shards: int | None):
    """Shuffle by group, pack the partitions and start one shard actor per bin."""
    from .shard import Shard

    workers = sorted(client.nthreads())
    n_shards = len(workers) if n_shards is None else n_shards
    shuffled = ddf.shuffle(on=group, npartitions=max(ddf.npartitions, n_shards))
    parts = client.compute(shuffled.to_delayed())
    sizes = client.gather(client.map(len, parts))
    bins = _pack(list(sizes), n_shards)
    futures = [
        client.submit(
            Shard,
            spec,
            *[parts[i] for i in members],
            actor=True,
            workers=[workers[k % len(workers)]],
            allow_other_workers=True,  # should that worker go, another takes the shard
        )
        for k, members in enumerate(bins)
    ]
    actors = [f.result(timeout=TIMEOUT) for f in futures]
    del parts  # the shards hold their rows now
    where = client.who_has(futures)  # the worker each shard went to
    return actors, [(where.get(f.key) or ["unknown"])[0] for f in futures]


def fit_on_cluster(
    fixed: str,
    random: str | None,
    data,
    family,
    *,
    client=None,
    n_shards: int | None = None,
    n_agq=None,
    penalized=False,
    priors=None,
    zi_fixed=None,
    zi_random=None,
    offset=None,
    weights=None,
    trials=None,
    censoring=None,
    row_weights=None,
    disp_fixed=None,
    initial_values=None,
    control=None,
):
    """Fit a mixed model to a dask DataFrame on a Dask cluster (see :func:`glmm_ppl.mixed_model`,
    which calls this for dask data; the arguments are its own, plus ``client`` and
    ``n_shards``, by default one shard per worker).

    Returns
    -------
    MixedModelFit
        As an in-process fit's, with a design whose rows stay on the workers: ``fixef``,
        ``vcov``, ``summary``, ``confint``, ``ranef`` (gathered to the driver, ``n × q``
        numbers), ``predict(newdata)`` on pandas or dask data, ``anova`` and ``simulate(newdata)``
        work; what needs the training rows raises a
        :class:`~glmm_ppl.distributed.design.RowsOnWorkersError` that says so.
    """
    from ..fit_result import fit_result

    client = _client(client)
    if family.name == "cumulative" or disp_fixed is not None:
        what = "ordinal models" if family.name == "cumulative" else "dispersion sub-models"
        raise ValueError(f"{what} are fitted in one process only (pass a pandas DataFrame)")
    if row_weights is not None:
        raise ValueError("row_weights= is fitted in one process only (pass a pandas DataFrame)")
    for name, value in (("offset", offset), ("weights", weights)):
        _column_argument(name, value)
    group = _group_column(random, zi_random)
    columns = [str(c) for c in data.columns]
    if group not in columns:
        raise ValueError(
            f"grouping column {group!r} not found in data; available columns: {', '.join(columns)}"
        )
    if isinstance(n_agq, str):
        raise ValueError(
            f"n_agq={n_agq!r} on a cluster: give a number of points (the default is 11 with at "
            "most two random effects, 7 beyond); the fit warns when a finer rule changes the "
            "log-likelihood"
        )
    if n_agq is not None:
        _check_cluster_points(n_agq)
    if n_shards is not None and not (isinstance(n_shards, int) and n_shards >= 1):
        raise ValueError(f"n_shards must be a positive integer, got {n_shards!r}")
    _check_workers(client)
    control = Control.from_user(control)
    response = split_fixed(fixed)[0]
    formulas = [f for f in (fixed, random, zi_fixed, zi_random) if f]
    spec = {
        "fixed": fixed,
        "random": random,
        "family": family,
        "zi_fixed": zi_fixed,
        "zi_random": zi_random,
        "offset": offset,
        "weights": weights,
        "trials": trials,
        "censoring": censoring,
        "row_weights": row_weights,
        "n_agq": n_agq,  # None: the default of the model's number of random effects
    }
    _check_columns(data, spec)
    import dask

    with client.as_current():  # the shards' actors find their client as the current one
        t0 = time.perf_counter()
        # the task-based shuffle: the peer-to-peer one logs warnings at every start and stop
        with dask.config.set({"dataframe.shuffle.method": "tasks"}):
            data = _with_levels(data, formulas, {group, response})
            shards, workers = _start_shards(client, data, group, spec, n_shards)
        graph = _sharded_graph(shards, workers, n_agq, penalized, priors)
        start_s = time.perf_counter() - t0
        initial_values = phis_from_coefficients(initial_values, graph.family)
        with blas_threads(1):
            _, theta, objective, H, opt, rule = fit_checked(graph, control, initial_values)
        traffic = dict(graph.traffic)  # the fit's, without gathering the modes
        modes = graph.modes(theta)
    cluster = ClusterShards(shards, workers, start_s, traffic["calls"], traffic["bytes"], graph)
    return fit_result(graph, theta, objective, H, opt, rule, modes, stacklevel=4, cluster=cluster)


def _sharded_graph(shards, workers, n_agq, penalized, priors) -> ShardedGraph:
    """The driver's graph of the shards: the sizes gathered, checked and combined."""
    n = len(shards)
    sizes = call_shards(shards, workers, "sizes", [()] * n, TIMEOUT)
    meta = call_shards(shards[:1], workers, "metadata", [()], TIMEOUT)[0]
    family = meta.family
    problems = [s["problem"] for s in sizes]
    if all(problems):  # true of every group of every shard: of every group
        raise ValueError(problems[0])
    for note in dict.fromkeys(w for s in sizes for w in s["warnings"]):
        warnings.warn(note, UserWarning, stacklevel=5)
    nobs = sum(s["nobs"] for s in sizes)
    n_dropped = sum(s["n_dropped"] for s in sizes)
    if n_dropped:
        warnings.warn(
            f"dropped {n_dropped} of {nobs + n_dropped} rows with missing values in the "
            "model's columns",
            UserWarning,
            stacklevel=5,
        )
    names = [meta.fixed_names] + ([meta.zi_fixed_names] if meta.X_zi is not None else [])
    whats = ["fixed-effects", "zero-part fixed-effects"]
    for k, (cols, what) in enumerate(zip(names, whats, strict=False)):
        check_rank_of_crossprod(
            sum(s["crossprod"][k] for s in sizes),
            np.max([s["max_abs"][k] for s in sizes], axis=0),
            cols,
            what,
        )
    labels = sizes[0]["groups"].append([s["groups"] for s in sizes[1:]])
    if labels.has_duplicates:
        raise RuntimeError("a group's rows were split between shards: the shuffle failed")
    order = np.argsort(labels.to_numpy(), kind="stable")
    all_groups = labels[order].rename(meta.group_name)
    weights = None
    if meta.weights is not None:
        weights = np.concatenate([s["weights"] for s in sizes])[order]
    sums = (nobs, sum(s["y_sum"] for s in sizes), sum(s["y_sq_sum"] for s in sizes))
    design = ClusterDesign(meta, all_groups, nobs, n_dropped, weights, sums)
    points = default_points(design.q) if n_agq is None else int(n_agq)  # the shards' rule
    layout = ParameterLayout.of(design, family)
    penalty = make_penalty(penalized, len(design.fixed_names))
    prior_spec = None
    if priors is not None:
        from ..bayes.priors import make_priors

        prior_spec = make_priors(priors, layout, penalty is not None)
    return ShardedGraph(
        shards, workers, design, family, layout, points, penalty, prior_spec, TIMEOUT
    )
