"""Ways of giving the same model that must agree, and inputs that must be refused.

Equivalences: trials (``trials=``, ``p(y, n)``, ``cbind(y, f)``), censoring (``censoring=``,
``cbind(y, c)``), offsets (in the formula, a column, an array; a constant offset only moves the
intercept) and group weights (an array in sorted label order, a Series indexed by label, a
column; weight 2 doubles the log-likelihood, integer weights replicate groups). Errors: every
message names the family, column or argument at fault and is asserted in full.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import glmm_ppl as gp

N_GROUPS, PER = 60, 6
# The default stop (Newton decrement below 1e-6 log-likelihood units) leaves the estimates up to
# ~1e-3 standard errors from the optimum (6e-5 in log SD measured here, with weights 2 against
# none); fits compared to 1e-5 are taken to a decrement of 1e-10 first.
TIGHT = {"newton_tol": 1e-10}


def _fit(fixed, data, family, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "PyTensor could not link to a BLAS")
        fit = gp.mixed_model(fixed, "~ 1 | g", data, family, **kw)
    assert fit.converged
    return fit


def _layout(seed):
    """Rows in shuffled order (so row order, order of appearance and sorted label order all
    differ), string group labels, a N(0, 1) covariate and random intercepts (SD 0.6)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(N_GROUPS), PER)
    x = rng.normal(size=len(g))
    b = rng.normal(0.0, 0.6, N_GROUPS)[g]
    labels = np.array([f"s{(7 * i) % N_GROUPS:02d}" for i in range(N_GROUPS)])[g]
    order = rng.permutation(len(g))
    return rng, labels[order], x[order], b[order]


@pytest.fixture(scope="module")
def binomial_data():
    rng, g, x, b = _layout(1)
    n = rng.integers(1, 9, len(g))
    y = rng.binomial(n, special.expit(0.2 + 0.5 * x + b)).astype(float)
    return pd.DataFrame({"g": g, "x": x, "y": y, "n": n, "f": n - y})


@pytest.fixture(scope="module")
def censored_data():
    rng, g, x, b = _layout(2)
    y = 0.5 + 0.4 * x + b + 0.5 * rng.normal(size=len(g))
    c = np.where(y < -0.2, 1, np.where(y > 1.4, 2, 0))
    assert (c == 1).sum() > 20 and (c == 2).sum() > 20
    return pd.DataFrame({"g": g, "x": x, "y": np.clip(y, -0.2, 1.4), "c": c})


@pytest.fixture(scope="module")
def poisson_data():
    rng, g, x, b = _layout(3)
    e = rng.uniform(0.5, 3.0, len(g))
    y = rng.poisson(e * np.exp(0.3 + 0.4 * x + b)).astype(float)
    return pd.DataFrame({"g": g, "x": x, "y": y, "e": e, "log_e": np.log(e)})


# ---- trials and censoring ----------------------------------------------------------------------
@pytest.mark.parametrize("family", ["binomial", "beta_binomial"])
def test_trials_three_ways(binomial_data, family):
    by_arg = _fit("y ~ x", binomial_data, family, trials="n")
    by_p = _fit("p(y, n) ~ x", binomial_data, family)
    by_cbind = _fit("cbind(y, f) ~ x", binomial_data, family)
    for other in (by_p, by_cbind):
        np.testing.assert_allclose(other.loglik, by_arg.loglik, rtol=0, atol=1e-8)
        np.testing.assert_allclose(other.theta, by_arg.theta, rtol=0, atol=1e-8)


def test_censoring_two_ways(censored_data):
    by_arg = _fit("y ~ x", censored_data, "censored_normal", censoring="c")
    by_cbind = _fit("cbind(y, c) ~ x", censored_data, "censored_normal")
    np.testing.assert_allclose(by_cbind.loglik, by_arg.loglik, rtol=0, atol=1e-8)
    np.testing.assert_allclose(by_cbind.theta, by_arg.theta, rtol=0, atol=1e-8)


