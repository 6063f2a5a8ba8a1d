"""Gauss–Hermite rules for the standard normal (glmm_ppl.engine.quadrature)."""

import re

import numpy as np
import pytest
from scipy.special import factorial2

from glmm_ppl.engine.quadrature import gauss_hermite, product_rule


def normal_moment(k: int) -> float:
    """E[Z^k] for Z ~ N(0, 1): 0 for odd k, (k − 1)!! for even k."""
    return 0.0 if k % 2 else float(factorial2(k - 1)) if k > 0 else 1.0


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 11, 15])
def test_gauss_hermite_exact_up_to_degree_2n_minus_1(n):
    z, w = gauss_hermite(n)
    assert z.shape == w.shape == (n,)
    for k in range(2 * n):
        terms = w * z**k
        # rounding error relative to the sum of |terms| (odd moments cancel terms of ~(k−1)!!)
        tol = 1e-12 * np.abs(terms).sum()
        assert abs(terms.sum() - normal_moment(k)) <= tol, f"n={n}, k={k}"


@pytest.mark.parametrize("n", [2, 4, 6])
def test_gauss_hermite_not_exact_at_degree_2n(n):
    # the rule's degree is exactly 2n − 1: the moment of degree 2n is missed
    z, w = gauss_hermite(n)
    assert abs(w @ z ** (2 * n) - normal_moment(2 * n)) > 1e-3


@pytest.mark.parametrize("n", [1, 7, 11, 21, 41])
def test_gauss_hermite_weights_sum_to_one(n):
    z, w = gauss_hermite(n)
    assert w.sum() == pytest.approx(1.0, abs=1e-13)  # rounding of n positive terms
    assert np.all(w > 0)
    np.testing.assert_allclose(z, -z[::-1], atol=1e-13)  # nodes symmetric about 0


def test_product_rule_shape_and_weights():
    nodes, log_w = product_rule(4, 3)
    assert nodes.shape == (64, 3)
    assert log_w.shape == (64,)
    assert np.exp(log_w).sum() == pytest.approx(1.0, abs=1e-13)
    # every combination of 1-D nodes appears exactly once
    z1, _ = gauss_hermite(4)
    assert len({tuple(r) for r in nodes}) == 64
    assert set(np.unique(nodes)) == set(z1)


def test_product_rule_exact_on_2d_polynomial():
    # E[1 + Z1 + Z1² Z2² + Z1³ Z2 + Z1⁴ Z2⁴] = 1 + 0 + 1 + 0 + 9 = 11;
    # every degree per axis ≤ 2n − 1 = 9
    nodes, log_w = product_rule(5, 2)
    z1, z2 = nodes[:, 0], nodes[:, 1]
    f = 1 + z1 + z1**2 * z2**2 + z1**3 * z2 + z1**4 * z2**4
    assert np.exp(log_w) @ f == pytest.approx(11.0, rel=1e-13)  # rounding only


def test_product_rule_covariance_is_identity():
    nodes, log_w = product_rule(3, 2)
    cov = (nodes * np.exp(log_w)[:, None]).T @ nodes
    np.testing.assert_allclose(cov, np.eye(2), atol=1e-14)  # exact for degree 2


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_gauss_hermite_rejects_non_positive_integers(bad):
    msg = f"the number of quadrature points must be a positive integer, got {bad!r}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        gauss_hermite(bad)


def test_kernels_disk_cache_is_renewed_by_a_change_to_any_module():
    # numba's own stamp is the kernel's file alone: the density of θ (engine/log_density.py)
    # would keep the quadrature's old code (engine/kernels.py) after a change there
    from glmm_ppl.engine.log_density import _density_kernel

    stamp = _density_kernel._cache._impl.locator.get_source_stamp()
    names = {entry[0] for entry in stamp}
    expected = {"kernels.py", "agq.py", "covariance.py", "log_density.py", "pointwise.py"}
    assert {f"engine/{name}" for name in expected} <= names
    assert {"families/base.py", "fitting/graph.py", "api.py"} <= names  # every module
