"""The fitted model under MCMC: a PyMC model on the AGQ likelihood, NUTS, and ArviZ output.

:func:`to_pymc` builds a ``pm.Model`` whose likelihood is the custom AGQ Op: the random
effects are integrated out and NUTS explores only ``θ`` (β, γ, the log-Cholesky parameters of
``D``, ``log φ``) — the parameters the MAP fit maximises over, with the same priors (flat where
none is given) and the same penalty. Deterministics give the standard deviations, correlations
and extra parameters on their natural scales. :func:`sample` runs NUTS and returns
``InferenceData`` with the per-group log-likelihood; :func:`to_inference_data` turns a MAP fit
into ``InferenceData`` (draws from the asymptotic normal of ``θ``), so ArviZ summaries and plots
apply to both, and :func:`compare_map_mcmc` tabulates one against the other.

Flat priors on the log standard deviations give, strictly, an improper posterior (its tail
towards a standard deviation of 0 is flat); in practice NUTS stays where the likelihood is,
but give ``priors={"sd": ...}`` for a proper posterior — :func:`sample` warns when none is set.
"""

from __future__ import annotations

import re
import time
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pymc.step_methods.hmc.quadpotential import QuadPotentialFull, QuadPotentialFullAdapt

from .covariance import theta_names, theta_to_D, theta_to_D_pt
from .model import MixedModelGraph
from .ops import NUMPY_MODE, AGQLogLik
from .priors import student_t_kernel_logp

__all__ = [
    "to_pymc",
    "sample",
    "to_inference_data",
    "compare_map_mcmc",
    "compare_with_bambi",
    "plot_compare",
]

_ADAPT_TUNE = 500  # tuning steps from which the MAP mass matrix is adapted


def _coords(fit) -> dict:
    d = fit.design
    coords = {
        "fixed": list(d.fixed_names),
        "random": list(d.random_names),
        "D_parameter": theta_names(d.q, d.diagonal),
        "group": [str(g) for g in d.groups],
    }
    if d.X_zi is not None:
        coords["zero_part"] = list(d.zi_fixed_names)
    if fit.family.n_phis:
        coords["extra"] = list(fit.family.phi_names)
    if not d.diagonal and d.q > 1:
        coords["random_"] = list(d.random_names)
    return coords


def to_pymc(fit, marginal: bool = True) -> pm.Model:
    """A PyMC model of the fit's specification, priors and data.

    Parameters
    ----------
    fit : MixedModelFit
    marginal : bool
        ``True``: the random effects integrated out by the AGQ Op (only ``θ`` is sampled).
        ``False``: the conventional latent model with every ``b_i`` explicit, non-centred:
        ``b_i = L z_i`` with ``z_i ~ N(0, I)`` and ``L`` the Cholesky factor of ``D`` from the
        same ``θ_D``, the likelihood ``Σ_ij log p(y_ij | x_ijᵀβ + z_ijᵀb_i + offset, φ)``.
        The parameters, priors and penalty are those of the marginal model, so integrating
        the latent model's density over the ``z_i`` gives the marginal model's density.
        Group weights have no latent counterpart (a weight replicates a whole group, its
        random effects included) and are refused.

    Returns
    -------
    pymc.Model
        Free variables ``beta`` (dims ``fixed``), ``gamma`` (``zero_part``, with a zero part),
        ``theta_D``, ``log_phi`` (``extra``); deterministics ``sd`` (``random``), ``corr``
        and ``phi``; potentials for the log-likelihood, the priors and the penalty. The latent
        model adds the free variable ``z`` and the deterministic ``b`` (dims ``group``,
        ``random``), starting at the fit's empirical Bayes modes.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> model = to_pymc(fm1)
    >>> sorted(v.name for v in model.free_RVs)
    ['beta', 'theta_D']
    >>> sorted(v.name for v in to_pymc(fm1, marginal=False).free_RVs)
    ['beta', 'theta_D', 'z']
    """
    if not marginal:
        return _latent_model(fit)
    d = fit.design
    graph = MixedModelGraph(d, fit.family, fit.n_agq, fit.penalty, fit.priors)
    graph.engine.modes = fit.modes.copy()
    parts = graph.split(fit.theta)
    with pm.Model(coords=_coords(fit)) as model:
        beta, gamma, theta_D, phis, pieces = _parameters(fit, parts)
        eta0 = pt.dot(pt.constant(d.X), beta)[:, None]
        if gamma is not None:
            eta0 = pt.concatenate([eta0, pt.dot(pt.constant(d.X_zi), gamma)[:, None]], axis=1)
        if d.offset is not None:
            eta0 = eta0 + pt.constant(d.offset)
        D = theta_to_D_pt(theta_D, d.q, d.diagonal)
        op = AGQLogLik(graph.engine)
        pm.Potential("loglik", op(eta0, D, phis)[0])
        _variance_and_priors(fit, D, beta, pieces)
    model._glmm_graph = graph  # the engine behind the Op (per-group log-likelihoods)
    return model


