"""Benchmarks: glmm_ppl beside GLMMadaptive, lme4 and glmmTMB on the binary scaling data.

Run from the repository root::

    python benchmarks/run.py                 # warm fits, n = 100, 1,000, 10,000
    python benchmarks/run.py --cold --memory # also the demo's cold start and 100,000 groups
    python benchmarks/run.py --cold --memory --write-docs  # and rewrite the docs' table

``--write-docs`` writes the results of this one run, with the machine and the versions, to
``docs/performance_results.md`` (included by ``docs/performance.md``).

Warm fits: one fit of each structure first (compilation and JIT), then the median of
``--repeat`` fits (one for the largest data). The reference times were measured on a machine of
the same kind (``tests/reference/README.md``); compare the ratios, which come from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _timing import commit as checkout_commit

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference"
DOCS_TABLE = ROOT / "docs" / "performance_results.md"
FORMULA = "y ~ sex * time"
RANDOM = {"ri": "~ 1 | id", "corr": "~ time | id"}


def load(n: int) -> pd.DataFrame:
    import glmm_ppl as gp

    if n == 100:
        return gp.load_vignette("binary")
    df = pd.read_csv(REF / f"binary_n{n}.csv")
    df["sex"] = pd.Categorical(df["sex"], categories=["male", "female"])
    return df


def reference(n: int, kind: str) -> dict:
    vignette = json.loads((REF / "vignette_reference.json").read_text())
    scale = json.loads((REF / "scale_reference.json").read_text())
    peers = json.loads((REF / "scale_peers.json").read_text())
    if n == 100:
        ref = vignette["fm1" if kind == "ri" else "fm3"]
        glmmadaptive = {"time_s": ref["time_median_s"], "logLik": ref["logLik"]}
    else:
        glmmadaptive = scale[f"n{n}_{kind}"]
    lme4 = peers.get(f"lme4_n{n}_{'ri_agq11' if kind == 'ri' else 'corr_laplace'}", {})
    tmb = peers.get(f"glmmTMB_n{n}_corr_laplace", {}) if kind == "corr" else {}
    return {"GLMMadaptive": glmmadaptive, "lme4": lme4, "glmmTMB": tmb}


def fit_time(df, kind, repeat):
    import glmm_ppl as gp

    times, fit = [], None
    for _ in range(repeat):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            fit = gp.mixed_model(FORMULA, RANDOM[kind], df, family="binomial")
            times.append(time.perf_counter() - t0)
    return statistics.median(times), fit


def warm(sizes, repeat) -> pd.DataFrame:
    rows = []
    small = load(100)
    for kind in RANDOM:
        fit_time(small, kind, 1)  # compile and JIT this structure once
    for n in sizes:
        df = load(n)
        for kind in RANDOM:
            t, fit = fit_time(df, kind, repeat if n < 10_000 else 1)
            refs = reference(n, kind)
            row = {
                "case": f"n={n:,} {RANDOM[kind]}",
                "groups": n,
                "random": RANDOM[kind],
                "glmm_ppl s": t,
                "GLMMadaptive s": refs["GLMMadaptive"]["time_s"],
                "speed-up": refs["GLMMadaptive"]["time_s"] / t,
                "logLik": fit.loglik,
                "logLik - GLMMadaptive": fit.loglik - refs["GLMMadaptive"]["logLik"],
                "lme4 s": refs["lme4"].get("time_s", np.nan),
                "glmmTMB s": refs["glmmTMB"].get("time_s", np.nan),
                "evaluations": fit.opt_summary.evaluations + fit.opt_summary.hessian_evaluations,
            }
            rows.append(row)
            print(f"  {row['case']}: {t:.3f} s", file=sys.stderr, flush=True)
    return pd.DataFrame(rows).set_index("case")


def _machine() -> str:
    """CPU, cores, Python and the versions of the packages that set the speed."""
    import platform
    from importlib.metadata import version

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = checkout_commit(ROOT)
    packages = ", ".join(
        f"{name} {version(name)}" for name in ("numpy", "scipy", "pytensor", "pymc", "numba")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()}; Python "
        f"{platform.python_version()}, {packages}; glmm_ppl {version('glmm_ppl')} "
        f"(commit {commit})"
    )


def _seconds(t: float) -> str:
    if not np.isfinite(t):
        return ""
    return f"{t:.3g}" if t < 100 else f"{t:.0f}"  # three significant digits


def _ratio(reference: float, ours: float) -> str:
    if not np.isfinite(reference):
        return ""
    r = reference / ours
    return f"{r:.2g}×" if r < 10 else f"{r:.0f}×"


def write_docs(table: pd.DataFrame, cold: float | None, mem: tuple | None, path: Path) -> None:
    """The run's results as the Markdown that docs/performance.md includes."""
    import datetime

    laplace = {"~ 1 | id": "", "~ time | id": " (Laplace)"}
    lines = [
        "<!-- Generated by `python benchmarks/run.py --write-docs`; do not edit by hand. -->",
        "",
        f"Run of {datetime.date.today().isoformat()} on {_machine()}.",
        "",
        "| groups | random | glmm_ppl | GLMMadaptive | speed-up | lme4 | speed-up | glmmTMB "
        "| speed-up | logLik − GLMMadaptive |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for _, row in table.iterrows():
        ours = row["glmm_ppl s"]
        note = laplace[row["random"]]
        lme4, tmb = row["lme4 s"], row["glmmTMB s"]
        lines.append(
            f"| {row['groups']:,} | `{row['random'].replace('|', chr(92) + '|')}` "
            f"| {_seconds(ours)} s "
            f"| {_seconds(row['GLMMadaptive s'])} s | {_ratio(row['GLMMadaptive s'], ours)} "
            f"| {_seconds(lme4) + ' s' + note if np.isfinite(lme4) else ''} "
            f"| {_ratio(lme4, ours)} "
            f"| {_seconds(tmb) + ' s' + note if np.isfinite(tmb) else ''} "
            f"| {_ratio(tmb, ours)} "
            f"| {row['logLik - GLMMadaptive']:+.2g} |"
        )
    lines.append("")
    if cold is not None:
        lines.append(
            f"Cold start (`python -m glmm_ppl demo` in a fresh process with empty PyTensor and "
            f"numba caches): {cold:.1f} s."
        )
    if mem is not None:
        t, rss, converged, var = mem
        lines.append(
            f"100,000 groups × 8 observations, random intercepts: fit {t:.1f} s, peak memory "
            f"{rss:.2f} GB (converged: {converged}; intercept variance {var:.3f}, simulated "
            "with 4)."
        )
    path.write_text("\n".join(lines).rstrip() + "\n")
    print(f"\nwrote {path}", file=sys.stderr)


def cold_start() -> float:
    """Wall time of ``python -m glmm_ppl demo`` in a fresh process with empty compile caches."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env["PYTENSOR_FLAGS"] = f"compiledir={tmp}/pytensor"
        env["NUMBA_CACHE_DIR"] = f"{tmp}/numba"
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "glmm_ppl", "demo"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return time.perf_counter() - t0


MEMORY_SCRIPT = """
import resource, time, warnings, numpy as np, pandas as pd, glmm_ppl as gp
rng = np.random.default_rng(1)
n, k = {n}, 8
time_ = np.sort(rng.uniform(0, 10, (n, k)), axis=1).ravel()
female = np.repeat(rng.random(n) < 0.5, k)
b = np.repeat(rng.normal(0, 2.0, n), k)
eta = -2.5 - 1.2 * female + 0.3 * time_ + b
df = pd.DataFrame({{"id": np.repeat(np.arange(n), k), "time": time_,
                   "sex": pd.Categorical(np.where(female, "female", "male"), ["male", "female"]),
                   "y": (rng.random(n * k) < 1 / (1 + np.exp(-eta))).astype(int)}})
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fit = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, family="binomial")
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
      fit.converged, fit.D.iat[0, 0])
