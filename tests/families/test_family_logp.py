"""Log densities of every family: values against scipy.stats (and closed forms where scipy
loses accuracy far in the tails), probabilities summing to one, the limits where a dispersion
parameter runs to infinity, derivatives against finite differences, finiteness over a wide range
of η, and the elementwise graphs the engine compiles.

One section per group of families, each with its own way of evaluating the density: binomial
and Poisson through the engine's compiled point function; gaussian, Student's t, gamma, beta,
censored normal, negative binomial and beta-binomial through PyTensor's gradients; the
zero-inflated and hurdle families through PyTensor's Python linker; then the log rising
factorial and the limits of the dispersion. Response checks, names and links are in
test_family_checks.py; simulators, moments and starting values in test_family_simulate.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache

import numpy as np
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

from glmm_ppl.engine.pointwise import pointwise_derivatives
from glmm_ppl.families import (
    Family,
    beta,
    beta_binomial,
    binomial,
    censored_normal,
    gamma,
    gaussian,
    hurdle_beta,
    hurdle_lognormal,
    hurdle_negative_binomial,
    hurdle_poisson,
    negative_binomial,
    poisson,
    students_t,
    zi_binomial,
    zi_negative_binomial,
    zi_poisson,
)
from glmm_ppl.families.special import log_rising

# ---- the inverse links by scipy, independently of the package's links ----------------------------
LINKS = ["logit", "probit", "cloglog"]

# p = g⁻¹(η)
INVERSE = {
    "logit": special.expit,
    "probit": special.ndtr,
    "cloglog": lambda eta: -np.expm1(-np.exp(eta)),
}
# log p and log(1 − p) accurate in both tails (closed forms / scipy's log_ndtr)
LOG_P = {
    "logit": (lambda e: -np.logaddexp(0.0, -e), lambda e: -np.logaddexp(0.0, e)),
    "probit": (special.log_ndtr, lambda e: special.log_ndtr(-e)),
    "cloglog": (lambda e: np.log(-np.expm1(-np.exp(e))), lambda e: -np.exp(e)),
}
# p = g⁻¹(η) and 1 − p, each from its own closed form
P_AND_Q = {
    "logit": lambda e: (special.expit(e), special.expit(-e)),
    "probit": lambda e: (special.ndtr(e), special.ndtr(-e)),
    "cloglog": lambda e: (-np.expm1(-np.exp(e)), np.exp(-np.exp(e))),
}


# ==== binomial and Poisson, through the engine's compiled point function ==========================
ETA = np.linspace(-30.0, 30.0, 601)
# Densities such as y·η − softplus(η) carry an absolute rounding error of a few ε·|η| (≤ 1e-14
# for |η| ≤ 30); log-likelihoods add these up, so absolute accuracy is what matters where
# log p is itself tiny (e.g. log p ≈ −1e-13 at η = 30).
ATOL = 1e-14


def logp_eval(family, y, eta):
    return family.logp(
        pt.as_tensor(np.asarray(y, float)), pt.as_tensor(np.asarray(eta, float)), []
    ).eval()


def kernel(family, y, eta):
    """(ℓ, ∂ℓ/∂η, ∂²ℓ/∂η²) from the package's compiled pointwise derivatives, shape of eta."""
    y = np.asarray(y, float)
    eta = np.broadcast_to(np.asarray(eta, float), (len(y), np.shape(eta)[-1])).copy()
    out = pointwise_derivatives(family)(y[:, None], eta, np.array([]))
    return out[0], out[1], out[2]