def _parameters(fit, parts: dict):
    """The parameters both models share (inside their ``with model:``), flat, starting at the
    MAP: ``β``, ``γ`` (None without a zero part), ``θ_D`` and ``φ = exp(log φ)`` (with its
    deterministic), and the free variables in the order of ``θ``."""
    beta = pm.Flat("beta", dims="fixed", initval=parts["beta"])
    gamma = None
    if fit.design.X_zi is not None:
        gamma = pm.Flat("gamma", dims="zero_part", initval=parts["gamma"])
    theta_D = pm.Flat("theta_D", dims="D_parameter", initval=parts["theta_D"])
    pieces = [v for v in (beta, gamma, theta_D) if v is not None]
    phis = pt.zeros(0)
    if fit.family.n_phis:
        log_phi = pm.Flat("log_phi", dims="extra", initval=parts["log_phis"])
        pieces.append(log_phi)
        phis = pt.exp(log_phi)
        pm.Deterministic("phi", phis, dims="extra")
    return beta, gamma, theta_D, phis, pieces


def _variance_and_priors(fit, D, beta, pieces) -> None:
    """The parts both models share (inside their ``with model:``): the deterministic standard
    deviations and correlations, the penalty, and the priors with their Jacobian."""
    d = fit.design
    sd = pt.sqrt(pt.diag(D))
    pm.Deterministic("sd", sd, dims="random")
    if not d.diagonal and d.q > 1:
        pm.Deterministic("corr", D / pt.outer(sd, sd), dims=("random", "random_"))
    if fit.penalty is not None:
        mu, sigma, df = fit.penalty.values()
        pm.Potential("penalty", student_t_kernel_logp(beta, mu, sigma, df))
    if fit.priors is not None:
        theta = pt.concatenate(pieces)
        pm.Potential("log_prior", fit.priors.log_prior(theta, jacobian=True))


def _cholesky_pt(theta_D, q: int, diagonal: bool):
    """The Cholesky factor ``L`` of ``D = L Lᵀ`` from ``θ_D`` (see :mod:`glmm_ppl.covariance`)."""
    if diagonal:
        return pt.diag(pt.exp(theta_D))
    rows, cols = np.tril_indices(q)
    L = pt.set_subtensor(pt.zeros((q, q))[rows, cols], theta_D)
    idx = np.arange(q)
    return pt.set_subtensor(L[idx, idx], pt.exp(L[idx, idx]))


def _latent_model(fit) -> pm.Model:
    """:func:`to_pymc` with ``marginal=False``: every group's random effects explicit."""
    d, family = fit.design, fit.family
    if d.weights is not None:
        raise NotImplementedError(
            "the latent model (marginal=False) has no group weights: a weight replicates a "
            "group's marginal likelihood, random effects included; use marginal=True"
        )
    graph = MixedModelGraph(d, family, fit.n_agq, fit.penalty, fit.priors)
    graph.engine.modes = fit.modes.copy()
    parts = graph.split(fit.theta)
    L0 = np.linalg.cholesky(theta_to_D(parts["theta_D"], d.q, d.diagonal))
    z0 = np.linalg.solve(L0, np.asarray(fit.modes, dtype=float).T).T
    group = np.repeat(np.arange(d.n_groups), np.diff(d.starts))
    offset = d.offset if d.offset is not None else np.zeros((d.nobs, d.n_eta))
    with pm.Model(coords=_coords(fit)) as model:
        beta, gamma, theta_D, phis, pieces = _parameters(fit, parts)
        eta = pt.dot(pt.constant(d.X), beta) + offset[:, 0]
        if gamma is not None:
            eta_zi = pt.dot(pt.constant(d.X_zi), gamma) + offset[:, 1]
        L = _cholesky_pt(theta_D, d.q, d.diagonal)
        D = L @ L.T
        z = pm.Normal("z", 0.0, 1.0, dims=("group", "random"), initval=z0)
        b = pm.Deterministic("b", pt.dot(z, L.T), dims=("group", "random"))
        b_rows = b[group]  # (N, q): each row's group
        eta = eta + pt.sum(pt.constant(d.Z) * b_rows[:, : d.q_main], axis=1)
        data = {name: pt.constant(d.aux[:, k]) for k, name in enumerate(family.aux_names)}
        if family.zero_part:
            if d.Z_zi is not None:
                eta_zi = eta_zi + pt.sum(pt.constant(d.Z_zi) * b_rows[:, d.q_main :], axis=1)
            data["eta_zi"] = eta_zi
        logp = family.logp(pt.constant(d.y), eta, [phis[m] for m in range(family.n_phis)], **data)
        pm.Potential("loglik", pt.sum(logp))
        _variance_and_priors(fit, D, beta, pieces)
    model._glmm_graph = graph  # the marginal engine (per-group log-likelihoods of θ draws)
    return model