"""


def memory(n: int = 100_000) -> tuple[float, float, bool, float]:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT.format(n=n)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[0]), float(out[1]), out[2] == "True", float(out[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="time the demo with empty caches")
    parser.add_argument("--memory", action="store_true", help="fit 100,000 groups")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help=f"write the results to {DOCS_TABLE.relative_to(ROOT)} (the docs' table)",
    )
    args = parser.parse_args()
    table = warm(args.sizes, args.repeat)
    pd.set_option("display.width", 200)
    print("Warm fits (binary data, 11 quadrature points), glmm_ppl beside the references:")
    shown = table.drop(columns=["groups", "random"])
    print(shown.to_string(float_format=lambda v: f"{v:.4g}"))
    cold = mem = None
    if args.cold:
        cold = cold_start()
        print(f"\nCold start, `python -m glmm_ppl demo` with empty caches: {cold:.1f} s")
    if args.memory:
        mem = memory()
        t, rss, converged, var = mem
        print(
            f"\n100,000 groups x 8, random intercepts: fit {t:.1f} s, peak memory {rss:.2f} GB "
            f"(converged {converged}, intercept variance {var:.3f}; simulated with 4)"
        )
    if args.write_docs:
        write_docs(table, cold, mem, DOCS_TABLE)


if __name__ == "__main__":
    main()
