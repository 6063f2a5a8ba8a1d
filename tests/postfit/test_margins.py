"""to_marginaleffects: marginaleffects' predictions, comparisons and slopes of a fit are
glmm_ppl's own predictions (computed here with ``fit.predict``), and their standard errors
the delta method over all the parameters with ``vcov("all")``."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import glmm_ppl as gp
from glmm_ppl.postfit.margins import to_marginaleffects

pytest.importorskip("marginaleffects")
import polars as pl  # noqa: E402
from marginaleffects import (  # noqa: E402
    avg_comparisons,
    avg_predictions,
    datagrid,
    hypotheses,
    predictions,
    slopes,
)

# marginaleffects calls a polars method that polars deprecates (for categorical comparisons)
pytestmark = pytest.mark.filterwarnings("ignore:.*get_categories:DeprecationWarning")


@pytest.fixture(scope="module")
def m(fm1):
    return to_marginaleffects(fm1)


@pytest.fixture(scope="module")
def rows(fm1, binary):
    """The fitted rows of the vignette data, in the fit's order."""
    return binary.loc[fm1.design.rows]


def _with(data: pd.DataFrame, **values) -> pd.DataFrame:
    """A copy of ``data`` with columns set to one value (categorical ones keep their levels)."""
    out = data.copy()
    for name, value in values.items():
        column = [value] * len(out)
        if isinstance(out[name].dtype, pd.CategoricalDtype):
            column = pd.Categorical(column, categories=out[name].cat.categories)
        out[name] = column
    return out


def _marginal(fit, data, theta=None) -> pd.Series:
    """``fit.predict(type="marginal")`` on the response scale, at ``theta`` if given."""
    if theta is not None:
        fit = dataclasses.replace(fit, theta=np.asarray(theta, dtype=float))
    return fit.predict(data, type_pred="response", type="marginal")


def _avg_difference(fit, rows, theta=None) -> float:
    """Mean over the fitted rows of the marginal mean as female minus as male."""
    female = _marginal(fit, _with(rows, sex="female"), theta)
    male = _marginal(fit, _with(rows, sex="male"), theta)
    return float((female - male).mean())


@pytest.fixture(scope="module")
def jacobian(fm1, rows) -> np.ndarray:
    """d(average difference)/dθ by central differences of glmm_ppl's predictions."""
    theta = fm1.theta
    out = np.empty(len(theta))
    for j in range(len(theta)):
        step = np.zeros(len(theta))
        step[j] = 1e-5 * max(abs(theta[j]), 1.0)
        up = _avg_difference(fm1, rows, theta + step)
        down = _avg_difference(fm1, rows, theta - step)
        out[j] = (up - down) / (2 * step[j])
    return out


# ---- comparisons -----------------------------------------------------------------------------
def test_avg_comparison_is_the_mean_difference_of_marginal_predictions(fm1, rows, m):
    got = avg_comparisons(m, variables="sex")
    assert got["contrast"].to_list() == ["female - male"]
    assert got["estimate"][0] == pytest.approx(_avg_difference(fm1, rows), abs=1e-6)


@pytest.mark.parametrize("sandwich", [False, True])
def test_its_standard_error_is_the_delta_method_over_all_parameters(fm1, m, jacobian, sandwich):
    V = fm1.vcov("all", sandwich=sandwich)
    assert list(V.index) == fm1.names
    ours = float(np.sqrt(jacobian @ V.to_numpy() @ jacobian))
    got = avg_comparisons(m, variables="sex", vcov="sandwich" if sandwich else True)
    assert got["std_error"][0] == pytest.approx(ours, rel=0.01)
    # the Jacobian in every parameter, D_11 too (the marginal mean depends on D)
    np.testing.assert_allclose(np.ravel(got.jacobian), jacobian, rtol=1e-3, atol=1e-6)
    assert abs(jacobian[fm1.names.index("D_11")]) > 0.01


# ---- predictions -----------------------------------------------------------------------------
def test_avg_predictions_by_sex_are_the_mean_marginal_predictions(fm1, rows, m):
    got = avg_predictions(m, by="sex")
    ours = _marginal(fm1, None).groupby(rows["sex"], observed=True).mean()
    assert got["sex"].to_list() == ["male", "female"]
    np.testing.assert_allclose(got["estimate"].to_numpy(), ours[["male", "female"]], rtol=1e-10)


