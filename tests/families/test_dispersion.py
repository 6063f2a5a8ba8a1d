"""The dispersion sub-model ``disp_fixed`` (glmmTMB's ``dispformula``).

References: glmmTMB 1.1.5 fits of ``tests/reference/dispersion_sim.csv`` with
``dispformula = ~ grp`` and ``(1 | id)`` (``extensions_reference.json``). glmmTMB's gaussian
sub-model is on ``log σ²``, ours on ``log σ``: its coefficients are twice ours. Laplace is exact
for the gaussian, so our quadrature matches it; for the negative binomial our Laplace fit
(``n_agq=1``) reproduces glmmTMB's, and the default quadrature differs from it by the Laplace
approximation's error (the same with 11 and 21 points).

Independent checks: the gaussian log-likelihood against the closed-form marginal normal of
each group; the density against ``scipy.stats`` row by row; the gradient against finite
differences; simulations against the fitted per-row dispersion.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import special, stats

import glmm_ppl as gp
from glmm_ppl.families import gamma, gaussian, negative_binomial
from glmm_ppl.fitting.identification import extra_at_edge

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"
DATA = pd.read_csv(REFERENCE_DIR / "dispersion_sim.csv")
REF = json.loads((REFERENCE_DIR / "extensions_reference.json").read_text())


def _values(d: dict) -> np.ndarray:
    return np.array(list(d.values()), dtype=float)


@pytest.fixture(scope="module")
def gauss():
    return gp.mixed_model("y ~ x", "~ 1 | id", DATA, "gaussian", disp_fixed="~ grp")


@pytest.fixture(scope="module")
def gauss_plain():
    return gp.mixed_model("y ~ x", "~ 1 | id", DATA, "gaussian")


@pytest.fixture(scope="module")
def nb_laplace():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gp.QuadratureWarning)  # Laplace is the point here
        return gp.mixed_model(
            "count ~ x", "~ 1 | id", DATA, "negative_binomial", disp_fixed="~ grp", n_agq=1
        )


@pytest.fixture(scope="module")
def nb():
    return gp.mixed_model("count ~ x", "~ 1 | id", DATA, "negative_binomial", disp_fixed="~ grp")


# ---- against glmmTMB ---------------------------------------------------------------------------
def test_gaussian_matches_glmmtmb(gauss):
    ref = REF["gaussian_dispformula"]
    assert gauss.converged
    assert abs(gauss.loglik - ref["logLik"]) < 1e-3
    se = _values(ref["se_fixef"])
    assert np.all(np.abs(gauss.fixef().to_numpy() - _values(ref["fixef"])) < 0.1 * se)
    # glmmTMB: log σ²; ours: log σ
    assert np.allclose(gauss.fixef("dispersion").to_numpy(), _values(ref["disp"]) / 2, atol=2e-3)
    assert gauss.D.iloc[0, 0] == pytest.approx(ref["var_random"], rel=1e-3)


def test_gaussian_loglik_is_the_exact_marginal(gauss):
    """Per group ``y_i ~ N(X_i β, σ_b² J + diag(σ_j²))`` with ``σ_j`` from the sub-model."""
    beta, g = gauss.fixef().to_numpy(), gauss.fixef("dispersion").to_numpy()
    var_b = gauss.D.iloc[0, 0]
    total = 0.0
    for _, rows in DATA.groupby("id"):
        mean = beta[0] + beta[1] * rows["x"].to_numpy()
        sigma = np.exp(g[0] + g[1] * (rows["grp"] == "b").to_numpy())
        cov = var_b + np.diag(sigma**2)
        total += stats.multivariate_normal.logpdf(rows["y"].to_numpy(), mean, cov)
    assert gauss.loglik == pytest.approx(total, abs=1e-6)


def test_negative_binomial_laplace_matches_glmmtmb(nb_laplace):
    ref = REF["nbinom2_dispformula"]
    assert nb_laplace.converged and nb_laplace.n_agq == 1
    assert abs(nb_laplace.loglik - ref["logLik"]) < 1e-3
    se = _values(ref["se_fixef"])
    assert np.all(np.abs(nb_laplace.fixef().to_numpy() - _values(ref["fixef"])) < 0.1 * se)
    assert np.allclose(nb_laplace.fixef("dispersion").to_numpy(), _values(ref["disp"]), atol=2e-3)
    assert nb_laplace.D.iloc[0, 0] == pytest.approx(ref["var_random"], rel=5e-3)


def test_negative_binomial_quadrature_near_glmmtmb(nb, nb_laplace):
    """Adaptive quadrature: stable in the points; the fixed effects within 0.1 SE of glmmTMB's,
    the dispersion coefficients within 0.05 and the log-likelihood within 0.5 of its Laplace
    value (which is off by the Laplace approximation's error: our own Laplace fit has it too)."""
    ref = REF["nbinom2_dispformula"]
    finer = gp.mixed_model(
        "count ~ x", "~ 1 | id", DATA, "negative_binomial", disp_fixed="~ grp", n_agq=21
    )
    assert abs(nb.loglik - finer.loglik) < 1e-4
    se = _values(ref["se_fixef"])
    assert np.all(np.abs(nb.fixef().to_numpy() - _values(ref["fixef"])) < 0.1 * se)
    assert np.allclose(nb.fixef("dispersion").to_numpy(), _values(ref["disp"]), atol=0.05)
    assert nb.D.iloc[0, 0] == pytest.approx(ref["var_random"], rel=0.05)
    assert abs(nb.loglik - ref["logLik"]) < 0.5
    assert nb.loglik - ref["logLik"] == pytest.approx(nb.loglik - nb_laplace.loglik, abs=1e-3)


# ---- the density and its gradient ---------------------------------------------------------------
def _row_logp(family, y, eta, phis, columns):
    """The engines' density (``row_logp``) evaluated with numpy inputs."""
    names = [f"disp:{n}" for n in family.disp_names]
    data = {n: pt.as_tensor(c) for n, c in zip(names, columns, strict=True)}
    lp = family.row_logp(
        pt.as_tensor(y), pt.as_tensor(eta), [pt.as_tensor(p) for p in phis], **data
    )
    return pytensor.function([], lp)()


def test_density_matches_scipy_per_row():
    rng = np.random.default_rng(0)
    x = rng.normal(size=20)
    g = np.array([-0.3, 0.7])
    log_phi = g[0] + g[1] * x
    eta = rng.normal(size=20)
    cases = [
        (gaussian(), rng.normal(size=20), stats.norm.logpdf),
        (gamma(), rng.gamma(2.0, size=20), None),
        (negative_binomial(), rng.poisson(3.0, size=20).astype(float), None),
    ]
    for family, y, _ in cases:
        fam = family.with_dispersion(["(Intercept)", "x"])
        lp = _row_logp(fam, y, eta, np.exp(g), [np.ones(20), x])
        phi = np.exp(log_phi)
        if family.name == "gaussian":
            expected = stats.norm.logpdf(y, eta, phi)
        elif family.name == "gamma":
            expected = stats.gamma.logpdf(y, phi, scale=np.exp(eta) / phi)
        else:
            mu = np.exp(eta)
            expected = stats.nbinom.logpmf(y, phi, phi / (phi + mu))
        assert np.allclose(lp, expected, rtol=1e-10, atol=1e-10), family.name


def test_loglik_gradient_matches_finite_differences(nb):
    graph = gp.fitting.MixedModelGraph(nb.design, nb.family, nb.n_agq, None)
    theta = nb.theta + np.array([0.05, -0.03, 0.1, 0.2, -0.15])  # away from the maximum
    _, _, grad = graph(theta)
    h = 1e-5
    fd = np.array(
        [(graph(theta + h * e)[1] - graph(theta - h * e)[1]) / (2 * h) for e in np.eye(len(theta))]
    )
    assert np.allclose(grad, fd, rtol=1e-5, atol=1e-5)
    assert abs(grad[-1]) > 1.0  # the check is not of a flat direction


# ---- the parametrisation ------------------------------------------------------------------------
def test_intercept_only_is_the_model_without_a_sub_model(gauss_plain):
    same = gp.mixed_model("y ~ x", "~ 1 | id", DATA, "gaussian", disp_fixed="~ 1")
    assert same.names == gauss_plain.names == ["(Intercept)", "x", "D_11", "log(sigma)"]
    assert np.array_equal(same.theta, gauss_plain.theta)
    assert same.loglik == gauss_plain.loglik


def test_cell_means_coding_is_the_same_model(gauss):
    cells = gp.mixed_model("y ~ x", "~ 1 | id", DATA, "gaussian", disp_fixed="~ 0 + grp")
    assert cells.names[-2:] == ["disp_grp[a]", "disp_grp[b]"]  # as the fixed effects name them
    assert cells.loglik == pytest.approx(gauss.loglik, abs=1e-6)
    g = gauss.fixef("dispersion").to_numpy()
    assert np.allclose(cells.fixef("dispersion").to_numpy(), [g[0], g[0] + g[1]], atol=1e-4)


def test_names_and_reported_scales(gauss):
    assert gauss.names[-2:] == ["disp_(Intercept)", "disp_grpb"]
    assert gauss.vcov("extra").index.tolist() == ["disp_(Intercept)", "disp_grpb"]
    est = gauss.fixef("dispersion")
    assert est.index.tolist() == ["(Intercept)", "grpb"]
    ci = gauss.confint("extra")
    assert ci.index.tolist() == ["disp_(Intercept)", "disp_grpb"]
    assert np.allclose(ci["Estimate"], est)  # the coefficients, not exp of them
    assert (ci.iloc[:, 0] < est.to_numpy()).all() and (ci.iloc[:, 2] > est.to_numpy()).all()
    tidy = gauss.to_dataframe("extra")
    assert tidy["term"].tolist() == ["disp_(Intercept)", "disp_grpb"]
    assert np.allclose(tidy["estimate"], est)
    se = np.sqrt(np.diag(gauss.vcov("extra")))
    assert np.allclose(tidy["std_error"], se)
    assert np.allclose(tidy["statistic"], est.to_numpy() / se)
    with pytest.raises(ValueError, match=r"fit.fixef\('dispersion'\)"):
        gauss.phis  # noqa: B018


def test_profile_interval_close_to_wald(gauss):
    wald = gauss.confint("extra")
    prof = gauss.confint("extra", method="profile")
    assert prof.index.tolist() == wald.index.tolist()
    assert np.allclose(prof.to_numpy(), wald.to_numpy(), atol=0.01)  # a gaussian: near normal


def test_summary_has_the_sub_model_section(gauss):
    s = gauss.summary()
    title, table = s.extra
    assert title == "Dispersion sub-model (log sigma)"
    assert table.index.tolist() == ["(Intercept)", "grpb"]
    assert np.allclose(table["Std.Err"], np.sqrt(np.diag(gauss.vcov("extra"))))
    text = str(s)
    assert "Dispersion sub-model (log sigma):" in text
    assert "disp_fixed = ~ 1 + grp" in text
    assert "sigma:" not in text  # no natural-scale line for a parameter that differs by row
    assert "Dispersion sub-model (log sigma)" in s._repr_html_()


# ---- errors -------------------------------------------------------------------------------------
def test_family_without_extra_parameter_is_refused():
    with pytest.raises(ValueError) as err:
        gp.mixed_model("count ~ x", "~ 1 | id", DATA, "poisson", disp_fixed="~ grp")
    assert str(err.value) == (
        "disp_fixed: the poisson family has no extra parameter (dispersion, size, precision or "
        "shape), so there is no dispersion to model; families with one: negative_binomial, "
        "zi_negative_binomial, hurdle_negative_binomial, hurdle_lognormal, hurdle_beta, "
        "gaussian, students_t, gamma, beta, beta_binomial, censored_normal"
    )


def test_unknown_column_is_named():
    with pytest.raises(ValueError, match=r"column\(s\) 'nope' not found in data; available"):
        gp.mixed_model("y ~ x", "~ 1 | id", DATA, "gaussian", disp_fixed="~ nope")


def test_formula_errors():
    with pytest.raises(ValueError, match=r"one-sided formula such as '~ grp', got 'grp'"):
        gp.mixed_model("y ~ x", "~ 1 | id", DATA, "gaussian", disp_fixed="grp")
    with pytest.raises(ValueError, match=r"must be one-sided \('~ grp'\)"):
        gp.mixed_model("y ~ x", "~ 1 | id", DATA, "gaussian", disp_fixed="y ~ grp")
    with pytest.raises(ValueError, match="offsets are not available in the dispersion sub-model"):
        gp.mixed_model("y ~ x", "~ 1 | id", DATA, "gaussian", disp_fixed="~ grp + offset(x)")
    with pytest.raises(ValueError, match=r"has no columns: give at least an intercept"):
        gp.mixed_model("y ~ x", "~ 1 | id", DATA, "gaussian", disp_fixed="~ 0")


def test_missing_values_drop_rows():
    df = DATA.assign(grp=DATA["grp"].where(DATA.index % 50 != 0))
    with pytest.warns(
        UserWarning, match=r"dropped 20 of 1000 rows with missing values \('grp': 20\)"
    ):
        fit = gp.mixed_model("y ~ x", "~ 1 | id", df, "gaussian", disp_fixed="~ grp")
    assert fit.nobs == 980


# ---- predictions and simulations ---------------------------------------------------------------
def test_predict_newdata_needs_the_columns_for_the_response_scale(gauss):
    nd = DATA.head(5).drop(columns="y")
    link = gauss.predict(nd.drop(columns="grp"))  # the link scale does not need them
    assert np.allclose(link, gauss.predict(nd))
    with pytest.raises(ValueError) as err:
        gauss.predict(nd.drop(columns="grp"), type_pred="response")
    assert str(err.value) == (
        "response-scale predictions of the gaussian family need the column(s) 'grp' in newdata, "
        "without missing values (the dispersion sub-model (disp_fixed) gives each row's sigma "
        "from them)"
    )


@pytest.fixture(scope="module")
def hurdle_data():
    rng = np.random.default_rng(3)
    df = DATA[["id", "x", "grp"]].copy()
    b = rng.normal(0.0, 0.5, 200)[df["id"] - 1]
    sigma = np.where(df["grp"] == "a", 0.4, 1.2)
    positive = np.exp(0.3 + 0.5 * df["x"] + b + sigma * rng.normal(size=len(df)))
    return df.assign(y=np.where(rng.random(len(df)) < 0.3, 0.0, positive))


def test_response_mean_uses_each_rows_dispersion(hurdle_data):
    """The hurdle lognormal mean ``(1 − π) exp(η + σ_j²/2)`` depends on the row's σ."""
    fit = gp.mixed_model("y ~ x", "~ 1 | id", hurdle_data, "hurdle_lognormal", disp_fixed="~ grp")
    g = fit.fixef("dispersion").to_numpy()
    assert g == pytest.approx([np.log(0.4), np.log(3.0)], abs=0.15)
    nd = pd.DataFrame({"x": [0.0, 0.0, 1.0], "grp": ["a", "b", "b"]})
    beta, zi = fit.fixef().to_numpy(), fit.fixef("zero_part").to_numpy()
    sigma = np.exp(g[0] + g[1] * np.array([0.0, 1.0, 1.0]))
    expected = special.expit(-zi[0]) * np.exp(beta[0] + beta[1] * nd["x"] + sigma**2 / 2)
    assert np.allclose(fit.predict(nd, type_pred="response"), expected, rtol=1e-10)
    assert not np.isclose(expected[0], expected[1], rtol=0.1)  # σ matters here


def test_simulated_residual_sd_by_group(gauss):
    y = gauss.simulate(nsim=400, seed=5, new_random_effects=False)
    mean = gauss.predict(type="subject_specific").to_numpy()
    rows = DATA.loc[gauss.design.rows]
    sigma = np.exp(gauss.fixef("dispersion").to_numpy())
    for level, expected in (("a", sigma[0]), ("b", sigma[0] * sigma[1])):
        pick = (rows["grp"] == level).to_numpy()
        sd = np.std(y[pick] - mean[pick, None])
        assert sd == pytest.approx(expected, rel=0.01), level


def test_pearson_residuals_use_each_rows_sigma(gauss):
    resid = gauss.residuals(kind="response").to_numpy()
    pearson = gauss.residuals(kind="pearson").to_numpy()
    rows = DATA.loc[gauss.design.rows]
    g = gauss.fixef("dispersion").to_numpy()
    sigma = np.exp(g[0] + g[1] * (rows["grp"] == "b").to_numpy())
    assert np.allclose(pearson, resid / sigma)


def test_negative_binomial_simulation_variance(nb):
    """The simulated counts' variance given the modes is ``μ + μ²/size_j``."""
    y = nb.simulate(nsim=2000, seed=2, new_random_effects=False)
    mu = nb.predict(type="subject_specific", type_pred="response").to_numpy()
    rows = DATA.loc[nb.design.rows]
    g = nb.fixef("dispersion").to_numpy()
    size = np.exp(g[0] + g[1] * (rows["grp"] == "b").to_numpy())
    for level in ("a", "b"):
        pick = (rows["grp"] == level).to_numpy()
        expected = np.mean(mu[pick] + mu[pick] ** 2 / size[pick])
        assert np.mean(np.var(y[pick], axis=1)) == pytest.approx(expected, rel=0.03), level


# ---- comparisons and other inference ------------------------------------------------------------
def test_anova_tests_dispersion_heterogeneity(gauss, gauss_plain):
    table = gp.anova(gauss_plain, gauss)
    assert table["df"].iloc[1] == 1
    assert table["LRT"].iloc[1] == pytest.approx(2 * (gauss.loglik - gauss_plain.loglik))
    assert table["p.value"].iloc[1] < 1e-10


def test_anova_refuses_a_sub_model_not_nested():
    small = gp.mixed_model("y ~ x", "~ 1 | id", DATA, "gaussian", disp_fixed="~ x")
    large = gp.mixed_model("y ~ x", "~ 1 | id", DATA, "gaussian", disp_fixed="~ grp + I(x**2)")
    with pytest.raises(ValueError, match="its dispersion sub-model .* is not within the larger"):
        gp.anova(small, large)


def test_offset_and_sub_model_for_counts():
    df = DATA.assign(exposure=1.0 + DATA["id"] % 3)
    plain = gp.mixed_model("count ~ x + offset(log(exposure))", "~ 1 | id", df, "negative_binomial")
    sub = gp.mixed_model(
        "count ~ x + offset(log(exposure))", "~ 1 | id", df, "negative_binomial", disp_fixed="~ grp"
    )
    assert sub.converged
    assert sub.loglik >= plain.loglik - 1e-6
    assert gp.anova(plain, sub)["df"].iloc[1] == 1


def test_edge_of_the_range_is_per_row(nb):
    assert extra_at_edge(nb.theta[-2:], nb.family, nb.design) is None
    message = extra_at_edge(np.array([1.0, 14.0]), nb.family, nb.design)
    assert message.startswith("the negative_binomial parameter 'size' ran to")


def test_prior_on_a_coefficient_is_on_its_own_scale(gauss):
    prior = pm.Normal.dist(0.0, 0.1)
    fit = gp.mixed_model(
        "y ~ x", "~ 1 | id", DATA, "gaussian", disp_fixed="~ grp", priors={"disp_grpb": prior}
    )
    g = fit.fixef("dispersion").to_numpy()
    assert abs(g[1]) < gauss.fixef("dispersion").iloc[1] - 0.2  # shrunk towards 0
    assert fit.log_prior == pytest.approx(stats.norm.logpdf(g[1], 0.0, 0.1), abs=1e-8)


def test_posterior_reports_the_coefficients_as_a_dispersion_variable(gauss):
    idata = gp.to_inference_data(gauss, draws=4000, seed=3)
    draws = idata.posterior["dispersion"]
    assert list(draws["extra"].values) == list(gauss.family.phi_names)
    np.testing.assert_array_equal(draws.values, idata.posterior["log_phi"].values)
    se = np.sqrt(np.diag(gauss.vcov("extra")))
    mean = draws.mean(("chain", "draw")).values
    # 4,000 normal draws: the mean is within 4 standard errors / √4000 of the estimate
    assert np.all(np.abs(mean - gauss.fixef("dispersion").to_numpy()) < 4 * se / np.sqrt(4000))
    assert "phi" not in idata.posterior
