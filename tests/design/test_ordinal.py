"""The continuation-ratio helpers: the expansion of an ordinal response into binary
pseudo-observations and the category probabilities from the cohorts' linear predictors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import special

from glmm_ppl.design.ordinal import cr_marg_probs, cr_setup


def _expected(rows, labels) -> pd.DataFrame:
    y, cohort, row = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "y": np.array(y, dtype=float),
            "cohort": pd.Categorical(cohort, categories=labels),
            "row": np.array(row, dtype=np.int64),
        }
    )


# ---- cr_setup ---------------------------------------------------------------------------------
def test_forward_rows_numeric():
    out = cr_setup(pd.Series([0, 3, 1, 2], name="stage"))
    labels = ["all", "stage>=1", "stage>=2"]
    expected = _expected(
        [
            (1, "all", 0),
            (0, "all", 1),
            (0, "stage>=1", 1),
            (0, "stage>=2", 1),
            (0, "all", 2),
            (1, "stage>=1", 2),
            (0, "all", 3),
            (0, "stage>=1", 3),
            (1, "stage>=2", 3),
        ],
        labels,
    )
    pd.testing.assert_frame_equal(out, expected)


def test_backward_rows_numeric():
    out = cr_setup(pd.Series([0, 3, 1, 2], name="stage"), direction="backward")
    labels = ["all", "stage<=2", "stage<=1"]
    expected = _expected(
        [
            (0, "all", 0),
            (0, "stage<=2", 0),
            (0, "stage<=1", 0),
            (1, "all", 1),
            (0, "all", 2),
            (0, "stage<=2", 2),
            (1, "stage<=1", 2),
            (0, "all", 3),
            (1, "stage<=2", 3),
        ],
        labels,
    )
    pd.testing.assert_frame_equal(out, expected)


def test_categorical_order_and_unnamed_input():
    # category order, not alphabetical: low < mid < high
    grade = pd.Categorical(["high", "low", "mid"], categories=["low", "mid", "high"])
    forward = cr_setup(pd.Series(grade, name="grade", index=[10, 20, 30]))
    pd.testing.assert_frame_equal(
        forward,
        _expected(
            [
                (0, "all", 0),
                (0, "grade>=mid", 0),
                (1, "all", 1),
                (0, "all", 2),
                (1, "grade>=mid", 2),
            ],
            ["all", "grade>=mid"],
        ),
    )
    backward = cr_setup(grade, direction="backward")  # no name: "y"
    pd.testing.assert_frame_equal(
        backward,
        _expected(
            [(1, "all", 0), (0, "all", 1), (0, "y<=mid", 1), (0, "all", 2), (1, "y<=mid", 2)],
            ["all", "y<=mid"],
        ),
    )


def test_strings_are_sorted():
    out = cr_setup(np.array(["c", "a", "b"]))
    assert list(out["cohort"].cat.categories) == ["all", "y>=b"]
    assert out["y"].tolist() == [0.0, 0.0, 1.0, 0.0, 1.0]
    assert out["row"].tolist() == [0, 0, 1, 2, 2]


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_rows_per_observation(direction):
    rng = np.random.default_rng(1)
    K = 5
    k = rng.integers(0, K, size=200)
    k[:K] = np.arange(K)
    out = cr_setup(pd.Series(k), direction=direction)
    counts = np.bincount(out["row"], minlength=len(k))
    code = k if direction == "forward" else K - 1 - k
    np.testing.assert_array_equal(counts, np.minimum(code + 1, K - 1))
    # rows are grouped by observation, in order, and each has at most one success
    assert np.all(np.diff(out["row"].to_numpy()) >= 0)
    successes = np.bincount(out["row"], weights=out["y"], minlength=len(k))
    np.testing.assert_array_equal(successes, (code < K - 1).astype(float))


def test_long_data_from_rows():
    data = pd.DataFrame(
        {"id": [1, 1, 2], "x": [0.5, 1.5, 2.5], "grade": [2, 0, 1]}, index=["a", "b", "c"]
    )
    cr = cr_setup(data["grade"])
    long = data.iloc[cr["row"]].reset_index(drop=True).assign(y=cr["y"], cohort=cr["cohort"])
    assert long["x"].tolist() == [0.5, 0.5, 1.5, 2.5, 2.5]
    assert long["y"].tolist() == [0.0, 0.0, 1.0, 0.0, 1.0]
    assert long["cohort"].astype(str).tolist() == ["all", "grade>=1", "all", "all", "grade>=1"]


# ---- cr_marg_probs ----------------------------------------------------------------------------
def test_marg_probs_known_values():
    eta = np.array([[0.0, 0.0, 0.0], [np.log(3.0), -np.log(3.0), 0.0]])
    np.testing.assert_allclose(
        cr_marg_probs(eta), [[1 / 2, 1 / 4, 1 / 8, 1 / 8], [3 / 4, 1 / 16, 3 / 32, 3 / 32]]
    )
    np.testing.assert_allclose(
        cr_marg_probs(eta, "backward"),
        [[1 / 8, 1 / 8, 1 / 4, 1 / 2], [3 / 32, 3 / 32, 1 / 16, 3 / 4]],
    )


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_marg_probs_extreme_eta(direction):
    eta = np.array(
        [
            [50.0, 50.0, 50.0],
            [-50.0, -50.0, -50.0],
            [50.0, -50.0, 50.0],
            [-50.0, 50.0, -50.0],
        ]
    )
    p = cr_marg_probs(eta, direction)
    assert p.shape == (4, 4)
    assert np.all(np.isfinite(p))
    assert np.all(p > 0)
    assert np.all(p <= 1)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # the tiny probabilities are kept, not rounded to zero: forward P(Y=1) = π_1 (1 - π_0)
    tiny = p[0, 1] if direction == "forward" else p[0, 2]
    np.testing.assert_allclose(tiny, np.exp(-50.0), rtol=1e-12)


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("K", [3, 4, 6])
def test_likelihood_of_expanded_data_matches_marg_probs(direction, K):
    rng = np.random.default_rng(K)
    n = 60
    k = np.concatenate([np.arange(K), rng.integers(0, K, size=n - K)])
    eta = rng.normal(scale=2.0, size=(n, K - 1))
    out = cr_setup(pd.Series(k, name="k"), direction=direction)
    rows = out["row"].to_numpy()
    cohort = out["cohort"].cat.codes.to_numpy()
    pi = special.expit(eta[rows, cohort])
    y = out["y"].to_numpy()
    bern = np.where(y == 1.0, pi, 1.0 - pi)
    lik = np.ones(n)
    np.multiply.at(lik, rows, bern)
    probs = cr_marg_probs(eta, direction)
    np.testing.assert_allclose(lik, probs[np.arange(n), k], rtol=1e-12)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)


def test_marg_probs_accepts_lists():
    np.testing.assert_allclose(cr_marg_probs([[0.0, 0.0]]), [[0.5, 0.25, 0.25]])


# ---- errors -----------------------------------------------------------------------------------
def test_two_levels():
    msg = (
        "grade has 2 level(s) ('a', 'b'); a continuation-ratio model needs at least 3 ordered "
        "levels — for a binary response use a binomial model"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        cr_setup(pd.Series(["a", "b", "a"], name="grade"))


def test_missing_values():
    with pytest.raises(
        ValueError, match=re.escape("y has 2 missing value(s); drop those rows before cr_setup")
    ):
        cr_setup(np.array([0.0, np.nan, 1.0, 2.0, np.nan]))


def test_not_one_dimensional():
    with pytest.raises(
        ValueError, match=re.escape("y must be one-dimensional, got 2 dimension(s)")
    ):
        cr_setup(np.zeros((3, 2)))


@pytest.mark.parametrize("fn", [cr_setup, cr_marg_probs])
def test_bad_direction(fn):
    arg = [0, 1, 2] if fn is cr_setup else np.zeros((2, 2))
    with pytest.raises(
        ValueError, match=re.escape("unknown direction 'sideways'; valid: 'forward', 'backward'")
    ):
        fn(arg, direction="sideways")


@pytest.mark.parametrize(
    ("eta", "shape"),
    [(np.zeros(3), "(3,)"), (np.zeros((4, 1)), "(4, 1)"), (np.zeros((2, 2, 2)), "(2, 2, 2)")],
)
def test_bad_eta_shape(eta, shape):
    msg = (
        "eta must be a 2-D array (n subjects, K - 1 cohorts) with at least 2 columns, "
        f"got shape {shape}"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        cr_marg_probs(eta)


def test_continuation_ratio_mixed_model_recovers_the_truth():
    """The documented workflow: expand with cr_setup, fit a binomial mixed model with the
    cohort as a factor; estimates of data simulated from a forward CR model with a random
    intercept fall within 4 standard errors of the truth."""
    import glmm_ppl as gp

    rng = np.random.default_rng(3)
    n, m = 300, 5
    g = np.repeat(np.arange(n), m)
    x = rng.normal(size=n * m)
    b = rng.normal(0.0, 0.8, n)[g]
    alpha, slope = np.array([-1.0, -0.3, 0.4]), 0.6
    y = np.full(n * m, 3)
    alive = np.ones(n * m, dtype=bool)
    for j, a in enumerate(alpha):  # P(Y = j | Y ≥ j) = logistic(α_j + 0.6 x + b)
        stop = alive & (rng.random(n * m) < 1 / (1 + np.exp(-(a + slope * x + b))))
        y[stop] = j
        alive &= ~stop
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    cr = cr_setup(df["y"])
    long = (
        df.iloc[cr["row"]]
        .reset_index(drop=True)
        .assign(y=cr["y"].to_numpy(), cohort=cr["cohort"].to_numpy())
    )
    fit = gp.mixed_model("y ~ cohort + x", "~ 1 | g", long, "binomial")
    assert fit.converged
    truth = {
        "(Intercept)": alpha[0],
        "cohorty>=1": alpha[1] - alpha[0],
        "cohorty>=2": alpha[2] - alpha[0],
        "x": slope,
        "D_11": np.log(0.8),  # log SD of the random intercept
    }
    se = dict(zip(fit.names, np.sqrt(np.diag(fit.vcov("all"))), strict=True))
    est = dict(zip(fit.names, fit.theta, strict=True))
    for name, value in truth.items():
        assert abs(est[name] - value) < 4 * se[name], name
