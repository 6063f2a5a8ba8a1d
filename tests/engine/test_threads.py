"""The AGQ engine's threaded path gives the same numbers as the sequential one.

Above ``rows × nodes ≥ glmm_ppl.engine.agq._PARALLEL_WORK`` the engine splits the groups into blocks
run on a thread pool. Every group is computed by the same kernel code whichever block it falls
in, the kernels write disjoint slices, and the reductions over groups (``per_group.sum()``,
``S_g.sum(axis=0)``, ``gphi_g.sum(axis=0)``) are done afterwards by NumPy on the full arrays in
the same order. So the results must be bit-for-bit identical, and the tests compare with
``assert_array_equal`` (no tolerance: any difference means a block boundary dropped, doubled or
mixed up a group, or two threads wrote the same slice).

Each test also checks, through a spy on the thread pool, that the threaded path really ran
(otherwise a change of the threshold would make the comparison vacuous).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
import pytest
from numpy.testing import assert_array_equal
from scipy import special

from glmm_ppl.engine import agq as agq_module
from glmm_ppl.engine.agq import AGQ
from glmm_ppl.families import Family, binomial, poisson

N_GROUPS, PER_GROUP, N_AGQ = 3000, 6, 11  # 18,000 rows × 11² nodes = 2,178,000 ≥ 50,000
NO_PHIS = np.zeros(0)


class _normal(Family):
    """Test-only Gaussian family (identity link, extra parameter ``sd``): the threaded path
    with ``n_phis > 0`` (the kernels read φ through a pointer and reduce ``∂ℓ/∂φ``)."""

    name = "normal"
    links = ("identity",)
    phi_names = ("sd",)

    def logp(self, y, eta, phis):
        return -0.5 * np.log(2 * np.pi) - pt.log(phis[0]) - 0.5 * ((y - eta) / phis[0]) ** 2


def simulate(family: str, seed: int):
    """Longitudinal data with random intercepts and slopes: X = Z = [1, t]."""
    rng = np.random.default_rng(seed)
    n = N_GROUPS * PER_GROUP
    t = np.tile(np.linspace(0.0, 2.5, PER_GROUP), N_GROUPS) + rng.normal(0.0, 0.1, n)
    X = np.column_stack([np.ones(n), t])
    Z = X.copy()
    D = np.array([[0.9, 0.15], [0.15, 0.25]])
    beta = np.array([-0.4, 0.5]) if family == "binomial" else np.array([0.3, 0.2])
    b = rng.multivariate_normal(np.zeros(2), D, size=N_GROUPS)
    g = np.repeat(np.arange(N_GROUPS), PER_GROUP)
    eta = X @ beta + np.sum(Z * b[g], axis=1)
    if family == "binomial":
        y = rng.binomial(1, special.expit(eta)).astype(float)
        fam = binomial()
    elif family == "poisson":
        y = rng.poisson(np.exp(eta)).astype(float)
        fam = poisson()
    else:
        y = eta + rng.normal(0.0, 1.2, n)
        fam = _normal()
    starts = np.arange(0, n + 1, PER_GROUP)
    return y, X, Z, starts, fam, beta, D


@pytest.fixture(scope="module", params=["binomial", "poisson"])
def data(request):
    return simulate(request.param, seed=20240611 if request.param == "binomial" else 7)


@pytest.fixture
def pool_calls(monkeypatch):
    """Records the thread counts with which the engine asked for its pool (``_run`` asks once
    per submitted block)."""
    calls = []
    real = agq_module._pool

    def spy(threads):
        calls.append(threads)
        return real(threads)

    monkeypatch.setattr(agq_module, "_pool", spy)
    return calls


def _engine(data, threads: int) -> AGQ:
    y, X, Z, starts, fam, _, _ = data
    engine = AGQ(y, Z, starts, fam, N_AGQ)
    engine.threads = threads
    return engine


def test_data_crosses_the_threshold(data):
    engine = _engine(data, 2)
    assert engine.N * len(engine.log_w) >= agq_module._PARALLEL_WORK


# 2 is the case asked for; 7 splits 3,000 groups into blocks of unequal sizes (428/429)
@pytest.mark.parametrize("threads", [2, 7])
def test_update_modes_identical(data, pool_calls, threads):
    y, X, Z, starts, fam, beta, D = data
    # parameters away from the truth so that Newton takes several steps from b = 0
    eta0, D_eval = X @ (beta + np.array([0.2, -0.1])), 1.3 * D
    seq, par = _engine(data, 1), _engine(data, threads)
    it_seq = seq.update_modes(eta0, D_eval, NO_PHIS)
    assert pool_calls == []  # one thread: the sequential path
    it_par = par.update_modes(eta0, D_eval, NO_PHIS)
    assert pool_calls and set(pool_calls) == {threads}  # the threaded path ran
    assert it_seq == it_par and it_seq > 1
    assert np.all(seq.newton_iterations > 0)  # every group converged (no −inf sentinel)
    assert_array_equal(par.modes, seq.modes)
    assert_array_equal(par.chol, seq.chol)
    assert_array_equal(par.log_det_chol, seq.log_det_chol)
    assert_array_equal(par.newton_iterations, seq.newton_iterations)
    # the modes moved away from their start in every block (including the last group)
    assert np.all(np.any(seq.modes != 0.0, axis=1))


@pytest.mark.parametrize("threads", [2, 7])
@pytest.mark.parametrize("em", [False, True])
def test_evaluate_identical(data, pool_calls, threads, em):
    y, X, Z, starts, fam, beta, D = data
    eta0 = X @ beta
    seq, par = _engine(data, 1), _engine(data, threads)
    r1 = seq.evaluate(eta0, D, NO_PHIS, grad=True, em=em)
    assert pool_calls == []
    r2 = par.evaluate(eta0, D, NO_PHIS, grad=True, em=em)
    assert pool_calls and set(pool_calls) == {threads}  # the threaded path ran
    assert np.isfinite(r1.loglik)
    assert r2.loglik == r1.loglik
    assert_array_equal(r2.per_group, r1.per_group)
    assert_array_equal(r2.grad_eta, r1.grad_eta)
    assert_array_equal(r2.grad_D, r1.grad_D)
    assert_array_equal(r2.grad_phis, r1.grad_phis)
    assert_array_equal(r2.second_moment, r1.second_moment)
    assert_array_equal(par.modes, seq.modes)
    assert_array_equal(par.chol, seq.chol)
    if em:
        assert r1.hess_weights is not None and r1.hess_weights.shape == (len(y), 1)
        assert np.all(r1.hess_weights < 0)  # both families are log-concave in η
        assert_array_equal(r2.hess_weights, r1.hess_weights)
    else:
        assert r1.hess_weights is None and r2.hess_weights is None


@pytest.mark.parametrize("em", [False, True])
def test_evaluate_fixed_nodes_identical(data, pool_calls, em):
    """With ``recenter`` off (as in the Hessian) only the nodes kernel runs threaded."""
    y, X, Z, starts, fam, beta, D = data
    seq, par = _engine(data, 1), _engine(data, 2)
    seq.update_modes(X @ beta, D, NO_PHIS)
    par.modes, par.chol = seq.modes.copy(), seq.chol.copy()
    par.log_det_chol = seq.log_det_chol.copy()
    seq.recenter = par.recenter = False
    eta0 = X @ (beta + np.array([0.05, -0.02]))
    r1 = seq.evaluate(eta0, 1.1 * D, NO_PHIS, em=em)
    pool_calls.clear()
    r2 = par.evaluate(eta0, 1.1 * D, NO_PHIS, em=em)
    assert pool_calls and set(pool_calls) == {2}
    assert r2.loglik == r1.loglik
    for name in ("per_group", "grad_eta", "grad_D", "second_moment"):
        assert_array_equal(getattr(r2, name), getattr(r1, name), err_msg=name)
    if em:
        assert_array_equal(r2.hess_weights, r1.hess_weights)


def test_more_threads_than_groups(pool_calls):
    """5 large groups on 8 threads: some blocks are empty, the result is unchanged."""
    rng = np.random.default_rng(3)
    n_groups, per = 5, 1000  # 5,000 rows × 11² nodes ≥ 50,000
    n = n_groups * per
    t = rng.uniform(0.0, 1.0, n)
    Z = np.column_stack([np.ones(n), t])
    b = rng.normal(0.0, 0.5, (n_groups, 2))
    eta = 0.2 + np.sum(Z * np.repeat(b, per, axis=0), axis=1)
    y = rng.binomial(1, special.expit(eta)).astype(float)
    starts = np.arange(0, n + 1, per)
    D = np.diag([0.25, 0.25])
    out = []
    for threads in (1, 8):
        engine = AGQ(y, Z, starts, binomial(), N_AGQ)
        engine.threads = threads
        out.append((engine.evaluate(np.full(n, 0.2), D, NO_PHIS, em=True), engine))
    assert pool_calls and set(pool_calls) == {8}
    (r1, e1), (r2, e2) = out
    assert np.isfinite(r1.loglik) and r2.loglik == r1.loglik
    for name in ("per_group", "grad_eta", "grad_D", "second_moment", "hess_weights"):
        assert_array_equal(getattr(r2, name), getattr(r1, name), err_msg=name)
    assert_array_equal(e2.modes, e1.modes)
    assert_array_equal(e2.chol, e1.chol)


@pytest.mark.parametrize("em", [False, True])
def test_evaluate_identical_with_extra_parameter(pool_calls, em):
    y, X, Z, starts, fam, beta, D = simulate("normal", seed=99)
    phis = np.array([1.4])
    out = []
    for threads in (1, 2):
        engine = AGQ(y, Z, starts, fam, N_AGQ)
        engine.threads = threads
        out.append(engine.evaluate(X @ beta, D, phis, em=em))
    assert pool_calls and set(pool_calls) == {2}
    r1, r2 = out
    assert r1.grad_phis.shape == (1,) and r1.grad_phis[0] != 0.0
    assert r2.loglik == r1.loglik
    names = ["per_group", "grad_eta", "grad_D", "grad_phis", "second_moment"]
    for name in names + (["hess_weights"] if em else []):
        assert_array_equal(getattr(r2, name), getattr(r1, name), err_msg=name)
