"""Crossed random effects: fit times and log-likelihoods beside lme4, glmmTMB and Python peers.

Run from the repository root::

    python benchmarks/crossed.py                 # VerbAgg, then 1,000,000 simulated rows
    python benchmarks/crossed.py --rows 100000   # a smaller simulated design
    python benchmarks/crossed.py --rows 0        # VerbAgg only

1. ``y ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)`` (binomial) on lme4's
   ``VerbAgg`` data (316 people × 24 items, 7,584 rows) with the Laplace approximation, beside
   lme4 and glmmTMB (both Laplace; ``tests/reference/multilevel_reference.json``) and the Python
   packages ``glmm`` and ``mixedlm`` (``tests/reference/python_peers.json``). "first" is the
   first fit in this process (after ``import glmm_ppl``), "warm" the median of three fits after
   it; the ratios are the reference's time over ours (the Python packages' warm times over our
   warm time). The reference times were measured on another machine of the same kind
   (``tests/reference/README.md``): read the ratios as approximate.
2. A simulated crossed binary design, ``y ~ x + (1 | subject) + (1 | item)``: ``--rows`` rows
   (default 1,000,000), ``--items`` items (default 2,000), each subject seeing
   ``--per-subject`` distinct random items (default 10, so 100,000 subjects by default). Its fit
   time, the process's peak resident memory and the estimates beside the simulated values.
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
FIXED = "y ~ Anger + Gender + btype + situ"
RANDOM = "(1 | id) + (1 | item)"
# the simulated design's true values
BETA = {"(Intercept)": -0.5, "x": 0.5}
SD = {"subject": 1.0, "item": 0.5}


def _times(fit, repeats: int = 3) -> tuple[float, float, object]:
    return first_and_warm(fit, repeats)


def verbagg(gp) -> None:
    ref = json.loads((REFERENCE / "multilevel_reference.json").read_text())["verbagg_crossed"]
    peers = json.loads((REFERENCE / "python_peers.json").read_text())
    df = pd.read_csv(REFERENCE / "verbagg.csv")
    print(
        f"VerbAgg, {FIXED} + {RANDOM}, binomial:\n{len(df):,} rows, "
        f"{df['id'].nunique()} people x {df['item'].nunique()} items (crossed)"
    )
    first, warm, fit = _times(lambda: gp.mixed_model(FIXED, RANDOM, df, "binomial"))
    print(f"{'fit':<22}{'logLik':>13}{'first s':>10}{'warm s':>10}   ratio (their time / ours)")
    print(f"{'glmm_ppl (Laplace)':<22}{fit.loglik:>13.4f}{first:>10.3f}{warm:>10.3f}")
    for name in ("lme4", "glmmTMB"):
        t = ref[name]["time_median_s"]
        print(
            f"{name + ' (Laplace)':<22}{ref[name]['logLik']:>13.4f}{'':>10}{t:>10.3f}   "
            f"{t / warm:.1f}x (median of 3 fits, R)"
        )
    case = peers["cases"]["verbagg crossed Laplace"]
    for name, entry in case.items():
        t = float(entry["warm_s"])
        print(
            f"{name + ' (Laplace)':<22}{entry['loglik']:>13.4f}{entry['first_s']:>10.3f}"
            f"{t:>10.3f}   {t / warm:.2f}x (warm)"
        )
    sds = ", ".join(f"{k} {np.sqrt(v.iat[0, 0]):.4f}" for k, v in fit.D.items())
    tmb = ", ".join(f"{k} {np.sqrt(v[0][0]):.4f}" for k, v in ref["glmmTMB"]["varcorr"].items())
    print(f"SDs: {sds} (glmmTMB: {tmb})")


def simulate(rows: int, n_items: int, per_subject: int, seed: int = 1) -> pd.DataFrame:
    """A crossed binary design: each subject sees ``per_subject`` distinct random items."""
    if per_subject > n_items:
        raise ValueError("--per-subject must be at most --items")
    rng = np.random.default_rng(seed)
    n_subjects = max(rows // per_subject, 1)
    items = np.sort(rng.integers(0, n_items, (n_subjects, per_subject)), axis=1)
    while True:  # redraw the subjects that drew an item twice
        repeated = np.any(items[:, 1:] == items[:, :-1], axis=1)
        if not repeated.any():
            break
        items[repeated] = np.sort(
            rng.integers(0, n_items, (int(repeated.sum()), per_subject)), axis=1
        )
    subject = np.repeat(np.arange(n_subjects), per_subject)
    item = items.ravel()
    x = rng.normal(size=len(subject))
    eta = BETA["(Intercept)"] + BETA["x"] * x
    eta += rng.normal(0.0, SD["subject"], n_subjects)[subject]
    eta += rng.normal(0.0, SD["item"], n_items)[item]
    y = (rng.random(len(eta)) < special.expit(eta)).astype(np.int8)
    return pd.DataFrame({"subject": subject, "item": item, "x": x, "y": y})


def simulated(gp, rows: int, n_items: int, per_subject: int) -> None:
    t0 = time.perf_counter()
    df = simulate(rows, n_items, per_subject)
    made = time.perf_counter() - t0
    print(
        f"\nsimulated y ~ x + (1 | subject) + (1 | item), binomial: {len(df):,} rows, "
        f"{df['subject'].nunique():,} subjects x {df['item'].nunique():,} items, "
        f"{per_subject} items per subject (simulated in {made:.1f} s)"
    )
    before = peak_mb()
    t0 = time.perf_counter()
    fit = gp.mixed_model("y ~ x", "(1 | subject) + (1 | item)", df, "binomial")
    elapsed = time.perf_counter() - t0
    print(
        f"fit: {elapsed:.1f} s, logLik {fit.loglik:.2f}, converged {fit.converged}; peak RSS "
        f"{peak_mb():.0f} MB (was {before:.0f} MB before the fit)"
    )
    fixef = fit.fixef()
    se = np.sqrt(np.diag(fit.vcov().loc[fixef.index, fixef.index]))
    print(f"{'parameter':<16}{'estimate':>10}{'SE':>9}{'true':>8}")
    for (name, value), s in zip(fixef.items(), se, strict=True):
        print(f"{name:<16}{value:>10.4f}{s:>9.4f}{BETA[name]:>8.3f}")
    for name, D in fit.D.items():
        print(f"{'SD ' + name:<16}{np.sqrt(D.iat[0, 0]):>10.4f}{'':>9}{SD[name]:>8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows of the simulated design (0: skip it)"
    )
    parser.add_argument("--items", type=int, default=2_000, help="items of the simulated design")
    parser.add_argument("--per-subject", type=int, default=10, help="items each subject sees")
    parser.add_argument("--skip-verbagg", action="store_true", help="only the simulated design")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    import glmm_ppl as gp

    print(f"import glmm_ppl: {time.perf_counter() - t0:.2f} s")
    if not args.skip_verbagg:
        verbagg(gp)
    if args.rows > 0:
        simulated(gp, args.rows, args.items, args.per_subject)


if __name__ == "__main__":
    main()
