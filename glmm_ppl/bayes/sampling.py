"""NUTS on the fitted model, and a MAP fit as ``InferenceData``.

:func:`sample` runs NUTS (nutpie's by default, PyMC's on request) and returns
``InferenceData`` with the per-group log-likelihood; :func:`to_inference_data` turns a MAP fit
into ``InferenceData`` (draws from the asymptotic normal of ``θ``), so ArviZ summaries and
plots apply to both.
"""

from __future__ import annotations

import numbers
import time
import warnings

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr
from pymc.step_methods.hmc.quadpotential import QuadPotentialFull, QuadPotentialFullAdapt

from ..engine.ops import NUMPY_MODE
from .nuts import sample_marginal
from .pymc_model import per_group_loglik, to_pymc
from .variables import natural_variables, posterior_coords, posterior_dims, theta_draws

__all__ = ["count_argument", "sample", "to_inference_data"]


def count_argument(name: str, value, minimum: int) -> int:
    """``value`` as an int, or a ``ValueError`` naming the argument when it is not an integer
    of at least ``minimum``.

    Examples
    --------
    >>> count_argument("draws", 500, 1)
    500
    >>> count_argument("draws", -5, 1)
    Traceback (most recent call last):
    ...
    ValueError: draws must be an integer of at least 1, got -5
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return int(value)


_ADAPT_TUNE = 500  # tuning steps from which the MAP mass matrix is adapted


def _map_covariance(fit) -> np.ndarray | None:
    """The MAP fit's asymptotic covariance of ``θ`` (inverse negative Hessian of the objective),
    or None when it is not a usable mass matrix (a fit at a boundary)."""
    try:
        cov = np.linalg.inv(-np.asarray(fit.hessian, dtype=float))
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return None
    return cov if np.all(np.isfinite(cov)) else None


def _sample_pymc(fit, draws, tune, chains, marginal, random_seed, progressbar, kwargs):
    """:func:`sample` with ``nuts_sampler="pymc"``: the posterior and the per-group
    log-likelihood of its draws."""
    model = to_pymc(fit, marginal=marginal)
    # the marginal model's cost is the Op: NumPy glue compiles instantly; the latent model is
    # many small operations, which PyMC's default compilation runs faster
    compile_kwargs = {"mode": NUMPY_MODE} if marginal else {}
    with model:
        cov = _map_covariance(fit) if marginal and "step" not in kwargs else None
        if cov is not None:
            nuts = {k: kwargs.pop(k) for k in ("target_accept", "max_treedepth") if k in kwargs}
            # with enough tuning, the tuning draws update the MAP covariance (weighted as 100
            # draws); short tuning leaves it as it is (measured on fm1: bulk ESS of the fixed
            # effects 900 -> 1,240 of 1,000 draws after 1,000 tuning steps, but 170 -> 85 of 200
            # after 200)
            potential = (
                QuadPotentialFullAdapt(len(cov), fit.theta, cov, initial_weight=100)
                if tune >= _ADAPT_TUNE
                else QuadPotentialFull(cov)
            )
            kwargs["step"] = pm.NUTS(potential=potential, compile_kwargs=compile_kwargs, **nuts)
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=1,
            random_seed=random_seed,
            progressbar=progressbar,
            compile_kwargs=compile_kwargs,
            **kwargs,
        )
    if fit.design.crossed:  # no independent groups: no per-group log-likelihood
        return idata, None
    theta = theta_draws(idata.posterior, fit)
    return idata, per_group_loglik(fit, theta)


def sample(
    fit,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    marginal: bool = True,
    random_seed=None,
    progressbar: bool = True,
    nuts_sampler: str | None = None,
    cores: int | None = None,
    **kwargs,
) -> az.InferenceData:
    """NUTS on the fit's model (:func:`to_pymc`), returned as ``InferenceData``.

    Chains start at the MAP estimates. With ``marginal=True`` the sampler's metric starts as
    the MAP fit's asymptotic covariance of ``θ`` (the inverse negative Hessian): the posterior
    is close to isotropic for the sampler from the first step, and the fixed effects, strongly
    correlated among themselves, cost no longer trajectories than the rest.

    Two NUTS implementations run the same density:

    * ``nuts_sampler="nutpie"`` (the default for the marginal model): nutpie's sampler, the
      chains in parallel threads (``cores`` of them; default one per chain, up to the CPUs
      available), each with its own quadrature modes; it moves in coordinates whitened by
      the MAP covariance and adapts a diagonal metric on top. ``target_accept`` and
      ``max_treedepth`` are passed on, as are nutpie's own keywords.
    * ``nuts_sampler="pymc"`` (the only one for ``marginal=False``): ``pm.sample`` on
      :func:`to_pymc`'s model, one chain after another. For the marginal model its mass
      matrix is the MAP covariance, which the tuning draws update from 500 tuning steps on
      (weighted as 100 draws); pass ``step=`` to choose otherwise. Other keywords go to
      ``pm.sample``.

    The result holds ``posterior`` (named coordinates: fixed-effect and random-effect names),
    ``sample_stats``, ``log_likelihood`` (``y``: one value per group and draw, for
    ``az.loo``/``az.waic``; not with crossed grouping factors, whose likelihood does not
    split into independent groups), ``log_prior`` (when priors are set) and ``observed_data`` (the
    response, one value per row, labelled by the data's row labels); its attributes say it
    came from glmm_ppl, and ``posterior.attrs["sampling_time"]`` holds the sampler's time.

    A fit of a dask DataFrame is sampled by nutpie with the density evaluated on its shards
    (the same call as its fit's objective); the result then has neither ``log_likelihood``
    nor ``observed_data``, which would bring every group's values or rows to the driver.

    Raises
    ------
    ValueError
        For an unknown ``nuts_sampler``, nutpie with ``marginal=False``, PyMC's ``step=``
        with nutpie, or ``cores`` above 1 with PyMC's sampler; for ``draws``, ``chains`` or
        ``cores`` that are not positive integers, or ``tune`` below 0 (below 1 with nutpie).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> idata = sample(fm1, draws=20, tune=20, chains=1, random_seed=1, progressbar=False)
    >>> dict(idata.posterior.sizes)["fixed"], idata.log_likelihood["y"].shape
    (2, (1, 20, 100))
    """
    sampler = nuts_sampler or ("nutpie" if marginal else "pymc")
    draws, chains = count_argument("draws", draws, 1), count_argument("chains", chains, 1)
    # nutpie's adaptation needs at least one tuning step (with none its sampler panics)
    tune = count_argument("tune", tune, 1 if sampler == "nutpie" else 0)
    if cores is not None:
        cores = count_argument("cores", cores, 1)
    if sampler not in ("nutpie", "pymc"):
        raise ValueError(f"nuts_sampler must be 'nutpie' or 'pymc', got {nuts_sampler!r}")
    if sampler == "nutpie" and not marginal:
        raise ValueError(
            "nuts_sampler='nutpie' samples the marginal model only; the latent model "
            "(marginal=False) runs on nuts_sampler='pymc'"
        )
    if fit.cluster is not None and sampler != "nutpie":
        raise ValueError(
            "a fit on a dask DataFrame is sampled by nutpie on its marginal density (the "
            "default); nuts_sampler='pymc' and marginal=False need its rows in one process"
        )
    if sampler == "nutpie" and "step" in kwargs:
        raise ValueError("step= is a PyMC step method: pass nuts_sampler='pymc' with it")
    if sampler == "pymc" and cores not in (None, 1):
        raise ValueError(
            f"cores={cores!r}: nuts_sampler='pymc' runs the chains one after another on one "
            "core; nuts_sampler='nutpie' runs them in parallel"
        )
    has_sd_prior = fit.priors is not None and any(
        k == "sd" or k.startswith("sd_") for k in fit.priors.priors
    )
    if not has_sd_prior:
        warnings.warn(
            "no prior on the random-effect standard deviations: they are flat on the log scale, "
            "an improper posterior in principle; give priors={'sd': ...} for a proper one",
            UserWarning,
            stacklevel=2,
        )
    if sampler == "nutpie":
        cov = _map_covariance(fit)
        start = time.perf_counter()
        idata = sample_marginal(
            fit,
            posterior_coords(fit),
            None if cov is None else np.linalg.cholesky(cov),
            draws,
            tune,
            chains,
            cores,
            random_seed,
            progressbar,
            **kwargs,
        )
        idata.posterior.attrs["sampling_time"] = time.perf_counter() - start
        ll = None
        if "loglik_group" in idata.posterior:
            ll = idata.posterior["loglik_group"].to_numpy()
            idata.posterior = idata.posterior.drop_vars(["loglik_group", "group"])
    else:
        idata, ll = _sample_pymc(
            fit, draws, tune, chains, marginal, random_seed, progressbar, kwargs
        )
    theta = theta_draws(idata.posterior, fit)
    coords = {"chain": idata.posterior.chain, "draw": idata.posterior.draw}
    with warnings.catch_warnings():  # ArviZ notes that it adds the chain and draw dims
        warnings.simplefilter("ignore", UserWarning)
        if ll is not None:
            idata.add_groups(
                log_likelihood={"y": ll},
                coords={**coords, "group": posterior_coords(fit)["group"]},
                dims={"y": ["group"]},
            )
        if fit.priors is not None:
            fn = fit.priors.compiled()
            lp = np.apply_along_axis(lambda t: fn(t)[0], -1, theta)
            idata.add_groups(log_prior={"theta": lp}, coords=coords)
    if fit.cluster is None:  # a cluster fit's rows stay on its workers
        # a Dataset, not a dict: ArviZ would take the rows of a dict's array for chain × draw
        observed = xr.Dataset(
            {"y": ("obs_id", np.asarray(fit.design.y))},
            coords={"obs_id": np.asarray(fit.design.rows)},
        )
        idata.add_groups(observed_data=observed)
    idata.attrs["source"] = f"glmm_ppl: NUTS ({sampler}) on the " + (
        ("Laplace" if fit.design.crossed else "AGQ") + " marginal likelihood"
        if marginal
        else "latent model (every random effect sampled)"
    )
    return idata


def to_inference_data(fit, draws: int = 4000, seed=None) -> az.InferenceData:
    """A MAP fit as ``InferenceData``: draws of ``θ`` from its asymptotic normal
    ``N(θ̂, vcov("all"))``, mapped to the same variables as :func:`sample` produces.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> idata = to_inference_data(fm1, draws=500, seed=1)
    >>> round(float(idata.posterior["beta"].mean()), 1) == round(float(fm1.fixef().mean()), 1)
    True
    """
    draws = count_argument("draws", draws, 1)
    rng = np.random.default_rng(seed)
    V = fit.vcov("all").to_numpy()
    theta = rng.multivariate_normal(fit.theta, V, size=int(draws), method="eigh")[None]
    return az.from_dict(
        posterior=natural_variables(fit, theta),
        coords=posterior_coords(fit),
        dims=posterior_dims(fit),
        attrs={"source": "glmm_ppl: MAP estimate with its asymptotic normal distribution"},
    )
