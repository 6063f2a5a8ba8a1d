"""Fits on a Dask cluster: a dask DataFrame fitted on the workers beside the same fit in process.

Run from the repository root (Dask is ``pip install "glmm_ppl[distributed]"``)::

    python benchmarks/distributed.py          # 10,000 groups, then 400,000 simulated groups
    python benchmarks/distributed.py --quick  # 40,000 simulated groups instead of 400,000

The script starts its own ``LocalCluster(n_workers=2, threads_per_worker=1)`` (two worker
processes on this machine), so the cluster and the in-process fit use the same cores.

1. ``y ~ sex * time``, binomial, correlated random intercepts and slopes (``~ time | id``,
   11 points) on ``tests/reference/binary_n10000.csv`` (10,000 groups × 8 rows), fitted to a
   pandas DataFrame in this process and to a dask DataFrame of the same rows in shuffled order
   (6 partitions) on the cluster. "first" is the first fit of each kind in this process, "warm"
   the median of three fits after it (the two kinds alternate, so that both see the same load
   on the machine); a cluster fit's time includes its start (shuffling the
   rows by group and starting one shard per worker), which "start" gives on its own.
   "cluster / in process" is the cluster's time over the in-process time (the goal: within
   1.5× when warm) and the difference of the log-likelihoods (the same fit: ~1e-9 or less).
   "evals" counts the calls sent to all shards during the fit (each sends ``θ`` to every
   shard and gets ``O(p + q²)`` numbers back) and "B/eval" is the bytes sent and received per
   call, all shards together (``fit.cluster.bytes / fit.cluster.evaluations``): neither
   depends on the number of groups. After the fit, the modes of all groups are gathered to
   the driver once (a label, ``q`` modes and ``q²`` posterior covariances per group, for
   ``ranef``); that call is not in ``fit.cluster``'s counts, and the line below the table
   gives its size (the benchmark asks the shards for the modes once more and counts that
   call as the fit counts its own).
2. A simulated binary random-intercept model, ``y ~ x + treat`` with ``~ 1 | g``: 400,000
   groups × 8 rows (3.2 million rows) in 16 partitions, each holding one of the 8 rows of half
   of the groups, so that every group is spread over 8 partitions and the shuffle has work to
   do. The partitions are generated on the workers (``dd.from_map``): the driver never holds
   the rows. ``x ~ N(0, 1)`` per row, ``treat`` a 0/1 treatment per group (probability 1/2),
   intercepts ``N(0, 1.2²)``; true β = (-0.5, 0.8, -0.6). Printed: the fit time (one fit,
   the first on restarted workers, with its start), the log-likelihood, the estimates beside
   the truth with their standard errors and ``z = (estimate - truth) / SE`` (within ±3 for
   every parameter; the SD's SE by the delta method from the log scale), the traffic as
   above, and the peak resident memory of each worker process, restarted before this fit so
   that it is this fit's: ``VmHWM`` of ``/proc/self/status`` (with its value right after the
   restart, before the fit, in parentheses) and, beside it, ``ru_maxrss``, which a
   LocalCluster's worker inherits through fork and exec from the driver's process (so it is
   at least the driver's resident memory when the worker started, whatever the worker used).
   The driver's peak is that of the whole run.

The machine line gives the cores and the load average at the start: other processes on the
machine slow both kinds of fit, and the ratio is the number to read.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import platform
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

# Python puts this file's folder first on sys.path, where this file would hide Dask's
# ``distributed`` package (here and in the worker processes, which start from this path): the
# folder goes to the end instead, where _timing.py is still found.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

from _timing import commit, peak_mb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference"
FORMULA, RANDOM = "y ~ sex * time", "~ time | id"
ROWS = 8  # rows per simulated group
PARTS = 16  # partitions of the simulated data: each holds one row of half of the groups
TRUE_BETA = {"(Intercept)": -0.5, "x": 0.8, "treat": -0.6}
TRUE_SD = 1.2
SEED = 20261207


def _machine() -> str:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
        f"load average at start {load}; commit {commit(ROOT)}"
    )


def _quiet(fit):
    """``fit()`` with its warnings kept rather than printed (the last ones are reported)."""

    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = fit()
        run.caught = [f"{w.category.__name__}: {w.message}" for w in caught]
        return out

    run.caught = []
    return run


def _peak_kb() -> tuple[int, int]:
    """This process's peak resident memory in KB: ``VmHWM`` of ``/proc/self/status`` (its own)
    and ``ru_maxrss``, which a process started by fork and exec inherits from its parent (a
    LocalCluster's workers are started from the driver's process): it is at least the
    driver's resident memory when the worker started."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return maxrss, maxrss
    hwm = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")), 0)
    return int(hwm) or maxrss, maxrss


