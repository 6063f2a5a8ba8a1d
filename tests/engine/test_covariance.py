"""The log-Cholesky parametrisation of D (glmm_ppl.engine.covariance)."""

import re

import numpy as np
import pytensor.tensor as pt
import pytest

from glmm_ppl.engine.covariance import D_to_theta, n_theta, theta_names, theta_to_D, theta_to_D_pt


def random_spd(rng, q):
    A = rng.normal(size=(q, q))
    return A @ A.T + 0.1 * np.eye(q)


@pytest.mark.parametrize("q", [1, 2, 3, 5])
def test_full_round_trip(q):
    rng = np.random.default_rng(20240 + q)
    for _ in range(5):
        D = random_spd(rng, q)
        theta = D_to_theta(D, diagonal=False)
        assert theta.shape == (n_theta(q, False),) == (q * (q + 1) // 2,)
        np.testing.assert_allclose(theta_to_D(theta, q, False), D, rtol=1e-12, atol=1e-12)
        # and the other way round, from arbitrary unconstrained θ
        t = rng.normal(size=q * (q + 1) // 2)
        np.testing.assert_allclose(D_to_theta(theta_to_D(t, q, False), False), t, atol=1e-10)


@pytest.mark.parametrize("q", [1, 2, 4])
def test_diagonal_round_trip(q):
    rng = np.random.default_rng(7 + q)
    D = np.diag(rng.uniform(0.05, 5.0, size=q))
    theta = D_to_theta(D, diagonal=True)
    assert theta.shape == (n_theta(q, True),) == (q,)
    np.testing.assert_allclose(theta, 0.5 * np.log(np.diag(D)), rtol=1e-14)  # log SDs
    np.testing.assert_allclose(theta_to_D(theta, q, True), D, rtol=1e-13)


def test_documented_example():
    D = theta_to_D(np.array([0.0, 0.5, np.log(2.0)]), 2, diagonal=False)
    np.testing.assert_allclose(D, [[1.0, 0.5], [0.5, 4.25]], rtol=1e-14)


@pytest.mark.parametrize("q, diagonal", [(1, False), (2, False), (3, False), (2, True), (3, True)])
def test_pytensor_map_equals_numpy_map(q, diagonal):
    rng = np.random.default_rng(100 * q + diagonal)
    t = rng.normal(size=n_theta(q, diagonal))
    theta = pt.dvector("theta")
    D_pt = theta_to_D_pt(theta, q, diagonal).eval({theta: t})
    np.testing.assert_allclose(D_pt, theta_to_D(t, q, diagonal), rtol=1e-14)  # same arithmetic


def test_names():
    assert theta_names(1, False) == ["D_11"]
    assert theta_names(2, False) == ["D_11", "D_12", "D_22"]
    assert theta_names(3, False) == ["D_11", "D_12", "D_22", "D_13", "D_23", "D_33"]
    assert theta_names(3, True) == ["D_11", "D_22", "D_33"]


def test_names_follow_theta_order():
    # θ holds the lower triangle of L row by row: from L = I, setting the off-diagonal entry
    # named D_jk to 0.3 makes D[j, k] (1-based) equal 0.3
    q = 3
    names = theta_names(q, False)
    base = theta_to_D(np.zeros(n_theta(q, False)), q, False)
    for idx, name in enumerate(names):
        j, k = int(name[2]) - 1, int(name[3]) - 1
        if j == k:
            continue
        t = np.zeros(n_theta(q, False))
        t[idx] = 0.3
        changed = theta_to_D(t, q, False) - base
        assert changed[j, k] == pytest.approx(0.3, rel=1e-14)


def test_not_positive_definite_raises():
    D = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues −1 and 3
    with pytest.raises(
        ValueError, match=r"D must be symmetric positive definite; got eigenvalues \[-1\.\s+3\.\]"
    ):
        D_to_theta(D, diagonal=False)


def test_non_positive_variance_raises_for_diagonal():
    with pytest.raises(
        ValueError, match=re.escape("the variances on the diagonal of D must be positive")
    ):
        D_to_theta(np.diag([1.0, 0.0]), diagonal=True)


def test_non_symmetric_raises():
    D = np.array([[1.0, 0.5], [0.9, 1.0]])
    with pytest.raises(ValueError, match="symmetric"):
        D_to_theta(D, diagonal=False)


def test_wrong_number_of_parameters_raises():
    with pytest.raises(
        ValueError,
        match=re.escape("a 2 x 2 covariance matrix has 3 parameters, got an array of shape (2,)"),
    ):
        theta_to_D(np.zeros(2), 2, diagonal=False)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "a 3 x 3 diagonal covariance matrix has 3 parameters, got an array of shape (6,)"
        ),
    ):
        theta_to_D(np.zeros(6), 3, diagonal=True)
