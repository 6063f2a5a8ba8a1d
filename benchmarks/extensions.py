"""Model extensions beside the R packages that fit them: a cumulative-link ordinal model beside
ordinal's ``clmm`` and dispersion sub-models beside glmmTMB's ``dispformula``.

Run from the repository root::

    python benchmarks/extensions.py

1. ``resp3 ~ Anger + Gender + btype + situ`` with random intercepts by ``id`` on lme4's VerbAgg
   (three categories, 7,584 rows, 316 people), cumulative logit, 11 quadrature points: clmm
   with 11 adaptive points (``tests/reference/extensions_reference.json``,
   ``verbagg_cumulative_logit``); probit and complementary log-log fits too (no reference).
2. ``y ~ x`` (gaussian) and ``count ~ x`` (negative binomial) with random intercepts by ``id``
   and ``disp_fixed="~ grp"`` on ``dispersion_sim.csv`` (200 groups × 5), beside glmmTMB
   (Laplace, which is exact for the gaussian).
3. Row weights: the vignette's Poisson model ``y ~ sex * time``, random intercepts by ``id``,
   with integer row weights 1–3 (seed 1), beside the Python packages ``glmm`` and ``mixedlm``
   (``weights=``, 11 quadrature points) when they are installed (``pip install glmm
   mixedlm``); no R reference. "ratio" is then the peer's warm time over ours in this run.

"first" is the first fit in this process (after ``import glmm_ppl``), "warm" the median of three
fits after it; "ratio" is the reference's time over our warm time. The reference times were
measured on a machine of the same kind (``tests/reference/README.md``): read the ratios as
approximate.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _timing import first_and_warm

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "reference"


def _row(name: str, first: float, warm: float, loglik: float, ref_time, ref_loglik) -> str:
    ratio = f"{ref_time / warm:6.1f}×" if ref_time else "      —"
    ref_t = f"{ref_time:8.3f}" if ref_time else "       —"
    ref_ll = f"{ref_loglik:12.4f}" if ref_loglik is not None else "           —"
    return f"{name:<40} {first:7.2f} {warm:7.3f} {ref_t} {ratio} {loglik:12.4f} {ref_ll}" + (
        f" {loglik - ref_loglik:+9.2e}" if ref_loglik is not None else ""
    )


def main() -> None:
    import glmm_ppl as gp

    refs = json.loads((REFERENCE / "extensions_reference.json").read_text())
    header = (
        f"{'model':<40} {'first':>7} {'warm':>7} {'R time':>8} {'ratio':>7} {'logLik':>12} "
        f"{'R logLik':>12} {'diff':>9}"
    )
    print(header)
    print("-" * len(header))
    verbagg = pd.read_csv(REFERENCE / "verbagg_ordinal.csv")
    ref = refs["verbagg_cumulative_logit"]
    for link in ("logit", "probit", "cloglog"):
        family = gp.families.cumulative(link=link)
        first, warm, fit = first_and_warm(
            lambda family=family: gp.mixed_model(
                "resp3 ~ Anger + Gender + btype + situ", "~ 1 | id", verbagg, family
            ),
            3,
        )
        is_ref = link == "logit"
        print(
            _row(
                f"VerbAgg cumulative {link} (clmm)" if is_ref else f"VerbAgg cumulative {link}",
                first,
                warm,
                fit.loglik,
                ref["time_median_s"] if is_ref else None,
                ref["logLik"] if is_ref else None,
            )
        )
    data = pd.read_csv(REFERENCE / "dispersion_sim.csv")
    for key, formula, family in (
        ("gaussian_dispformula", "y ~ x", "gaussian"),
        ("nbinom2_dispformula", "count ~ x", "negative_binomial"),
    ):
        ref = refs[key]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first, warm, fit = first_and_warm(
                lambda formula=formula, family=family: gp.mixed_model(
                    formula, "~ 1 | id", data, family, disp_fixed="~ grp"
                ),
                3,
            )
        print(
            _row(
                f"{family} disp ~ grp (glmmTMB)",
                first,
                warm,
                fit.loglik,
                ref["time_median_s"],
                ref["logLik"],
            )
        )

    row_weights(gp)


def row_weights(gp) -> None:
    """The weighted Poisson model, ours beside glmm's and mixedlm's (when installed)."""
    df = gp.load_vignette("poisson")
    df["w"] = np.random.default_rng(1).integers(1, 4, len(df)).astype(float)
    fits = {
        "glmm_ppl": lambda: (
            gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "poisson", row_weights="w").loglik
        )
    }
    try:
        import glmm

        fits["glmm"] = lambda: (
            glmm.fit(
                df, "y ~ sex * time + (1 | id)", "poisson", weights=df["w"].to_numpy(), nagq=11
            ).loglik
        )
    except ImportError:
        print("glmm is not installed: pip install glmm")
    try:
        import mixedlm

        fits["mixedlm"] = lambda: float(
            mixedlm.glmer(
                "y ~ sex * time + (1 | id)",
                df,
                family=mixedlm.families.Poisson(),
                nAGQ=11,
                weights="w",
            ).logLik()
        )
    except ImportError:
        print("mixedlm is not installed: pip install mixedlm")
    ours = None
    for name, fit in fits.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first, warm, loglik = first_and_warm(fit, 3)
        line = _row(f"poisson row weights ({name})", first, warm, loglik, None, None)
        if ours is None:
            ours = warm, loglik
        else:
            line += f"  peer/ours {warm / ours[0]:.1f}×, logLik {loglik - ours[1]:+.2e}"
        print(line)


if __name__ == "__main__":
    main()
