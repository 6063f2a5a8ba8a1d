"""exp, log and log1p in vectorisable arithmetic (glmm_ppl.engine.vector_math): within 2 units
in the last place of NumPy's over the whole range, subnormals included, and NumPy's special
values exactly."""

import numba
import numpy as np
import pytest

from glmm_ppl.engine.vector_math import vexp, vlog, vlog1p

RNG = np.random.default_rng(7)


def over(fn):
    """``fn`` over an array, in a loop the compiler vectorises (as the block functions do)."""

    @numba.njit(error_model="numpy")
    def loop(x):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = fn(x[i])
        return out

    return loop


def ulps(ours, ref):
    """Distance in units in the last place of ``ref`` (0 where both are equal or both NaN)."""
    same = (ours == ref) | (np.isnan(ours) & np.isnan(ref))
    with np.errstate(invalid="ignore"):
        return np.where(same, 0.0, np.abs(ours - ref) / np.spacing(np.abs(ref)))


CASES = {
    "exp": (
        vexp,
        np.exp,
        np.concatenate(
            [
                RNG.uniform(-750.0, 712.0, 200_000),
                RNG.uniform(-1.0, 1.0, 50_000),
                RNG.uniform(-745.2, -708.0, 50_000),  # subnormal results
                -np.exp(RNG.uniform(-60.0, 0.0, 10_000)),
            ]
        ),
    ),
    "log": (
        vlog,
        np.log,
        np.concatenate(
            [
                np.exp(RNG.uniform(-745.0, 709.0, 200_000)),  # subnormals too
                RNG.uniform(0.5, 2.0, 50_000),
                1.0 + RNG.uniform(-1e-8, 1e-8, 10_000),
            ]
        ),
    ),
    "log1p": (
        vlog1p,
        np.log1p,
        np.concatenate(
            [
                np.exp(RNG.uniform(-745.0, 709.0, 200_000)),
                -RNG.random(50_000),
                RNG.uniform(-1e-8, 1e-8, 10_000),
                -1.0 + np.exp(RNG.uniform(-36.0, -1.0, 10_000)),  # close to −1
            ]
        ),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_within_two_ulps_of_numpy(name):
    fn, ref, x = CASES[name]
    with np.errstate(over="ignore"):
        expected = ref(x)
    err = ulps(over(fn)(x), expected)
    assert err.max() <= 2.0, f"{name}: {err.max():.2f} ulp at x = {x[err.argmax()]!r}"


@pytest.mark.parametrize(
    ("name", "x"),
    [
        ("exp", [np.inf, -np.inf, np.nan, 0.0, -0.0, 709.78, 709.79, -745.13, -745.14, -1e-300]),
        ("log", [0.0, -0.0, -1.0, -np.inf, np.inf, np.nan, 5e-324, 1.0, np.finfo(float).max]),
        ("log1p", [0.0, -0.0, -1.0, -2.0, np.inf, -np.inf, np.nan, 5e-324, -1.0 + 2.0**-53]),
    ],
)
def test_special_values_are_numpys(name, x):
    fn, ref, _ = CASES[name]
    x = np.array(x)
    with np.errstate(all="ignore"):
        expected = ref(x)
    ours = over(fn)(x)
    np.testing.assert_array_equal(ours, expected)
    number = ~np.isnan(expected)  # a NaN's sign means nothing
    np.testing.assert_array_equal(np.signbit(ours[number]), np.signbit(expected[number]))
