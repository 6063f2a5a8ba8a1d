"""Fits of dask DataFrames on a Dask cluster (``glmm_ppl.distributed``) against in-process fits.

A cluster fit splits the groups over shards on the workers; it must be the fit a pandas
DataFrame of the same rows gets: the same log-likelihood, estimates, covariance, modes,
predictions and tests, whatever the number of shards and however the rows are spread over
the partitions. What needs the training rows raises ``RowsOnWorkersError``; a lost worker
stops the fit with ``ShardLostError`` instead of hanging.

The expensive fits (10,000 groups, in process and on a two-worker ``LocalCluster``) are made
once per module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import warnings
from pathlib import Path

import dask
import dask.dataframe as dd
import distributed
import numpy as np
import pandas as pd
import pytest

import glmm_ppl as gp
import glmm_ppl.distributed.fit as cluster_fit
from glmm_ppl.distributed import RowsOnWorkersError, ShardLostError
from glmm_ppl.distributed.graph import ShardedGraph

DATA = Path(__file__).resolve().parents[1] / "reference" / "binary_n10000.csv"
FIXED = "y ~ sex * time"
N_GROUPS, N_ROWS = 10_000, 80_000


# ---- the cluster, the data and the fits (once per module) ----------------------------------
def local_cluster() -> distributed.LocalCluster:
    with warnings.catch_warnings():
        # without a dashboard the scheduler still serves http on 8787, or on a free port
        # when another cluster has it, and says so
        warnings.filterwarnings("ignore", "Port 8787 is already in use", UserWarning)
        return distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None, processes=True
        )


@pytest.fixture(scope="module")
def client():
    """A two-worker cluster of processes; its client is the default one."""
    cluster = local_cluster()
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(DATA)


@pytest.fixture(scope="module")
def shuffled(data) -> pd.DataFrame:
    return data.sample(frac=1, random_state=1)


@pytest.fixture(scope="module")
def ddf(shuffled):
    """The rows in shuffled order: a group's rows are spread over the partitions."""
    return dd.from_pandas(shuffled, npartitions=6, sort=False)


