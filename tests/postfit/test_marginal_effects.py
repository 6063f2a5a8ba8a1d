"""Marginal coefficients (glmm_ppl.postfit.marginal) and effect plots (glmm_ppl.postfit.effects)."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from _figures import drawn_texts, texts_outside
from matplotlib.collections import PolyCollection  # noqa: E402
from scipy import special, stats  # noqa: E402

import glmm_ppl as gp  # noqa: E402
from glmm_ppl.design.newdata import model_arrays  # noqa: E402
from glmm_ppl.postfit.effects import effect_plot_data, plot_effects  # noqa: E402
from glmm_ppl.postfit.marginal import _marginal_means, _MarginalProblem, marginal_coefs  # noqa: E402

FIXED = "y ~ sex * time"
NAMES = ["(Intercept)", "sexfemale", "time", "sexfemale:time"]


@pytest.fixture(scope="module")
def fm1(binary):
    return gp.mixed_model(FIXED, "~ 1 | id", binary, "binomial")


@pytest.fixture(scope="module")
def mc1(fm1):
    return marginal_coefs(fm1, std_errors=True)


@pytest.fixture(scope="module")
def grid():
    """time 0..10 for both sexes."""
    t = np.linspace(0.0, 10.0, 11)
    return pd.DataFrame({"time": np.tile(t, 2), "sex": np.repeat(["male", "female"], len(t))})


def _sigma2(fit) -> float:
    return float(fit.D.iloc[0, 0])


# ---- (a) against GLMMadaptive ---------------------------------------------------------------
def test_marginal_coefs_match_glmmadaptive(fm1, ref):
    """GLMMadaptive's marginal_coefs integrates by Monte Carlo (M = 3000 draws), good to about
    two digits: the quadrature values must lie within 0.02 of them (observed: within 0.004)."""
    ours = marginal_coefs(fm1)["Estimate"]
    theirs = pd.Series(ref["fm1_marginal_coefs"])[ours.index]
    assert list(ours.index) == NAMES
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=0, atol=0.02)


def test_layout_and_quadrature_convergence(fm1, mc1):
    assert list(marginal_coefs(fm1).columns) == ["Estimate"]
    assert list(mc1.columns) == ["Estimate", "Std.Err", "z-value", "p-value"]
    np.testing.assert_allclose(mc1["z-value"], mc1["Estimate"] / mc1["Std.Err"])
    np.testing.assert_allclose(mc1["p-value"], 2 * stats.norm.sf(np.abs(mc1["z-value"])))
    V = mc1.attrs["vcov"]
    assert list(V.index) == NAMES and list(V.columns) == NAMES
    np.testing.assert_allclose(np.sqrt(np.diag(V)), mc1["Std.Err"])
    # the default 15-point rule is converged: 41 points change nothing that matters
    np.testing.assert_allclose(
        marginal_coefs(fm1)["Estimate"], marginal_coefs(fm1, n_agq=41)["Estimate"], atol=1e-4
    )


# ---- (b) properties -------------------------------------------------------------------------
def test_logit_attenuation(fm1):
    """Zeger, Liang & Albert (1988): with random intercepts of variance σ², a logit model's
    marginal coefficients are about β / sqrt(1 + 0.346 σ²). The approximation concerns each
    sex's own logistic line, so it is checked on each sex's intercept and slope (within 5%);
    the contrasts between the sexes (sexfemale, sexfemale:time) are differences of these and
    inherit the approximation's error magnified (5.4% and 27% here)."""
    a = 1.0 / np.sqrt(1.0 + 0.346 * _sigma2(fm1))
    b, m = fm1.fixef()[NAMES].to_numpy(), marginal_coefs(fm1)["Estimate"][NAMES].to_numpy()
    to_lines = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]], dtype=float)
    np.testing.assert_allclose(to_lines @ m, a * (to_lines @ b), rtol=0.05)
    assert np.all(np.abs(m) < np.abs(b))  # attenuated towards zero


def test_tiny_variance_gives_conditional_coefficients(fm1):
    problem = _MarginalProblem(fm1, None)
    theta = problem.theta.copy()
    theta[problem.p :] = np.log(1e-5)  # D = 1e-10
    np.testing.assert_allclose(problem.coefs(theta), fm1.fixef()[NAMES], rtol=0, atol=1e-7)
    np.testing.assert_allclose(problem.coefs(problem.theta), marginal_coefs(fm1)["Estimate"])


def test_probit_random_intercept_is_exact(binary):
    """Probit: ∫Φ(η + b) N(b; 0, σ²) db = Φ(η / sqrt(1 + σ²)) exactly, so β_M = β / sqrt(1 + σ²)
    (up to the 15-point rule's error, about 2e-8 here)."""
    fit = gp.mixed_model(FIXED, "~ 1 | id", binary, gp.families.binomial(link="probit"))
    expected = fit.fixef()[NAMES] / np.sqrt(1.0 + _sigma2(fit))
    np.testing.assert_allclose(marginal_coefs(fit)["Estimate"], expected, rtol=1e-6, atol=1e-7)