# ---- offsets -----------------------------------------------------------------------------------
def test_offset_three_ways(poisson_data):
    in_formula = _fit("y ~ x + offset(log(e))", poisson_data, "poisson")
    column = _fit("y ~ x", poisson_data, "poisson", offset="log_e")
    array = _fit("y ~ x", poisson_data, "poisson", offset=np.log(poisson_data["e"].to_numpy()))
    no_offset = _fit("y ~ x", poisson_data, "poisson")
    assert abs(no_offset.loglik - in_formula.loglik) > 1.0  # the offset matters here
    for other in (column, array):
        np.testing.assert_allclose(other.loglik, in_formula.loglik, rtol=0, atol=1e-8)
        np.testing.assert_allclose(other.theta, in_formula.theta, rtol=0, atol=1e-8)


def test_offset_series_aligned_by_index(poisson_data):
    shuffled = poisson_data.sample(frac=1.0, random_state=5)
    column = _fit("y ~ x", shuffled, "poisson", offset="log_e")
    series = _fit("y ~ x", shuffled, "poisson", offset=poisson_data["log_e"])
    np.testing.assert_allclose(series.loglik, column.loglik, rtol=0, atol=1e-8)


def test_constant_offset_moves_the_intercept(poisson_data):
    plain = _fit("y ~ x", poisson_data, "poisson", control=TIGHT)
    log2 = np.full(len(poisson_data), np.log(2))
    shifted = _fit("y ~ x", poisson_data, "poisson", offset=log2, control=TIGHT)
    expected = plain.theta.copy()
    expected[0] -= np.log(2.0)
    np.testing.assert_allclose(shifted.theta, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(shifted.loglik, plain.loglik, rtol=0, atol=1e-6)


# ---- weights -----------------------------------------------------------------------------------
def _labels(df):
    return np.sort(df["g"].unique())


def test_weight_two_doubles_the_loglik(poisson_data):
    plain = _fit("y ~ x", poisson_data, "poisson", control=TIGHT)
    labels = _labels(poisson_data)
    ways = {
        "array": np.full(len(labels), 2.0),
        "series": pd.Series(2.0, index=labels[::-1]),
        "column": "w",
    }
    data = poisson_data.assign(w=2.0)
    for how, weights in ways.items():
        fit = _fit("y ~ x", data, "poisson", weights=weights, control=TIGHT)
        np.testing.assert_allclose(fit.theta, plain.theta, rtol=0, atol=1e-5, err_msg=how)
        np.testing.assert_allclose(fit.loglik, 2.0 * plain.loglik, rtol=1e-6, err_msg=how)


@pytest.mark.parametrize("family", ["poisson", "negative_binomial"])
def test_integer_weights_replicate_groups(poisson_data, family):
    labels = _labels(poisson_data)
    w = np.random.default_rng(9).integers(1, 4, len(labels))
    weight_of = dict(zip(labels, w, strict=True))
    copies = [
        poisson_data.assign(g=poisson_data["g"] + f"_copy{k}")[poisson_data["g"].map(weight_of) > k]
        for k in range(w.max())
    ]
    replicated = _fit("y ~ x", pd.concat(copies, ignore_index=True), family)
    assert replicated.n_groups == w.sum()
    rng = np.random.default_rng(10)
    ways = {
        "array": w.astype(float),
        "series": pd.Series(w, index=labels).iloc[rng.permutation(len(labels))],
        "column": "w",
    }
    data = poisson_data.assign(w=poisson_data["g"].map(weight_of))
    for how, weights in ways.items():
        fit = _fit("y ~ x", data, family, weights=weights)
        assert fit.n_groups == N_GROUPS
        np.testing.assert_allclose(fit.theta, replicated.theta, rtol=0, atol=1e-4, err_msg=how)
        np.testing.assert_allclose(fit.loglik, replicated.loglik, rtol=1e-6, err_msg=how)


# ---- refused inputs ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def counts():
    rng, g, x, b = _layout(4)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + b)).astype(float)
    n = np.maximum(y, 1) + rng.integers(0, 4, len(g))
    return pd.DataFrame({"g": g, "x": x, "y": y, "n": n, "c": np.zeros(len(g)), "w": 1.0})