def quiet_fit(*args, **kwargs):
    """A fit whose warnings (a coarse rule at 11 points) are kept in ``fit.warnings`` only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gp.QuadratureWarning)
        warnings.simplefilter("ignore", gp.SingularFitWarning)
        return gp.mixed_model(*args, **kwargs)


@pytest.fixture(scope="module")
def local_ri(data):
    return quiet_fit(FIXED, "~ 1 | id", data, "binomial")


@pytest.fixture(scope="module")
def local_slopes(data):
    return quiet_fit(FIXED, "~ time | id", data, "binomial")


@pytest.fixture(scope="module")
def cluster_ri(client, ddf):
    return quiet_fit(FIXED, "~ 1 | id", ddf, "binomial")


@pytest.fixture(scope="module")
def cluster_slopes(client, ddf):
    return quiet_fit(FIXED, "~ time | id", ddf, "binomial")


@pytest.fixture(scope="module", params=["ri", "slopes"])
def pair(request):
    """(in-process fit, cluster fit) of one model."""
    names = {"ri": ("local_ri", "cluster_ri"), "slopes": ("local_slopes", "cluster_slopes")}
    local, cluster = names[request.param]
    return request.getfixturevalue(local), request.getfixturevalue(cluster)


@pytest.fixture(scope="module")
def newdata(data) -> pd.DataFrame:
    """Rows of fitted groups, in another order, and rows of groups the fit did not see."""
    seen = data.iloc[::37].sample(frac=1, random_state=2)
    unseen = data[data.id <= 40].assign(id=lambda d: d.id + 100_000)
    out = pd.concat([seen, unseen])
    return out.set_axis(pd.RangeIndex(len(out)) * 3 + 5)  # labels that are not positions


def assert_same_fit(cluster, local, rel=1e-8, atol_fixef=1e-6):
    assert cluster.loglik == pytest.approx(local.loglik, rel=rel, abs=0)
    pd.testing.assert_index_equal(cluster.fixef().index, local.fixef().index)
    np.testing.assert_allclose(cluster.fixef(), local.fixef(), rtol=0, atol=atol_fixef)


# ---- the data really are spread over partitions ---------------------------------------------
def test_partitions_keep_the_shuffled_order_and_split_groups(ddf, shuffled):
    pd.testing.assert_frame_equal(ddf.compute(), shuffled, check_dtype=False)
    parts = [set(ddf.get_partition(k)["id"].compute()) for k in range(ddf.npartitions)]
    ids = pd.Series([g for part in parts for g in part]).value_counts()
    assert len(ids) == N_GROUPS
    assert (ids > 1).mean() > 0.9  # nearly every group has rows in several partitions


# ---- the same fit as in one process ---------------------------------------------------------
def test_loglik_and_fixed_effects_equal_the_in_process_fit(pair):
    local, cluster = pair
    assert_same_fit(cluster, local)
    assert cluster.nobs == local.nobs == N_ROWS
    assert cluster.n_agq == local.n_agq == 11


def test_vcov_equals_the_in_process_fit(pair):
    local, cluster = pair
    pd.testing.assert_frame_equal(cluster.vcov(), local.vcov(), rtol=1e-4, atol=0)
    pd.testing.assert_frame_equal(cluster.vcov("all"), local.vcov("all"), rtol=1e-4, atol=0)


def test_modes_equal_the_in_process_fit_in_the_same_order(pair):
    local, cluster = pair
    got, want = cluster.ranef(), local.ranef()
    assert got.index.equals(want.index)  # the same labels in the same order (sorted)
    assert got.index.name == want.index.name == "id"
    pd.testing.assert_index_equal(got.columns, want.columns)
    assert len(got) == N_GROUPS
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-5)


def test_warnings_are_those_of_the_in_process_fit(pair):
    local, cluster = pair
    assert cluster.warnings == local.warnings
    assert cluster.converged and local.converged


def test_summary_reports_all_groups_and_rows(cluster_ri):
    text = str(cluster_ri.summary())
    assert f"Number of Groups: {N_GROUPS}" in text
    assert f"Number of Observations: {N_ROWS}" in text
    assert text.count("sexmale:time") == 1  # the table of estimates


@pytest.mark.parametrize("n_shards", [1, 3])
def test_any_number_of_shards_gives_the_same_fit(client, ddf, local_ri, cluster_ri, n_shards):
    fit = quiet_fit(FIXED, "~ 1 | id", ddf, "binomial", n_shards=n_shards)
    assert len(fit.cluster.shards) == len(fit.cluster.workers) == n_shards
    assert fit.loglik == pytest.approx(cluster_ri.loglik, rel=1e-8, abs=0)
    assert_same_fit(fit, local_ri)


def test_one_shard_per_worker_by_default(client, cluster_ri):
    workers = sorted(client.nthreads())
    assert len(cluster_ri.cluster.shards) == 2
    assert sorted(cluster_ri.cluster.workers) == workers  # one on each worker


# ---- what travels: O(p + q²) numbers per evaluation, whatever the number of groups ---------
def test_traffic_per_evaluation_is_small(cluster_ri, cluster_slopes):
    for fit in (cluster_ri, cluster_slopes):
        assert fit.cluster.evaluations > 0
        assert fit.cluster.bytes / fit.cluster.evaluations < 50_000


def one_evaluation(fit) -> tuple[float, float]:
    """The log-likelihood at ``fit.theta`` evaluated once more by the fit's shards
    (``fit.cluster.graph``), and the bytes that evaluation sent and received per shard."""
    graph = fit.cluster.graph
    before = dict(graph.traffic)
    _, ll, _ = graph(fit.theta)
    assert graph.traffic["calls"] == before["calls"] + 1
    return ll, (graph.traffic["bytes"] - before["bytes"]) / len(fit.cluster.shards)


def test_an_evaluation_does_not_grow_with_the_groups(cluster_ri, factor_fits):
    # the same numbers of fixed (4) and random (1) effects, 10,000 groups against 300
    ll, big = one_evaluation(cluster_ri)
    assert ll == pytest.approx(cluster_ri.loglik, rel=1e-10, abs=0)  # the shards kept the rows
    _, small = one_evaluation(factor_fits[1])
    assert big < 2_000
    assert abs(big - small) < 100


# ---- predictions ----------------------------------------------------------------------------
@pytest.mark.parametrize("type_pred", ["link", "response"])
@pytest.mark.parametrize("type", ["mean_subject", "subject_specific", "marginal"])
def test_predictions_on_pandas_data_equal_the_in_process_ones(pair, newdata, type, type_pred):
    local, cluster = pair
    got = cluster.predict(newdata, type_pred=type_pred, type=type)
    want = local.predict(newdata, type_pred=type_pred, type=type)
    pd.testing.assert_index_equal(got.index, newdata.index)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_marginal_predictions_with_standard_errors(pair, newdata):
    local, cluster = pair
    kw = dict(type_pred="response", type="marginal", se_fit=True)
    got, want = cluster.predict(newdata, **kw), local.predict(newdata, **kw)
    pd.testing.assert_index_equal(got.index, newdata.index)
    assert list(got.columns) == ["pred", "se", "low", "upp"]
    np.testing.assert_allclose(got["pred"], want["pred"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["se"], want["se"], rtol=1e-4, atol=0)
    np.testing.assert_allclose(got[["low", "upp"]], want[["low", "upp"]], rtol=0, atol=1e-5)


def subject_specific_on_dask(fit, newdata, npartitions=4):
    ddf_new = dd.from_pandas(newdata.sample(frac=1, random_state=3), npartitions, sort=False)
    lazy = fit.predict(ddf_new, type="subject_specific")
    assert isinstance(lazy, dd.Series)  # lazy: computed on the workers
    got = lazy.compute()
    assert got.index.is_unique and len(got) == len(newdata)
    return got


def test_predictions_on_dask_data_equal_the_pandas_ones(cluster_slopes, newdata):
    categorical = newdata.astype({"sex": pd.CategoricalDtype(["female", "male"])})
    got = subject_specific_on_dask(cluster_slopes, categorical)
    want = cluster_slopes.predict(newdata, type="subject_specific")
    np.testing.assert_allclose(got.loc[want.index], want, rtol=0, atol=1e-10)


def test_predictions_on_dask_data_with_a_string_column(cluster_ri, newdata):
    got = subject_specific_on_dask(cluster_ri, newdata)
    want = cluster_ri.predict(newdata, type="subject_specific")
    np.testing.assert_allclose(got.loc[want.index], want, rtol=0, atol=1e-10)


def test_subject_specific_standard_errors_need_the_rows(cluster_ri, newdata):
    with pytest.raises(ValueError, match="subject-specific standard errors of a fit on a dask"):
        cluster_ri.predict(newdata, type="subject_specific", se_fit=True)


# ---- tests and simulations --------------------------------------------------------------
def test_anova_equals_the_in_process_anova(local_ri, local_slopes, cluster_ri, cluster_slopes):
    names = ["ri", "slopes"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the boundary note on the variance test
        got = gp.anova(cluster_ri, cluster_slopes, names=names)
        want = gp.anova(local_ri, local_slopes, names=names)
    lrt = got.loc["slopes", "LRT"]
    assert lrt == pytest.approx(want.loc["slopes", "LRT"], rel=1e-6, abs=0)
    assert lrt == pytest.approx(2 * (cluster_slopes.loglik - cluster_ri.loglik), rel=1e-12)
    assert lrt > 100  # the slopes matter in these data
    assert got.loc["slopes", "df"] == want.loc["slopes", "df"] == 2
    np.testing.assert_allclose(got["AIC"], want["AIC"], rtol=1e-8)


def test_simulate_draws_on_the_shards(cluster_ri, data):
    sims = cluster_ri.simulate(nsim=2, seed=1)
    assert sims.shape == (N_ROWS, 2)
    assert set(np.unique(sims)) <= {0, 1}
    np.testing.assert_array_equal(sims, cluster_ri.simulate(nsim=2, seed=1))
    assert not np.array_equal(sims, cluster_ri.simulate(nsim=2, seed=2))
    assert not np.array_equal(sims[:, 0], sims[:, 1])
    # The mean of each column is a mean of 10,000 independent group means in [0, 1], each
    # of variance at most 1/4: its standard error is at most sqrt(0.25 / 10,000) = 0.005,
    # and so is the observed mean's around the model's; 0.03 is over four times the standard
    # error of their difference (at most 0.005 * sqrt(2)).
    assert np.abs(sims.mean(axis=0) - data["y"].mean()).max() < 0.03


def test_simulated_rows_are_in_the_fits_order(cluster_ri, data):
    # rows sorted by group, 8 per group: with the effects held at the modes, a group's draws
    # follow its observed responses (in another order they would not)
    sims = cluster_ri.simulate(nsim=3, seed=5, new_random_effects=False)
    by_group = sims.reshape(N_GROUPS, 8, 3).mean(axis=(1, 2))
    observed = data.groupby("id")["y"].mean().sort_index().to_numpy()
    assert np.corrcoef(by_group, observed)[0, 1] > 0.6


# ---- what needs the training rows -----------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda fit: fit.fitted(),
        lambda fit: fit.vcov(sandwich=True),
        lambda fit: fit.residuals(),
        lambda fit: fit.predict(),
    ],
    ids=["fitted", "sandwich", "residuals", "predict-without-newdata"],
)
def test_what_needs_the_rows_says_they_stay_on_the_workers(cluster_ri, call):
    with pytest.raises(RowsOnWorkersError, match="stay on the cluster's workers"):
        call(cluster_ri)
    assert issubclass(RowsOnWorkersError, RuntimeError)
    assert gp.RowsOnWorkersError is RowsOnWorkersError


# ---- a factor level that some shards lack ---------------------------------------------------
def factor_data() -> pd.DataFrame:
    """300 groups × 6 rows; the factor ``f`` has level "c" in half the rows of 2 groups only
    (so of 3 shards, one at least lacks it), "a" or "b" elsewhere."""
    rng = np.random.default_rng(7)
    n, m = 300, 6
    g = np.repeat(np.arange(n), m)
    f = np.where(g % 2 == 0, "a", "b").astype(object)
    f[np.isin(g, [10, 150]) & (np.arange(n * m) % 2 == 1)] = "c"
    x = rng.normal(size=n * m)
    effect = pd.Series({"a": 0.0, "b": 0.4, "c": -0.5})[f].to_numpy()
    eta = 0.3 + 0.5 * x + effect + rng.normal(0, 0.5, n)[g]
    return pd.DataFrame({"g": g, "f": f, "x": x, "y": rng.poisson(np.exp(eta))})


@pytest.fixture(scope="module")
def factor_fits(client):
    df = factor_data()
    ddf = dd.from_pandas(df.sample(frac=1, random_state=3), npartitions=4, sort=False)
    local = gp.mixed_model("y ~ x + f", "~ 1 | g", df, "poisson")
    cluster = gp.mixed_model("y ~ x + f", "~ 1 | g", ddf, "poisson", n_shards=3)
    return local, cluster


def test_a_level_some_shards_lack(factor_fits):
    local, cluster = factor_fits
    groups = [set(s.groups().result()) for s in cluster.cluster.shards]
    assert len(groups) == 3
    assert any(not ({10, 150} & g) for g in groups)  # a shard without level "c"
    assert list(cluster.fixef().index) == ["(Intercept)", "x", "fb", "fc"]
    assert_same_fit(cluster, local)
    # The covariance is the inverse of a Hessian by finite differences of gradients at modes
    # each side finds to the Newton tolerance (the shards from their own warm starts): on 300
    # groups the two agree to about 2e-4 of the variances, so 1e-3, on the scale of the
    # correlations (an entry near 0 has a larger relative error).
    got, want = cluster.vcov().to_numpy(), local.vcov().to_numpy()
    scale = np.outer(*2 * [np.sqrt(np.diag(want))])
    np.testing.assert_allclose(got / scale, want / scale, rtol=0, atol=1e-3)


# ---- missing values -------------------------------------------------------------------------
def test_rows_with_missing_values_are_dropped(client):
    df = gp.load_vignette("binary")
    df.loc[df.sample(5, random_state=2).index, "time"] = np.nan
    ddf = dd.from_pandas(df.sample(frac=1, random_state=1), npartitions=5, sort=False)
    with pytest.warns(UserWarning, match=rf"dropped 5 of {len(df)} rows"):
        local = quiet_fit(FIXED, "~ 1 | id", df, "binomial")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cluster = quiet_fit(FIXED, "~ 1 | id", ddf, "binomial")
    dropped = [w for w in caught if "dropped" in str(w.message)]
    assert len(dropped) == 1  # once, not once per shard
    assert issubclass(dropped[0].category, UserWarning)
    assert f"dropped 5 of {len(df)} rows" in str(dropped[0].message)
    assert dropped[0].filename == __file__  # points at the user's call
    assert cluster.nobs == local.nobs == len(df) - 5
    # 100 groups: a flatter log-likelihood than 10,000 groups', whose optimum the optimizer's
    # stopping rule pins down less tightly (the standard errors are 0.04 to 0.6)
    assert_same_fit(cluster, local, atol_fixef=1e-5)


# ---- inputs a cluster fit refuses -----------------------------------------------------------
@pytest.fixture(scope="module")
def small_ddf():
    df = gp.load_vignette("binary")
    return dd.from_pandas(df, npartitions=3, sort=False)


def test_missing_grouping_column(client, small_ddf):
    with pytest.raises(ValueError, match="grouping column 'nope' not found"):
        gp.mixed_model(FIXED, "~ 1 | nope", small_ddf, "binomial")


def test_missing_fixed_effect_column(client, small_ddf):
    with pytest.raises(ValueError, match="'absent'"):
        gp.mixed_model("y ~ sex + absent", "~ 1 | id", small_ddf, "binomial")


def test_client_with_pandas_data(client):
    with pytest.raises(TypeError, match="client= and n_shards= apply to a dask DataFrame"):
        gp.mixed_model(FIXED, "~ 1 | id", gp.load_vignette("binary"), "binomial", client=client)


def test_client_that_is_not_a_client(client, small_ddf):
    with pytest.raises(TypeError, match="client must be a distributed.Client"):
        gp.mixed_model(FIXED, "~ 1 | id", small_ddf, "binomial", client="tcp://127.0.0.1:1")


@pytest.mark.parametrize(
    "random, kwargs, message",
    [
        ("~ 1 | id", {"n_agq": "auto"}, "n_agq='auto' on a cluster"),
        ("~ 1 | id/sex", {}, "one process"),
        ("~ 1 | id", {"row_weights": "time"}, "row_weights= is fitted in one process only"),
        ("~ 1 | id", {"n_shards": 0}, "n_shards must be a positive integer, got 0"),
        ("~ 1 | id", {"n_agq": 3}, "n_agq=3 on a cluster: use 4 to 100 points"),
    ],
    ids=["auto", "nested", "row_weights", "no-shards", "laplace"],
)
def test_what_is_fitted_in_one_process_only(client, small_ddf, random, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gp.mixed_model(FIXED, random, small_ddf, "binomial", **kwargs)


# ---- clients: none at all, or one that is not the default (a fresh interpreter) ----------
SCRIPT = textwrap.dedent(
    """
    import json, os, threading
    import dask.dataframe as dd
    import distributed
    import glmm_ppl as gp

    df = gp.load_vignette("binary")
    ddf = dd.from_pandas(df, npartitions=2, sort=False)
    out = {"local": gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial").loglik}
    try:
        gp.mixed_model("y ~ sex * time", "~ 1 | id", ddf, "binomial")
        out["no_client"] = ["no error", ""]
    except Exception as err:
        out["no_client"] = [type(err).__name__, str(err)]
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster, set_as_default=False)

    def explicit():
        try:
            fit = gp.mixed_model("y ~ sex * time", "~ 1 | id", ddf, "binomial", client=client)
            out["explicit"] = fit.loglik
        except Exception as err:
            out["explicit"] = [type(err).__name__, str(err)]

    thread = threading.Thread(target=explicit, daemon=True)
    thread.start()
    thread.join(120)
    hung = thread.is_alive()
    if hung:
        out["explicit"] = ["hung", "no answer in 120 s"]
    print("RESULT " + json.dumps(out), flush=True)
    client.close(timeout=20)
    cluster.close(timeout=20)
    if hung:
        os._exit(0)
    """
)


@pytest.fixture(scope="module", autouse=True)
def fresh_interpreter():
    """The script above, run in the background from the start of the module (mostly imports
    and waits, while the module's fits run); its outcome, waited for on first use."""
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    outcome: dict = {}

    def result() -> dict:
        if not outcome:
            stdout, stderr = process.communicate(timeout=300)
            lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
            assert lines, f"exit code {process.returncode}: {stderr[-3000:]}"
            outcome.update(json.loads(lines[-1].removeprefix("RESULT ")))
        return outcome

    yield result
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_no_client_at_all(fresh_interpreter):
    kind, message = fresh_interpreter()["no_client"]
    assert kind == "ValueError"
    assert "there is no client" in message and "client=" in message


def test_an_explicit_client_that_is_not_the_default(fresh_interpreter):
    outcome = fresh_interpreter()
    assert isinstance(outcome["explicit"], float), outcome["explicit"]
    assert outcome["explicit"] == pytest.approx(outcome["local"], rel=1e-8, abs=0)


# ---- a lost worker stops the fit (it does not hang) ---------------------------------------
def in_thread(function, timeout: float):
    """``function()`` in a daemon thread, waited for at most ``timeout`` seconds: its result
    or error, and whether it finished."""
    box: dict = {}

    def run():
        try:
            box["result"] = function()
        except BaseException as err:  # noqa: BLE001 - handed back to the test
            box["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return box, not thread.is_alive()


@pytest.fixture(scope="module")
def fault_cluster():
    """A cluster of its own (a lost worker would break the module's fits)."""
    cluster = local_cluster()
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield cluster, client
    finally:
        client.close()
        cluster.close()


def kill_worker(cluster, client, address: str) -> None:
    """Kill the process of the worker at ``address`` and wait until the scheduler knows."""
    nanny = next(n for n in cluster.workers.values() if n.worker_address == address)
    os.kill(nanny.process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while address in client.nthreads():  # asks the scheduler (scheduler_info() may be a cache)
        assert time.monotonic() < deadline, "the scheduler did not notice the lost worker"
        time.sleep(0.05)


def test_a_lost_worker_stops_the_fit(fault_cluster, monkeypatch):
    cluster, client = fault_cluster
    df = gp.load_vignette("binary")
    ddf = dd.from_pandas(df.sample(frac=1, random_state=1), npartitions=4, sort=False)

    def fit():
        with client.as_current():  # the shards' actors use the current client
            return quiet_fit(FIXED, "~ 1 | id", ddf, "binomial", client=client)

    box, finished = in_thread(fit, 120)
    assert finished and "error" not in box, box.get("error")
    done = box["result"]

    # the next fit loses a worker after its third call to the shards
    calls = []
    original = ShardedGraph._all

    def losing(self, method, *args):
        calls.append(method)
        if len(calls) == 4:
            kill_worker(cluster, client, self.workers[-1])
        return original(self, method, *args)

    monkeypatch.setattr(ShardedGraph, "_all", losing)
    t0 = time.monotonic()
    # a call that races the news of the loss waits for a connection at most this long
    with dask.config.set({"distributed.comm.timeouts.connect": "5s"}):
        box, finished = in_thread(fit, 120)
    assert finished, "the fit hung after losing a worker"
    assert time.monotonic() - t0 < 60
    error = box.get("error")
    assert isinstance(error, ShardLostError), repr(error) if error else box
    assert "did not answer" in str(error) and calls[3] in str(error)
    assert isinstance(error.theta, np.ndarray) and error.theta.shape == done.theta.shape
    assert len(calls) == 4  # it stopped at the first call after the loss

    # the fit made before: its shard on that worker is gone too
    with dask.config.set({"distributed.comm.timeouts.connect": "5s"}):
        box, finished = in_thread(lambda: done.simulate(nsim=1, seed=1), 60)
    assert finished, "simulate hung after losing a worker"
    assert isinstance(box.get("error"), ShardLostError), box
    # what needs no shard still works
    assert done.fixef().notna().all()


def shard_tasks_without_worker(client) -> list:
    """The scheduler's shard tasks that wait for a worker (``no-worker``)."""
    return client.run_on_scheduler(
        lambda dask_scheduler: [
            str(ts.key)
            for ts in dask_scheduler.tasks.values()
            if str(ts.key).startswith("Shard-") and ts.state == "no-worker"
        ]
    )


def test_a_worker_lost_while_the_shards_start(fault_cluster, monkeypatch):
    cluster, client = fault_cluster
    client.wait_for_workers(2, timeout=60)  # the worker the test above lost is back
    df = gp.load_vignette("binary")
    ddf = dd.from_pandas(df.sample(frac=1, random_state=1), npartitions=4, sort=False)
    original = cluster_fit._pack

    def losing(sizes, n_shards):  # after the shuffle, before the shards start
        kill_worker(cluster, client, sorted(client.nthreads())[-1])
        return original(sizes, n_shards)

    monkeypatch.setattr(cluster_fit, "_pack", losing)

    def fit():
        with client.as_current():
            return quiet_fit(FIXED, "~ 1 | id", ddf, "binomial", client=client)

    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(in_thread(fit, 120)[0]), daemon=True)
    thread.start()
    deadline, stuck_since = time.monotonic() + 90, None
    while thread.is_alive() and time.monotonic() < deadline:
        # a shard task without a worker for 5 s: nothing will run it (its worker is gone)
        stuck = bool(shard_tasks_without_worker(client))
        stuck_since = (stuck_since or time.monotonic()) if stuck else None
        if stuck_since and time.monotonic() - stuck_since > 5:
            break
        time.sleep(0.2)
    assert not thread.is_alive(), "the fit hangs: a shard waits for a worker that was lost"
    error = box.get("error")
    # a fit on the workers left, or an error that says what happened
    assert "result" in box or isinstance(error, ShardLostError), "".join(
        traceback.format_exception(error)
    )
