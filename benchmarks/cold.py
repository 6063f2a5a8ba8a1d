"""A fresh process that imports glmm_ppl and fits fm1, beside GLMMadaptive and ``glmm``.

Run from the repository root::

    python benchmarks/cold.py            # 5 timed processes after one warm-up
    python benchmarks/cold.py --runs 9

Each run is a new Python process (the way a user runs a script): ``import glmm_ppl``, load the
vignette's binary data, fit fm1 (``y ~ sex * time``, random intercepts by ``id``, 11 points).
The warm-up process fills the disk caches (compiled kernels and point functions), as a user's
first run does once per machine; the timed processes then start with those caches filled.
Each process reports its own import and fit times; the wall time is measured from outside and
includes the interpreter's start and exit.

The peers' figures come from ``tests/reference/python_peers.json`` (``cold_fm1_fresh_process_s``):
``Rscript`` loading GLMMadaptive 0.9-7 and fitting fm1, and a Python process importing ``glmm``
0.6.2 and fitting fm1, each a range of medians of 5 runs on a machine of the same kind (2 cores).
They were measured on another day: read the ratios as approximate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference" / "python_peers.json"

SCRIPT = """
import time
t0 = time.perf_counter()
import glmm_ppl as gp
t1 = time.perf_counter()
fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
t2 = time.perf_counter()
import sys
heavy = [m for m in ("pymc", "arviz", "nutpie", "matplotlib", "bambi") if m in sys.modules]
print(t1 - t0, t2 - t1, fm1.loglik, ",".join(heavy) or "-")
"""


def one_run() -> dict:
    """One fresh process: wall time from outside, import and fit times from inside."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, cwd=ROOT
    )
    wall = time.perf_counter() - start
    t_import, t_fit, loglik, heavy = out.stdout.split()[-4:]
    return {
        "wall": wall,
        "import": float(t_import),
        "fit": float(t_fit),
        "loglik": float(loglik),
        "heavy": heavy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed processes (default 5)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")

    peers = json.loads(REF.read_text())["cold_fm1_fresh_process_s"]
    one_run()  # warm-up: fills the disk caches
    runs = [one_run() for _ in range(args.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "import", "fit")}

    print(f"fresh process: import glmm_ppl + fit fm1, median of {args.runs} after a warm-up")
    print(
        f"  wall  {med['wall']:.3f} s  (min {min(r['wall'] for r in runs):.3f}, "
        f"max {max(r['wall'] for r in runs):.3f})"
    )
    print(
        f"  import glmm_ppl {med['import']:.3f} s, first fit {med['fit']:.3f} s, "
        f"logLik {runs[0]['loglik']:.4f}"
    )
    print(f"  heavy modules loaded by the fit: {runs[0]['heavy']}")
    print()
    print(f"{'peer':<22}{'fresh process (s)':>20}{'glmm_ppl / peer':>18}")
    wall = med["wall"]
    for name, label in (("GLMMadaptive_Rscript", "GLMMadaptive (Rscript)"), ("glmm", "glmm 0.6.2")):
        lo, hi = peers[name]
        print(f"{label:<22}{f'{lo:.2f}–{hi:.2f}':>20}{f'{wall / hi:.1f}–{wall / lo:.1f}×':>18}")


if __name__ == "__main__":
    main()