# ---- binomial log density -----------------------------------------------------------------------
@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("y", [0.0, 1.0])
def test_binomial_logp_equals_scipy_bernoulli(link, y):
    fam = binomial(link=link)
    p = INVERSE[link](ETA)
    ok = (p > 1e-6) & (1 - p > 1e-6)  # where scipy's p and 1 − p are computed accurately
    assert ok.sum() > 20
    expected = stats.bernoulli.logpmf(y, p[ok])
    got = logp_eval(fam, np.full(ok.sum(), y), ETA[ok])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=ATOL)
    # the jitted kernel the engine uses gives the same density
    lp, _, _ = kernel(fam, np.full(1, y), ETA[ok][None, :])
    np.testing.assert_allclose(lp[0], expected, rtol=1e-10, atol=ATOL)


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("y", [0.0, 1.0])
def test_binomial_logp_accurate_and_finite_in_tails(link, y):
    fam = binomial(link=link)
    expected = LOG_P[link][0 if y == 1 else 1](ETA)
    got = logp_eval(fam, np.full(len(ETA), y), ETA)
    assert np.all(np.isfinite(got)), ETA[~np.isfinite(got)]
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=ATOL)
    assert got[0] <= 0 and got[-1] <= 0


# ---- Poisson log density ---------------------------------------------------------------------
def test_poisson_logp_equals_scipy():
    y = np.arange(51.0)
    eta = np.linspace(-5.0, 5.0, 41)
    Y, E = np.meshgrid(y, eta, indexing="ij")
    expected = stats.poisson.logpmf(Y, np.exp(E))
    got = logp_eval(poisson(), Y.ravel(), E.ravel()).reshape(Y.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-10)  # measured ~1e-15
    lp, _, _ = kernel(poisson(), y, E)
    np.testing.assert_allclose(lp, expected, rtol=1e-10)


