"""The public API: names, shapes and contents of what a fit returns, summaries, defaults,
family forms and convergence reporting."""

import re

import numpy as np
import pandas as pd
import pytest

import glmm_ppl as gp

FIXED = "y ~ sex * time"
FIXED_NAMES = ["(Intercept)", "sexfemale", "time", "sexfemale:time"]
# cheapest possible fit: no EM, one quasi-Newton iteration, no Newton refinement
ONE_STEP = {"max_iter": 1, "em_iter": 0, "newton_iter": 0}


def test_all_names_exist():
    assert {
        "mixed_model",
        "glm",
        "anova",
        "families",
        "load_vignette",
        "ConvergenceWarning",
    } <= set(gp.__all__)
    missing = [name for name in gp.__all__ if not hasattr(gp, name)]
    assert missing == []
    assert issubclass(gp.ConvergenceWarning, UserWarning)
    assert issubclass(gp.SingularFitWarning, UserWarning)


def test_load_vignette(binary, poisson):
    for df in (binary, poisson):
        assert df.shape == (800, 4)
        assert list(df.columns) == ["id", "time", "sex", "y"]
        assert list(df["sex"].cat.categories) == ["male", "female"]
        assert df["id"].nunique() == 100
    assert set(binary["y"].unique()) == {0, 1}
    with pytest.raises(
        ValueError, match=re.escape("unknown vignette data 'gaussian'; valid: 'binary', 'poisson'")
    ):
        gp.load_vignette("gaussian")


# ---- estimates -----------------------------------------------------------------------------------
def test_fixef_names(fm1, fm3):
    assert fm1.fixef().index.tolist() == FIXED_NAMES
    assert fm3.fixef().index.tolist() == FIXED_NAMES
    assert isinstance(fm1.fixef(), pd.Series)


def test_ranef_shape_and_index(fm1, binary):
    re_ = fm1.ranef()
    assert re_.shape == (100, 1)
    assert re_.columns.tolist() == ["(Intercept)"]
    assert re_.index.tolist() == sorted(binary["id"].unique())
    assert re_.index.name == "id"
    # the modes of N(0, D) posteriors are centred near 0 (mean of 100 modes, SD ~2 / 10)
    assert abs(re_.iloc[:, 0].mean()) < 0.5


def test_ranef_post_vars(fm1, fm3):
    r = fm1.ranef(post_vars=True)
    assert r.columns.tolist() == ["(Intercept)", "var.(Intercept)"]
    v = r["var.(Intercept)"].to_numpy()
    assert np.all(v > 0)
    # a log-concave likelihood only adds curvature: posterior variance < prior variance D
    assert np.all(v < fm1.D.to_numpy()[0, 0])
    r3 = fm3.ranef(post_vars=True)
    assert r3.columns.tolist() == [
        "(Intercept)",
        "time",
        "var.(Intercept)",
        "var.time",
        "cov.(Intercept).time",
    ]
    # each group's 2×2 posterior covariance is positive definite
    det = r3["var.(Intercept)"] * r3["var.time"] - r3["cov.(Intercept).time"] ** 2
    assert np.all(det > 0)


def test_D_is_named_dataframe(fm1, fm2, fm3):
    assert fm1.D.index.tolist() == fm1.D.columns.tolist() == ["(Intercept)"]
    assert fm3.D.index.tolist() == fm3.D.columns.tolist() == ["(Intercept)", "time"]
    D3 = fm3.D.to_numpy()
    np.testing.assert_array_equal(D3, D3.T)
    assert np.all(np.linalg.eigvalsh(D3) > 0)
    assert fm2.D.to_numpy()[0, 1] == fm2.D.to_numpy()[1, 0] == 0.0  # '||': independent


def test_vcov_fixed_effects_is_spd_block_of_all(fm1):
    V = fm1.vcov("fixed-effects")
    assert V.index.tolist() == V.columns.tolist() == FIXED_NAMES
    Vn = V.to_numpy()
    np.testing.assert_allclose(Vn, Vn.T, rtol=1e-12, atol=1e-15)  # rounding of the inversion
    assert np.all(np.linalg.eigvalsh(Vn) > 0)
    full = fm1.vcov("all")
    assert full.index.tolist() == FIXED_NAMES + ["D_11"]
    np.testing.assert_allclose(full.to_numpy()[:4, :4], Vn, rtol=1e-12)  # the same inverse
    assert fm1.vcov().equals(V)  # "fixed-effects" is the default


def test_vcov_unknown_parm(fm1):
    with pytest.raises(
        ValueError,
        match=re.escape(
            "unknown parm 'nope'; valid: 'all', 'fixed-effects', 'zero_part', 'var-cov', 'extra'"
        ),
    ):
        fm1.vcov("nope")


def test_no_extra_parameters_for_binomial(fm1):
    assert fm1.phis.empty
    assert fm1.vcov("extra").shape == (0, 0)


