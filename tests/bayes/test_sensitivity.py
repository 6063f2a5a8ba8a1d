"""Prior sensitivity: MAP refits over a grid of hyperparameters on one compiled graph, their
plot, and ArviZ's power-scaling diagnostic on NUTS output."""

import itertools
import warnings

import arviz as az
import matplotlib
import numpy as np
import pymc as pm
import pytensor
import pytest

import glmm_ppl as gp
import glmm_ppl.bayes.sensitivity as sens
from glmm_ppl.bayes import sample, to_inference_data
from glmm_ppl.bayes.sensitivity import plot_prior_sensitivity, prior_sensitivity, psens

matplotlib.use("Agg")

FIXED, RANDOM = "y ~ sex * time", "~ 1 | id"
GRID = {"nu": [3, 200], "sigma": [0.5, 2.5]}
# a tight Newton tolerance takes every fit to the optimum itself, whatever its start, so that
# warm-started refits and fresh fits agree to rounding
CONTROL = {"newton_tol": 1e-12}
N_PARAMS = 5  # four fixed effects and D_11


def student_t(nu, sigma):
    return pm.StudentT.dist(nu=nu, mu=0.0, sigma=sigma)


def f64(value):
    # PyTensor stores Python numbers as the narrowest exact dtype (200 -> int16, 2.5 ->
    # float32), and the constant parts of the log density are then computed in float32: the
    # direct fits take float64 hyperparameters, as the shared variables are
    return np.float64(value)


@pytest.fixture(scope="module")
def penalized_like(poisson):
    """A MAP fit with GLMMadaptive's penalty written as independent t priors."""
    return gp.mixed_model(
        FIXED, RANDOM, poisson, "poisson", priors={"fixed": student_t(f64(3), f64(1))}
    )


@pytest.fixture(scope="module")
def run(penalized_like):
    """The grid, recording every compilation and the log-prior function of each grid point."""
    compiled, points = [], []
    original_function, original_fit = pytensor.function, sens.fit_mixed

    def counting_function(*args, **kwargs):
        compiled.append(args)
        return original_function(*args, **kwargs)

    def recording_fit(graph, control, initial_values=None):
        out = original_fit(graph, control, initial_values)
        shared = [v for v in sens.ancestors([graph.priors.priors["fixed"]]) if v.name in GRID]
        values = {v.name: float(v.get_value()) for v in shared}
        points.append((graph.priors.compiled(), values, initial_values))
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pytensor, "function", counting_function)
        mp.setattr(sens, "fit_mixed", recording_fit)
        table = prior_sensitivity(penalized_like, student_t, GRID, control=CONTROL)
    return table, compiled, points


def test_table_layout(run, penalized_like):
    table, _, _ = run
    assert table.columns.tolist() == [
        "nu",
        "sigma",
        "parameter",
        "estimate",
        "std_error",
        "loglik",
        "log_prior",
        "converged",
        "at_boundary",
        "natural_name",
        "log_scale",
    ]
    assert len(table) == 4 * N_PARAMS
    points = list(itertools.product(*GRID.values()))
    assert list(table[["nu", "sigma"]].drop_duplicates().itertuples(index=False)) == points
    assert table["parameter"].tolist() == penalized_like.names * 4
    assert table["converged"].all()


def test_each_grid_point_is_the_direct_fit(run, poisson):
    """Setting the shared hyperparameters of one compiled graph gives the fit that a new model
    with those numbers in its prior gives."""
    table, _, _ = run
    for nu, sigma in itertools.product(*GRID.values()):
        direct = gp.mixed_model(
            FIXED,
            RANDOM,
            poisson,
            "poisson",
            priors={"fixed": student_t(f64(nu), f64(sigma))},
            control=CONTROL,
        )
        rows = table[(table["nu"] == nu) & (table["sigma"] == sigma)]
        np.testing.assert_allclose(rows["estimate"], direct.theta, atol=1e-4)
        assert rows["loglik"].iloc[0] == pytest.approx(direct.loglik, abs=1e-6)
        assert rows["log_prior"].iloc[0] == pytest.approx(direct.log_prior, abs=1e-6)
        se = np.sqrt(np.diag(direct.vcov("all")))
        np.testing.assert_allclose(rows["std_error"], se, rtol=1e-3)