def _theta_draws(posterior, fit) -> np.ndarray:
    """``θ`` per draw, shape (chain, draw, k), from posterior variables."""
    names = ["beta"] + (["gamma"] if fit.design.X_zi is not None else []) + ["theta_D"]
    names += ["log_phi"] if fit.family.n_phis else []
    return np.concatenate([np.asarray(posterior[n]) for n in names], axis=-1)


def _per_group_loglik(fit, graph: MixedModelGraph, theta: np.ndarray) -> np.ndarray:
    out = np.empty(theta.shape[:-1] + (fit.n_groups,))
    for idx in np.ndindex(theta.shape[:-1]):
        fixed, D, phis = graph.unpack(theta[idx])
        out[idx] = graph.engine.evaluate(graph.fixed_part(fixed), D, phis, grad=False).per_group
    return out


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
    theta = _theta_draws(idata.posterior, fit)
    return idata, _per_group_loglik(fit, model._glmm_graph, theta)


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
    ``az.loo``/``az.waic``), ``log_prior`` (when priors are set) and ``observed_data`` (the
    response, one value per row, labelled by the data's row labels); its attributes say it
    came from glmm_ppl, and ``posterior.attrs["sampling_time"]`` holds the sampler's time.

    Raises
    ------
    ValueError
        For an unknown ``nuts_sampler``, nutpie with ``marginal=False``, PyMC's ``step=``
        with nutpie, or ``cores`` above 1 with PyMC's sampler.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> idata = sample(fm1, draws=20, tune=20, chains=1, random_seed=1, progressbar=False)
    >>> dict(idata.posterior.sizes)["fixed"], idata.log_likelihood["y"].shape
    (2, (1, 20, 100))
    """
    sampler = nuts_sampler or ("nutpie" if marginal else "pymc")
    if sampler not in ("nutpie", "pymc"):
        raise ValueError(f"nuts_sampler must be 'nutpie' or 'pymc', got {nuts_sampler!r}")
    if sampler == "nutpie" and not marginal:
        raise ValueError(
            "nuts_sampler='nutpie' samples the marginal model only; the latent model "
            "(marginal=False) runs on nuts_sampler='pymc'"
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
        from .nuts import sample_marginal  # it builds on this module's posterior variables

        cov = _map_covariance(fit)
        start = time.perf_counter()
        idata = sample_marginal(
            fit,
            _coords(fit),
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
        ll = idata.posterior["loglik_group"].to_numpy()
        idata.posterior = idata.posterior.drop_vars(["loglik_group", "group"])
    else:
        idata, ll = _sample_pymc(
            fit, draws, tune, chains, marginal, random_seed, progressbar, kwargs
        )
    theta = _theta_draws(idata.posterior, fit)
    coords = {"chain": idata.posterior.chain, "draw": idata.posterior.draw}
    with warnings.catch_warnings():  # ArviZ notes that it adds the chain and draw dims
        warnings.simplefilter("ignore", UserWarning)
        idata.add_groups(
            log_likelihood={"y": ll},
            coords={**coords, "group": _coords(fit)["group"]},
            dims={"y": ["group"]},
        )
        if fit.priors is not None:
            fn = fit.priors.compiled()
            lp = np.apply_along_axis(lambda t: fn(t)[0], -1, theta)
            idata.add_groups(log_prior={"theta": lp}, coords=coords)
    # a Dataset, not a dict: ArviZ would take the rows of a dict's array for chain × draw
    observed = xr.Dataset(
        {"y": ("obs_id", np.asarray(fit.design.y))}, coords={"obs_id": np.asarray(fit.design.rows)}
    )
    idata.add_groups(observed_data=observed)
    idata.attrs["source"] = f"glmm_ppl: NUTS ({sampler}) on the " + (
        "AGQ marginal likelihood" if marginal else "latent model (every random effect sampled)"
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
    rng = np.random.default_rng(seed)
    V = fit.vcov("all").to_numpy()
    theta = rng.multivariate_normal(fit.theta, V, size=int(draws), method="eigh")[None]
    return az.from_dict(
        posterior=_natural(fit, theta),
        coords=_coords(fit),
        dims=_dims(fit),
        attrs={"source": "glmm_ppl: MAP estimate with its asymptotic normal distribution"},
    )


def _natural(fit, theta: np.ndarray) -> dict:
    """Posterior variables (as :func:`to_pymc` names them) from draws of ``θ``."""
    d, blocks = fit.design, fit._blocks()
    out = {"beta": theta[..., blocks["fixed-effects"]], "theta_D": theta[..., blocks["var-cov"]]}
    if d.X_zi is not None:
        out["gamma"] = theta[..., blocks["zero_part"]]
    if fit.family.n_phis:
        out["log_phi"] = theta[..., blocks["extra"]]
        out["phi"] = np.exp(out["log_phi"])
    Ds = np.apply_along_axis(
        lambda t: theta_to_D(t, d.q, d.diagonal).ravel(), -1, out["theta_D"]
    ).reshape(theta.shape[:-1] + (d.q, d.q))
    sd = np.sqrt(np.diagonal(Ds, axis1=-2, axis2=-1))
    out["sd"] = sd
    if not d.diagonal and d.q > 1:
        out["corr"] = Ds / (sd[..., :, None] * sd[..., None, :])
    return out


def _dims(fit) -> dict:
    dims = {"beta": ["fixed"], "theta_D": ["D_parameter"], "sd": ["random"]}
    if fit.design.X_zi is not None:
        dims["gamma"] = ["zero_part"]
    if fit.family.n_phis:
        dims["log_phi"] = dims["phi"] = ["extra"]
    if not fit.design.diagonal and fit.design.q > 1:
        dims["corr"] = ["random", "random_"]
    return dims


def compare_map_mcmc(fit, idata: az.InferenceData, hdi_prob: float = 0.94) -> pd.DataFrame:
    """MAP and MCMC side by side, one row per parameter.

    Columns: ``MAP`` (the estimate, mapped to the natural scale), ``MAP_se`` (its asymptotic
    standard error, by the delta method through draws from the asymptotic normal),
    ``mean``, ``sd``, the HDI bounds, ``r_hat``, ``ess_bulk`` (ArviZ) and ``z`` =
    ``(mean − MAP)/sd``. Fixed effects should agree within Monte Carlo error under flat
    priors; standard deviations have a right-skewed posterior, so their mean sits above the
    mode that MAP estimates.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> idata = to_inference_data(fm1, draws=400, seed=2)
    >>> compare_map_mcmc(fm1, idata).columns.tolist()[:3]
    ['MAP', 'MAP_se', 'mean']
    """
    var_names = [v for v in ("beta", "gamma", "sd", "corr", "phi") if v in idata.posterior]
    summary = az.summary(idata, var_names=var_names, hdi_prob=hdi_prob, round_to="none")
    map_draws = to_inference_data(fit, draws=4000, seed=0).posterior
    point = _natural(fit, fit.theta[None, None, :])
    rows = []
    for label in summary.index:
        var, _, rest = label.partition("[")
        index = tuple(rest.rstrip("]").split(", ")) if rest else ()
        sel = dict(zip([dim for dim in map_draws[var].dims[2:]], index, strict=True))
        values = map_draws[var].sel(sel).to_numpy().ravel()
        estimate = np.asarray(
            az.from_dict(posterior=point, coords=_coords(fit), dims=_dims(fit))
            .posterior[var]
            .sel(sel)
        ).ravel()[0]
        rows.append({"MAP": estimate, "MAP_se": values.std(ddof=1)})
    out = pd.DataFrame(rows, index=summary.index)
    hdi = [c for c in summary.columns if c.startswith("hdi_")]
    out = out.join(summary[["mean", "sd", *hdi, "r_hat", "ess_bulk"]])
    out["z"] = (out["mean"] - out["MAP"]) / out["sd"]
    return out


def plot_compare(fit, idata: az.InferenceData, var_names=("beta", "sd"), **kwargs):
    """Forest plot of the MAP fit (asymptotic normal) beside the MCMC posterior.

    Returns the matplotlib axes of :func:`arviz.plot_forest`.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> idata = fm1.to_inference_data(draws=200, seed=1)  # or gp.sample(fm1)
    >>> axes = plot_compare(fm1, idata)
    >>> axes.shape
    (1,)
    """
    map_idata = to_inference_data(fit, draws=4000, seed=0)
    var_names = [v for v in var_names if v in idata.posterior]
    return az.plot_forest(
        [map_idata, idata],
        model_names=["MAP", "MCMC"],
        var_names=var_names,
        combined=True,
        **kwargs,
    )


# family name → (bambi family, {our extra parameter: bambi's}); binomial is "bernoulli" for a
# 0/1 response and "binomial" for successes out of trials
_BAMBI_FAMILIES = {
    "binomial": ("bernoulli", {}),
    "poisson": ("poisson", {}),
    "negative_binomial": ("negativebinomial", {"size": "alpha"}),
    "gaussian": ("gaussian", {"sigma": "sigma"}),
    "gamma": ("gamma", {"shape": "alpha"}),
    "beta": ("beta", {"precision": "kappa"}),
}


def _identifier(name: str) -> str:
    """A design-column name as a formula variable: ``sexfemale:time`` → ``sexfemale_time``."""
    out = re.sub(r"\W+", "_", str(name)).strip("_") or "x"
    return "x_" + out if out[0].isdigit() else out


def _bambi_model(fit):
    """The fit's model as a ``bambi.Model`` (bambi's default priors), built from the fit's own
    design arrays, and the bambi names of the fixed effects, standard deviations and extra
    parameters in the order of the fit's."""
    d, family = fit.design, fit.family
    if family.name not in _BAMBI_FAMILIES:
        raise NotImplementedError(
            f"no bambi counterpart of the {family.name} family here; compare_with_bambi "
            f"supports {', '.join(_BAMBI_FAMILIES)}"
        )
    if d.weights is not None:
        raise NotImplementedError("bambi has no group weights: refit without weights")
    try:
        import bambi as bmb
    except ImportError:
        raise ImportError(
            "compare_with_bambi needs bambi: pip install 'glmm_ppl[bambi]' (or pip install bambi)"
        ) from None
    bambi_family, extra = _BAMBI_FAMILIES[family.name]
    columns: dict[str, np.ndarray] = {}

    def column(name: str, values) -> str:
        base = key = _identifier(name)
        k = 1
        while key in columns and not np.array_equal(columns[key], values):
            k += 1
            key = f"{base}_{k}"
        columns[key] = np.asarray(values)
        return key

    response, aux_columns = d.specs["response"]
    y = column(response, d.y)
    lhs = y
    if family.with_trials:
        bambi_family = "binomial"
        trials_column, form = aux_columns["trials"]
        n = d.aux[:, family.aux_names.index("trials")]
        lhs = f"p({y}, {column('trials' if form == 'cbind' else trials_column, n)})"
    group = column(
        d.group_name, np.asarray(d.groups)[np.repeat(np.arange(d.n_groups), np.diff(d.starts))]
    )

    def terms(names, matrix):
        has_one = names[0] == "(Intercept)" and np.all(matrix[:, 0] == 1.0)
        out = ["1" if has_one else "0"]
        out += [column(n, matrix[:, k]) for k, n in enumerate(names) if k or not has_one]
        return out

    fixed = terms(d.fixed_names, d.X)
    random = terms(d.random_names[: d.q_main], d.Z)
    rhs = " + ".join(fixed)
    if d.offset is not None and np.any(d.offset[:, 0] != 0):
        rhs += f" + offset({column('eta_offset', d.offset[:, 0])})"
    formula = f"{lhs} ~ {rhs} + ({' + '.join(random)} | {group})"
    data = pd.DataFrame(columns)
    link = family.link.name
    model = bmb.Model(formula, data, family=bambi_family, link=link)
    names = {
        "beta": ["Intercept" if t == "1" else t for t in fixed if t != "0"],
        "sd": [f"{t}|{group}_sigma" for t in random if t != "0"],
        "phi": [extra[n] for n in family.phi_names],
    }
    return model, names


