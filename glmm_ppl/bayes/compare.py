"""A MAP fit beside an MCMC posterior: a table and a forest plot."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd

from .sampling import to_inference_data
from .variables import natural_variables, posterior_coords, posterior_dims

__all__ = ["compare_map_mcmc", "plot_compare"]


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
    point = natural_variables(fit, fit.theta[None, None, :])
    rows = []
    for label in summary.index:
        var, _, rest = label.partition("[")
        index = tuple(rest.rstrip("]").split(", ")) if rest else ()
        sel = dict(zip([dim for dim in map_draws[var].dims[2:]], index, strict=True))
        values = map_draws[var].sel(sel).to_numpy().ravel()
        estimate = np.asarray(
            az.from_dict(posterior=point, coords=posterior_coords(fit), dims=posterior_dims(fit))
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