def test_one_compilation_for_the_whole_grid(run):
    """The log prior is compiled once; every grid point runs the same function object, with
    its own hyperparameter values, and is fitted from the previous point's estimates and from
    the original fit's (the first point from the fit's alone)."""
    table, compiled, points = run
    assert len(compiled) == 1  # the prior's graph (the likelihood's is cached by structure)
    assert len(points) == 1 + 2 * 3
    functions = [fn for fn, _, _ in points]
    assert all(fn is functions[0] for fn in functions)
    grid_points = [{"nu": nu, "sigma": sigma} for nu, sigma in itertools.product(*GRID.values())]
    assert [values for _, values, _ in points] == [grid_points[0]] + [
        p for p in grid_points[1:] for _ in range(2)
    ]
    # the two starts of the second point: the first point's estimates, then the fit's
    first = table[(table["nu"] == 3) & (table["sigma"] == 0.5)]["estimate"].to_numpy()
    np.testing.assert_allclose(points[1][2]["betas"], first[:4])
    np.testing.assert_allclose(points[2][2]["betas"], points[0][2]["betas"])
    np.testing.assert_allclose(0.5 * np.log(points[1][2]["D"][0, 0]), first[4])  # log sd


def test_estimates_approach_maximum_likelihood_as_sigma_grows(run, gm1):
    table, _, _ = run
    ml = gm1.fixef()
    for nu in GRID["nu"]:
        rows = table[table["nu"] == nu]
        for name in ("(Intercept)", "sexfemale"):  # the coefficients the prior shrinks
            est = rows[rows["parameter"] == name].set_index("sigma")["estimate"]
            assert abs(est[0.5]) < abs(est[2.5]) < abs(ml[name])
            assert abs(est[2.5] - ml[name]) < abs(est[0.5] - ml[name])
    # heavy tails shrink a large coefficient less than (nearly) normal ones
    tight = table[(table["sigma"] == 0.5) & (table["parameter"] == "(Intercept)")]
    by_nu = tight.set_index("nu")["estimate"]
    assert abs(by_nu[200]) < abs(by_nu[3]) < abs(ml["(Intercept)"])


def test_other_priors_are_kept(poisson):
    base = {"fixed": student_t(f64(3), f64(1)), "sd": pm.HalfNormal.dist(f64(2))}
    fit = gp.mixed_model(FIXED, RANDOM, poisson, "poisson", priors=base)
    table = prior_sensitivity(
        fit, lambda sigma: pm.HalfNormal.dist(sigma), {"sigma": [0.3]}, key="sd", control=CONTROL
    )
    direct = gp.mixed_model(
        FIXED,
        RANDOM,
        poisson,
        "poisson",
        priors={"fixed": base["fixed"], "sd": pm.HalfNormal.dist(f64(0.3))},
        control=CONTROL,
    )
    np.testing.assert_allclose(table["estimate"], direct.theta, atol=1e-4)
    assert table["log_prior"].iloc[0] == pytest.approx(direct.log_prior, abs=1e-6)


def test_plot(run):
    table, _, _ = run
    fig = plot_prior_sensitivity(table, "sigma", by="nu")
    assert len(fig.axes) == N_PARAMS
    titles = table["natural_name"].unique().tolist()  # sd((Intercept)) for D_11
    assert [ax.get_title() for ax in fig.axes] == titles and "sd((Intercept))" in titles
    assert all(len(ax.get_lines()) == 2 for ax in fig.axes)
    assert fig.axes[0].get_xscale() == "linear"  # 0.5 to 2.5
    fig = plot_prior_sensitivity(table, "nu", parameters=["sexfemale"], by="sigma")
    assert len(fig.axes) == 1 and fig.axes[0].get_xscale() == "log"  # 3 to 200
    with pytest.raises(ValueError, match="^the table varies 'sigma' besides x"):
        plot_prior_sensitivity(table, "nu")
    with pytest.raises(ValueError, match="^unknown parameters 'tim'"):
        plot_prior_sensitivity(table, "nu", parameters=["tim"], by="sigma")
    matplotlib.pyplot.close("all")


@pytest.fixture(scope="module")
def chains(binary):
    priors = {"fixed": pm.Normal.dist(0.0, 2.0), "sd": pm.HalfNormal.dist(3.0)}
    fit = gp.mixed_model("y ~ time", RANDOM, binary, "binomial", priors=priors)
    return sample(fit, draws=100, tune=100, chains=2, random_seed=1, progressbar=False), fit


def test_psens(chains):
    idata, fit = chains
    for component in ("prior", "likelihood"):
        table = psens(idata, component=component)
        assert table.index.tolist() == ["beta[(Intercept)]", "beta[time]", "sd[(Intercept)]"]
        assert table["variable"].tolist() == ["beta", "beta", "sd"]
        assert np.all(np.isfinite(table["sensitivity"]))
        assert np.all(table["sensitivity"] >= 0)
    with pytest.raises(ValueError, match="^unknown component 'posterior'"):
        psens(idata, component="posterior")
    with pytest.raises(ValueError, match="^idata has no log_prior group"):
        psens(to_inference_data(fit, draws=50, seed=1))