# ---- derivatives in η ------------------------------------------------------------------------
def check_derivatives(family, y, eta):
    """First and second derivatives of the kernel against central differences of its ℓ."""
    lp, d1, d2 = kernel(family, y, eta)
    h1, h2 = 1e-5, 1e-3
    lp_p1, _, _ = kernel(family, y, eta + h1)
    lp_m1, _, _ = kernel(family, y, eta - h1)
    lp_p2, _, _ = kernel(family, y, eta + h2)
    lp_m2, _, _ = kernel(family, y, eta - h2)
    fd1 = (lp_p1 - lp_m1) / (2 * h1)
    fd2 = (lp_p2 - 2 * lp + lp_m2) / h2**2
    # d1: truncation h²|ℓ'''|/6 ~ 1e-10, rounding ε|ℓ|/h ~ 1e-9
    np.testing.assert_allclose(d1, fd1, rtol=1e-6, atol=1e-7)
    # d2: truncation h²|ℓ''''|/12 ≲ 1e-5 (Poisson at η = 5), rounding 4ε|ℓ|/h² ~ 1e-7
    np.testing.assert_allclose(d2, fd2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("link", LINKS)
def test_binomial_derivatives_match_finite_differences(link):
    eta = np.linspace(-6.0, 6.0, 121)[None, :].repeat(2, axis=0)
    check_derivatives(binomial(link=link), np.array([0.0, 1.0]), eta)


def test_poisson_derivatives_match_finite_differences():
    y = np.arange(51.0)
    eta = np.linspace(-5.0, 5.0, 41)[None, :].repeat(len(y), axis=0)
    check_derivatives(poisson(), y, eta)
    _, d1, d2 = kernel(poisson(), y, eta)
    np.testing.assert_allclose(d1, y[:, None] - np.exp(eta), rtol=1e-12, atol=1e-12)  # closed form
    np.testing.assert_allclose(d2, -np.exp(eta), rtol=1e-12)


@pytest.mark.parametrize("link", LINKS)
def test_binomial_derivatives_finite_in_tails(link):
    _, d1, d2 = kernel(binomial(link=link), np.array([0.0, 1.0]), ETA[None, :].repeat(2, axis=0))
    assert np.all(np.isfinite(d1)), ETA[~np.isfinite(d1).all(axis=0)]
    assert np.all(np.isfinite(d2)), ETA[~np.isfinite(d2).all(axis=0)]
    assert np.all(d2 <= 1e-12)  # every link here gives a log-concave Bernoulli density


# ==== gaussian, Student's t, gamma, beta, censored normal, negative binomial, beta-binomial =======
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
def pytensor_kernel(family: Family):
    """Compiled ``(y, η, φ, *aux) ↦ (ℓ, ∂ℓ/∂η, ∂²ℓ/∂η², ∂ℓ/∂φ)`` on vectors, elementwise."""
    y, eta, phi = pt.dvector("y"), pt.dvector("eta"), pt.dvector("phi")
    aux = {name: pt.dvector(name) for name in family.aux_names}
    lp = family.logp(y, eta, [phi], **aux)
    d1 = pytensor.grad(lp.sum(), eta)
    d2 = pytensor.grad(d1.sum(), eta)  # the Hessian is diagonal: elementwise
    dphi = pytensor.grad(lp.sum(), phi)
    return pytensor.function([y, eta, phi, *aux.values()], [lp, d1, d2, dphi])


def evaluate(family, y, eta, phi, aux):
    return pytensor_kernel(family)(y, eta, phi, *(aux[name] for name in family.aux_names))


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


# ==== zero-inflated and hurdle families ===========================================================
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
class ZeroCase:
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
ZERO_CASES = [
    ZeroCase("zi_poisson", zi_poisson, ref_zi_poisson, COUNTS),
    ZeroCase(
        "zi_negative_binomial",
        zi_negative_binomial,
        ref_zi_nb,
        COUNTS,
        SIZES,
        (1e-3, 1.0, 1e3),
    ),
    *[
        ZeroCase(
            f"zi_binomial-{link}",
            lambda link=link: zi_binomial(link=link),
            ref_zi_binomial(link),
            ((0, 1), (1, 1)),
            eta_max=1.5 if link == "cloglog" else 3.0,
        )
        for link in ("logit", "probit", "cloglog")
    ],
    *[
        ZeroCase(
            f"zi_binomial-{link}-trials",
            lambda link=link: zi_binomial(link=link),
            ref_zi_binomial(link),
            TRIAL_PAIRS,
            trials=True,
            eta_max=1.5 if link == "cloglog" else 3.0,
        )
        for link in ("logit", "probit", "cloglog")
    ],
    ZeroCase("hurdle_poisson", hurdle_poisson, ref_hurdle_poisson, COUNTS),
    ZeroCase(
        "hurdle_negative_binomial",
        hurdle_negative_binomial,
        ref_hurdle_nb,
        COUNTS,
        SIZES,
        (1e-3, 1.0, 1e3),
    ),
    ZeroCase(
        "hurdle_lognormal",
        hurdle_lognormal,
        ref_hurdle_lognormal,
        (0.0, 0.01, 0.5, 1.0, 3.0, 40.0),
        (0.3, 1.0, 2.5),
        (1e-3, 1.0, 1e3),
        discrete=False,
    ),
    ZeroCase(
        "hurdle_beta",
        hurdle_beta,
        ref_hurdle_beta,
        (0.0, 0.001, 0.2, 0.5, 0.9, 0.999),
        (0.5, 3.0, 40.0),
        (1e-3, 1.0, 1e3),
        discrete=False,
    ),
]
BY_ID = {c.id: c for c in ZERO_CASES}
ZERO_IDS = [c.id for c in ZERO_CASES]

ETA_ZI = np.array([-3.0, -1.0, 0.0, 1.5, 3.0])
ZERO_WIDE = np.linspace(-30.0, 30.0, 61)


def grid(case: ZeroCase, eta=None, eta_zi=ETA_ZI, phis=None):
    """Flat arrays (y, η, η_zi, φ, n) over every combination."""
    eta = np.linspace(-3.0, case.eta_max, 7) if eta is None else eta
    phis = (case.phis or (1.0,)) if phis is None else (phis or (1.0,))
    pairs = case.ys if isinstance(case.ys[0], tuple) else [(y, 1) for y in case.ys]
    pairs = np.array(pairs, dtype=float)
    k, e, z, p = np.meshgrid(np.arange(len(pairs)), eta, eta_zi, phis, indexing="ij")
    k = k.ravel()
    return pairs[k, 0], e.ravel(), z.ravel(), p.ravel(), pairs[k, 1]


# ---- the family's log density and derivatives by PyTensor -----------------------------------
def symbolic(case: ZeroCase, y, eta, eta_zi, phi, n):
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
@pytest.mark.parametrize("case_id", ZERO_IDS)
def test_logp_equals_scipy(case_id):
    case = BY_ID[case_id]
    y, eta, eta_zi, phi, n = grid(case)
    got = compiled(case_id)(y, eta, eta_zi, phi, n)[0]
    expected = case.ref(y, eta, eta_zi, phi, n)
    assert np.all(np.isfinite(expected))
    # measured ≤ 1e-13 relative (8e-12 for hurdle_beta, where ℓ nearly cancels): scipy and the
    # family sum the same terms in different orders
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("case_id", [c.id for c in ZERO_CASES if c.discrete])
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


TAIL_ETA = np.r_[ZERO_WIDE, np.log(1e-4) + np.array([-1e-9, -1e-12, 0.0, 1e-12, 1e-9])]


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


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_zi_binomial_accurate_over_wide_range(link):
    eta, eta_zi = (a.ravel() for a in np.meshgrid(ZERO_WIDE, ZERO_WIDE))
    log_p, log_q = LOG_P[link][0](eta), LOG_P[link][1](eta)
    fn = compiled(f"zi_binomial-{link}-trials")
    for y, n in ((0, 1), (1, 1), (0, 7), (3, 7), (7, 7)):
        got = fn(np.full_like(eta, y), eta, eta_zi, eta, np.full_like(eta, n))[0]
        log_f = special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)
        log_f = log_f + y * log_p + (n - y) * log_q
        expected = zero_inflated(np.full_like(eta, y), eta_zi, log_f, n * log_q)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_zi_poisson_accurate_over_wide_range():
    eta, eta_zi = (a.ravel() for a in np.meshgrid(ZERO_WIDE, ZERO_WIDE))
    zero = compiled("zi_poisson")(np.zeros_like(eta), eta, eta_zi, eta, eta)[0]
    mu = np.exp(eta)
    expected = np.logaddexp(log_pi(eta_zi), log_1m_pi(eta_zi) - mu)
    np.testing.assert_allclose(zero, expected, rtol=1e-12, atol=1e-15)


