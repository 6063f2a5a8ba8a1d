"""Fits run in several threads at once give exactly what they give one after another.

The compiled objective is shared by every model of the same structure; each thread calls its
own copy, and the quadrature Op evaluates with the engine its thread bound.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import glmm_ppl as gp

FIXED = "y ~ sex * time"


@pytest.fixture(scope="module")
def specs(binary, poisson):
    return [
        (FIXED, "~ 1 | id", binary, "binomial"),
        (FIXED, "~ 1 | id", poisson, "poisson"),
        (FIXED, "~ time || id", binary, "binomial"),
        (FIXED, "~ 1 | id", poisson, "negative_binomial"),
        (FIXED, "~ 1 | id", binary, "binomial"),  # the same structure as the first, twice
    ]


def _fit(spec):
    return gp.mixed_model(*spec)


def test_fits_in_threads_equal_sequential_fits_exactly(specs):
    sequential = [_fit(s) for s in specs]
    for _ in range(3):  # the failures this guards against were intermittent
        with ThreadPoolExecutor(max_workers=len(specs)) as pool:
            concurrent = list(pool.map(_fit, specs))
        for a, b in zip(sequential, concurrent, strict=True):
            assert a.loglik == b.loglik
            np.testing.assert_array_equal(a.theta, b.theta)
            np.testing.assert_array_equal(a.modes, b.modes)


def test_op_engine_binding_is_per_thread(binary):
    from glmm_ppl.engine.agq import AGQ
    from glmm_ppl.engine.ops import AGQLogLik

    fit = gp.mixed_model(FIXED, "~ 1 | id", binary, "binomial")
    d = fit.design
    mine = AGQ(d.y, d.Z, d.starts, fit.family, 5)
    other = AGQ(d.y, d.Z, d.starts, fit.family, 7)
    op = AGQLogLik(other)
    assert op.engine is other
    with op.bound(mine):
        assert op.engine is mine
        with ThreadPoolExecutor(1) as pool:  # another thread sees the default
            assert pool.submit(lambda: op.engine).result() is other
        with op.bound(other):
            assert op.engine is other
        assert op.engine is mine
    assert op.engine is other
