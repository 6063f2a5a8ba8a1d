"""NUTS on the marginal model by nutpie: whitened coordinates, one engine per chain.

nutpie's sampler runs the chains in threads. Each chain evaluates its own
:class:`~glmm_ppl.engine.log_density.LogDensity` (the density of :func:`glmm_ppl.to_pymc`'s
marginal model, with the chain's own quadrature modes): one compiled call that releases the
GIL, so two chains keep two cores busy. The sampler moves in ``z`` with ``θ = θ̂ + C z``,
``C`` the Cholesky factor of the MAP fit's asymptotic covariance: the posterior is then close
to isotropic from the first step, and nutpie's diagonal mass-matrix adaptation has little
left to learn. Draws are mapped back to the variables of the PyMC model (``beta``, ``theta_D``,
``sd``, ``corr``, ``phi``…); the per-group log-likelihood of each draw is kept from the
gradient evaluation at that point rather than computed again.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import arviz as az
import numpy as np

from ..engine.log_density import LogDensity
from ..engine.ops import COMPILE_LOCK
from ..fitting.graph import MixedModelGraph
from .variables import natural_variables, posterior_dims

__all__ = ["sample_marginal"]

_KEPT_VALUES = 2_000_000  # per-group log-likelihoods kept for the draws, in floats


class _Chains:
    """Log density and expansion functions for nutpie, one set per chain.

    nutpie asks for each chain's functions once, and calls them from threads whose Python
    state (``threading.local``) does not outlive a call: each function holds its own
    :class:`LogDensity`, so a chain's quadrature modes follow it from one point to the next.
    """

    def __init__(self, fit, graph: MixedModelGraph, scale: np.ndarray):
        self.fit, self.graph = fit, graph
        self.center = np.asarray(fit.theta, dtype=float)
        self.scale = scale
        if graph.priors is not None:
            graph.priors.compiled(True)
        self.recent = OrderedDict()  # z bytes -> per-group log-likelihoods, all chains
        self.recent_lock = threading.Lock()
        self.kept = int(np.clip(_KEPT_VALUES // max(graph.design.n_groups, 1), 64, 8192))
        # crossed grouping factors have no independent groups, so no per-group values; a
        # cluster fit's would bring n numbers back from the shards at every evaluation
        self.grouped = not graph.design.crossed and fit.cluster is None

    def _density(self) -> LogDensity:
        with COMPILE_LOCK:  # it copies compiled functions
            return self.graph.log_density(self.fit.modes)

    def make_logp(self):
        density = self._density()

        def logp(z):
            value, grad, per_group = density(self.center + self.scale @ z)
            if not self.grouped:
                return value, self.scale.T @ grad
            with self.recent_lock:
                self.recent[z.tobytes()] = per_group
                if len(self.recent) > self.kept:
                    self.recent.popitem(last=False)
            return value, self.scale.T @ grad

        return logp

    def make_expand(self, seed1, seed2, chain):
        density = None

        def expand(z):
            nonlocal density
            theta = self.center + self.scale @ z
            if not self.grouped:
                return natural_variables(self.fit, theta)
            with self.recent_lock:
                per_group = self.recent.get(z.tobytes())
            if per_group is None:  # no longer among the recent evaluations
                density = density or self._density()
                per_group = density(theta)[2]
            return {**natural_variables(self.fit, theta), "loglik_group": np.array(per_group)}

        return expand


def sample_marginal(
    fit,
    coords: dict,
    scale: np.ndarray | None,
    draws: int,
    tune: int,
    chains: int,
    cores: int | None,
    random_seed,
    progressbar: bool,
    **kwargs,
) -> az.InferenceData:
    """NUTS (nutpie) on the marginal model of ``fit``; see :func:`glmm_ppl.sample`.

    ``scale`` is the whitening factor ``C`` (None: the identity); ``target_accept`` and
    ``max_treedepth`` take PyMC's names, other keywords go to ``nutpie.sample``. Returns the
    posterior with the per-group log-likelihood as the variable ``loglik_group`` (not with
    crossed grouping factors, which have no independent groups).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.bayes.variables import posterior_coords
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> idata = sample_marginal(fm1, posterior_coords(fm1), None, 20, 20, 1, 1, 1, False)
    >>> dict(idata.posterior["loglik_group"].sizes)
    {'chain': 1, 'draw': 20, 'group': 100}
    """
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    if fit.cluster is not None:  # a fit on a dask DataFrame: the density on its shards
        graph = fit.cluster.sampling_graph()
    else:
        graph = MixedModelGraph(fit.design, fit.family, fit.n_agq, fit.penalty, fit.priors)
    k = len(fit.theta)
    scale = np.eye(k) if scale is None else np.asarray(scale, dtype=float)
    functions = _Chains(fit, graph, scale)
    shapes = {name: value.shape for name, value in natural_variables(fit, fit.theta).items()}
    dims = {name: tuple(dim) for name, dim in posterior_dims(fit).items()}
    if functions.grouped:
        shapes["loglik_group"] = (graph.design.n_groups,)
        dims["loglik_group"] = ("group",)
    model = from_pyfunc(
        k,
        functions.make_logp,
        functions.make_expand,
        [np.dtype("float64")] * len(shapes),
        list(shapes.values()),
        list(shapes),
        coords=coords,
        dims=dims,
    )
    if "max_treedepth" in kwargs:
        kwargs["maxdepth"] = kwargs.pop("max_treedepth")
    if cores is None:
        cores = min(chains, len(os.sched_getaffinity(0)))
    seed = random_seed
    if seed is not None and not isinstance(seed, int | np.integer):
        seed = int(np.random.default_rng(seed).integers(2**31))
    try:
        return nutpie.sample(
            model,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            seed=None if seed is None else int(seed),
            progress_bar=progressbar,
            save_warmup=False,
            init_mean=np.zeros(k),
            **kwargs,
        )
    except BaseException as err:  # a Rust panic (pyo3's PanicException) is a BaseException
        if type(err).__name__ != "PanicException":
            raise
        raise RuntimeError(f"nutpie's sampler stopped with an internal error: {err}") from err