def _raises(message, data, family, fixed="y ~ x", random="~ 1 | g", **kw):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "PyTensor could not link to a BLAS")
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            gp.mixed_model(fixed, random, data, family, **kw)


def _set(df, column, rows, values):
    out = df.copy()
    out[column] = out[column].astype(float)
    out.loc[out.index[rows], column] = values
    return out


@pytest.mark.parametrize("family", ["poisson", "negative_binomial", "zi_poisson"])
def test_negative_counts(counts, family):
    data = _set(counts, "y", [3, 10], [-1.0, -2.0])
    _raises(
        f"{family}: response column 'y' must be non-negative integer counts; 2 row(s) are not "
        "(for example -1)",
        data,
        family,
    )


@pytest.mark.parametrize("family", ["poisson", "negative_binomial", "hurdle_poisson"])
def test_non_integer_counts(counts, family):
    data = _set(counts, "y", [5], [2.5])
    _raises(
        f"{family}: response column 'y' must be non-negative integer counts; 1 row(s) are not "
        "(for example 2.5)",
        data,
        family,
    )


def test_gamma_needs_positive_response(counts):
    data = counts.assign(y=np.exp(counts["x"]))
    data = _set(data, "y", [1, 2, 8], [0.0, -3.0, 0.0])
    _raises(
        "gamma: response column 'y' must be positive numbers; 3 row(s) are not (for example 0)",
        data,
        "gamma",
    )


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5])
def test_beta_needs_open_unit_interval(counts, bad):
    data = counts.assign(y=special.expit(counts["x"]))
    data = _set(data, "y", [7], [bad])
    _raises(
        "beta: response column 'y' must be numbers strictly between 0 and 1; 1 row(s) are not "
        f"(for example {bad:g})",
        data,
        "beta",
    )


@pytest.mark.parametrize("family", ["binomial", "zi_binomial", "beta_binomial"])
def test_successes_above_trials(counts, family):
    data = _set(counts, "y", [4], [counts["n"].iloc[4] + 2])
    example = f"{counts['n'].iloc[4] + 2:g}"
    _raises(
        f"{family}: response column 'y' must be at most the number of trials; 1 row(s) are not "
        f"(for example {example})",
        data,
        family,
        trials="n",
    )


def test_trials_must_be_integers(counts):
    data = _set(counts, "n", [2, 6], [4.5, 4.5])
    message = "trials column 'n' must hold non-negative integers; 2 row(s) do not (for example 4.5)"
    _raises(message, data, "binomial", trials="n")
    _raises(message, data, "binomial", fixed="p(y, n) ~ x")


def test_failures_must_be_integers(counts):
    data = counts.assign(f=counts["n"] - counts["y"])
    data = _set(data, "f", [2], [0.5])
    data = _set(data, "y", [2], [3.0])
    _raises(
        "failures column 'f' must hold non-negative integers; 1 row(s) do not (for example 0.5)",
        data,
        "binomial",
        fixed="cbind(y, f) ~ x",
    )


def test_negative_failures(counts):
    data = counts.assign(f=counts["n"] - counts["y"])
    data = _set(data, "f", [2], [-1.0])
    data = _set(data, "y", [2], [3.0])
    _raises(
        "failures column 'f' must hold non-negative integers; 1 row(s) do not (for example -1)",
        data,
        "binomial",
        fixed="cbind(y, f) ~ x",
    )


