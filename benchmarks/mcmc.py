"""NUTS on the marginal model (AGQ) beside latent models of the same data.

The vignette model fm1 (``y ~ sex * time``, random intercepts by ``id``, binomial; 100
groups, 800 rows), and the same model on ``tests/reference/binary_n1000.csv`` (1,000 groups,
the data of the scaling benchmark), sampled with 2 chains × 1,000 draws after 1,000 tuning
steps:

* ``marginal``: :func:`glmm_ppl.sample` as it runs by default (nutpie's NUTS over ``θ`` only,
  the random effects integrated out by adaptive Gauss–Hermite quadrature, the two chains in
  two threads); the wall time includes the MAP fit it starts from;
* ``marginal, PyMC NUTS``: the same with ``nuts_sampler="pymc"`` (PyMC's sampler on
  :func:`glmm_ppl.to_pymc`'s model, one chain after the other);
* ``latent``: ``glmm_ppl.to_pymc(fit, marginal=False)`` under ``pm.sample`` (every random
  effect sampled, non-centred), one core;
* ``bambi``: bambi's latent model of the same design (its default priors), when bambi is
  installed: on one core, and with its default of one process per chain. Reference: bambi
  0.17 took 40 s wall (11 s sampling) on this machine.

Wall time is from the start of model building (or fitting) to the returned draws; sampling
time is the sampler's own (``posterior.attrs["sampling_time"]``). ESS is ArviZ's bulk ESS, the
minimum over the parameters all share: the fixed effects and the random-intercept standard
deviation. Run from the repository root::

    python benchmarks/mcmc.py [--draws 1000] [--tune 1000] [--chains 2] [--seed 1]
    python benchmarks/mcmc.py --groups 100    # fm1 only
    python benchmarks/mcmc.py --write-docs  # and write the tables to docs/performance_mcmc.md
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pymc as pm
from _timing import machine
from run import load  # the scaling benchmark's data sets

FIXED, RANDOM = "y ~ sex * time", "~ 1 | id"
ROOT = Path(__file__).resolve().parents[1]
DOCS_TABLE = ROOT / "docs" / "performance_mcmc.md"


def _min_ess(posterior, names: list[str]) -> float:
    ess = az.ess(posterior[names], method="bulk")
    return float(min(np.min(ess[n].to_numpy()) for n in names))


def _result(idata, start: float, names: list[str]) -> dict:
    """Wall time since ``start``, sampling time, smallest bulk ESS and divergences of a run."""
    wall = time.perf_counter() - start
    post = idata.posterior
    return {
        "wall": wall,
        "sampling": float(post.attrs["sampling_time"]),
        "ess": _min_ess(post, names),
        "divergences": int(idata.sample_stats["diverging"].sum()),
    }


def run_marginal(df, args, sampler: str) -> dict:
    import glmm_ppl as gp

    start = time.perf_counter()
    fit = gp.mixed_model(FIXED, RANDOM, df, "binomial")
    idata = gp.sample(
        fit,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        random_seed=args.seed,
        progressbar=False,
        nuts_sampler=sampler,
    )
    cores = min(args.chains, len(os.sched_getaffinity(0))) if sampler == "nutpie" else 1
    return {**_result(idata, start, ["beta", "sd"]), "cores": cores}


def run_latent(df, args) -> dict:
    import glmm_ppl as gp

    start = time.perf_counter()
    fit = gp.mixed_model(FIXED, RANDOM, df, "binomial")
    with gp.to_pymc(fit, marginal=False):
        idata = pm.sample(
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            cores=1,
            random_seed=args.seed,
            progressbar=False,
        )
    return {**_result(idata, start, ["beta", "sd"]), "cores": 1}


def run_bambi(df, args, cores: int | None) -> dict | None:
    """bambi's model of the data; ``cores=None`` is its default (a process per chain)."""
    try:
        import bambi  # noqa: F401
    except ImportError:
        return None
    import glmm_ppl as gp
    from glmm_ppl.bayes.bambi_bridge import bambi_model

    fit = gp.mixed_model(FIXED, RANDOM, df, "binomial")  # only its design; not timed
    start = time.perf_counter()
    model, names = bambi_model(fit)
    kwargs = {} if cores is None else {"cores": cores}
    idata = model.fit(
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        random_seed=args.seed,
        progressbar=False,
        **kwargs,
    )
    used = min(args.chains, len(os.sched_getaffinity(0))) if cores is None else cores
    result = _result(idata, start, names["beta"] + names["sd"])
    return {**result, "version": bambi.__version__, "cores": used}


def run_size(groups: int, args) -> tuple[str, list[str]]:
    """Every sampler on one data set: the table's title and lines."""
    df = load(groups)
    results = {
        "marginal": run_marginal(df, args, "nutpie"),
        "marginal, PyMC NUTS": run_marginal(df, args, "pymc"),
        "latent": run_latent(df, args),
    }
    for cores in (1, None):
        bambi_result = run_bambi(df, args, cores)
        if bambi_result is not None:
            name = f"bambi {bambi_result['version']}" + ("" if cores else ", default cores")
            results[name] = bambi_result
    data = "fm1" if groups == 100 else f"binary_n{groups}, fm1's model"
    title = (
        f"{data} ({groups} groups), {args.chains} chains x {args.draws} draws ({args.tune} "
        "tune); min bulk ESS over the fixed effects and the sd"
    )
    base = results["marginal"]
    lines = [
        "| model | cores | wall s | sampling s | min bulk ESS | ESS/s (wall) | ESS/s (sampling) "
        "| ESS/s vs marginal (wall) | divergent |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        ratio = (r["ess"] / r["wall"]) / (base["ess"] / base["wall"])
        lines.append(
            f"| {name} | {r['cores']} | {r['wall']:.1f} | {r['sampling']:.1f} | {r['ess']:.0f} "
            f"| {r['ess'] / r['wall']:.1f} | {r['ess'] / r['sampling']:.1f} "
            f"| {ratio:.2f} | {r['divergences']} |"
        )
    print(title)
    print("\n".join(lines))
    for name, r in results.items():
        if name == "marginal":
            continue
        print(
            f"marginal / {name}: wall time {base['wall'] / r['wall']:.2f}x, ESS per second "
            f"{(base['ess'] / base['wall']) / (r['ess'] / r['wall']):.1f}x (wall), "
            f"{(base['ess'] / base['sampling']) / (r['ess'] / r['sampling']):.1f}x (sampling)",
            flush=True,
        )
    return title, lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--groups", type=int, nargs="+", choices=(100, 1000), default=[100, 1000],
        help="the data sets: fm1's 100 groups, binary_n1000's 1,000 (default both)",
    )  # fmt: skip
    parser.add_argument("--write-docs", action="store_true", help=f"write {DOCS_TABLE.name}")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # PyMC's few-chains notes, the flat-sd-prior note
    tables = [run_size(groups, args) for groups in args.groups]
    if args.write_docs:
        stamp = time.strftime("%Y-%m-%d")
        DOCS_TABLE.write_text(
            f"One run of `python benchmarks/mcmc.py --write-docs` on {stamp}, {machine(ROOT)}."
            "\n\n"
            + "\n\n".join(f"{title}:\n\n" + "\n".join(lines) for title, lines in tables)
            + "\n"
        )
        print(f"wrote {DOCS_TABLE}")


if __name__ == "__main__":
    main()
