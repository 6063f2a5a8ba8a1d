"""Fit times of every family beside GLMMadaptive's, on the same data.

Run from the repository root::

    python benchmarks/families.py                     # warm fits beside GLMMadaptive
    python benchmarks/families.py --fresh             # also fresh processes: caches filled, empty
    python benchmarks/families.py --fresh --write-docs  # and rewrite the docs' table

Each family's data are those GLMMadaptive 0.9-7 was timed on (``tests/reference/families``: 170
groups × 6 rows, ``y ~ x``, random intercepts by ``g``, 11 points; zero parts ``~ x``; trials
``n``; censoring ``c``). "warm" is the median of three fits after a first one in this process;
"ratio" is GLMMadaptive's median time over ours; "logLik − GLMMadaptive" is positive where our
maximum is higher (the hurdle log-normal's is compared with GLMMadaptive's density of log y
plus the Jacobian −Σ log y over the positive rows, so the two are the same density).

``--fresh`` runs each family in new processes: "first (cached)" is the first fit's time in a
process started after another filled the disk caches (PyTensor's and numba's), the way every
script after the first runs; "cold" is the first fit with empty caches, the first use on a
machine. ``--write-docs`` writes the run to ``docs/performance_families.md``.
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
from _timing import machine

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "reference" / "families"
DOCS_TABLE = ROOT / "docs" / "performance_families.md"
ZERO_PARTS = ("zi_poisson", "zi_negative_binomial", "zi_binomial")
WITH_TRIALS = ("binomial", "zi_binomial", "beta_binomial")


def reference() -> dict:
    """GLMMadaptive's logLik, fixed effects and time on each family's data (``None`` where it
    has no fit)."""
    ref = json.loads((DATA / "families_reference.json").read_text())
    return {k: v for k, v in ref.items() if isinstance(v, dict) and "time_median_s" in v}


def model(name: str) -> tuple[pd.DataFrame, dict]:
    """The data and the keyword arguments of ``gp.mixed_model`` for one family's model."""
    import glmm_ppl as gp

    df = pd.read_csv(DATA / f"{name}.csv")
    cls = gp.families.FAMILIES[name]
    kw: dict = {"family": cls(df=4.0) if name == "students_t" else cls()}
    if name in ZERO_PARTS or name.startswith("hurdle"):
        kw["zi_fixed"] = "~ x"
    if name in WITH_TRIALS:
        kw["trials"] = "n"
    if name == "censored_normal":
        kw["censoring"] = "c"
    return df, kw