def test_confint_levels(fm1):
    assert fm1.confint(level=0.9).columns.tolist() == ["5 %", "Estimate", "95 %"]
    narrow, wide = fm1.confint(level=0.5), fm1.confint(level=0.99)
    assert np.all(wide["0.5 %"] < narrow["25 %"]) and np.all(narrow["75 %"] < wide["99.5 %"])
    with pytest.raises(ValueError, match=re.escape("level must be between 0 and 1, got 1.5")):
        fm1.confint(level=1.5)


def test_fit_does_not_depend_on_row_order_or_index(binary, fm1):
    shuffled = binary.sample(frac=1.0, random_state=1).set_index(np.arange(800) * 3 + 7)
    m = gp.mixed_model(FIXED, "~ 1 | id", shuffled, "binomial")
    # rows are sorted by group stably, so only the order within a group may change sums:
    # rounding-level differences (measured 6e-14)
    assert m.loglik == pytest.approx(fm1.loglik, abs=1e-8)
    np.testing.assert_allclose(m.fixef(), fm1.fixef(), atol=1e-7)
    np.testing.assert_allclose(m.ranef(), fm1.ranef(), atol=1e-7)


# ---- summary ---------------------------------------------------------------------------------
def test_summary_text(fm1):
    text = str(fm1.summary())
    for part in [
        "Number of Observations: 800",
        "Number of Groups: 100",
        "quadrature points: 11",
        "converged: TRUE",
        "family: binomial",
        "link: logit",
        f"{fm1.loglik:.4f}",
        *FIXED_NAMES,
    ]:
        assert part in text, part


def test_summary_html(fm1):
    html = fm1.summary()._repr_html_()
    assert html.count("<table") >= 3  # fit statistics, random effects, fixed effects
    assert "sexfemale:time" in html
    assert "Number of Groups: 100" in html


# ---- defaults and family forms ---------------------------------------------------------------
def test_default_n_agq_11_up_to_two_random_effects(fm1, fm3):
    assert fm1.n_agq == 11
    assert fm3.n_agq == 11
    assert fm1.opt_summary.n_agq == 11


def test_default_n_agq_7_for_three_random_effects(binary):
    with pytest.warns(gp.ConvergenceWarning):
        m = gp.mixed_model(FIXED, "~ time + I(time**2) | id", binary, "binomial", control=ONE_STEP)
    assert m.design.random_names == ["(Intercept)", "time", "I(time ** 2)"]
    assert m.n_agq == 7
    assert "quadrature points: 7" in str(m.summary())


def test_family_object_equals_family_name(binary, fm1):
    m = gp.mixed_model(FIXED, "~ 1 | id", binary, gp.families.binomial())
    assert m.loglik == pytest.approx(fm1.loglik, abs=1e-9)  # same data, same optimizer path
    np.testing.assert_allclose(m.fixef(), fm1.fixef(), atol=1e-8)


def test_string_response_equals_0_1_response(binary, fm1):
    data = binary.assign(y=np.where(binary["y"] == 1, "yes", "no"))  # "yes" sorts second → 1
    m = gp.mixed_model(FIXED, "~ 1 | id", data, "binomial")
    assert m.loglik == pytest.approx(fm1.loglik, abs=1e-9)
    np.testing.assert_allclose(m.fixef(), fm1.fixef(), atol=1e-8)


@pytest.fixture(scope="module")
def probit(binary):
    return gp.mixed_model(FIXED, "~ 1 | id", binary, gp.families.binomial(link="probit"))


def test_probit_fit(probit, fm1):
    assert probit.converged
    assert probit.family.link.name == "probit"
    assert "link: probit" in str(probit.summary())
    assert abs(probit.loglik - fm1.loglik) > 1.0  # a different model (measured −378.27 vs −374.52)
    # logit coefficients are ≈ 1.6–1.8 × probit ones (logistic SD π/√3 ≈ 1.81); measured 1.80
    # for the intercept and 1.79 for time, the well-determined effects
    ratio = fm1.fixef() / probit.fixef()
    assert 1.6 < ratio["(Intercept)"] < 2.0
    assert 1.6 < ratio["time"] < 2.0


def test_cloglog_fit_improves_on_glm(binary):
    family = gp.families.binomial(link="cloglog")
    m = gp.mixed_model(FIXED, "~ 1 | id", binary, family)
    null = gp.glm(FIXED, binary, family)
    assert m.converged
    assert np.isfinite(m.loglik)
    # random intercepts with variance ~4 (fm1) add ~80 log-likelihood units over the GLM
    # (measured 87.5); anything below 40 means the integral or the optimizer went wrong
    assert m.loglik - null.loglik > 40


# ---- convergence reporting -------------------------------------------------------------------
def test_non_converging_fit_is_reported(binary):
    with pytest.warns(gp.ConvergenceWarning, match="the fit did not converge"):
        m = gp.mixed_model(FIXED, "~ 1 | id", binary, "binomial", control=ONE_STEP)
    assert m.converged is False
    assert "converged: FALSE" in str(m.summary())
    assert any("did not converge" in w for w in m.warnings)
    assert "NOT converged" in repr(m)


def test_converged_fit_has_no_warnings(fm1):
    assert fm1.converged is True
    assert fm1.warnings == ()
    assert fm1.opt_summary.newton_decrement < fm1.opt_summary.control.converge_tol