def _gathered(fit) -> str:
    """The bytes of gathering the modes after the fit (not in ``fit.cluster.bytes``): the
    shards are asked for them once more, and the call is counted as the fit counts its own
    (``θ`` pickled once per shard, and each shard's answer)."""
    c = fit.cluster
    answers = [s.modes(fit.theta) for s in c.shards]
    answers = [a.result(timeout=600) for a in answers]
    size = len(pickle.dumps((fit.theta,), pickle.HIGHEST_PROTOCOL)) * len(c.shards) + sum(
        len(pickle.dumps(a, pickle.HIGHEST_PROTOCOL)) for a in answers
    )
    return (
        f"the modes gathered once after the fit ({fit.n_groups:,} labels, modes and posterior "
        f"covariances): {size / 1e6:.2f} MB, not in fit.cluster.bytes"
    )


def _row(name, first, warm, fit) -> str:
    c = fit.cluster
    traffic = (
        f"{c.evaluations:>6d} {c.bytes / c.evaluations:>8,.0f} {c.start_s:>8.2f}"
        if c is not None
        else f"{'—':>6} {'—':>8} {'—':>8}"
    )
    return f"{name:<34} {first:>8.2f} {warm:>8.2f} {fit.loglik:>14.6f} {traffic}"


def _timed(fit) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fit()
    return time.perf_counter() - t0, out


def scaling_data(gp, client) -> None:
    """The 10,000-group model in process and on the cluster."""
    import dask.dataframe as dd

    df = pd.read_csv(REFERENCE / "binary_n10000.csv")
    df["sex"] = pd.Categorical(df["sex"], categories=["male", "female"])
    shuffled = df.sample(frac=1.0, random_state=1)  # rows in no particular order
    ddf = dd.from_pandas(shuffled, npartitions=6, sort=False)
    print(
        f"1. {FORMULA}, {RANDOM}, binomial, 11 points: binary_n10000.csv, "
        f"{df.id.nunique():,} groups, {len(df):,} rows"
    )
    header = (
        f"{'fit':<34} {'first s':>8} {'warm s':>8} {'logLik':>14} {'evals':>6} {'B/eval':>8} "
        f"{'start s':>8}"
    )
    print(header)
    print("-" * len(header))
    local = _quiet(lambda: gp.mixed_model(FORMULA, RANDOM, df, "binomial"))
    remote = _quiet(lambda: gp.mixed_model(FORMULA, RANDOM, ddf, "binomial", client=client))
    # the warm fits alternate, so that both kinds see the same load on the machine
    l_first, l_fit = _timed(local)
    c_first, c_fit = _timed(remote)
    l_times, c_times = [], []
    for _ in range(3):
        t, l_fit = _timed(local)
        l_times.append(t)
        t, c_fit = _timed(remote)
        c_times.append(t)
    l_warm, c_warm = statistics.median(l_times), statistics.median(c_times)
    print(_row("in process (pandas)", l_first, l_warm, l_fit))
    print(_row("cluster (dask, 2 workers, 6 parts)", c_first, c_warm, c_fit))
    ratio = c_warm / l_warm
    print(
        f"{'cluster / in process':<34} {c_first / l_first:>7.2f}× {ratio:>7.2f}× "
        f"{c_fit.loglik - l_fit.loglik:>+14.1e}   warm goal ≤ 1.50×: "
        f"{'met' if ratio <= 1.5 else 'NOT met'}"
    )
    print(_gathered(c_fit))
    worst = (c_fit.fixef() - l_fit.fixef()).abs().max()
    print(
        f"largest |fixef difference|: {worst:.1e}; shards on {len(c_fit.cluster.workers)} workers"
    )
    for note in dict.fromkeys(local.caught + remote.caught):
        print(f"warning (both fits): {note.split(';')[0]}")
    print()