@pytest.mark.parametrize("how", ["argument", "cbind"])
def test_censoring_codes(counts, how):
    data = _set(counts, "c", [0, 9], [3.0, -1.0])
    kw = {"censoring": "c"} if how == "argument" else {"fixed": "cbind(y, c) ~ x"}
    _raises(
        "censoring column 'c' must be 0 (observed), 1 (left censored) or 2 (right censored); "
        "2 row(s) are not (for example 3)",
        data,
        "censored_normal",
        **kw,
    )


@pytest.mark.parametrize("arg", [{"zi_fixed": "~ x"}, {"zi_random": "~ 1 | g"}])
def test_zero_part_formula_without_zero_part(counts, arg):
    _raises(
        "zi_fixed and zi_random apply to zero-inflated and hurdle families, not poisson",
        counts,
        "poisson",
        **arg,
    )


def test_trials_for_poisson(counts):
    _raises(
        "the poisson family does not take trials; families that do: binomial, zi_binomial, "
        "beta_binomial",
        counts,
        "poisson",
        trials="n",
    )


def test_censoring_for_poisson(counts):
    _raises("censoring= applies to censored_normal, not poisson", counts, "poisson", censoring="c")


def test_beta_binomial_needs_trials(counts):
    _raises(
        "the beta_binomial family needs trials: give trials='column', a response "
        "p(successes, trials) or cbind(successes, failures)",
        counts,
        "beta_binomial",
    )


def test_censored_normal_needs_censoring(counts):
    _raises(
        "the censored_normal family needs censoring: give censoring='column' (0 observed, "
        "1 left, 2 right censored) or a response cbind(y, indicator)",
        counts,
        "censored_normal",
    )


def test_zi_random_other_grouping(counts):
    data = counts.assign(h=counts["g"].str[:2])
    _raises(
        "zi_random must use the grouping column of random ('g'), got 'h'",
        data,
        "zi_poisson",
        zi_random="~ 1 | h",
    )


def test_weights_wrong_length(counts):
    _raises(
        f"weights must have one value per group of 'g' ({N_GROUPS}, in sorted order of the "
        f"labels), got {N_GROUPS - 1}; or pass a pandas Series indexed by group label, or a "
        "column name",
        counts,
        "poisson",
        weights=np.ones(N_GROUPS - 1),
    )


def test_weights_column_varying_within_group(counts):
    rows = np.flatnonzero(counts["g"] == "s14")[:1]
    data = _set(counts, "w", rows, [2.0])
    _raises(
        "weights column 'w' must be constant within each group of 'g'; it varies in 1 group(s) "
        "(for example 's14')",
        data,
        "poisson",
        weights="w",
    )


def test_weights_message_with_integer_labels(counts):
    data = counts.assign(g=counts["g"].str[1:].astype(int))
    data = _set(data, "w", np.flatnonzero(data["g"] == 3)[:1], [2.0])
    _raises(
        "weights column 'w' must be constant within each group of 'g'; it varies in 1 group(s) "
        "(for example 3)",
        data,
        "poisson",
        weights="w",
    )


@pytest.mark.parametrize("bad", [0.0, -1.0, np.inf])
def test_weights_not_positive(counts, bad):
    weights = np.ones(N_GROUPS)
    weights[[5, 17]] = bad
    _raises(
        f"weights must be positive and finite; 2 group(s) are not (for example {bad:g})",
        counts,
        "poisson",
        weights=weights,
    )


def test_offset_wrong_length(counts):
    _raises(
        f"offset must have one value per row of data ({len(counts)}), got {len(counts) + 1}",
        counts,
        "poisson",
        offset=np.zeros(len(counts) + 1),
    )


def test_unknown_family(counts):
    _raises(
        "unknown family 'poison'; valid names: beta, beta_binomial, binomial, censored_normal, "
        "gamma, gaussian, hurdle_beta, hurdle_lognormal, hurdle_negative_binomial, "
        "hurdle_poisson, negative_binomial, poisson, students_t, zi_binomial, "
        "zi_negative_binomial, zi_poisson (or pass a glmm_ppl.families.Family object)",
        counts,
        "poison",
    )