def test_log_link_with_offset_is_exact():
    """Log link: E[exp(η + b)] = exp(η + σ²/2), so β_M is β with σ²/2 added to the intercept;
    the offset is taken out of g(μ) and enters the predictions again."""
    pois = gp.load_vignette("poisson").copy()
    rng = np.random.default_rng(7)
    exposure = pd.Series(rng.uniform(0.5, 2.0, pois["id"].nunique()), index=pois["id"].unique())
    pois["log_e"] = np.log(exposure[pois["id"]].to_numpy())
    fit = gp.mixed_model("y ~ sex * time + offset(log_e)", "~ 1 | id", pois, "poisson")
    expected = fit.fixef()[NAMES].to_numpy().copy()
    expected[0] += _sigma2(fit) / 2
    np.testing.assert_allclose(marginal_coefs(fit)["Estimate"], expected, rtol=1e-7, atol=1e-9)
    new = pd.DataFrame({"time": [0.0, 3.0], "sex": ["male", "female"], "log_e": [0.0, 1.0]})
    X = model_arrays(fit.design, new).X
    out = effect_plot_data(fit, new, marginal="coefficients")
    np.testing.assert_allclose(out["pred"], X @ expected + new["log_e"].to_numpy(), rtol=1e-7)
    np.testing.assert_allclose(out["pred_response"], np.exp(out["pred"]))
    # with a log link the exact marginal mean is the same curve
    exact = effect_plot_data(fit, new, marginal=True)
    np.testing.assert_allclose(exact["pred"], out["pred"], rtol=1e-7)


def test_quadrature_means_match_monte_carlo(fm1):
    """Marginal means of a few rows by the rule against 200,000 draws of b (4 MC SEs)."""
    arrays = model_arrays(fm1.design)
    rows = np.array([0, 7, 100, 403, 799])
    eta0 = arrays.X[rows] @ fm1.fixef()[NAMES].to_numpy() + arrays.offset[rows, 0]
    Z = arrays.Z[rows, 0, :]
    quad = _marginal_means(eta0, Z, fm1.D.to_numpy(), special.expit, 15)
    b = np.sqrt(_sigma2(fm1)) * np.random.default_rng(2024).standard_normal(200_000)
    draws = special.expit(eta0[:, None] + Z[:, [0]] * b[None, :])
    mc, mc_se = draws.mean(axis=1), draws.std(axis=1, ddof=1) / np.sqrt(draws.shape[1])
    assert np.all(np.abs(quad - mc) < 4 * mc_se)
    assert np.all(np.abs(quad - special.expit(eta0)) > 10 * mc_se)  # the check can fail


# ---- (c) standard errors --------------------------------------------------------------------
def test_delta_method_matches_sampling(fm1, mc1):
    """SEs of β_M from θ ~ N(θ̂, V) (2,000 draws of β and the D parameters), within 10%."""
    problem = _MarginalProblem(fm1, None)
    V = fm1.vcov("all").loc[problem.fixed_names + problem.D_names]
    V = V[problem.fixed_names + problem.D_names].to_numpy()
    draws = np.random.default_rng(11).multivariate_normal(problem.theta, V, size=2000)
    sampled = np.array([problem.coefs(t) for t in draws]).std(axis=0, ddof=1)
    se = mc1["Std.Err"].to_numpy()
    assert np.all(se > 0)
    np.testing.assert_allclose(se, sampled, rtol=0.10)


def test_argument_checks(fm1):
    with pytest.raises(TypeError, match="std_errors must be True or False, got str"):
        marginal_coefs(fm1, std_errors="yes")
    with pytest.raises(TypeError, match="std_errors must be True or False, got int"):
        marginal_coefs(fm1, std_errors=1)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="n_agq must be a positive integer"):
            marginal_coefs(fm1, n_agq=bad)
    assert marginal_coefs(fm1, std_errors=np.bool_(False)).shape == (4, 1)