def _partition(k: int, n_groups: int, seed: int) -> pd.DataFrame:
    """Partition ``k`` of the simulated data: row ``k % ROWS`` of every group of block
    ``k // ROWS`` (the groups split in blocks of equal size). The groups' treatments and
    intercepts come from one stream shared by all partitions, the rows' ``x`` and ``y`` from
    the partition's own."""
    n_blocks = PARTS // ROWS
    group_rng = np.random.default_rng([seed, 0])
    treat = group_rng.integers(0, 2, n_groups)
    b = group_rng.normal(0.0, TRUE_SD, n_groups)
    block, visit = divmod(k, ROWS)
    edges = np.linspace(0, n_groups, n_blocks + 1).astype(np.int64)
    g = np.arange(edges[block], edges[block + 1])
    rng = np.random.default_rng([seed, 1, k])
    x = rng.normal(size=len(g))
    beta = TRUE_BETA
    eta = beta["(Intercept)"] + beta["x"] * x + beta["treat"] * treat[g] + b[g]
    y = (rng.random(len(g)) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    return pd.DataFrame(
        {"g": g, "x": x, "treat": treat[g].astype(np.int64), "y": y},
        index=pd.Index(g * ROWS + visit, name="row"),
    )


def simulated(gp, client, n_groups: int) -> None:
    """The simulated random-intercept model, generated on the workers and fitted there."""
    import dask.dataframe as dd

    meta = pd.DataFrame(
        {
            "g": pd.Series(dtype=np.int64),
            "x": pd.Series(dtype=np.float64),
            "treat": pd.Series(dtype=np.int64),
            "y": pd.Series(dtype=np.int64),
        },
        index=pd.Index([], dtype=np.int64, name="row"),
    )
    ddf = dd.from_map(_partition, range(PARTS), n_groups=n_groups, seed=SEED, meta=meta)
    n_rows = n_groups * ROWS
    print(
        f"2. y ~ x + treat, ~ 1 | g, binomial, 11 points: simulated, {n_groups:,} groups × "
        f"{ROWS} rows = {n_rows:,} rows in {ddf.npartitions} partitions (made on the workers)"
    )
    logging.getLogger("distributed.nanny").setLevel(logging.ERROR)  # "Restarting worker"
    client.restart()  # fresh worker processes: their peak memory is this fit's
    before = client.run(_peak_kb)
    fit = _quiet(lambda: gp.mixed_model("y ~ x + treat", "~ 1 | g", ddf, "binomial", client=client))
    t0 = time.perf_counter()
    m = fit()
    elapsed = time.perf_counter() - t0
    c = m.cluster
    print(
        f"fit {elapsed:.1f} s (start {c.start_s:.1f} s: levels, shuffle and shards), "
        f"logLik {m.loglik:.4f}, converged {m.converged}, {m.nobs:,} rows, "
        f"{m.n_groups:,} groups"
    )
    print(
        f"evaluations {c.evaluations}, bytes per evaluation {c.bytes / c.evaluations:,.0f} "
        f"(all {len(c.shards)} shards together)"
    )
    print(_gathered(m))
    fe, se = m.fixef(), np.sqrt(np.diag(m.vcov()))
    log_sd = 0.5 * np.log(float(m.D.iat[0, 0]))
    sd = float(np.exp(log_sd))
    var = m.vcov("var-cov")  # the log-Cholesky scale: D_11 is log SD for one random effect
    sd_se = sd * float(np.sqrt(var.iat[0, 0]))
    header = f"{'parameter':<16} {'truth':>8} {'estimate':>10} {'SE':>8} {'z':>7}"
    print(header)
    print("-" * len(header))
    rows = [(name, TRUE_BETA[name], fe[name], s) for name, s in zip(fe.index, se, strict=True)]
    rows.append(("sd (Intercept)", TRUE_SD, sd, sd_se))
    zs = []
    for name, truth, est, s in rows:
        z = (est - truth) / s
        zs.append(z)
        print(f"{name:<16} {truth:>8.3f} {est:>10.4f} {s:>8.4f} {z:>+7.2f}")
    print(f"every estimate within 3 SE of the truth: {'yes' if max(map(abs, zs)) < 3 else 'NO'}")
    peaks = client.run(_peak_kb)
    hwm = ", ".join(f"{v[0] / 1024:,.0f} MB" for _, v in sorted(peaks.items()))
    maxrss = ", ".join(f"{v[1] / 1024:,.0f} MB" for _, v in sorted(peaks.items()))
    idle = ", ".join(f"{v[0] / 1024:,.0f} MB" for _, v in sorted(before.items()))
    print(f"peak memory per worker: {hwm} (VmHWM; {idle} before the fit); ru_maxrss {maxrss}")
    print(f"peak memory of the driver (the whole run, part 1 included): {peak_mb():,.0f} MB")
    for note in dict.fromkeys(fit.caught):
        print(f"warning: {note.split(';')[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40,000 simulated groups")
    parser.add_argument("--groups", type=int, help="simulated groups (overrides --quick)")
    args = parser.parse_args()
    n_groups = args.groups or (40_000 if args.quick else 400_000)

    from distributed import Client, LocalCluster

    import glmm_ppl as gp

    print(_machine())
    # the scheduler's HTTP server (health checks) takes another port when another cluster on
    # the machine has 8787, and says so
    warnings.filterwarnings("ignore", message="Port .* is already in use")
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        print(f"glmm_ppl {gp.__version__}; LocalCluster: 2 workers × 1 thread\n", flush=True)
        scaling_data(gp, client)
        simulated(gp, client, n_groups)


if __name__ == "__main__":
    main()