def test_psens_needs_arviz_with_psens(chains, monkeypatch):
    monkeypatch.delattr(az, "psens")
    with pytest.raises(ImportError, match=r"ArviZ 0\.18 added"):
        psens(chains[0])


def test_errors(penalized_like):
    valid = {"nu": [3], "sigma": [1.0]}
    with pytest.raises(
        ValueError, match="^priors for parameters the model does not have: 'tim'; valid keys"
    ):
        prior_sensitivity(penalized_like, student_t, valid, key="tim")
    with pytest.raises(
        ValueError, match="^grid names 'scale' that the prior callable does not accept"
    ):
        prior_sensitivity(penalized_like, student_t, {"nu": [3], "scale": [1.0]})
    with pytest.raises(ValueError, match="^the prior callable needs 'sigma'"):
        prior_sensitivity(penalized_like, student_t, {"nu": [3]})
    with pytest.raises(ValueError, match="^grid is empty"):
        prior_sensitivity(penalized_like, student_t, {})
    with pytest.raises(ValueError, match=r"^grid\['nu'\] has no values"):
        prior_sensitivity(penalized_like, student_t, {"nu": [], "sigma": [1.0]})
    with pytest.raises(ValueError, match=r"^grid\['nu'\] must hold finite numbers"):
        prior_sensitivity(penalized_like, student_t, {"nu": ["3"], "sigma": [1.0]})
    with pytest.raises(ValueError, match="^the prior does not depend on the grid name"):
        prior_sensitivity(
            penalized_like, lambda nu, sigma: pm.Normal.dist(0.0, sigma), valid, key="time"
        )
    with pytest.raises(TypeError, match=r"^priors\['fixed'\] must be an unregistered PyMC"):
        prior_sensitivity(penalized_like, lambda nu, sigma: sigma, valid)


def test_every_grid_order_gives_the_same_table(binary):
    # a narrow prior pushes an SD to 0; a warm start from there must not stay there when the
    # next, wider prior lets the posterior mode move away
    fit = gp.mixed_model(
        "y ~ sex*time + (time || id)",
        data=binary,
        family="binomial",
        priors={"fixed": pm.Normal.dist(0, 2.5), "sd": pm.HalfNormal.dist(3)},
    )
    grid = [0.1, 0.3, 1.0, 3.0, 10.0]
    tables = []
    for order in (grid, grid[::-1], [3.0, 0.1, 10.0, 0.3, 1.0]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gp.SingularFitWarning)
            table = gp.prior_sensitivity(
                fit, lambda sigma: pm.HalfNormal.dist(sigma), {"sigma": order}, key="sd"
            )
        table = table.sort_values(["sigma", "parameter"]).reset_index(drop=True)
        natural = np.where(table["log_scale"], np.exp(table["estimate"]), table["estimate"])
        tables.append((table, natural))
    first, natural0 = tables[0]
    for table, natural in tables[1:]:
        np.testing.assert_allclose(
            table["loglik"] + table["log_prior"], first["loglik"] + first["log_prior"], atol=2e-3
        )
        np.testing.assert_allclose(natural, natural0, atol=1e-2)
    # at the fit's own prior the table reproduces the fit
    at_fit = first[first["sigma"] == 3.0].set_index("parameter")["estimate"]
    np.testing.assert_allclose(at_fit.loc[fit.names].to_numpy(), fit.theta, atol=1e-4)
    # the names and scales the plot uses
    sd_rows = first[first["parameter"] == "D_11"]
    assert set(sd_rows["natural_name"]) == {"sd((Intercept))"} and sd_rows["log_scale"].all()
    assert sd_rows.loc[sd_rows["sigma"] == 0.3, "at_boundary"].all()


def test_plot_shows_sds_on_their_natural_scale(binary):
    import matplotlib

    matplotlib.use("Agg")
    fit = gp.mixed_model(
        "y ~ time + (1 | id)",
        data=binary,
        family="binomial",
        priors={"sd": pm.HalfNormal.dist(3)},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gp.SingularFitWarning)
        table = gp.prior_sensitivity(
            fit, lambda sigma: pm.HalfNormal.dist(sigma), {"sigma": [0.01, 1.0, 10.0]}, key="sd"
        )
    import matplotlib.pyplot as plt

    fig = gp.plot_prior_sensitivity(table, "sigma")
    plt.close(fig)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["(Intercept)", "time", "sd((Intercept))"]
    sd_line = fig.axes[2].get_lines()[0].get_ydata()
    expected = np.exp(table[table["parameter"] == "D_11"].sort_values("sigma")["estimate"])
    np.testing.assert_allclose(sd_line, expected)
    low, high = fig.axes[2].get_ylim()
    assert high < 10  # no band of ±1e5 from a standard deviation pushed to 0
