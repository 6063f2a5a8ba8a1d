"""Scoring rules of discrete fits (glmm_ppl.postfit.scoring_rules): the logarithmic, quadratic
and spherical scores against scipy.stats, the predictive pmf, new groups scored at the fixed
part, and the errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import glmm_ppl as gp
from glmm_ppl.postfit.scoring_rules import _predictive_pmf, scoring_rules


def _eta_by_hand(fit, data: pd.DataFrame) -> np.ndarray:
    """``Xβ̂ + b̂`` from the data columns of ``y ~ sex * time`` and the fit's modes."""
    beta_hat = fit.fixef()
    female = (data["sex"] == "female").to_numpy(float)
    time = data["time"].to_numpy(float)
    fixed = (
        beta_hat["(Intercept)"]
        + beta_hat["sexfemale"] * female
        + beta_hat["time"] * time
        + beta_hat["sexfemale:time"] * female * time
    )
    modes = pd.Series(fit.modes[:, 0], index=fit.design.groups)
    return fixed + modes.reindex(data["id"]).fillna(0.0).to_numpy()


@pytest.fixture(scope="module")
def binary_scores(fm1):
    return scoring_rules(fm1)


@pytest.fixture(scope="module")
def poisson_scores(gm1):
    return scoring_rules(gm1)


def test_scores_are_finite_and_bounded(binary_scores, poisson_scores):
    for scores, nobs in [(binary_scores, 800), (poisson_scores, 800)]:
        assert scores.columns.tolist() == ["id", "logarithmic", "quadratic", "spherical"]
        assert len(scores) == nobs
        values = scores[["logarithmic", "quadratic", "spherical"]].to_numpy()
        assert np.all(np.isfinite(values))
        assert np.all(scores["logarithmic"] <= 0)
        assert np.all(scores["quadratic"] <= 1 + 1e-12)
        assert np.all(scores["spherical"] <= 1 + 1e-12)
        assert np.all(scores["spherical"] >= 0)


def test_binary_scores_match_scipy(fm1, binary, binary_scores):
    data = binary.loc[binary_scores.index]
    p = special.expit(_eta_by_hand(fm1, data))
    y = data["y"].to_numpy()
    py = stats.bernoulli.pmf(y, p)
    np.testing.assert_allclose(
        binary_scores["logarithmic"], stats.bernoulli.logpmf(y, p), rtol=1e-10, atol=1e-12
    )
    sum_sq = p**2 + (1 - p) ** 2
    np.testing.assert_allclose(binary_scores["quadratic"], 2 * py - sum_sq, atol=1e-12)
    np.testing.assert_allclose(binary_scores["spherical"], py / np.sqrt(sum_sq), atol=1e-12)
    assert (binary_scores["id"].to_numpy() == data["id"].to_numpy()).all()


def test_poisson_scores_match_scipy(gm1, poisson, poisson_scores):
    data = poisson.loc[poisson_scores.index]
    mu = np.exp(_eta_by_hand(gm1, data))
    y = data["y"].to_numpy()
    np.testing.assert_allclose(
        poisson_scores["logarithmic"], stats.poisson.logpmf(y, mu), rtol=1e-10, atol=1e-12
    )
    top = max(100, 3 * int(y.max()))
    pmf = stats.poisson.pmf(np.arange(top + 1)[None, :], mu[:, None])
    sum_sq = np.sum(pmf**2, axis=1)
    py = stats.poisson.pmf(y, mu)
    np.testing.assert_allclose(poisson_scores["quadratic"], 2 * py - sum_sq, atol=1e-12)
    np.testing.assert_allclose(poisson_scores["spherical"], py / np.sqrt(sum_sq), atol=1e-10)


@pytest.mark.parametrize("fit_name", ["fm1", "gm1"])
def test_predictive_pmf_sums_to_one(fit_name, request):
    fit = request.getfixturevalue(fit_name)
    pmf = _predictive_pmf(fit)
    assert pmf.shape[0] == fit.nobs
    assert np.all(pmf.to_numpy() >= 0)
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, rtol=0, atol=1e-10)


def test_new_groups_score_at_the_fixed_part(gm1, poisson):
    newdata = poisson.iloc[:12].copy()
    newdata["id"] = newdata["id"] + 10_000
    scores = scoring_rules(gm1, newdata, max_count=3000)
    assert scores.index.equals(newdata.index)
    mu = np.exp(_eta_by_hand(gm1, newdata))  # the modes of unknown ids are 0
    np.testing.assert_allclose(
        scores["logarithmic"], stats.poisson.logpmf(newdata["y"], mu), rtol=1e-10
    )
    known = scoring_rules(gm1, poisson.iloc[:12])
    np.testing.assert_allclose(
        known["logarithmic"],
        stats.poisson.logpmf(poisson["y"].iloc[:12], np.exp(_eta_by_hand(gm1, poisson.iloc[:12]))),
        rtol=1e-10,
    )


def test_scoring_rules_refuse_continuous_families(poisson):
    data = poisson.assign(log_y=np.log1p(poisson["y"]))
    fit = gp.mixed_model("log_y ~ sex * time", "~ 1 | id", data, "gaussian")
    message = (
        "scoring_rules: the gaussian family is not discrete; scoring rules are for discrete "
        "families (binomial, poisson, negative_binomial, zi_poisson, zi_negative_binomial, "
        "zi_binomial, hurdle_poisson, hurdle_negative_binomial, beta_binomial, cumulative)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        scoring_rules(fit)


def test_scoring_rules_need_the_response(fm1, binary):
    with pytest.raises(ValueError, match="the response is needed"):
        scoring_rules(fm1, binary.drop(columns="y"))


@pytest.mark.parametrize("bad", [-1, 2.5, True, "10"])
def test_max_count_is_checked(gm1, bad):
    with pytest.raises(ValueError, match="max_count must be a non-negative integer"):
        scoring_rules(gm1, max_count=bad)


def test_small_max_count_warns(gm1):
    with pytest.warns(UserWarning, match="give a larger max_count"):
        scores = scoring_rules(gm1, max_count=5)
    reference = scoring_rules(gm1)
    np.testing.assert_allclose(scores["logarithmic"], reference["logarithmic"])