# ---- derivatives ---------------------------------------------------------------------------
@pytest.mark.parametrize("case_id", ZERO_IDS)
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


@pytest.mark.parametrize("case_id", ZERO_IDS)
def test_derivatives_finite_over_wide_range(case_id):
    case = BY_ID[case_id]
    args = grid(case, eta=ZERO_WIDE, eta_zi=ZERO_WIDE[::5], phis=case.wide_phis)
    assert_finite(case, compiled(case_id)(*args), *args[:4])


@pytest.mark.parametrize("case_id", ZERO_IDS)
def test_engine_graph_elementwise_finite_and_equal(case_id):
    """After the engine's rewrites: only elementwise operations (checked when compiling), the
    same values, and finite values and derivatives over the wide range (a coarser grid, as
    the Python linker runs the rewritten graph element by element)."""
    case = BY_ID[case_id]
    args = grid(case, eta=ZERO_WIDE[::5], eta_zi=(-30.0, -5.0, 0.0, 5.0, 30.0), phis=case.wide_phis)
    engine = compiled(case_id, engine=True)(*args)
    assert_finite(case, engine, *args[:4])
    plain = compiled(case_id)(*args)
    for a, b in zip(engine, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)


# ==== the log rising factorial and the limits of the dispersion ===================================
# the log rising factorial stays accurate where log Γ(a + k) − log Γ(a) cancels, so the
# negative binomial tends to the Poisson and the beta-binomial to the binomial instead of to
# nonsense


