"""Command line: ``python -m glmm_ppl demo`` (GLMMadaptive's basics vignette end to end) and
``python -m glmm_ppl fit`` (one model from a CSV file)."""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import pandas as pd

__all__ = ["main"]


def _section(title: str) -> None:
    print(f"\n{'=' * 78}\n{title}\n{'=' * 78}")


def _table(df: pd.DataFrame, digits: int = 4) -> str:
    return df.to_string(float_format=lambda v: f"{v:.{digits}f}", na_rep="")


def demo() -> None:
    """Fit the models of GLMMadaptive's basics vignette and print what it prints."""
    import glmm_ppl as gp
    from glmm_ppl.postfit.anova import format_anova

    t0 = time.perf_counter()
    binary = gp.load_vignette("binary")
    formula = "y ~ sex * time"

    _section("Binary data: random intercepts (fm1)")
    fm1 = gp.mixed_model(formula, "~ 1 | id", binary, family="binomial")
    print(fm1.summary())

    _section("How many quadrature points? fm1 with 11, 15 and 21 points")
    fits = {
        k: fm1 if k == 11 else gp.mixed_model(formula, "~ 1 | id", binary, "binomial", n_agq=k)
        for k in (11, 15, 21)
    }
    table = pd.DataFrame(
        {f"nAGQ={k}": [*f.fixef(), f.D.iat[0, 0], f.loglik] for k, f in fits.items()},
        index=[*fm1.fixef().index, "var.(Intercept)", "logLik"],
    )
    print(_table(table))

    _section("Likelihood-ratio tests")
    glm0 = gp.glm(formula, binary, family="binomial")
    print("Random intercepts against a GLM without random effects:")
    print(format_anova(gp.anova(glm0, fm1, names=("glm", "fm1"))))
    fm2 = gp.mixed_model(formula, "~ time || id", binary, "binomial")
    print("\nIndependent random slopes (fm2) against random intercepts:")
    print(format_anova(gp.anova(fm1, fm2, names=("fm1", "fm2"))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gp.SingularFitWarning)
        fm3 = gp.mixed_model(formula, "~ time | id", binary, "binomial")
    print("\nCorrelated random slopes (fm3) against independent ones:")
    print(format_anova(gp.anova(fm2, fm3, names=("fm2", "fm3"))))
    print("\nfm3 random effects:")
    print(fm3.summary().random_effects.to_string(float_format=lambda v: f"{v:.4f}", na_rep=""))

    _section("Count data: Poisson with and without the Student-t penalty")
    counts = gp.load_vignette("poisson")
    gm1 = gp.mixed_model(formula, "~ 1 | id", counts, family="poisson")
    gm2 = gp.mixed_model(formula, "~ 1 | id", counts, family="poisson", penalized=True)
    print(gm1.summary())
    side = pd.DataFrame({"gm1": gm1.fixef(), "gm2 (penalized)": gm2.fixef()})
    side.loc["var.(Intercept)"] = [gm1.D.iat[0, 0], gm2.D.iat[0, 0]]
    side.loc["logLik"] = [gm1.loglik, gm2.loglik]
    print("\nFixed effects side by side:")
    print(_table(side))
    print(f"\nDemo finished in {time.perf_counter() - t0:.1f} s.")


def fit(args: argparse.Namespace) -> None:
    """Fit one model to a CSV file and print its summary."""
    import glmm_ppl as gp

    data = pd.read_csv(args.data)
    model = gp.mixed_model(
        args.fixed,
        args.random,
        data,
        family=args.family,
        n_agq=args.n_agq,
        penalized=args.penalized,
        zi_fixed=args.zi_fixed,
        zi_random=args.zi_random,
        offset=args.offset,
        weights=args.weights,
        trials=args.trials,
        censoring=args.censoring,
    )
    print(model.summary())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glmm_ppl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run GLMMadaptive's basics vignette end to end")
    p = sub.add_parser("fit", help="fit a mixed model to a CSV file and print its summary")
    p.add_argument("--data", required=True, help="CSV file")
    p.add_argument(
        "--fixed",
        required=True,
        help="e.g. 'y ~ sex * time', or with the random effects 'y ~ sex * time + (1 | id)'",
    )
    p.add_argument(
        "--random", help="e.g. '~ 1 | id' or '~ time || id' (not needed in a one-formula --fixed)"
    )
    p.add_argument("--family", required=True, help="e.g. binomial, poisson, gamma")
    p.add_argument("--n-agq", type=int, default=None, help="quadrature points per random effect")
    p.add_argument("--penalized", action="store_true", help="Student-t penalty on fixed effects")
    p.add_argument("--zi-fixed", help="zero part's fixed effects, e.g. '~ x'")
    p.add_argument("--zi-random", help="zero part's random effects, e.g. '~ 1 | id'")
    p.add_argument("--offset", help="offset column")
    p.add_argument("--weights", help="column of group weights (constant within groups)")
    p.add_argument("--trials", help="column of numbers of trials (binomial responses)")
    p.add_argument("--censoring", help="censoring column: 0 observed, 1 left, 2 right")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            demo()
        else:
            fit(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
