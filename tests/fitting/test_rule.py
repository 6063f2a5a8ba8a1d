"""The check of the quadrature rule at fit time, and ``n_agq="auto"``."""

import re
import warnings

import numpy as np
import pytest

import glmm_ppl as gp
from glmm_ppl.fitting.rule import RuleCheck, finer_points, next_points
from glmm_ppl.postfit.quadcheck import check_quadrature

FIXED = "y ~ sex * time"


def _fit_quietly(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = gp.mixed_model(*args, **kwargs)
    return fit, [w for w in caught if issubclass(w.category, UserWarning)]


def _correlation(fit) -> float:
    D = fit.D.to_numpy()
    return float(D[0, 1] / np.sqrt(D[0, 0] * D[1, 1]))


@pytest.mark.parametrize(
    ("n_agq", "q", "finer"),
    [(11, 1, 23), (11, 2, 21), (7, 3, 11), (1, 1, 3), (100, 3, None), (316, 2, None)],
)
def test_finer_points_at_most_four_times_the_nodes(n_agq, q, finer):
    assert finer_points(n_agq, q) == finer
    if finer is not None:
        assert finer % 2 == 1 and finer > n_agq and finer**q <= 4 * n_agq**q


def test_next_points_climbs_by_half_within_the_limits():
    ladder = [11]
    while (k := next_points(ladder[-1], 1)) is not None:
        ladder.append(k)
    assert ladder == [11, 17, 27, 41, 63, 95, 99]
    assert next_points(31, 3) == 45 and 45**3 <= 100_000 and next_points(45, 3) is None


def test_fm1_rule_is_fine_and_said_nowhere(binary, fm1):
    check = fm1.rule_check
    assert (check.n_agq, check.finer, check.coarse) == (11, 23, False)
    expected = check_quadrature(fm1, n_agq=[23]).loc[23, "change"]
    assert check.change == pytest.approx(expected, abs=1e-10)
    assert abs(check.change) < 1e-3
    _, caught = _fit_quietly(FIXED, "~ 1 | id", binary, "binomial")
    assert caught == []
    assert "log-likelihood change with 23 points: -6.9e-05" in str(fm1.summary())


def test_fm3_coarse_rule_warns_with_more_points_not_fewer_effects(binary, fm3):
    check = fm3.rule_check
    assert (check.n_agq, check.finer, check.coarse) == (11, 21, True)
    expected = check_quadrature(fm3, n_agq=[21]).loc[21, "change"]
    assert check.change == pytest.approx(expected, abs=1e-10)
    assert check.change == pytest.approx(-0.0104, abs=5e-4)
    quadrature, singular = fm3.warnings
    assert quadrature == (
        "the quadrature rule may be too coarse: the log-likelihood at the estimates changes by "
        f"{check.change:.3g} with 21 points per random effect instead of 11; refit with "
        "n_agq=21 or n_agq='auto' (which adds points until the log-likelihood is stable)"
    )
    assert singular == (
        "boundary (singular) fit: the correlation of (Intercept) and time is estimated at 0.999; "
        "with 11 points the rule may have put it there (see the quadrature warning): refit with "
        "n_agq=21 or n_agq='auto' before simplifying the random effects"
    )
    text = str(fm3.summary())
    assert f"log-likelihood change with 21 points: {check.change:.2g} (the rule may be too " in text
    assert "'||'" not in text


def test_auto_moves_fm3_off_the_boundary_to_a_higher_likelihood(binary, fm3):
    auto, caught = _fit_quietly(FIXED, "~ time | id", binary, "binomial", n_agq="auto")
    assert caught == [] and auto.warnings == () and auto.converged
    assert auto.n_agq == 17 and auto.opt_summary.n_agq == 17
    assert not auto.rule_check.coarse and auto.rule_check.finer == 33
    assert 0.85 < _correlation(auto) < 0.92  # 0.89 with 15, 21 and 31 points
    assert _correlation(fm3) > 0.99
    # judged by an accurate rule, the 'auto' estimates beat the 11-point ones
    accurate = check_quadrature(auto, n_agq=[41]).loc[41, "logLik"]
    assert accurate > check_quadrature(fm3, n_agq=[41]).loc[41, "logLik"] + 2e-3
    fresh = gp.mixed_model(FIXED, "~ time | id", binary, "binomial", n_agq=17)
    assert auto.loglik == pytest.approx(fresh.loglik, abs=1e-5)


def test_auto_keeps_a_fine_default(binary, fm1):
    auto = gp.mixed_model(FIXED, "~ 1 | id", binary, "binomial", n_agq="auto")
    assert auto.n_agq == 11
    np.testing.assert_allclose(auto.theta, fm1.theta, rtol=0, atol=1e-10)


def test_rule_tol_sets_the_warning_and_where_auto_stops(binary):
    message = r"changes by -6\.9\de-05 with 23 points per random effect instead of 11"
    with pytest.warns(gp.QuadratureWarning, match=message):
        gp.mixed_model(FIXED, "~ 1 | id", binary, "binomial", control={"rule_tol": 1e-6})
    settled = gp.mixed_model(
        FIXED, "~ 1 | id", binary, "binomial", n_agq="auto", control={"rule_tol": 1e-9}
    )
    assert settled.n_agq == 41  # changes: 7e-05 at 11, 9e-06 at 17, 1e-08 at 27, 3e-11 at 41
    assert abs(settled.rule_check.change) < 1e-9


def test_auto_at_the_top_says_it_stopped():
    check = RuleCheck(n_agq=99, finer=199, change=-0.02, tol=0.005)
    assert check.coarse
    assert check.message(auto=True) == (
        "n_agq='auto' stopped at 99 points per random effect, the most it tries (at most 100 "
        "points and 100,000 nodes per group), and the rule may still be too coarse: the "
        "log-likelihood at the estimates changes by -0.02 with 199 points per random effect "
        "instead of 99"
    )
    assert RuleCheck(11, 23, float("nan"), 0.005).coarse


@pytest.mark.parametrize("bad", ["Auto", "automatic", 11.0])
def test_n_agq_names_auto_when_wrong(binary, bad):
    message = f"n_agq must be a positive integer (points per random effect) or 'auto', got {bad!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        gp.mixed_model(FIXED, "~ 1 | id", binary, "binomial", n_agq=bad)