# ---- the zero part in the results ------------------------------------------------------------
@pytest.fixture(scope="module")
def plain_and_zi(counts):
    rng = np.random.default_rng(12)
    zero = rng.random(len(counts)) < special.expit(-0.5 + 0.5 * counts["x"].to_numpy())
    data = counts.assign(y=np.where(zero, 0.0, counts["y"]))
    return _fit("y ~ x", data, "poisson"), _fit("y ~ x", data, "zi_poisson", zi_fixed="~ x")


def test_zero_part_accessors_without_zero_part(plain_and_zi):
    plain, _ = plain_and_zi
    with pytest.raises(
        ValueError,
        match=re.escape(
            "the poisson family has no zero part; sub_model='zero_part' applies to "
            "zero-inflated and hurdle families"
        ),
    ):
        plain.fixef(sub_model="zero_part")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "the poisson family has no zero part; parm='zero_part' applies to zero-inflated "
            "and hurdle families"
        ),
    ):
        plain.vcov(parm="zero_part")
    assert "Zero-part coefficients:" not in str(plain.summary())


def test_zero_part_accessors(plain_and_zi):
    _, zi = plain_and_zi
    gamma = zi.fixef(sub_model="zero_part")
    assert gamma.index.tolist() == ["(Intercept)", "x"]
    V = zi.vcov(parm="zero_part")
    # named as fixef names them, so gamma @ V aligns; in vcov("all") they carry the zi_ prefix
    assert V.index.tolist() == V.columns.tolist() == gamma.index.tolist()
    all_ = zi.vcov("all")
    prefixed = ["zi_(Intercept)", "zi_x"]
    np.testing.assert_array_equal(V.to_numpy(), all_.loc[prefixed, prefixed].to_numpy())
    assert float(gamma @ V @ gamma) > 0
    assert zi.confint("zero_part").index.tolist() == ["(Intercept)", "x"]
    assert zi.confint("all").index[2:4].tolist() == prefixed
    assert np.all(np.diag(V.to_numpy()) > 0)
    np.testing.assert_array_equal(gamma.to_numpy(), zi.theta[2:4])
    text = str(zi.summary())
    assert "Zero-part coefficients:" in text
    block = text.split("Zero-part coefficients:")[1]
    assert re.search(r"^\(Intercept\)\s+" + re.escape(f"{gamma['(Intercept)']:.4f}"), block, re.M)
    assert re.search(r"^x\s+" + re.escape(f"{gamma['x']:.4f}"), block, re.M)


