"""The user-written family of docs/families/user_written.md: its code cells run as printed,
recover the simulation's parameters, and its log-likelihood equals an independent integration."""

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

DOC = Path(__file__).resolve().parents[2] / "docs" / "families" / "user_written.md"
TRUTH = {"(Intercept)": 0.8, "x": 0.5, "sd": 0.5, "phi": 0.3}


@pytest.fixture(scope="module")
def doc():
    # the page is a MyST-NB notebook: its code is in ```{code-cell} ipython3 blocks (no options)
    blocks = re.findall(r"```\{code-cell\} ipython3\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 5
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    return namespace


def gp_logpmf(y, mu, phi):
    """Generalized Poisson log pmf in numpy, independently of the documented PyTensor one."""
    return (
        y * (np.log(mu) - np.log1p(phi * mu))
        + (y - 1.0) * np.log1p(phi * y)
        - special.gammaln(y + 1.0)
        - mu * (1.0 + phi * y) / (1.0 + phi * mu)
    )


def test_pmf_sums_to_one_with_the_documented_variance():
    ys = np.arange(400.0)
    p = np.exp(gp_logpmf(ys, 3.0, 0.3))
    mean = (ys * p).sum()
    np.testing.assert_allclose(
        [p.sum(), mean, ((ys - mean) ** 2 * p).sum()],
        [1.0, 3.0, 3.0 * (1 + 0.3 * 3.0) ** 2],
        rtol=1e-10,
    )


def test_documented_fit_recovers_the_truth(doc):
    fit = doc["fit"]
    assert fit.converged
    se = np.sqrt(np.diag(fit.vcov("all")))
    est = dict(zip(fit.names, fit.theta, strict=True))
    se = dict(zip(fit.names, se, strict=True))
    for name in ("(Intercept)", "x"):
        assert abs(est[name] - TRUTH[name]) < 4 * se[name], name
    # the random intercept's parameter is log SD; the extra parameter is on the log scale
    assert abs(est["D_11"] - np.log(TRUTH["sd"])) < 4 * se["D_11"]
    assert abs(est["log(phi)"] - np.log(TRUTH["phi"])) < 4 * se["log(phi)"]


def test_class_and_factory_give_the_same_fit(doc):
    fit, fit2 = doc["fit"], doc["fit2"]
    np.testing.assert_allclose(fit2.theta, fit.theta, atol=1e-5)
    assert fit2.loglik == pytest.approx(fit.loglik, abs=1e-7)


def test_loglik_equals_independent_integration(doc):
    fit, df = doc["fit"], doc["df"]
    beta = fit.fixef().to_numpy()
    sd = float(np.sqrt(fit.D.iloc[0, 0]))
    phi = float(fit.phis["phi"])
    total = 0.0
    for _, rows in df.groupby("g"):
        y, eta0 = rows["y"].to_numpy(), beta[0] + beta[1] * rows["x"].to_numpy()

        def h(b, y=y, eta0=eta0):
            return gp_logpmf(y, np.exp(eta0 + b), phi).sum() + stats.norm.logpdf(b, 0.0, sd)

        mode = optimize.minimize_scalar(lambda b: -h(b), bounds=(-5, 5), method="bounded").x
        peak = h(mode)
        value, _ = integrate.quad(
            lambda b, peak=peak: np.exp(h(b) - peak),
            mode - 12 * sd,
            mode + 12 * sd,
            epsabs=0,
            epsrel=1e-12,
        )
        total += peak + np.log(value)
    assert fit.loglik == pytest.approx(total, rel=1e-8)


def test_documented_aic_prefers_the_generalized_poisson(doc):
    # the simulated counts are over-dispersed (φ = 0.3): the page's AIC comparison favours them
    assert doc["fit"].aic < doc["poisson_fit"].aic