# ---- (d) effect_plot_data -------------------------------------------------------------------
def test_conditional_effects(fm1, grid):
    out = effect_plot_data(fm1, grid)
    X = model_arrays(fm1.design, grid).X
    beta = fm1.fixef()[NAMES].to_numpy()
    np.testing.assert_allclose(out["pred"], X @ beta, rtol=1e-12)
    assert np.all((out["low"] < out["pred"]) & (out["pred"] < out["upp"]))
    V = fm1.vcov("fixed-effects").loc[NAMES, NAMES].to_numpy()
    width = 2 * stats.norm.ppf(0.975) * np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))
    np.testing.assert_allclose(out["upp"] - out["low"], width, rtol=1e-10)
    for col in ("pred", "low", "upp"):
        np.testing.assert_allclose(out[f"{col}_response"], special.expit(out[col]), rtol=1e-12)
    pd.testing.assert_frame_equal(out[["time", "sex"]], grid)
    assert list(grid.columns) == ["time", "sex"]  # newdata is not modified
    # a narrower level gives a narrower band about the same prediction
    narrow = effect_plot_data(fm1, grid, level=0.5)
    np.testing.assert_allclose(narrow["pred"], out["pred"])
    assert np.all(narrow["upp"] - narrow["low"] < out["upp"] - out["low"])


def test_marginal_coefficient_effects(fm1, mc1, grid):
    out = effect_plot_data(fm1, grid, marginal="coefficients")
    X = model_arrays(fm1.design, grid).X
    np.testing.assert_allclose(out["pred"], X @ mc1["Estimate"].to_numpy(), rtol=1e-10)
    V = mc1.attrs["vcov"].to_numpy()
    width = 2 * stats.norm.ppf(0.975) * np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))
    np.testing.assert_allclose(out["upp"] - out["low"], width, rtol=1e-8)
    np.testing.assert_allclose(out["pred_response"], special.expit(out["pred"]), rtol=1e-12)
    # the population-averaged curve is flatter than the subject-specific one
    cond = effect_plot_data(fm1, grid)
    assert np.ptp(out["pred"]) < np.ptp(cond["pred"])


def test_exact_marginal_effects_are_the_marginal_predictions(fm1, grid):
    out = effect_plot_data(fm1, grid, marginal=True)
    want = fm1.predict(grid, type_pred="response", type="marginal", se_fit=True)
    for col in ("pred", "low", "upp"):
        np.testing.assert_allclose(out[f"{col}_response"], want[col], rtol=0, atol=1e-10)
    link = fm1.predict(grid, type_pred="link", type="marginal", se_fit=True)
    for col in ("pred", "low", "upp"):
        np.testing.assert_allclose(out[col], link[col], rtol=0, atol=1e-10)
        np.testing.assert_allclose(out[f"{col}_response"], special.expit(out[col]), rtol=1e-12)
    # the band is the link-scale band mapped back, so it stays inside (0, 1)
    assert np.all((0 < out["low_response"]) & (out["low_response"] < out["pred_response"]))
    assert np.all((out["pred_response"] < out["upp_response"]) & (out["upp_response"] < 1))
    narrow = effect_plot_data(fm1, grid, marginal=True, level=0.5)
    np.testing.assert_allclose(narrow["pred"], out["pred"], rtol=1e-12)
    ratio = stats.norm.ppf(0.75) / stats.norm.ppf(0.975)
    np.testing.assert_allclose(
        narrow["upp"] - narrow["low"], ratio * (out["upp"] - out["low"]), rtol=1e-8
    )
    assert out.attrs == {
        "response": "y",
        "family": "binomial",
        "link": "logit",
        "zero_part": False,
        "marginal": True,
        "level": 0.95,
    }
    assert effect_plot_data(fm1, grid, marginal=np.bool_(True)).attrs["marginal"] is True


def test_coefficients_are_inverse_link_of_marginal_coefs(fm1, grid):
    out = effect_plot_data(fm1, grid, marginal="coefficients")
    X = model_arrays(fm1.design, grid).X
    beta_m = gp.marginal_coefs(fm1)["Estimate"].to_numpy()
    np.testing.assert_allclose(out["pred_response"], special.expit(X @ beta_m), rtol=1e-10)
    assert out.attrs["marginal"] == "coefficients"


def test_exact_and_coefficient_marginal_curves_differ(fm1):
    """g⁻¹(xᵀβ_M) is a least-squares summary, not the marginal mean: on fm1 over times 0 to
    15 the two differ by 0.0105 at most (females at time 15)."""
    t = np.linspace(0.0, 15.0, 151)
    grid = pd.DataFrame({"time": np.tile(t, 2), "sex": np.repeat(["male", "female"], len(t))})
    exact = effect_plot_data(fm1, grid, marginal=True)["pred_response"].to_numpy()
    coefs = effect_plot_data(fm1, grid, marginal="coefficients")["pred_response"].to_numpy()
    gap = np.abs(exact - coefs)
    assert gap.max() > 0.005
    np.testing.assert_allclose(gap.max(), 0.0105, atol=5e-4)
    assert grid.iloc[int(np.argmax(gap))].tolist() == [15.0, "female"]