# ---- likelihood-ratio tests across nested families ----------------------------------------------
def test_anova_poisson_within_negative_binomial(poisson_data):
    """Poisson is the negative binomial at size → ∞: the test runs, with the boundary said."""
    m0 = _fit("y ~ x + offset(log_e)", poisson_data, "poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the NB size may run to its upper limit here
        m1 = gp.mixed_model("y ~ x + offset(log_e)", "~ 1 | g", poisson_data, "negative_binomial")
    with pytest.warns(UserWarning, match="poisson is negative_binomial with a parameter at the"):
        table = gp.anova(m0, m1)
    assert table["df"].iloc[1] == 1
    assert table["LRT"].iloc[1] == pytest.approx(2 * (m1.loglik - m0.loglik))
    assert m1.loglik >= m0.loglik - 1e-6  # the larger model contains the smaller one


def test_anova_binomial_within_beta_binomial():
    """The binomial is the beta-binomial at precision → ∞: overdispersed proportions are
    tested against it, with the boundary said."""
    rng = np.random.default_rng(3)
    n = 80
    df = pd.DataFrame({"g": np.repeat(np.arange(n), 5), "x": rng.normal(size=n * 5)})
    df["n"] = rng.integers(5, 15, len(df))
    p = rng.beta(4.0, 4.0 * np.exp(-(0.2 + 0.5 * df["x"])))  # beta-distributed success rates
    df["s"] = rng.binomial(df["n"], p)
    m0 = gp.mixed_model("p(s, n) ~ x", "~ 1 | g", df, "binomial")
    m1 = gp.mixed_model("p(s, n) ~ x", "~ 1 | g", df, "beta_binomial")
    with pytest.warns(UserWarning, match="binomial is beta_binomial with a parameter at the"):
        table = gp.anova(m0, m1)
    assert table["df"].iloc[1] == 1
    assert m1.loglik > m0.loglik  # the larger model contains the smaller one
    assert table["p.value"].iloc[1] < 1e-3  # the data are overdispersed
    other = gp.mixed_model("p(s, n1) ~ x", "~ 1 | g", df.assign(n1=df["n"] + 1), "binomial")
    with pytest.raises(ValueError, match=r"^the models use different per-row data \(trials"):
        gp.anova(other, m1)


def test_anova_refuses_families_that_do_not_nest(poisson_data):
    m0 = _fit("y ~ x", poisson_data, "poisson")
    data = poisson_data.assign(y=poisson_data["y"] + 0.5)
    m1 = _fit("y ~ x + e", data, "gamma")
    with pytest.raises(ValueError, match="^the models were fitted to different data"):
        gp.anova(m0, m1)
    m2 = _fit("y ~ x + e", poisson_data.assign(y=poisson_data["y"] + 1), "gamma")
    m3 = _fit("y ~ x", poisson_data.assign(y=poisson_data["y"] + 1), "poisson")
    message = (
        "the models use different families: poisson(link='log') and gamma(link='log'), and the "
        "first is not a special case of the second"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        gp.anova(m3, m2)


# ---- after review: boundaries, nesting checks, offsets in glm ----------------------------------
def test_negative_binomial_size_at_its_poisson_limit_is_said():
    """Poisson data: the NB size runs to ∞. The log-likelihood is then the Poisson one (not
    the 0.0 a cancelling log Γ difference gave), and a warning says the size is at its edge."""
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(60), 6)
    x = rng.normal(size=len(g))
    y = rng.poisson(np.exp(0.5 + 0.3 * x + rng.normal(size=60)[g] * 0.5))
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    poisson = _fit("y ~ x", df, "poisson")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nb = gp.mixed_model("y ~ x", "~ 1 | g", df, "negative_binomial")
    said = [str(w.message) for w in caught if w.category is gp.SingularFitWarning]
    assert said and said[0].startswith("the negative_binomial parameter 'size' ran to")
    # the curvature in log size vanishes there: the Hessian is singular, and that is said too
    assert any(w.category is gp.ConvergenceWarning for w in caught)
    assert nb.phis["size"] > np.exp(12)
    assert nb.loglik == pytest.approx(poisson.loglik, abs=1e-3)
    assert any("the edge of its range" in note for note in nb.warnings)


def test_anova_refuses_different_offsets_and_weights(poisson_data):
    with_offset = _fit("y ~ x + offset(log_e)", poisson_data, "poisson")
    without = _fit("y ~ 1", poisson_data, "poisson")
    with pytest.raises(ValueError, match="^the models use different offsets: they are not nested$"):
        gp.anova(without, with_offset)
    w = np.arange(1.0, N_GROUPS + 1.0)
    weighted = _fit("y ~ 1 + offset(log_e)", poisson_data, "poisson", weights=w)
    message = "the models use different group weights, so their log-likelihoods are not comparable"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        gp.anova(weighted, with_offset)
    glm = gp.glm("y ~ x + offset(log_e)", poisson_data, "poisson")
    table = gp.anova(glm, with_offset)  # the same offset through glm: accepted
    assert table["LRT"].iloc[1] > 0


def test_anova_warns_about_a_fit_that_did_not_converge(poisson_data):
    small = _fit("y ~ 1 + offset(log_e)", poisson_data, "poisson")
    with pytest.warns(gp.ConvergenceWarning):
        rough = gp.mixed_model(
            "y ~ x + offset(log_e)",
            "~ 1 | g",
            poisson_data,
            "poisson",
            control={"em_iter": 0, "max_iter": 1, "newton_iter": 0},
        )
    with pytest.warns(UserWarning, match="^m1 did not converge: its log-likelihood, and the test"):
        gp.anova(small, rough)


def test_glm_offsets_match_mixed_model_terms(poisson_data):
    in_formula = gp.glm("y ~ x + offset(log(e))", poisson_data, "poisson")
    as_column = gp.glm("y ~ x", poisson_data, "poisson", offset="log_e")
    none = gp.glm("y ~ x", poisson_data, "poisson")
    assert in_formula.loglik == pytest.approx(as_column.loglik, abs=1e-9)
    assert in_formula.loglik != pytest.approx(none.loglik, abs=1.0)


def test_glm_standard_errors_account_for_the_extra_parameter(censored_data):
    """Censored normal: β and σ are not orthogonal, so the SEs come from the full Hessian —
    checked against central differences of an independent scipy log-likelihood."""
    m = gp.glm("cbind(y, c) ~ x", censored_data, "censored_normal")
    y, c, x = (censored_data[k].to_numpy() for k in ("y", "c", "x"))

    def loglik(par):
        mu, sigma = par[0] + par[1] * x, np.exp(par[2])
        z = (y - mu) / sigma
        return np.sum(
            np.where(
                c == 0,
                stats.norm.logpdf(y, mu, sigma),
                np.where(c == 1, stats.norm.logcdf(z), stats.norm.logsf(z)),
            )
        )

    par = np.r_[m.coef.to_numpy(), np.log(m.phis[0])]
    h = 1e-4
    H = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            ei, ej = np.eye(3)[i] * h, np.eye(3)[j] * h
            H[i, j] = (
                loglik(par + ei + ej)
                - loglik(par + ei - ej)
                - loglik(par - ei + ej)
                + loglik(par - ei - ej)
            ) / (4 * h * h)
    expected = np.sqrt(np.diag(np.linalg.inv(-H)))[:2]
    np.testing.assert_allclose(m.se.to_numpy(), expected, rtol=1e-4)


def test_offset_must_be_a_term_of_its_own(poisson_data):
    message = (
        "offset(...) must be added as a term of its own ('~ x + offset(log(e))'), got "
        "'~ x - offset(log_e)'"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        gp.mixed_model("y ~ x - offset(log_e)", "~ 1 | g", poisson_data, "poisson")
    message = "offset(...) belongs in the fixed-effects formula, not in '~ offset(log_e) | g'"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        gp.mixed_model("y ~ x", "~ offset(log_e) | g", poisson_data, "poisson")


def test_zero_part_without_fixed_effects(poisson_data):
    """zi_fixed='~ 0' with zero-part random intercepts: the zero part's probability is
    logistic(b_zi); it fits, and the summary says the zero part has no coefficients."""
    fit = gp.mixed_model(
        "y ~ x + offset(log_e)",
        "~ 1 | g",
        poisson_data,
        "zi_poisson",
        zi_fixed="~ 0",
        zi_random="~ 1 || g",
    )
    assert fit.fixef("zero_part").empty
    assert fit.D.index.tolist() == ["(Intercept)", "zi_(Intercept)"]
    assert "Zero-part coefficients:\n(none)" in str(fit.summary())


def test_family_reading_an_unknown_column_is_refused(poisson_data):
    fam = gp.families.custom_family("exposed", lambda y, eta, phis, *data: -((y - eta) ** 2))
    fam.data_names = ("exposure",)
    message = (
        "the exposed family reads a per-row column 'exposure'; mixed_model passes only trials "
        "and censoring columns to a family (put other per-row values in the formula, e.g. as "
        "an offset)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        gp.mixed_model("y ~ x", "~ 1 | g", poisson_data, fam)