def compare_with_bambi(
    fit,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    random_seed=None,
    hdi_prob: float = 0.94,
    **kwargs,
) -> pd.DataFrame:
    """The fit's MAP estimates beside bambi's posterior of the same model (latent, NUTS).

    bambi fits ``response ~ fixed terms + (random terms | group)`` built from the fit's own
    design columns (so both use the same ``X``, ``Z``, trials and offset, whatever coding the
    formula used; the bambi formula is in ``table.attrs["bambi_formula"]``). Families:
    binomial (bambi's ``"bernoulli"`` for a 0/1 response, ``"binomial"`` with trials),
    poisson, negative_binomial (``"negativebinomial"``, size = bambi's ``alpha``), gaussian,
    gamma (shape = ``alpha``) and beta (precision = ``kappa``), with the fit's link.

    Priors differ: bambi has no flat priors, so its model uses **bambi's default priors**
    (weakly informative normal priors scaled to the data on the fixed effects, half-normal on
    the random-effect standard deviations), not the fit's (flat unless ``priors`` or
    ``penalized`` were given; those are not carried over). With data that dominate the prior
    the fixed effects agree within Monte Carlo error; standard deviations have a right-skewed
    posterior whose mean sits above the mode. bambi's random effects of one group are
    independent (no correlation parameter), so for a full ``D`` only the standard deviations
    are compared, and they come from a different model. Group weights and zero-part families
    have no bambi counterpart.

    Parameters
    ----------
    fit : MixedModelFit
    draws, tune, chains, random_seed
        Passed to ``bambi.Model.fit`` (NUTS by PyMC); so are other keyword arguments.
    hdi_prob : float
        Probability of the highest-density intervals.

    Returns
    -------
    pandas.DataFrame
        As :func:`compare_map_mcmc` (``MAP``, ``MAP_se``, bambi's posterior ``mean``, ``sd``,
        HDI, ``r_hat``, ``ess_bulk``, ``z``), one row per fixed effect, standard deviation and
        extra parameter, plus the ``bambi`` name of each.

    Raises
    ------
    ImportError
        Without bambi (``pip install 'glmm_ppl[bambi]'``).
    NotImplementedError
        For a family bambi does not have here, or group weights.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> table = compare_with_bambi(fm1, draws=500, random_seed=1)  # doctest: +SKIP
    >>> table.attrs["bambi_formula"]  # doctest: +SKIP
    'y ~ 1 + time + (1 | id)'
    """
    model, names = _bambi_model(fit)
    d = fit.design
    if not d.diagonal and d.q > 1:
        warnings.warn(
            "bambi's random effects are independent (no correlations): its standard deviations "
            "come from a model with a diagonal D",
            UserWarning,
            stacklevel=2,
        )
    if fit.priors is not None or fit.penalty is not None:
        warnings.warn(
            "the fit's priors and penalty are not carried over: bambi uses its default priors",
            UserWarning,
            stacklevel=2,
        )
    idata = model.fit(draws=draws, tune=tune, chains=chains, random_seed=random_seed, **kwargs)
    post = idata.posterior

    def stack(vars_: list[str]) -> np.ndarray:
        return np.stack([np.asarray(post[v]) for v in vars_], axis=-1)

    posterior = {"beta": stack(names["beta"]), "sd": stack(names["sd"])}
    dims = {"beta": ["fixed"], "sd": ["random"]}
    if names["phi"]:
        posterior["phi"] = stack(names["phi"])
        dims["phi"] = ["extra"]
    coords = {k: v for k, v in _coords(fit).items() if k in ("fixed", "random", "extra")}
    ours = az.from_dict(posterior=posterior, coords=coords, dims=dims)
    table = compare_map_mcmc(fit, ours, hdi_prob=hdi_prob)
    table.insert(0, "bambi", names["beta"] + names["sd"] + names["phi"])
    table.attrs["bambi_formula"] = getattr(model.formula, "main", str(model.formula))
    return table