def fit(name: str):
    import glmm_ppl as gp

    df, kw = model(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gp.mixed_model("y ~ x", "~ 1 | g", df, **kw)


def comparable_loglik(name: str, ours: float) -> float:
    """Our logLik on GLMMadaptive's scale: its hurdle log-normal omits the Jacobian."""
    if name == "hurdle_lognormal":
        y = pd.read_csv(DATA / f"{name}.csv")["y"].to_numpy()
        return ours + float(np.log(y[y > 0]).sum())
    return ours


def warm_rows(names: list[str], repeats: int) -> list[dict]:
    ref = reference()
    rows = []
    for name in names:
        t0 = time.perf_counter()
        fitted = fit(name)
        first = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fitted = fit(name)
            times.append(time.perf_counter() - t0)
        warm = statistics.median(times)
        r = ref.get(name)
        rows.append(
            {
                "family": name,
                "warm s": warm,
                "GLMMadaptive s": r["time_median_s"] if r else np.nan,
                "ratio": r["time_median_s"] / warm if r else np.nan,
                "first in this process s": first,
                "evaluations": fitted.opt_summary.evaluations,
                "optimizer": fitted.opt_summary.optimizer,
                "logLik": fitted.loglik,
                "logLik - GLMMadaptive": (
                    comparable_loglik(name, fitted.loglik) - r["logLik"] if r else np.nan
                ),
                "converged": fitted.converged,
            }
        )
        print(f"  {name}: warm {warm:.3f} s", file=sys.stderr)
    return rows


FRESH = """
import sys, time
sys.path.insert(0, {bench!r})
t0 = time.perf_counter()
import glmm_ppl
from families import fit
t1 = time.perf_counter()
fit({name!r})
t2 = time.perf_counter()
fit({name!r})
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def fresh_process(name: str, env: dict) -> tuple[float, float, float]:
    """Import time, first fit and second fit of one family in a new process."""
    script = FRESH.format(bench=str(ROOT / "benchmarks"), name=name)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT
    )
    if out.returncode:
        raise RuntimeError(f"{name} in a fresh process failed:\n{out.stderr[-2000:]}")
    t_import, first, second = (float(v) for v in out.stdout.split()[-3:])
    return t_import, first, second


def fresh_rows(names: list[str]) -> dict:
    """Per family: the first fit with empty caches (cold), and in a later process (cached)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            caches = Path(tmp) / name  # empty caches of its own for each family
            env = dict(
                os.environ,
                NUMBA_CACHE_DIR=str(caches / "numba"),
                PYTENSOR_FLAGS=f"base_compiledir={caches / 'pytensor'}",
            )
            _, cold, _ = fresh_process(name, env)
            _, cached, second = fresh_process(name, env)
            out[name] = {"cold s": cold, "first (cached) s": cached, "second s": second}
            print(f"  {name}: cold {cold:.2f} s, cached first {cached:.3f} s", file=sys.stderr)
    return out


def table(rows: list[dict], fresh: dict) -> pd.DataFrame:
    out = pd.DataFrame(rows).set_index("family")
    for name, f in fresh.items():
        for k, v in f.items():
            out.loc[name, k] = v
    if fresh:
        out["first (cached) - warm s"] = out["first (cached) s"] - out["warm s"]
    return out


def markdown(out: pd.DataFrame) -> str:
    cols = ["warm s", "GLMMadaptive s", "ratio", "logLik - GLMMadaptive"]
    cols += [c for c in ("first (cached) s", "cold s") if c in out]
    head = ["family", "glmm_ppl warm", "GLMMadaptive", "speed-up", "logLik − GLMMadaptive"]
    head += ["first fit, fresh process", "first fit, empty caches"][: len(cols) - 4]

    def cell(col: str, v) -> str:
        if pd.isna(v):
            return ""
        if col == "ratio":
            return f"{v:.1f}×"
        if col == "logLik - GLMMadaptive":
            return f"{v:+.2g}"
        return f"{v:.3f} s" if v < 1 else f"{v:.2f} s"

    lines = ["| " + " | ".join(head) + " |", "| --- " + "| ---: " * (len(head) - 1) + "|"]
    for name, row in out.iterrows():
        lines.append("| " + " | ".join([name] + [cell(c, row[c]) for c in cols]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="also time fresh processes")
    parser.add_argument("--write-docs", action="store_true", help=f"write {DOCS_TABLE.name}")
    parser.add_argument("--repeat", type=int, default=3, help="warm fits per family (default 3)")
    parser.add_argument("families", nargs="*", help="only these families (default: all)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    names = sorted(p.stem for p in DATA.glob("*.csv"))
    unknown = sorted(set(args.families) - set(names))
    if unknown:
        parser.error(f"no data for {unknown}; the families are {names}")
    names = args.families or names

    out = table(warm_rows(names, args.repeat), fresh_rows(names) if args.fresh else {})
    pd.set_option("display.width", 200)
    print(f"{len(names)} families, 170 groups x 6 rows, random intercepts, 11 points")
    print(out.to_string(float_format=lambda v: f"{v:.3f}"))
    ratios = out["ratio"].dropna()
    print(
        f"speed-up over GLMMadaptive: min {ratios.min():.1f}x ({ratios.idxmin()}), "
        f"median {ratios.median():.1f}x"
    )
    if args.write_docs:
        command = "python benchmarks/families.py" + " --fresh" * args.fresh + " --write-docs"
        DOCS_TABLE.write_text(
            f"<!-- Generated by `{command}`; do not edit by hand. -->\n\n"
            f"Run of {time.strftime('%Y-%m-%d')} on {machine(ROOT)}.\n\n{markdown(out)}\n"
        )
        print(f"wrote {DOCS_TABLE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