@pytest.mark.parametrize("type", ["mean_subject", "subject_specific", "marginal"])
@pytest.mark.parametrize("scale", ["response", "link"])
def test_predictions_are_the_fits(fm1, type, scale):
    got = predictions(to_marginaleffects(fm1, type=type, scale=scale))
    ours = fm1.predict(type=type, type_pred=scale)
    np.testing.assert_allclose(got["estimate"].to_numpy(), ours.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("scale", ["response", "link"])
def test_prediction_standard_errors_are_those_of_predict(fm1, scale):
    m = to_marginaleffects(fm1, scale=scale)
    got = predictions(m, newdata=datagrid(m, sex=["male", "female"], time=[0.0, 5.0]))
    grid = got.select("sex", "time").to_pandas()
    ours = fm1.predict(grid, type_pred=scale, type="marginal", se_fit=True)
    np.testing.assert_allclose(got["estimate"].to_numpy(), ours["pred"], rtol=1e-12)
    np.testing.assert_allclose(got["std_error"].to_numpy(), ours["se"], rtol=1e-3)


def test_slopes_of_time_are_finite_differences_of_predictions(fm1, rows, m):
    got = slopes(m, variables="time")["estimate"].to_numpy()
    h = 1e-4
    up = _marginal(fm1, rows.assign(time=rows["time"] + h))
    down = _marginal(fm1, rows.assign(time=rows["time"] - h))
    np.testing.assert_allclose(got, (up - down).to_numpy() / (2 * h), rtol=1e-4, atol=1e-8)


def test_hypotheses_on_the_parameters(fm1, m):
    got = hypotheses(m, hypothesis="b1 = 0")  # b0 is the intercept
    assert got["estimate"][0] == pytest.approx(fm1.fixef()["sexfemale"], rel=1e-12)
    se = np.sqrt(fm1.vcov("all").loc["sexfemale", "sexfemale"])
    assert got["std_error"][0] == pytest.approx(se, rel=1e-6)


def test_subject_specific_uses_the_fitted_groups_and_refuses_new_ones(fm1):
    m = to_marginaleffects(fm1, type="subject_specific")
    got = predictions(m, newdata=datagrid(m, sex=["female"], time=[0.0, 5.0], id=[3, 7]))
    nd = got.select("sex", "time", "id").to_pandas()
    ours = fm1.predict(nd, type_pred="response", type="subject_specific")
    np.testing.assert_allclose(got["estimate"].to_numpy(), ours.to_numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match=r"newdata has 2 row\(s\) of groups the fit did not see"):
        predictions(m, newdata=datagrid(m, sex=["female"], time=[0.0, 5.0], id=[1000]))


@pytest.fixture(scope="module")
def zi_fit():
    rng = np.random.default_rng(3)
    n, k = 60, 5
    female = np.repeat(rng.random(n) < 0.5, k)
    time = rng.uniform(0, 5, n * k)
    mu = np.exp(0.5 + 0.2 * time + np.repeat(rng.normal(0, 0.5, n), k))
    zero = rng.random(n * k) < np.where(female, 0.4, 0.15)
    data = pd.DataFrame(
        {
            "id": np.repeat(np.arange(n), k),
            "sex": np.where(female, "female", "male"),
            "time": time,
            "y": np.where(zero, 0, rng.poisson(mu)),
        }
    )
    return gp.mixed_model("y ~ sex + time", "~ 1 | id", data, "zi_poisson", zi_fixed="~ sex")


def test_zero_part(zi_fit):
    for type in ("zero_part", "marginal"):
        got = predictions(to_marginaleffects(zi_fit, type=type))["estimate"].to_numpy()
        ours = zi_fit.predict(type=type, type_pred="response").to_numpy()
        np.testing.assert_allclose(got, ours, rtol=1e-12)


# ---- the data --------------------------------------------------------------------------------
def test_data_given_or_read_back_give_the_same(fm1, binary, m):
    given = to_marginaleffects(fm1, data=binary)
    assert given.get_modeldata().equals(m.get_modeldata())
    assert m.get_modeldata()["sex"].dtype == pl.Enum(["male", "female"])  # the fitted order


def test_data_that_are_not_the_fitted_ones_are_refused(fm1, binary):
    with pytest.raises(ValueError, match="data do not give the fitted model: its fixed-effects"):
        to_marginaleffects(fm1, data=binary.assign(time=binary["time"] + 1))


def test_a_variable_only_inside_a_transform_needs_the_data(binary):
    fit = gp.mixed_model("y ~ sex + log(time + 1)", "~ 1 | id", binary, "binomial")
    with pytest.raises(ValueError, match="the column 'time' enters the model .* pass data="):
        to_marginaleffects(fit)
    got = avg_predictions(to_marginaleffects(fit, data=binary))["estimate"][0]
    assert got == pytest.approx(fit.predict(type="marginal", type_pred="response").mean())


# ---- errors and imports ----------------------------------------------------------------------
def test_unknown_type_and_scale(fm1):
    valid = (
        "'marginal', 'mean_subject', 'subject_specific', 'zero_part', 'zero_part_subject_specific'"
    )
    with pytest.raises(ValueError, match=f"^unknown type 'conditional'; valid: {valid}$"):
        to_marginaleffects(fm1, type="conditional")
    with pytest.raises(ValueError, match="^unknown scale 'odds'; valid: 'response', 'link'$"):
        to_marginaleffects(fm1, scale="odds")
    with pytest.raises(ValueError, match="the binomial family has no zero part"):
        to_marginaleffects(fm1, type="zero_part")


def test_other_objects_are_refused(glm_binary):
    for obj, name in ((glm_binary, "GLMFit"), ("fm1", "str")):
        with pytest.raises(
            ValueError,
            match=rf"^to_marginaleffects needs a fit of glmm_ppl\.mixed_model \(a MixedModelFit\), "
            rf"got {name}$",
        ):
            to_marginaleffects(obj)


def test_without_marginaleffects_the_error_says_how_to_install_it(fm1, monkeypatch):
    monkeypatch.setitem(sys.modules, "marginaleffects", None)
    monkeypatch.setitem(sys.modules, "marginaleffects.classes", None)
    with pytest.raises(ImportError, match=r'pip install "glmm_ppl\[marginaleffects\]"'):
        to_marginaleffects(fm1)


def test_importing_glmm_ppl_leaves_marginaleffects_polars_and_jax_unloaded():
    code = """
import json, sys
import glmm_ppl, glmm_ppl.postfit.margins
print(json.dumps([m for m in ("marginaleffects", "polars", "jax") if m in sys.modules]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
