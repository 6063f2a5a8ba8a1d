"""DHARMa's residual plot of scaled (simulated quantile) residuals.

Left, a QQ plot of the residuals against the uniform distribution, with the p-value of the
Kolmogorov–Smirnov test; right, the residuals against the rank-transformed predictions with
the 0.25, 0.5 and 0.75 quantiles of the residuals in bins of the predictions beside the
horizontal lines where a correct model puts them.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .results import MixedModelFit
from .simulate import scaled_residuals

__all__ = ["plot_residuals"]

_QUANTILES = (0.25, 0.5, 0.75)


def _vector(values, name: str) -> np.ndarray:
    try:
        out = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a one-dimensional array of numbers") from None
    if out.ndim != 1 or len(out) == 0 or not np.isfinite(out).all():
        raise ValueError(f"{name} must be a non-empty one-dimensional array of finite numbers")
    return out


def plot_residuals(
    fit_or_residuals,
    predictions=None,
    *,
    nsim: int = 250,
    seed=None,
    new_random_effects: bool = True,
    n_bins: int = 10,
    axes=None,
):
    """DHARMa's residual plot: a uniform QQ plot and the residuals against the predictions.

    The left panel plots the sorted scaled residuals against the uniform quantiles
    ``(i − 0.5)/n``, with the diagonal and the p-value of the Kolmogorov–Smirnov test of
    uniformity (:func:`scipy.stats.kstest`) in its title. The right panel plots each residual
    against the rank of its prediction, scaled to ``(0, 1]``, with dashed lines at 0.25, 0.5
    and 0.75 and the residuals' quartiles and median in ``n_bins`` bins of equal counts: under
    the model they scatter about the dashed lines; a trend points to a misspecified mean,
    quartiles spread beyond them to overdispersion.

    Parameters
    ----------
    fit_or_residuals : MixedModelFit or array_like
        A fit, whose residuals :func:`~glmm_ppl.scaled_residuals` simulates, or residuals
        already computed (values in ``[0, 1]``).
    predictions : array_like, optional
        The predictions the residuals are plotted against, one per residual. Required with
        residuals; for a fit, its response means by default: the marginal means
        (``fit.fitted("marginal")``) with ``new_random_effects=True``, the subject-specific ones
        otherwise, like the simulations the residuals compare with.
    nsim, seed, new_random_effects
        For a fit, as in :func:`~glmm_ppl.scaled_residuals`.
    n_bins : int
        Number of bins of the predictions for the quantile lines.
    axes : sequence of two matplotlib.axes.Axes, optional
        Where to draw; a new figure with a constrained layout by default.

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
        The QQ panel and the panel of residuals against predictions.

    Raises
    ------
    TypeError
        If the residuals or predictions are not numbers.
    ValueError
        For residuals outside ``[0, 1]``, missing predictions for residuals, predictions of
        another length than the residuals, an ``n_bins`` that is not a positive integer or
        ``axes`` that are not two.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> axes = gp.plot_residuals(fm1, nsim=250, seed=1)
    >>> [ax.get_title() for ax in axes]
    ['Uniform QQ plot, KS test p = 0.269', 'Residuals vs. predicted']
    """
    if isinstance(n_bins, (bool, np.bool_)) or not isinstance(n_bins, (int, np.integer)):
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if isinstance(fit_or_residuals, MixedModelFit):
        fit = fit_or_residuals
        u = scaled_residuals(fit, nsim=nsim, seed=seed, new_random_effects=new_random_effects)
        if predictions is None:
            kind = "marginal" if new_random_effects else "subject_specific"
            predictions = fit.fitted(kind).to_numpy()
    else:
        u = _vector(fit_or_residuals, "fit_or_residuals")
        if ((u < 0) | (u > 1)).any():
            raise ValueError("scaled residuals must lie in [0, 1]; got values outside")
        if predictions is None:
            raise ValueError("predictions are required when residuals are given")
    pred = _vector(predictions, "predictions")
    if len(pred) != len(u):
        raise ValueError(f"predictions has {len(pred)} values for {len(u)} residuals")
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, 2, figsize=(9.0, 4.0), layout="constrained")
    axes = np.asarray(axes, dtype=object).ravel()
    if len(axes) != 2:
        raise ValueError(f"axes must be two matplotlib Axes, got {len(axes)}")
    _qq(axes[0], u)
    _versus(axes[1], u, stats.rankdata(pred) / len(pred), n_bins)
    return axes


def _qq(ax, u: np.ndarray) -> None:
    n = len(u)
    ax.plot((np.arange(1, n + 1) - 0.5) / n, np.sort(u), ".", markersize=3)
    ax.plot([0, 1], [0, 1], color="black", linewidth=1)
    p = stats.kstest(u, "uniform").pvalue
    ax.set_title(f"Uniform QQ plot, KS test p = {p:.3g}")
    ax.set_xlabel("Expected (uniform quantiles)")
    ax.set_ylabel("Observed (scaled residuals)")


def _versus(ax, u: np.ndarray, x: np.ndarray, n_bins: int) -> None:
    ax.plot(x, u, ".", markersize=3, alpha=0.5)
    for q in _QUANTILES:
        ax.axhline(q, color="black", linestyle="--", linewidth=1)
    bins = [b for b in np.array_split(np.argsort(x, kind="stable"), n_bins) if len(b)]
    centers = [x[b].mean() for b in bins]
    for q in _QUANTILES:
        ax.plot(centers, [np.quantile(u[b], q) for b in bins], color="C3", linewidth=1.5)
    ax.set_ylim(0, 1)
    ax.set_title("Residuals vs. predicted")
    ax.set_xlabel("Model predictions (rank transformed)")
    ax.set_ylabel("Scaled residuals")