def test_effect_plot_data_checks(fm1, grid):
    for bad in (0, 1, 1.5, -0.1, "0.9", True):
        with pytest.raises(ValueError, match="level must be a number strictly between 0 and 1"):
            effect_plot_data(fm1, grid, level=bad)
    with pytest.raises(TypeError, match="newdata must be a pandas DataFrame, got dict"):
        effect_plot_data(fm1, grid.to_dict())
    for bad in ("yes", "marginal", 1, None):
        message = f"marginal must be False, True or 'coefficients', got {bad!r}"
        with pytest.raises(ValueError, match=re.escape(message)):
            effect_plot_data(fm1, grid, marginal=bad)
    msg = "newdata needs the column(s) 'sex' of the fixed-effects formula; it has time"
    with pytest.raises(ValueError, match=re.escape(msg)):
        effect_plot_data(fm1, grid[["time"]])


# ---- (e) plot_effects -----------------------------------------------------------------------
def _bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def test_plot_effects_by(fm1, grid):
    data = effect_plot_data(fm1, grid)
    ax = plot_effects(data, "time", by="sex")
    try:
        lines = ax.get_lines()
        assert len(lines) == 2 and len(_bands(ax)) == 2
        assert sorted(line.get_label() for line in lines) == ["female", "male"]
        male = data[data["sex"] == "male"].sort_values("time")
        line = next(ln for ln in lines if ln.get_label() == "male")
        np.testing.assert_allclose(line.get_xdata(), male["time"])
        np.testing.assert_allclose(line.get_ydata(), male["pred_response"])
        assert ax.get_xlabel() == "time" and ax.get_ylabel() == "Predicted probability"
        assert ax.get_legend() is not None
    finally:
        plt.close(ax.figure)


def test_plot_effects_link_scale_on_given_axes(fm1, grid):
    data = effect_plot_data(fm1, grid)
    fig, ax = plt.subplots()
    try:
        assert plot_effects(data, "time", ax=ax, scale="link") is ax
        (line,) = ax.get_lines()
        assert len(_bands(ax)) == 1 and ax.get_ylabel() == "Linear predictor (logit link)"
        order = np.argsort(data["time"].to_numpy(), kind="stable")
        np.testing.assert_allclose(line.get_ydata(), data["pred"].to_numpy()[order])
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    "marginal, scale, label",
    [
        (True, "response", "Marginal probability"),
        ("coefficients", "response", "Probability from marginal coefficients"),
        (False, "link", "Linear predictor (logit link)"),
        (True, "link", "Marginal mean on the logit scale"),
        ("coefficients", "link", "Marginal linear predictor (logit link)"),
    ],
)
def test_plot_effects_renders_readable_labels(fm1, grid, marginal, scale, label):
    data = effect_plot_data(fm1, grid, marginal=marginal)
    ax = plot_effects(data, "time", by="sex", scale=scale)
    fig = ax.figure
    try:
        fig.canvas.draw()
        assert fig.get_layout_engine().__class__.__name__ == "ConstrainedLayoutEngine"
        assert len(fig.axes) == 1
        assert ax.get_ylabel() == label and ax.get_xlabel() == "time"
        texts = drawn_texts([ax])
        assert len(texts) > 6 and texts_outside(fig, texts) == []
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["male", "female"]
    finally:
        plt.close(fig)


def test_plot_effects_labels_of_other_families_and_without_attrs(fm1, grid):
    pois = gp.load_vignette("poisson")
    gm1 = gp.mixed_model(FIXED, "~ 1 | id", pois, "poisson")
    data = effect_plot_data(gm1, grid)
    ax = plot_effects(data, "time")
    try:
        assert ax.get_ylabel() == "Predicted mean of y"
        plain = effect_plot_data(fm1, grid)
        plain.attrs = {}
        assert plot_effects(plain, "time", ax=ax).get_ylabel() == "Predicted mean"
        assert plot_effects(plain, "time", ax=ax, scale="link").get_ylabel() == "Linear predictor"
    finally:
        plt.close(ax.figure)


def test_plot_effects_errors(fm1, grid):
    before = plt.get_fignums()  # figures that other tests left open
    data = effect_plot_data(fm1, grid)
    with pytest.raises(ValueError, match=re.escape("x column 'age' is not in data")):
        plot_effects(data, "age")
    with pytest.raises(ValueError, match=re.escape("by column 'group' is not in data")):
        plot_effects(data, "time", by="group")
    with pytest.raises(ValueError, match=re.escape("unknown scale 'logit'; valid: 'response', ")):
        plot_effects(data, "time", scale="logit")
    message = (
        "data lacks the columns 'pred_response', 'low_response' of scale='response'; "
        "make data with effect_plot_data"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        plot_effects(data.drop(columns=["pred_response", "low_response"]), "time")
    with pytest.raises(TypeError, match="data must be a pandas DataFrame, got list"):
        plot_effects([1, 2], "time")
    assert plt.get_fignums() == before  # nothing drawn when the arguments are refused