@pytest.mark.parametrize("a", [1e-3, 0.5, 3.0, 99.9, 100.1, 1e3, 1e6, 1e12, 1e20])
@pytest.mark.parametrize("k", [0, 1, 3, 50, 1000])
def test_log_rising_equals_sum_of_logs(a, k):
    x, n = pt.dscalars("a", "k")
    value = float(log_rising(x, n).eval({x: a, n: float(k)}))
    expected = math.fsum(math.log(a + i) for i in range(k))  # Γ(a + k)/Γ(a) = Π (a + i)
    assert value == pytest.approx(expected, rel=1e-13, abs=1e-13)


def test_log_rising_with_log_a_is_finite_when_a_underflows():
    x, n, lx = pt.dscalars("a", "k", "log_a")
    f = pytensor.function([x, n, lx], log_rising(x, n, log_a=lx))
    # a = e^-800 underflows to 0; log Γ(a + 3) − log Γ(a) = Σ log(a + i) → -800 + log 2
    assert f(0.0, 3.0, -800.0) == pytest.approx(-800.0 + math.log(2.0), rel=1e-14)


LIMIT_ETA = np.array([-3.0, 0.0, 0.5, 2.0])


@pytest.mark.parametrize("family", [negative_binomial(), zi_negative_binomial()])
@pytest.mark.parametrize("log_size", [30.0, 40.0, 100.0, 300.0])
def test_negative_binomial_tends_to_poisson(family, log_size):
    y = np.arange(8.0)
    Y, E = np.repeat(y, len(LIMIT_ETA)), np.tile(LIMIT_ETA, len(y))
    eta = np.column_stack([E, np.full_like(E, -800.0)])[:, : family.n_eta]
    out = pointwise_derivatives(family)(Y, eta[:, None, :], np.array([np.exp(log_size)]))
    # the zero part's probability is e^-800 here, so the density is the NB's
    np.testing.assert_allclose(out[0][:, 0], stats.poisson.logpmf(Y, np.exp(E)), rtol=1e-12)
    d_size = out[-1][:, 0] * np.exp(log_size)  # ∂ℓ/∂ log size → 0 at the Poisson limit
    np.testing.assert_allclose(d_size, 0.0, atol=1e-9)


def test_hurdle_negative_binomial_tends_to_hurdle_poisson():
    y = np.arange(1.0, 8.0)
    Y, E = np.repeat(y, len(LIMIT_ETA)), np.tile(LIMIT_ETA, len(y))
    eta = np.column_stack([E, np.zeros_like(E)])[:, None, :]
    out = pointwise_derivatives(hurdle_negative_binomial())(Y, eta, np.array([np.exp(60.0)]))
    mu = np.exp(E)
    expected = np.log(0.5) + stats.poisson.logpmf(Y, mu) - np.log(-np.expm1(-mu))
    np.testing.assert_allclose(out[0][:, 0], expected, rtol=1e-12)


@pytest.mark.parametrize("log_precision", [30.0, 35.0, 100.0])
def test_beta_binomial_tends_to_binomial(log_precision):
    n = 7.0
    y = np.arange(n + 1)
    Y, E = np.repeat(y, len(LIMIT_ETA)), np.tile(LIMIT_ETA, len(y))
    data = np.column_stack([Y, np.full_like(Y, n)])
    out = pointwise_derivatives(beta_binomial())(
        data, E[:, None], np.array([np.exp(log_precision)])
    )
    expected = stats.binom.logpmf(Y, n, special.expit(E))
    np.testing.assert_allclose(out[0][:, 0], expected, rtol=1e-11)
    assert np.all(out[0][:, 0] <= 0.0)  # a probability, not the +11 of the cancelling form
