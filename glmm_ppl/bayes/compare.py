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


_PANEL_TITLES = {
    "beta": "Fixed effects",
    "gamma": "Zero-part fixed effects",
    "sd": "Random-effect SDs",
    "corr": "Correlations",
    "phi": "Dispersion",
}


class _CoordLabeller(az.labels.NoModelLabeller):
    """Forest labels of the coordinates alone (the panel's title names the variable); a
    variable of one element is labelled by its coordinates, which ArviZ leaves out."""

    def __init__(self, single: dict):
        self.single = single

    def make_label_flat(self, var_name, sel, isel):
        return self.sel_to_str(sel, isel) or self.single.get(var_name) or var_name


def plot_compare(fit, idata: az.InferenceData, var_names=("beta", "sd"), *, figsize=None, **kwargs):
    """Forest plots of the MAP fit (asymptotic normal) beside the MCMC posterior.

    One panel per variable of ``var_names`` (fixed effects, standard deviations, ...), each
    with its own horizontal scale, in a new figure with a constrained layout and one legend
    above the panels: parameters of different scales do not share an axis, and the labels
    (the coordinate names, such as ``(Intercept)``; the panel's title names the variable) stay
    inside the figure.

    Parameters
    ----------
    fit : MixedModelFit
        The MAP (or ML) fit, drawn as 4,000 draws from its asymptotic normal distribution
        (:func:`~glmm_ppl.to_inference_data`).
    idata : arviz.InferenceData
        The MCMC posterior, for example from :func:`~glmm_ppl.sample`.
    var_names : sequence of str
        Variables of the posterior, one panel each: ``"beta"``, ``"gamma"``, ``"sd"``,
        ``"corr"``, ``"phi"``; those the posterior lacks are skipped.
    figsize : tuple of float, optional
        Width and height of the figure in inches; by default the height grows with the
        number of parameters.
    **kwargs
        Passed to every :func:`arviz.plot_forest` call (for example ``hdi_prob``,
        ``labeller``); ``ax``, ``var_names``, ``model_names`` and ``combined`` are set here.

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
        The panels, in the order of ``var_names``.

    Raises
    ------
    ValueError
        If the posterior has none of ``var_names``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> idata = fm1.to_inference_data(draws=200, seed=1)  # or gp.sample(fm1)
    >>> axes = plot_compare(fm1, idata)
    >>> axes.shape
    (2,)
    >>> [ax.get_title() for ax in axes]
    ['Fixed effects (beta), 94.0% HDI', 'Random-effect SDs (sd), 94.0% HDI']
    >>> [t.get_text() for t in axes[0].get_yticklabels()]
    ['time', '(Intercept)']
    """
    import matplotlib.pyplot as plt

    wanted = [v for v in var_names if v in idata.posterior]
    if not wanted:
        raise ValueError(
            f"var_names {list(var_names)!r} names no variable of the posterior; it has "
            f"{', '.join(map(repr, idata.posterior.data_vars))}"
        )
    sizes = [int(np.prod(idata.posterior[v].shape[2:], dtype=int)) for v in wanted]
    if figsize is None:
        figsize = (6.4, 0.9 * len(wanted) + 0.45 * sum(sizes) + 0.6)
    fig, axes = plt.subplots(
        len(wanted), 1, figsize=figsize, layout="constrained", height_ratios=sizes, squeeze=False
    )
    axes = axes[:, 0]
    single = {
        v: ", ".join(str(idata.posterior[v][d].values[0]) for d in idata.posterior[v].dims[2:])
        for v, n in zip(wanted, sizes, strict=True)
        if n == 1
    }
    kwargs.setdefault("labeller", _CoordLabeller(single))
    map_idata = to_inference_data(fit, draws=4000, seed=0)
    for i, (ax, var) in enumerate(zip(axes, wanted, strict=True)):
        az.plot_forest(
            [map_idata, idata],
            model_names=["MAP", "MCMC"],
            var_names=[var],
            combined=True,
            ax=ax,
            **{"legend": i == 0, **kwargs},
        )
        ax.set_title(f"{_PANEL_TITLES.get(var, var)} ({var}), {ax.get_title()}")
        legend = ax.get_legend()
        if i == 0 and legend is not None:  # one legend for the figure, above the panels
            labels = [t.get_text() for t in legend.get_texts()][::-1]
            handles = legend.legend_handles[::-1]
            fig.legend(handles, labels, loc="outside upper center", ncols=len(labels))
            legend.remove()
    return axes
