"""Zero-inflated and hurdle families: log densities against scipy, probabilities summing to one,
derivatives against finite differences, finiteness far in the tails, response checks,
simulation and starting values."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode
from pytensor.graph.rewriting.utils import rewrite_graph
from pytensor.tensor.elemwise import DimShuffle, Elemwise
from scipy import special, stats

try:
    from pytensor.graph.traversal import io_toposort
except ImportError:  # PyTensor before 2.32
    from pytensor.graph.basic import io_toposort

from glmm_ppl.families.hurdle import (
    hurdle_beta,
    hurdle_lognormal,
    hurdle_negative_binomial,
    hurdle_poisson,
)
from glmm_ppl.families.zero_inflated import zi_binomial, zi_negative_binomial, zi_poisson

# p = g⁻¹(η) with scipy, independently of the package's links
INVERSE = {
    "logit": special.expit,
    "probit": special.ndtr,
    "cloglog": lambda eta: -np.expm1(-np.exp(eta)),
}


# ---- reference densities (numpy / scipy) ----------------------------------------------------
def log_pi(eta_zi):
    return -np.logaddexp(0.0, -eta_zi)


def log_1m_pi(eta_zi):
    return -np.logaddexp(0.0, eta_zi)


def zero_inflated(y, eta_zi, log_f, log_f0):
    zero = np.logaddexp(log_pi(eta_zi), log_1m_pi(eta_zi) + log_f0)
    return np.where(y > 0, log_1m_pi(eta_zi) + log_f, zero)


def hurdle(y, eta_zi, log_f, log_f0=None):
    positive = log_1m_pi(eta_zi) + log_f
    if log_f0 is not None:
        positive = positive - np.log(-np.expm1(log_f0))
    return np.where(y > 0, positive, log_pi(eta_zi))


def nb_logpmf(y, eta, size):
    mu = np.exp(eta)
    return stats.nbinom.logpmf(y, n=size, p=size / (size + mu))


def ref_zi_poisson(y, eta, eta_zi, phi, n):
    mu = np.exp(eta)
    return zero_inflated(y, eta_zi, stats.poisson.logpmf(y, mu), stats.poisson.logpmf(0, mu))


def ref_zi_nb(y, eta, eta_zi, phi, n):
    return zero_inflated(y, eta_zi, nb_logpmf(y, eta, phi), nb_logpmf(0, eta, phi))


def ref_zi_binomial(link):
    def ref(y, eta, eta_zi, phi, n):
        p = INVERSE[link](eta)
        return zero_inflated(y, eta_zi, stats.binom.logpmf(y, n, p), stats.binom.logpmf(0, n, p))

    return ref


def ref_hurdle_poisson(y, eta, eta_zi, phi, n):
    mu = np.exp(eta)
    return hurdle(y, eta_zi, stats.poisson.logpmf(y, mu), stats.poisson.logpmf(0, mu))


def ref_hurdle_nb(y, eta, eta_zi, phi, n):
    return hurdle(y, eta_zi, nb_logpmf(y, eta, phi), nb_logpmf(0, eta, phi))


def ref_hurdle_lognormal(y, eta, eta_zi, phi, n):
    y_pos = np.where(y > 0, y, 1.0)
    return hurdle(y, eta_zi, stats.lognorm.logpdf(y_pos, s=phi, scale=np.exp(eta)))


def ref_hurdle_beta(y, eta, eta_zi, phi, n):
    y_pos = np.where(y > 0, y, 0.5)
    m = special.expit(eta)
    return hurdle(y, eta_zi, stats.beta.logpdf(y_pos, m * phi, (1.0 - m) * phi))


# ---- the cases --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    make: object
    ref: object
    ys: tuple  # responses on the grid (with trials: (y, n) pairs)
    phis: tuple = ()  # values of the extra parameter on the grid; empty for none
    wide_phis: tuple = ()  # extra-parameter values of the finiteness check
    trials: bool = False
    discrete: bool = True
    eta_max: float = 3.0  # largest η on the grids: scipy's binomial needs 1 − p not tiny


COUNTS = (0.0, 1.0, 2.0, 3.0, 7.0, 15.0)
TRIAL_PAIRS = ((0, 1), (1, 1), (0, 3), (1, 3), (3, 3), (0, 10), (4, 10), (10, 10))
SIZES = (0.5, 2.0, 20.0)
CASES = [
    Case("zi_poisson", zi_poisson, ref_zi_poisson, COUNTS),
    Case(
        "zi_negative_binomial",
        zi_negative_binomial,
        ref_zi_nb,
        COUNTS,
        SIZES,
        (1e-3, 1.0, 1e3),
    ),
    *[
        Case(
            f"zi_binomial-{link}",
            lambda link=link: zi_binomial(link=link),
            ref_zi_binomial(link),
            ((0, 1), (1, 1)),
            eta_max=1.5 if link == "cloglog" else 3.0,
        )
        for link in ("logit", "probit", "cloglog")
    ],
    *[
        Case(
            f"zi_binomial-{link}-trials",
            lambda link=link: zi_binomial(link=link),
            ref_zi_binomial(link),
            TRIAL_PAIRS,
            trials=True,
            eta_max=1.5 if link == "cloglog" else 3.0,
        )
        for link in ("logit", "probit", "cloglog")
    ],
    Case("hurdle_poisson", hurdle_poisson, ref_hurdle_poisson, COUNTS),
    Case(
        "hurdle_negative_binomial",
        hurdle_negative_binomial,
        ref_hurdle_nb,
        COUNTS,
        SIZES,
        (1e-3, 1.0, 1e3),
    ),
    Case(
        "hurdle_lognormal",
        hurdle_lognormal,
        ref_hurdle_lognormal,
        (0.0, 0.01, 0.5, 1.0, 3.0, 40.0),
        (0.3, 1.0, 2.5),
        (1e-3, 1.0, 1e3),
        discrete=False,
    ),
    Case(
        "hurdle_beta",
        hurdle_beta,
        ref_hurdle_beta,
        (0.0, 0.001, 0.2, 0.5, 0.9, 0.999),
        (0.5, 3.0, 40.0),
        (1e-3, 1.0, 1e3),
        discrete=False,
    ),
]
BY_ID = {c.id: c for c in CASES}
IDS = [c.id for c in CASES]

ETA_ZI = np.array([-3.0, -1.0, 0.0, 1.5, 3.0])
WIDE = np.linspace(-30.0, 30.0, 61)


def grid(case: Case, eta=None, eta_zi=ETA_ZI, phis=None):
    """Flat arrays (y, η, η_zi, φ, n) over every combination."""
    eta = np.linspace(-3.0, case.eta_max, 7) if eta is None else eta
    phis = (case.phis or (1.0,)) if phis is None else (phis or (1.0,))
    pairs = case.ys if isinstance(case.ys[0], tuple) else [(y, 1) for y in case.ys]
    pairs = np.array(pairs, dtype=float)
    k, e, z, p = np.meshgrid(np.arange(len(pairs)), eta, eta_zi, phis, indexing="ij")
    k = k.ravel()
    return pairs[k, 0], e.ravel(), z.ravel(), p.ravel(), pairs[k, 1]


# ---- the family's log density and derivatives by PyTensor -----------------------------------
def symbolic(case: Case, y, eta, eta_zi, phi, n):
    fam = case.make()
    data = {"trials": n} if case.trials else {}
    return fam.logp(y, eta, [phi] if case.phis else [], eta_zi=eta_zi, **data)


INPUT_NAMES = ("y", "eta", "eta_zi", "phi", "n")
PY = Mode(linker="py", optimizer=None)  # PyTensor's Python linker: no C compilation
# the rewrites the engine applies before turning the graph into a scalar function
ENGINE_REWRITES = ("canonicalize", "stabilize", "specialize")


@cache
def compiled(case_id: str, engine: bool = False):
    """``(y, η, η_zi, φ, n) ↦ (ℓ, ∂η, ∂η_zi, ∂²η, ∂η∂η_zi, ∂²η_zi, ∂φ)`` on arrays.

    The graph is built on scalars and differentiated by ``pytensor.grad``; with ``engine`` it is
    rewritten as the engine does (and must stay elementwise). It is then applied to vectors and
    run by PyTensor's Python linker without further rewrites (no C compilation).
    """
    case = BY_ID[case_id]
    inputs = [pt.dscalar(name) for name in INPUT_NAMES]
    y, eta, eta_zi, phi, n = inputs
    lp = symbolic(case, y, eta, eta_zi, phi, n)

    def grad(f, x):
        return pytensor.grad(f, x, disconnected_inputs="ignore")

    d_e, d_z = grad(lp, eta), grad(lp, eta_zi)
    d_phi = grad(lp, phi) if case.phis else pt.zeros_like(lp)
    outs = [lp, d_e, d_z, grad(d_e, eta), grad(d_e, eta_zi), grad(d_z, eta_zi), d_phi]
    if engine:
        outs = rewrite_graph(outs, include=ENGINE_REWRITES)
        for node in io_toposort(inputs, outs):
            assert isinstance(node.op, Elemwise | DimShuffle), f"{case_id}: {node.op}"
    vectors = [pt.dvector(name) for name in INPUT_NAMES]
    outs = pytensor.clone_replace(
        outs, dict(zip(inputs, vectors, strict=True)), rebuild_strict=False
    )
    fn = pytensor.function(vectors, outs, mode=PY, on_unused_input="ignore")

    def evaluate(*args):
        args = np.broadcast_arrays(*(np.asarray(a, float) for a in args))
        return [np.broadcast_to(o, args[0].shape) for o in fn(*args)]

    return evaluate


def stencil(f, h):
    """Fourth-order central differences: first and second derivative of ``f(t)`` at 0."""
    fm2, fm1, f0, fp1, fp2 = (f(t * h) for t in (-2, -1, 0, 1, 2))
    d1 = (fm2 - 8 * fm1 + 8 * fp1 - fp2) / (12 * h)
    d2 = (-fm2 + 16 * fm1 - 30 * f0 + 16 * fp1 - fp2) / (12 * h**2)
    return d1, d2


# ---- log density against scipy ----------------------------------------------------------------
@pytest.mark.parametrize("case_id", IDS)
def test_logp_equals_scipy(case_id):
    case = BY_ID[case_id]
    y, eta, eta_zi, phi, n = grid(case)
    got = compiled(case_id)(y, eta, eta_zi, phi, n)[0]
    expected = case.ref(y, eta, eta_zi, phi, n)
    assert np.all(np.isfinite(expected))
    # measured ≤ 1e-13 relative (8e-12 for hurdle_beta, where ℓ nearly cancels): scipy and the
    # family sum the same terms in different orders
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("case_id", [c.id for c in CASES if c.discrete])
def test_probabilities_sum_to_one(case_id):
    case = BY_ID[case_id]
    fn = compiled(case_id)
    for eta in (-2.0, 0.0, 2.0):
        for eta_zi in (-2.0, 0.5):
            for phi in case.phis[:2] or (1.0,):
                ns = (1, 4, 12) if case.trials else (1,)
                for n in ns:
                    # counts: the tail beyond 3000 is below 1e-16 for every μ, size here
                    y_max = n if case_id.startswith("zi_binomial") else 3000
                    y = np.arange(y_max + 1.0)
                    lp = fn(
                        y,
                        np.full_like(y, eta),
                        np.full_like(y, eta_zi),
                        np.full_like(y, phi),
                        np.full_like(y, n),
                    )[0]
                    np.testing.assert_allclose(np.exp(lp).sum(), 1.0, rtol=0, atol=1e-12)


def f64(x):
    """A float64 constant (``pt.as_tensor`` makes Python floats float32)."""
    return pt.as_tensor(np.asarray(x, dtype=np.float64))


def test_zero_row_of_zi_poisson_by_hand():
    lp = zi_poisson().logp(f64(0.0), f64(np.log(2.0)), [], eta_zi=f64(-1.0)).eval(mode=PY)
    pi = special.expit(-1.0)
    assert lp == pytest.approx(np.log(pi + (1 - pi) * np.exp(-2.0)), rel=1e-14)


# ---- the series for log(1 − f(0)) of the hurdle count families, far in the tails -------------
def stable_hurdle_poisson(y, eta, eta_zi, size=None):
    mu = np.exp(eta)
    log_f = y * eta - mu - special.gammaln(y + 1)
    return log_1m_pi(eta_zi) + log_f - np.log(-np.expm1(-mu))


def stable_hurdle_nb(y, eta, eta_zi, size):
    mu = np.exp(eta)
    x = size * np.log1p(mu / size)
    # log Γ(y + θ) − log Γ(θ) = Σ_{i<y} log(θ + i), exact for the integer counts here (the
    # difference of gammaln loses ~1e-12 at θ = 1e3)
    rising = np.array([math.fsum(np.log(size + np.arange(k))) for k in np.ravel(y).astype(int)])
    log_f = rising.reshape(np.shape(y)) - special.gammaln(y + 1) - x - y * np.log1p(size / mu)
    return log_1m_pi(eta_zi) + log_f - np.log(-np.expm1(-x))


TAIL_ETA = np.r_[WIDE, np.log(1e-4) + np.array([-1e-9, -1e-12, 0.0, 1e-12, 1e-9])]


@pytest.mark.parametrize(
    "family, stable, sizes",
    [
        (hurdle_poisson(), stable_hurdle_poisson, (None,)),
        (hurdle_negative_binomial(), stable_hurdle_nb, (1e-3, 0.3, 1.0, 50.0, 1e3)),
    ],
    ids=["poisson", "negative_binomial"],
)
def test_hurdle_counts_accurate_over_wide_range(family, stable, sizes):
    for size in sizes:
        for y in (1.0, 2.0, 10.0):
            eta = np.r_[TAIL_ETA, TAIL_ETA + (0.0 if size is None else min(np.log(size), 0))]
            phis = [] if size is None else [f64(size)]
            got = family.logp(f64(np.full_like(eta, y)), f64(eta), phis, eta_zi=f64(0.3)).eval(
                mode=PY
            )
            expected = stable(y, eta, 0.3, size)
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("case_id", ["hurdle_poisson", "hurdle_negative_binomial"])
def test_hurdle_count_derivatives_continuous_across_series(case_id):
    """The derivatives agree with differences of the stable formula on both sides of where
    ``log(1 − f(0))`` switches to its series."""
    case = BY_ID[case_id]
    stable = stable_hurdle_poisson if case_id == "hurdle_poisson" else stable_hurdle_nb
    for size in (0.3, 5.0):
        edge = np.log(1e-4) + (min(np.log(size), 0.0) if case.phis else 0.0)
        eta = edge + np.array([-20.0, -1e-3, -1e-6, 1e-6, 1e-3, 3.0])
        y = np.ones_like(eta)
        out = compiled(case_id)(y, eta, np.zeros_like(eta), np.full_like(eta, size), y)
        fd1, fd2 = stencil(lambda t, y=y, eta=eta, size=size: stable(y, eta + t, 0.0, size), 1e-3)
        np.testing.assert_allclose(out[1], fd1, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(out[3], fd2, rtol=1e-6, atol=1e-8)


# log p and log(1 − p) accurate in both tails (closed forms / scipy's log_ndtr)
LOG_P = {
    "logit": (lambda e: -np.logaddexp(0.0, -e), lambda e: -np.logaddexp(0.0, e)),
    "probit": (special.log_ndtr, lambda e: special.log_ndtr(-e)),
    "cloglog": (lambda e: np.log(-np.expm1(-np.exp(e))), lambda e: -np.exp(e)),
}


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_zi_binomial_accurate_over_wide_range(link):
    eta, eta_zi = (a.ravel() for a in np.meshgrid(WIDE, WIDE))
    log_p, log_q = LOG_P[link][0](eta), LOG_P[link][1](eta)
    fn = compiled(f"zi_binomial-{link}-trials")
    for y, n in ((0, 1), (1, 1), (0, 7), (3, 7), (7, 7)):
        got = fn(np.full_like(eta, y), eta, eta_zi, eta, np.full_like(eta, n))[0]
        log_f = special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)
        log_f = log_f + y * log_p + (n - y) * log_q
        expected = zero_inflated(np.full_like(eta, y), eta_zi, log_f, n * log_q)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_zi_poisson_accurate_over_wide_range():
    eta, eta_zi = (a.ravel() for a in np.meshgrid(WIDE, WIDE))
    zero = compiled("zi_poisson")(np.zeros_like(eta), eta, eta_zi, eta, eta)[0]
    mu = np.exp(eta)
    expected = np.logaddexp(log_pi(eta_zi), log_1m_pi(eta_zi) - mu)
    np.testing.assert_allclose(zero, expected, rtol=1e-12, atol=1e-15)


# ---- derivatives ---------------------------------------------------------------------------
@pytest.mark.parametrize("case_id", IDS)
def test_derivatives_match_finite_differences(case_id):
    case = BY_ID[case_id]
    eta = np.linspace(-2.5, min(case.eta_max, 2.5), 6)
    y, eta, eta_zi, phi, n = grid(case, eta=eta, eta_zi=(-2.0, 0.0, 1.5))
    out = compiled(case_id)(y, eta, eta_zi, phi, n)
    ref = case.ref
    h = 1e-2
    d_e, d_ee = stencil(lambda t: ref(y, eta + t, eta_zi, phi, n), h)
    d_z, d_zz = stencil(lambda t: ref(y, eta, eta_zi + t, phi, n), h)
    d_ez, _ = stencil(lambda s: stencil(lambda t: ref(y, eta + t, eta_zi + s, phi, n), h)[0], h)
    # stencils: truncation ~h⁴|ℓ⁽⁶⁾|/90 ≲ 1e-9 (|ℓ⁽⁶⁾| ≲ e^2.5 for Poisson), rounding
    # ~ε|ℓ|/h² ≈ 1e-11; scipy's densities carry up to ~1e-13 relative error (from 1 − p in
    # nbinom), which 1/h² turns into ≲ 1e-9
    for got, fd in zip(out[1:6], (d_e, d_z, d_ee, d_ez, d_zz), strict=True):
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-7)
    if case.phis:
        d_phi, _ = stencil(lambda t: ref(y, eta, eta_zi, phi * (1 + t), n), h)
        np.testing.assert_allclose(out[6], d_phi / phi, rtol=1e-6, atol=1e-7)


def assert_finite(case, out, y, eta, eta_zi, phi):
    for k, o in enumerate(out):
        bad = ~np.isfinite(o)
        assert not bad.any(), (k, y[bad][:3], eta[bad][:3], eta_zi[bad][:3], phi[bad][:3])
    if case.discrete:
        assert np.all(out[0] <= 1e-12)  # probabilities are at most one


@pytest.mark.parametrize("case_id", IDS)
def test_derivatives_finite_over_wide_range(case_id):
    case = BY_ID[case_id]
    args = grid(case, eta=WIDE, eta_zi=WIDE[::5], phis=case.wide_phis)
    assert_finite(case, compiled(case_id)(*args), *args[:4])


@pytest.mark.parametrize("case_id", IDS)
def test_engine_graph_elementwise_finite_and_equal(case_id):
    """After the engine's rewrites: only elementwise operations (checked when compiling), the
    same values, and finite values and derivatives over the wide range (a coarser grid, as
    the Python linker runs the rewritten graph element by element)."""
    case = BY_ID[case_id]
    args = grid(case, eta=WIDE[::5], eta_zi=(-30.0, -5.0, 0.0, 5.0, 30.0), phis=case.wide_phis)
    engine = compiled(case_id, engine=True)(*args)
    assert_finite(case, engine, *args[:4])
    plain = compiled(case_id)(*args)
    for a, b in zip(engine, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)


# ---- declarations --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "family, phi_names, links",
    [
        (zi_poisson(), (), ("log",)),
        (zi_negative_binomial(), ("size",), ("log",)),
        (zi_binomial(), (), ("logit", "probit", "cloglog")),
        (hurdle_poisson(), (), ("log",)),
        (hurdle_negative_binomial(), ("size",), ("log",)),
        (hurdle_lognormal(), ("sigma",), ("identity",)),
        (hurdle_beta(), ("precision",), ("logit",)),
    ],
)
def test_declarations(family, phi_names, links):
    assert family.zero_part and family.n_eta == 2
    assert family.phi_names == phi_names and family.links == links
    assert repr(family) == f"{family.name}(link={links[0]!r})"
    assert family.name == type(family).__name__


def test_zi_binomial_trials_optional():
    fam = zi_binomial()
    assert fam.trials == "optional" and fam.aux_names == ()
    assert fam.using_trials().aux_names == ("trials",)
    with pytest.raises(ValueError, match="does not take trials"):
        zi_poisson().using_trials()


# ---- response checks -------------------------------------------------------------------------
def message(name, column, what, count, example):
    return (
        f"{name}: response column {column!r} must be {what}; {count} row(s) are not "
        f"(for example {example})"
    )


@pytest.mark.parametrize(
    "family", [zi_poisson(), zi_negative_binomial(), hurdle_poisson(), hurdle_negative_binomial()]
)
def test_count_families_reject_negative_and_non_integer(family):
    msg = message(family.name, "count", "non-negative integer counts", 2, "-1")
    with pytest.raises(ValueError, match=re.escape(msg)):
        family.check_response(pd.Series([0.0, -1.0, 3.0, 1.5]), "count")
    got = family.check_response(pd.Series([0, 3, 1]), "count")
    assert got.dtype == float and got.tolist() == [0.0, 3.0, 1.0]


def test_hurdle_beta_rejects_outside_unit_interval():
    msg = message("hurdle_beta", "y", "in [0, 1)", 2, "1")
    with pytest.raises(ValueError, match=re.escape(msg)):
        hurdle_beta().check_response(pd.Series([0.0, 0.5, 1.0, 1.2]), "y")
    msg = message("hurdle_beta", "y", "in [0, 1)", 1, "-0.1")
    with pytest.raises(ValueError, match=re.escape(msg)):
        hurdle_beta().check_response(pd.Series([-0.1, 0.5]), "y")
    msg = message("hurdle_beta", "y", "in [0, 1)", 1, "nan")
    with pytest.raises(ValueError, match=re.escape(msg)):
        hurdle_beta().check_response(pd.Series([0.2, np.nan]), "y")
    assert hurdle_beta().check_response(pd.Series([0.0, 0.25]), "y").tolist() == [0.0, 0.25]


def test_hurdle_lognormal_rejects_negative_and_infinite():
    msg = message("hurdle_lognormal", "amount", "non-negative numbers", 2, "-2.5")
    with pytest.raises(ValueError, match=re.escape(msg)):
        hurdle_lognormal().check_response(pd.Series([0.0, -2.5, 3.0, np.inf]), "amount")
    got = hurdle_lognormal().check_response(pd.Series([0.0, 2.5]), "amount")
    assert got.tolist() == [0.0, 2.5]


def test_zi_binomial_checks():
    fam = zi_binomial()
    msg = message("zi_binomial", "y", "0 or 1 (counts need trials=)", 1, "2")
    with pytest.raises(ValueError, match=re.escape(msg)):
        fam.check_response(pd.Series([0, 1, 2]), "y")
    assert fam.check_response(pd.Series([True, False]), "y").tolist() == [1.0, 0.0]
    trials = np.array([4.0, 4.0, 4.0])
    msg = message("zi_binomial", "y", "at most the number of trials", 1, "5")
    with pytest.raises(ValueError, match=re.escape(msg)):
        fam.check_response(pd.Series([0, 3, 5]), "y", trials=trials)
    msg = message("zi_binomial", "y", "non-negative integer counts", 1, "1.5")
    with pytest.raises(ValueError, match=re.escape(msg)):
        fam.check_response(pd.Series([0, 1.5, 2]), "y", trials=trials)
    assert fam.check_response(pd.Series([0, 4, 2]), "y", trials=trials).tolist() == [0, 4, 2]


@pytest.mark.parametrize("family", [zi_poisson(), zi_binomial(), hurdle_beta(), hurdle_lognormal()])
def test_non_numeric_response_refused(family):
    msg = f"{family.name}: response column 'y' must be numeric, got dtype "
    with pytest.raises(ValueError, match=re.escape(msg)):
        family.check_response(pd.Series(["a", "b"]), "y")


# ---- simulation ----------------------------------------------------------------------------
N_SIM = 200_000


def nb_p0(mu, size):
    return (size / (size + mu)) ** size


def theory(family, eta, eta_zi, phi, n=1):
    """(P(y = 0), mean, P(y = 1) or None) of the family."""
    pi = special.expit(eta_zi)
    mu = np.exp(eta)
    name = family.name
    if name == "zi_poisson":
        return pi + (1 - pi) * np.exp(-mu), (1 - pi) * mu, (1 - pi) * mu * np.exp(-mu)
    if name == "zi_negative_binomial":
        p1 = (1 - pi) * nb_p0(mu, phi) * phi * mu / (phi + mu)
        return pi + (1 - pi) * nb_p0(mu, phi), (1 - pi) * mu, p1
    if name == "zi_binomial":
        p = family.link.inverse(np.asarray(eta))
        p1 = (1 - pi) * n * p * (1 - p) ** (n - 1)
        return pi + (1 - pi) * (1 - p) ** n, (1 - pi) * n * p, p1
    if name == "hurdle_poisson":
        c = -np.expm1(-mu)
        return pi, (1 - pi) * mu / c, (1 - pi) * mu * np.exp(-mu) / c
    if name == "hurdle_negative_binomial":
        c = 1 - nb_p0(mu, phi)
        return pi, (1 - pi) * mu / c, (1 - pi) * nb_p0(mu, phi) * phi * mu / (phi + mu) / c
    if name == "hurdle_lognormal":
        return pi, (1 - pi) * np.exp(eta + phi**2 / 2), None
    if name == "hurdle_beta":
        return pi, (1 - pi) * special.expit(eta), None
    raise AssertionError(name)


SIM_CASES = [
    (zi_poisson(), np.log(2.5), -0.5, None, None),
    (zi_poisson(), -3.0, 1.0, None, None),
    (zi_negative_binomial(), np.log(4.0), 0.3, 1.5, None),
    (zi_binomial(), 0.4, -1.0, None, None),
    (zi_binomial(link="probit"), 0.3, 0.2, None, 8),
    (zi_binomial(link="cloglog"), -1.0, -0.5, None, 5),
    (hurdle_poisson(), np.log(1.5), 0.4, None, None),
    (hurdle_poisson(), -4.0, -0.3, None, None),
    (hurdle_poisson(), np.log(30.0), -0.3, None, None),
    (hurdle_negative_binomial(), np.log(3.0), -0.2, 0.8, None),
    (hurdle_negative_binomial(), -3.0, 0.5, 0.3, None),
    (hurdle_negative_binomial(), np.log(20.0), 0.5, 40.0, None),
    (hurdle_lognormal(), 0.7, 0.1, 0.6, None),
    (hurdle_beta(), 0.5, -0.4, 6.0, None),
    (hurdle_beta(), -2.0, 0.4, 0.8, None),
]


@pytest.mark.parametrize("family, eta, eta_zi, phi, n", SIM_CASES)
def test_simulate_matches_theory(family, eta, eta_zi, phi, n):
    rng = np.random.default_rng(20240611)
    phis = np.array([] if phi is None else [phi])
    data = {} if n is None else {"trials": np.full(N_SIM, n)}
    y = family.simulate(np.full(N_SIM, eta), phis, rng, eta_zi=np.full(N_SIM, eta_zi), **data)
    assert y.shape == (N_SIM,) and y.dtype == float
    family.check_response(pd.Series(y), "y", **data)  # every draw is a valid response
    p0, mean, p1 = theory(family, eta, eta_zi, phi, 1 if n is None else n)
    se0 = np.sqrt(p0 * (1 - p0) / N_SIM)
    assert abs(np.mean(y == 0) - p0) < 5 * se0
    assert abs(y.mean() - mean) < 5 * y.std() / np.sqrt(N_SIM)
    if p1 is not None:
        assert abs(np.mean(y == 1) - p1) < 5 * np.sqrt(p1 * (1 - p1) / N_SIM)


def test_simulate_broadcasts_and_is_seeded():
    eta = np.linspace(-1.0, 1.0, 10)
    a = hurdle_negative_binomial().simulate(eta, np.array([2.0]), np.random.default_rng(1), 0.0)
    b = hurdle_negative_binomial().simulate(eta, np.array([2.0]), np.random.default_rng(1), 0.0)
    assert a.shape == (10,)
    np.testing.assert_array_equal(a, b)


def test_zero_truncated_nb_distribution():
    """Frequencies of 1…5 of the zero-truncated NB draws against NB(y)/(1 − NB(0))."""
    mu, size = 2.0, 0.7
    y = hurdle_negative_binomial().simulate(
        np.full(N_SIM, np.log(mu)), np.array([size]), np.random.default_rng(7), eta_zi=-40.0
    )
    assert y.min() >= 1
    p = stats.nbinom.pmf(np.arange(1, 6), size, size / (size + mu)) / (1 - nb_p0(mu, size))
    freq = np.array([np.mean(y == k) for k in range(1, 6)])
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / N_SIM))


# ---- starting values -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "family, phi",
    [
        (zi_negative_binomial(), 2.0),
        (hurdle_negative_binomial(), 2.0),
        (hurdle_lognormal(), 0.8),
        (hurdle_beta(), 5.0),
    ],
)
def test_initial_phis_finite_positive_and_sensible(family, phi):
    rng = np.random.default_rng(3)
    eta = 0.5 if family.name != "hurdle_beta" else 0.3
    y = family.simulate(np.full(20_000, eta), np.array([phi]), rng, eta_zi=-0.5)
    start = family.initial_phis(y, np.full(len(y), y.mean()))
    assert start.shape == (1,) and np.all(np.isfinite(start)) and start[0] > 0
    assert phi / 1.25 < start[0] < phi * 1.25
    for degenerate in (np.zeros(10), np.array([0.0, 0.5]), np.full(5, 0.5)):
        start = family.initial_phis(degenerate, np.full(len(degenerate), 0.25))
        assert np.all(np.isfinite(start)) and 1e-3 <= start[0] <= 1e3
