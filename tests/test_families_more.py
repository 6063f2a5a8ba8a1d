"""Gaussian, Student's t, gamma, beta, censored normal, negative binomial and beta-binomial
families: log densities against scipy.stats, derivatives against finite differences of scipy's
log density, elementwise graphs, response checks, simulation moments and starting values."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.rewriting.utils import rewrite_graph
from pytensor.tensor.elemwise import DimShuffle, Elemwise
from scipy import special, stats

try:
    from pytensor.graph.traversal import io_toposort
except ImportError:  # PyTensor before 2.32
    from pytensor.graph.basic import io_toposort

from glmm_ppl.families.base import Family
from glmm_ppl.families.beta_binomial import beta_binomial
from glmm_ppl.families.continuous import beta, censored_normal, gamma, gaussian, students_t
from glmm_ppl.families.negative_binomial import negative_binomial

# p = g⁻¹(η) and 1 − p with scipy, independently of the package's links
P_AND_Q = {
    "logit": lambda e: (special.expit(e), special.expit(-e)),
    "probit": lambda e: (special.ndtr(e), special.ndtr(-e)),
    "cloglog": lambda e: (-np.expm1(-np.exp(e)), np.exp(-np.exp(e))),
}
WIDE = np.linspace(-30.0, 30.0, 121)


# ---- scipy reference log densities ---------------------------------------------------------------
def ref_gaussian(y, eta, sigma):
    return stats.norm.logpdf(y, eta, sigma)


def ref_students_t(df):
    return lambda y, eta, sigma: stats.t.logpdf(y, df, eta, sigma)


def ref_gamma(y, eta, shape):
    return stats.gamma.logpdf(y, a=shape, scale=np.exp(eta) / shape)


def ref_beta(y, eta, precision):
    p, q = P_AND_Q["logit"](eta)
    return stats.beta.logpdf(y, p * precision, q * precision)


def ref_negative_binomial(y, eta, size):
    return stats.nbinom.logpmf(y, n=size, p=size / (size + np.exp(eta)))


def ref_beta_binomial(link):
    def ref(y, eta, precision, trials):
        p, q = P_AND_Q[link](eta)
        return stats.betabinom.logpmf(y, trials, p * precision, q * precision)

    return ref


def ref_censored_normal(y, eta, sigma, censoring):
    return np.select(
        [censoring == 1, censoring == 2],
        [stats.norm.logcdf(y, eta, sigma), stats.norm.logsf(y, eta, sigma)],
        stats.norm.logpdf(y, eta, sigma),
    )


# ---- the cases: a family, its scipy density and a grid of its support ----------------------------
@dataclass
class Case:
    id: str
    family: Family
    ref: object
    y: list
    eta: np.ndarray
    phi: list
    aux: dict = field(default_factory=dict)

    def grid(self, eta=None):
        """Flat arrays ``y, η, φ, **aux`` over the product of the values (``y ≤ trials``)."""
        eta = self.eta if eta is None else eta
        names = list(self.aux)
        mesh = np.meshgrid(self.y, eta, self.phi, *self.aux.values(), indexing="ij")
        flat = [m.ravel().astype(float) for m in mesh]
        aux = dict(zip(names, flat[3:], strict=True))
        keep = flat[0] <= aux["trials"] if "trials" in aux else np.ones(len(flat[0]), bool)
        return flat[0][keep], flat[1][keep], flat[2][keep], {k: v[keep] for k, v in aux.items()}


IDENTITY_ETA = np.linspace(-6.0, 6.0, 25)
CASES = [
    Case("gaussian", gaussian(), ref_gaussian, [-3.0, 0.0, 1.5, 10.0], IDENTITY_ETA, [0.3, 1, 4]),
    Case(
        "students_t-3",
        students_t(),
        ref_students_t(3.0),
        [-3.0, 0.0, 1.5, 10.0],
        IDENTITY_ETA,
        [0.3, 1, 4],
    ),
    Case(
        "students_t-30",
        students_t(df=30),
        ref_students_t(30.0),
        [-3.0, 0.0, 1.5, 10.0],
        IDENTITY_ETA,
        [0.3, 1, 4],
    ),
    Case(
        "gamma",
        gamma(),
        ref_gamma,
        [0.01, 0.5, 1.0, 3.0, 20.0],
        np.linspace(-4.0, 4.0, 17),
        [0.5, 1, 3, 50],
    ),
    Case(
        "beta",
        beta(),
        ref_beta,
        [0.001, 0.2, 0.5, 0.9, 0.999],
        np.linspace(-6.0, 6.0, 25),
        [0.5, 2, 30, 300],
    ),
    Case(
        "negative_binomial",
        negative_binomial(),
        ref_negative_binomial,
        [0, 1, 2, 5, 20, 100],
        np.linspace(-4.0, 5.0, 19),
        [0.2, 1, 5, 100],
    ),
    *[
        Case(
            f"beta_binomial-{link}",
            beta_binomial(link=link),
            ref_beta_binomial(link),
            list(range(21)),
            np.linspace(-3.0, 3.0, 13),
            [0.3, 3, 50],
            {"trials": [1, 5, 20]},
        )
        for link in ("logit", "probit", "cloglog")
    ],
    Case(
        "censored_normal",
        censored_normal(),
        ref_censored_normal,
        [-2.0, 0.0, 3.0],
        np.linspace(-10.0, 10.0, 41),
        [0.5, 1, 3],
        {"censoring": [0, 1, 2]},
    ),
]
IDS = [c.id for c in CASES]


@cache
def kernel(family: Family):
    """Compiled ``(y, η, φ, *aux) ↦ (ℓ, ∂ℓ/∂η, ∂²ℓ/∂η², ∂ℓ/∂φ)`` on vectors, elementwise."""
    y, eta, phi = pt.dvector("y"), pt.dvector("eta"), pt.dvector("phi")
    aux = {name: pt.dvector(name) for name in family.aux_names}
    lp = family.logp(y, eta, [phi], **aux)
    d1 = pytensor.grad(lp.sum(), eta)
    d2 = pytensor.grad(d1.sum(), eta)  # the Hessian is diagonal: elementwise
    dphi = pytensor.grad(lp.sum(), phi)
    return pytensor.function([y, eta, phi, *aux.values()], [lp, d1, d2, dphi])


def evaluate(family, y, eta, phi, aux):
    return kernel(family)(y, eta, phi, *(aux[name] for name in family.aux_names))


# ---- log densities -------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_logp_matches_scipy(case):
    y, eta, phi, aux = case.grid()
    expected = case.ref(y, eta, phi, **aux)
    assert np.all(np.isfinite(expected))
    lp, *_ = evaluate(case.family, y, eta, phi, aux)
    # ℓ near 0 (e.g. P(y = 0) ≈ 1) is compared absolutely: its terms are of order 10
    np.testing.assert_allclose(lp, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_beta_binomial_logp_accurate_far_in_tails(link):
    # reference from scipy.special.betaln, with p and 1 − p each from its own closed form so
    # that both stay accurate in the tails
    y, eta, phi, aux = Case(
        "", beta_binomial(link), None, [0, 1, 4, 5], WIDE, [0.5, 4], {"trials": [5]}
    ).grid()
    n = aux["trials"]
    p, q = P_AND_Q[link](eta)
    a, b = p * phi, q * phi
    ok = (a > 1e-300) & (b > 1e-300)
    with np.errstate(invalid="ignore"):  # betaln(a, 0) − betaln(a, 0) where b underflows
        expected = (
            special.gammaln(n + 1)
            - special.gammaln(y + 1)
            - special.gammaln(n - y + 1)
            + special.betaln(y + a, n - y + b)
            - special.betaln(a, b)
        )
    lp, *_ = evaluate(beta_binomial(link), y, eta, phi, aux)
    assert np.all(np.isfinite(lp))
    np.testing.assert_allclose(lp[ok], expected[ok], rtol=1e-10, atol=1e-12)


def test_beta_logp_accurate_far_in_tails():
    y, eta, phi, _ = Case("", beta(), None, [0.01, 0.5, 0.99], WIDE, [0.5, 4]).grid()
    p, q = P_AND_Q["logit"](eta)
    a, b = p * phi, q * phi
    expected = -special.betaln(a, b) + (a - 1) * np.log(y) + (b - 1) * np.log1p(-y)
    lp, *_ = evaluate(beta(), y, eta, phi, {})
    np.testing.assert_allclose(lp, expected, rtol=1e-10)


def test_censored_normal_tails_finite_and_accurate():
    # ±60σ from the limit: log Φ(−60) ≈ −1804 is finite, and log(1 − Φ(60)) ≈ −1804 too
    z = np.linspace(-60.0, 60.0, 241)
    for code, ref in [(1.0, stats.norm.logcdf), (2.0, stats.norm.logsf)]:
        aux = {"censoring": np.full(len(z), code)}
        lp, d1, d2, dphi = evaluate(censored_normal(), z, np.zeros_like(z), np.ones_like(z), aux)
        np.testing.assert_allclose(lp, ref(z), rtol=1e-10, atol=1e-14)
        for d in (d1, d2, dphi):
            assert np.all(np.isfinite(d))


# ---- derivatives ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_derivatives_match_finite_differences_of_scipy(case):
    y, eta, phi, aux = case.grid()
    _, d1, d2, dphi = evaluate(case.family, y, eta, phi, aux)

    def ref(eta=eta, phi=phi):
        return case.ref(y, eta, phi, **aux)

    # five-point stencils; the rounding error δ of scipy's ℓ (up to ~1e-10 where |ℓ| ~ 700)
    # is what limits them, so the steps are wide: truncation h⁴|ℓ⁽⁵⁾|/30 ≲ 1e-10 and
    # h⁴|ℓ⁽⁶⁾|/90 ≲ 1e-7, rounding 1.5δ/h ≲ 1e-7 and 5δ/h² ≲ 1e-5 (worst rows)
    h1, h2 = 1e-3, 1e-2
    fd1 = (-ref(eta + 2 * h1) + 8 * ref(eta + h1) - 8 * ref(eta - h1) + ref(eta - 2 * h1)) / (
        12 * h1
    )
    fd2 = (
        -ref(eta + 2 * h2)
        + 16 * ref(eta + h2)
        - 30 * ref()
        + 16 * ref(eta - h2)
        - ref(eta - 2 * h2)
    ) / (12 * h2**2)
    # ∂ℓ/∂φ as the fit uses it, on the log scale: φ ∂ℓ/∂φ = ∂ℓ/∂ log φ
    e = np.exp(h1)
    fdp = (
        -ref(phi=phi * e**2) + 8 * ref(phi=phi * e) - 8 * ref(phi=phi / e) + ref(phi=phi / e**2)
    ) / (12 * h1)
    np.testing.assert_allclose(d1, fd1, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(phi * dphi, fdp, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(d2, fd2, rtol=1e-6, atol=1e-5)


def wide_grid(case):
    """η over −30…30 for non-identity links; for identity links, y − η up to ±50σ."""
    if case.family.link.name == "identity":
        y, _, phi, aux = case.grid(eta=np.zeros(1))
        k = np.linspace(-50.0, 50.0, 101)
        eta = (y[:, None] - k[None, :] * phi[:, None]).ravel()
        rep = len(k)
        return (
            np.repeat(y, rep),
            eta,
            np.repeat(phi, rep),
            {n: np.repeat(v, rep) for n, v in aux.items()},
        )
    return case.grid(eta=WIDE)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_logp_and_derivatives_finite_over_wide_range(case):
    y, eta, phi, aux = wide_grid(case)
    names = ["logp", "d/deta", "d2/deta2", "d/dphi"]
    for name, out in zip(names, evaluate(case.family, y, eta, phi, aux), strict=True):
        bad = ~np.isfinite(out)
        assert not bad.any(), f"{name} not finite at eta={eta[bad][:5]}, y={y[bad][:5]}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_logp_is_an_elementwise_scalar_graph(case):
    """The rewritten scalar graph of ℓ and its derivatives uses only Elemwise and DimShuffle."""
    fam = case.family
    y, eta, phi = pt.dscalar("y"), pt.dscalar("eta"), pt.dscalar("phi")
    aux = {name: pt.dscalar(name) for name in fam.aux_names}
    lp = pt.as_tensor_variable(fam.logp(y, eta, [phi], **aux))
    assert lp.ndim == 0
    d1 = pytensor.grad(lp, eta)
    outputs = [lp, d1, pytensor.grad(d1, eta), pytensor.grad(lp, phi)]
    outputs = rewrite_graph(outputs, include=("canonicalize", "stabilize", "specialize"))
    ops = {type(node.op) for node in io_toposort([y, eta, phi, *aux.values()], outputs)}
    assert ops <= {Elemwise, DimShuffle}, ops


# ---- response checks -----------------------------------------------------------------------------
ERRORS = [
    (
        gaussian(),
        [1.0, np.inf, np.nan],
        {},
        "gaussian: response column 'y' must be finite numbers; 2 row(s) are not (for example inf)",
    ),
    (
        students_t(),
        [1.0, np.nan],
        {},
        "students_t: response column 'y' must be finite numbers; 1 row(s) are not "
        "(for example nan)",
    ),
    (
        gamma(),
        [1.0, -1.0, 0.0, 2.5, np.nan],
        {},
        "gamma: response column 'y' must be positive numbers; 3 row(s) are not (for example -1)",
    ),
    (
        gamma(),
        [1.0, np.inf],
        {},
        "gamma: response column 'y' must be positive numbers; 1 row(s) are not (for example inf)",
    ),
    (
        beta(),
        [0.5, 0.0, 1.0, 1.2, -0.1],
        {},
        "beta: response column 'y' must be numbers strictly between 0 and 1; 4 row(s) are not "
        "(for example 0)",
    ),
    (
        beta(),
        [0.5, np.nan],
        {},
        "beta: response column 'y' must be numbers strictly between 0 and 1; 1 row(s) are not "
        "(for example nan)",
    ),
    (
        negative_binomial(),
        [0.0, 1.5, -2.0, 3.0],
        {},
        "negative_binomial: response column 'y' must be non-negative integer counts; "
        "2 row(s) are not (for example 1.5)",
    ),
    (
        negative_binomial(),
        [0.0, np.nan],
        {},
        "negative_binomial: response column 'y' must be non-negative integer counts; "
        "1 row(s) are not (for example nan)",
    ),
    (
        beta_binomial(),
        [0.0, 3.0, 6.0, 2.0],
        {"trials": np.array([5.0, 5.0, 5.0, 1.0])},
        "beta_binomial: response column 'y' must be at most the number of trials; "
        "2 row(s) are not (for example 6)",
    ),
    (
        beta_binomial(link="probit"),
        [0.0, 0.5, -1.0],
        {"trials": np.array([5.0, 5.0, 5.0])},
        "beta_binomial: response column 'y' must be non-negative integer counts; "
        "2 row(s) are not (for example 0.5)",
    ),
    (
        censored_normal(),
        [0.0, np.nan],
        {"censoring": np.array([0.0, 1.0])},
        "censored_normal: response column 'y' must be finite numbers; 1 row(s) are not "
        "(for example nan)",
    ),
    (
        censored_normal(),
        [0.0, 1.0, 2.0, 3.0],
        {"censoring": np.array([0.0, 3.0, 0.5, 2.0])},
        "censored_normal: column 'censoring' must be 0 (observed), 1 (left censored) or "
        "2 (right censored); 2 row(s) are not (for example 3)",
    ),
]


@pytest.mark.parametrize(
    "family, values, data, message", ERRORS, ids=[f"{e[0].name}-{i}" for i, e in enumerate(ERRORS)]
)
def test_check_response_errors(family, values, data, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        family.check_response(pd.Series(values), "y", **data)


@pytest.mark.parametrize("family", [c.family for c in CASES[:6]], ids=IDS[:6])
def test_check_response_refuses_non_numeric(family):
    msg = f"{family.name}: response column 'y' must be numeric, got dtype "
    with pytest.raises(ValueError, match=re.escape(msg) + "(object|str)$"):
        family.check_response(pd.Series(["a", "b"]), "y")


@pytest.mark.parametrize(
    "family, values, data",
    [
        (gaussian(), [-1.5, 0, 2], {}),
        (students_t(df=5), [-1.5, 0, 2], {}),
        (gamma(), [0.1, 1, 20], {}),
        (beta(), [0.01, 0.5, 0.99], {}),
        (negative_binomial(), [0, 1, 7], {}),
        (beta_binomial(), [0, 1, 7], {"trials": np.array([0.0, 3.0, 7.0])}),
        (censored_normal(), [-1.5, 0, 2], {"censoring": np.array([0.0, 1.0, 2.0])}),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_check_response_accepts_valid_values_as_floats(family, values, data):
    out = family.check_response(pd.Series(values), "y", **data)
    assert out.dtype == float
    np.testing.assert_array_equal(out, values)


# ---- simulation ----------------------------------------------------------------------------------
def _bb(link, eta, phi, n):
    p, q = P_AND_Q[link](eta)
    return stats.betabinom(n, p * phi, q * phi)


SIMULATIONS = [
    (gaussian(), 1.3, 2.0, {}, stats.norm(1.3, 2.0)),
    (students_t(df=10), -0.5, 1.5, {}, stats.t(10, -0.5, 1.5)),
    (gamma(), 0.7, 3.0, {}, stats.gamma(3.0, scale=np.exp(0.7) / 3.0)),
    (beta(), 0.8, 5.0, {}, stats.beta(5 * special.expit(0.8), 5 * special.expit(-0.8))),
    (negative_binomial(), 1.5, 2.0, {}, stats.nbinom(2.0, 2.0 / (2.0 + np.exp(1.5)))),
    (beta_binomial(), 0.3, 4.0, {"trials": 12.0}, _bb("logit", 0.3, 4.0, 12)),
    (beta_binomial(link="cloglog"), -0.4, 1.5, {"trials": 7.0}, _bb("cloglog", -0.4, 1.5, 7)),
    (censored_normal(), 0.2, 0.7, {"censoring": 0.0}, stats.norm(0.2, 0.7)),
]


@pytest.mark.parametrize(
    "family, eta, phi, data, dist",
    SIMULATIONS,
    ids=[f"{s[0].name}-{s[0].link.name}" for s in SIMULATIONS],
)
def test_simulate_moments(family, eta, phi, data, dist):
    n = 200_000
    rng = np.random.default_rng(20240601)
    data = {k: np.full(n, v) for k, v in data.items()}
    draws = family.simulate(np.full(n, eta), np.array([phi]), rng, **data)
    assert draws.shape == (n,) and np.all(np.isfinite(draws))
    mean, var, kurt = (float(v) for v in dist.stats("mvk"))
    se_mean = np.sqrt(var / n)
    se_var = var * np.sqrt((kurt + 2.0) / n)  # sd of the sample variance: (μ₄ − σ⁴)/n
    assert abs(draws.mean() - mean) < 5 * se_mean
    assert abs(draws.var(ddof=1) - var) < 5 * se_var


# ---- starting values -----------------------------------------------------------------------------
STARTS = [
    (gaussian(), 0.0, [0.2, 3.0], {}),
    (students_t(df=4), 0.0, [0.2, 3.0], {}),
    (censored_normal(), 0.0, [0.5, 2.0], {"censoring": 0.0}),
    (gamma(), 1.0, [0.5, 2.0, 30.0], {}),
    (beta(), 0.5, [1.0, 10.0, 100.0], {}),
    (negative_binomial(), 1.5, [0.5, 3.0, 20.0], {}),
    (beta_binomial(), 0.0, [0.5, 3.0, 20.0], {"trials": 10.0}),
]


@pytest.mark.parametrize("family, eta0, truths, data", STARTS, ids=[s[0].name for s in STARTS])
def test_initial_phis_within_factor_2_of_truth(family, eta0, truths, data):
    rng = np.random.default_rng(7)
    n = 5000
    eta = eta0 + 0.5 * rng.standard_normal(n)
    data = {k: np.full(n, v) for k, v in data.items()}
    for truth in truths:
        y = family.simulate(eta, np.array([truth]), rng, **data)
        extra = {"trials": data["trials"]} if "trials" in data else {}
        start = family.initial_phis(y, family.mean(eta), **extra)
        assert start.shape == (1,)
        assert truth / 2 < start[0] < truth * 2, (truth, start)


@pytest.mark.parametrize("family", [c.family for c in CASES], ids=IDS)
def test_initial_phis_finite_positive_on_degenerate_data(family):
    for y, mu in [
        (np.ones(5), np.ones(5)),
        (np.array([]), np.array([])),
        (np.zeros(3), np.full(3, 0.5)),
    ]:
        start = family.initial_phis(y, mu)
        assert start.shape == (1,) and np.isfinite(start[0]) and start[0] > 0


# ---- Student's t settings ------------------------------------------------------------------------
@pytest.mark.parametrize("df", [0, -1.0, np.inf, np.nan, "three", None, True])
def test_students_t_refuses_bad_df(df):
    msg = f"students_t: df must be a positive finite number, got {df!r}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        students_t(df=df)


def test_students_t_df_is_part_of_the_family():
    assert repr(students_t(df=4)) == "students_t(df=4.0, link='identity')"
    assert students_t(df=4) == students_t(df=4.0)
    assert students_t(df=4) != students_t(df=5)
    assert hash(students_t(df=4)) == hash(students_t(df=4.0))


@pytest.mark.parametrize(
    "family, bad, valid",
    [
        (gamma, "identity", "log"),
        (beta, "probit", "logit"),
        (negative_binomial, "identity", "log"),
        (beta_binomial, "log", "logit, probit, cloglog"),
        (censored_normal, "log", "identity"),
    ],
)
def test_links_not_allowed_name_valid_links(family, bad, valid):
    with pytest.raises(ValueError, match=re.escape(f"valid links here: {valid}")):
        family(link=bad)


def test_aux_names():
    assert beta_binomial().aux_names == ("trials",)
    assert censored_normal().aux_names == ("censoring",)
    assert gamma().aux_names == ()
