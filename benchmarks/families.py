"""Fit times of every family on about 1,000 observations with a random intercept.

Run from the repository root::

    python benchmarks/families.py

Each family gets data simulated from it (170 groups × 6 rows, one covariate, random intercept
SD 0.6; zero-part families with ``zi_fixed="~ x"``). The first fit of a family in a process
compiles its log density and derivatives (the "first" column); the "warm" column is the median
of three fits after it. There are no reference times for these models; GLMMadaptive's
vignette models take 0.25 s (random intercepts) at n = 100 groups on this kind of machine.
"""

from __future__ import annotations

import statistics
import time
import warnings

import numpy as np
import pandas as pd
from scipy import special

N_GROUPS, PER_GROUP = 170, 6


def simulate(name: str, rng: np.random.Generator) -> tuple[pd.DataFrame, dict]:
    n = N_GROUPS * PER_GROUP
    g = np.repeat(np.arange(N_GROUPS), PER_GROUP)
    x = rng.normal(size=n)
    eta = 0.5 + 0.4 * x + rng.normal(0.0, 0.6, N_GROUPS)[g]
    mu, p = np.exp(eta), special.expit(eta)
    zero = rng.random(n) < special.expit(-0.5 + 0.3 * x)
    trials = rng.integers(1, 10, n)
    df = pd.DataFrame({"x": x, "g": g, "n": trials})
    kw: dict = {}
    if name in ("zi_poisson", "zi_negative_binomial", "zi_binomial") or name.startswith("hurdle"):
        kw["zi_fixed"] = "~ x"

    def nb_draws():
        return rng.negative_binomial(2.0, 2.0 / (2.0 + mu))

    def positive(draw):  # zero-truncated draws for the hurdle models
        out = draw()
        while np.any(out == 0):
            out = np.where(out == 0, draw(), out)
        return out

    nb = nb_draws()
    y = {
        "binomial": rng.binomial(trials, p),
        "poisson": rng.poisson(mu),
        "negative_binomial": nb,
        "zi_poisson": np.where(zero, 0, rng.poisson(mu)),
        "zi_negative_binomial": np.where(zero, 0, nb),
        "zi_binomial": np.where(zero, 0, rng.binomial(trials, p)),
        "hurdle_poisson": np.where(zero, 0, positive(lambda: rng.poisson(mu))),
        "hurdle_negative_binomial": np.where(zero, 0, positive(nb_draws)),
        "hurdle_lognormal": np.where(zero, 0.0, np.exp(eta + rng.normal(0, 0.5, n))),
        "hurdle_beta": np.where(zero, 0.0, rng.beta(p * 10, (1 - p) * 10).clip(1e-6, 1 - 1e-6)),
        "gaussian": eta + rng.normal(0, 0.5, n),
        "students_t": eta + 0.5 * rng.standard_t(4, n),
        "gamma": rng.gamma(2.5, mu / 2.5),
        "beta": rng.beta(p * 10, (1 - p) * 10).clip(1e-6, 1 - 1e-6),
        "beta_binomial": rng.binomial(trials, rng.beta(p * 5, (1 - p) * 5)),
        "censored_normal": np.minimum(eta + rng.normal(0, 0.5, n), 1.5),
    }[name]
    df["y"] = np.asarray(y, dtype=float)
    if name in ("binomial", "zi_binomial", "beta_binomial"):
        kw["trials"] = "n"
    if name == "censored_normal":
        df["c"] = np.where(df["y"] >= 1.5, 2, 0)
        kw["censoring"] = "c"
    return df, kw


def main() -> None:
    import glmm_ppl as gp

    rows = []
    for name, cls in gp.families.FAMILIES.items():
        family = cls(df=4.0) if name == "students_t" else cls()
        df, kw = simulate(name, np.random.default_rng(7))
        times = []
        for _ in range(4):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                fit = gp.mixed_model("y ~ x", "~ 1 | g", df, family, **kw)
                times.append(time.perf_counter() - t0)
        rows.append(
            {
                "family": name,
                "first s": times[0],
                "warm s": statistics.median(times[1:]),
                "converged": fit.converged,
                "logLik": fit.loglik,
            }
        )
    table = pd.DataFrame(rows).set_index("family")
    print(f"{N_GROUPS} groups x {PER_GROUP} rows, random intercepts, 11 points:")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
