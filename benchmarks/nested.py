"""Nested random effects: fit times and log-likelihoods beside lme4, glmmTMB and Python peers.

Run from the repository root::

    python benchmarks/nested.py            # add --skip-large to leave out the 3-level model

1. ``y ~ x + ses + (1 | school/class)`` (binomial) on ``gp.load_schools()`` with the Laplace
   approximation (``n_agq=1``) and the default adaptive rule (7 points per level), beside
   lme4 and glmmTMB (both Laplace) and the exact maximum likelihood
   (``tests/reference/multilevel_reference.json``), and the Python packages ``glmm`` and
   ``mixedlm`` (``tests/reference/python_peers.json``). "first" is the first fit in this
   process (after ``import glmm_ppl``), "warm" the median of five fits after it; the ratios
   are the reference's time over ours, from this one run.
2. A simulated three-level binary model, ``(1 | a/b/c)``, with 20,000 top-level groups (2 units
   inside each unit of the next level, 2 rows per innermost unit: 160,000 rows): its fit time
   and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _timing import first_and_warm, peak_mb
from scipy import special

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "reference"
FORMULA = "y ~ x + ses + (1 | school/class)"


def _times(fit, repeats: int = 5) -> tuple[float, float, object]:
    return first_and_warm(fit, repeats)


def schools(gp) -> None:
    ref = json.loads((REFERENCE / "multilevel_reference.json").read_text())["schools_nested"]
    peers = json.loads((REFERENCE / "python_peers.json").read_text())
    df = gp.load_schools()
    print(f"{FORMULA}, binomial: {len(df)} pupils, 60 schools, 240 classes")
    print(f"{'fit':<24}{'logLik':>12}{'first s':>10}{'warm s':>10}   reference times")
    for label, n_agq in (("glmm_ppl n_agq=1", 1), ("glmm_ppl default (7)", None)):
        kwargs = {} if n_agq is None else {"n_agq": n_agq}
        first, warm, fit = _times(
            lambda kw=kwargs: gp.mixed_model(FORMULA, data=df, family="binomial", **kw)
        )
        others = [
            ("lme4 (Laplace)", ref["lme4"]["time_median_s"]),
            ("glmmTMB (Laplace)", ref["glmmTMB"]["time_median_s"]),
        ]
        others += [(name, t) for name, t in _python_peers(peers)]
        ratios = ", ".join(f"{name} {t:.3f} s ({t / warm:.1f}x)" for name, t in others)
        print(f"{label:<24}{fit.loglik:>12.4f}{first:>10.3f}{warm:>10.3f}   {ratios}")
    print(
        f"{'lme4 (Laplace)':<24}{ref['lme4']['logLik']:>12.4f}\n"
        f"{'glmmTMB (Laplace)':<24}{ref['glmmTMB']['logLik']:>12.4f}\n"
        f"{'exact ML':<24}{ref['exact_ml']['logLik']:>12.4f}"
    )


def _python_peers(peers: dict) -> list[tuple[str, float]]:
    """The Python packages' warm times on this model (Laplace) from python_peers.json."""
    case = peers["cases"]["schools nested Laplace"]
    return [(f"{name} (Laplace)", float(entry["warm_s"])) for name, entry in case.items()]


def three_levels(gp, n_top: int = 20_000, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(n_top), 8)
    b = np.repeat(np.arange(n_top * 2), 4)
    c = np.repeat(np.arange(n_top * 4), 2)
    x = rng.normal(size=len(a))
    eta = -0.3 + 0.5 * x + rng.normal(0, 0.8, n_top)[a] + rng.normal(0, 0.5, 2 * n_top)[b]
    eta += rng.normal(0, 0.4, 4 * n_top)[c]
    y = (rng.random(len(a)) < special.expit(eta)).astype(int)
    df = pd.DataFrame({"a": a, "b": b % 2, "c": c % 2, "x": x, "y": y})
    print(f"\n(1 | a/b/c), binomial: {n_top:,} top-level groups, {len(df):,} rows")
    for n_agq in (1, 5):
        before = peak_mb()
        t0 = time.perf_counter()
        fit = gp.mixed_model("y ~ x + (1 | a/b/c)", data=df, family="binomial", n_agq=n_agq)
        elapsed = time.perf_counter() - t0
        sds = ", ".join(f"{k} {np.sqrt(v.iat[0, 0]):.3f}" for k, v in fit.D.items())
        print(
            f"n_agq={n_agq}: {elapsed:.1f} s, logLik {fit.loglik:.2f}, SDs {sds} (simulated 0.8, "
            f"0.5, 0.4); peak RSS {peak_mb():.0f} MB (was {before:.0f} MB before the fit)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-large", action="store_true", help="leave out the 3-level model")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    import glmm_ppl as gp

    print(f"import glmm_ppl: {time.perf_counter() - t0:.2f} s")
    schools(gp)
    if not args.skip_large:
        three_levels(gp)


if __name__ == "__main__":
    main()
