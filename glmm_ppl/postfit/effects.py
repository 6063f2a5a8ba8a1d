"""Effect plots: predictions of the fixed-effects part on a grid, with pointwise bands.

:func:`effect_plot_data` is GLMMadaptive's ``effectPlotData``: the linear predictor
``x_iᵀβ`` of each row of new data (random effects at zero), the exact marginal mean (the
conditional mean averaged over the random effects), or GLMMadaptive's marginal version
``x_iᵀβ_M`` (:func:`glmm_ppl.marginal_coefs`), with a confidence band on the link scale that
is mapped to the response scale through the inverse link. :func:`plot_effects` draws it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..design.newdata import model_arrays
from .marginal import marginal_fit
from .predict import predict

__all__ = ["effect_plot_data", "plot_effects"]

_LINK_COLUMNS = ("pred", "low", "upp")
_RESPONSE_COLUMNS = ("pred_response", "low_response", "upp_response")
_PROBABILITY_FAMILIES = ("binomial", "beta_binomial", "zi_binomial")


def _check_marginal(marginal):
    if isinstance(marginal, (bool, np.bool_)):
        return bool(marginal)
    if isinstance(marginal, str) and marginal == "coefficients":
        return marginal
    raise ValueError(f"marginal must be False, True or 'coefficients', got {marginal!r}")


def _link_scale(fit, newdata, X, offset, marginal, level):
    """``(pred, low, upp)`` on the link scale."""
    if marginal is True:
        out = predict(fit, newdata, type_pred="link", type="marginal", se_fit=True, level=level)
        return [out[c].to_numpy(dtype=float) for c in _LINK_COLUMNS]
    if marginal == "coefficients":
        _, beta, V = marginal_fit(fit, True, None)
    else:
        beta = fit.fixef().to_numpy(dtype=float)
        V = fit.vcov("fixed-effects").to_numpy(dtype=float)
    pred = X @ beta + offset
    se = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", X, V, X), 0.0, None))
    z = stats.norm.ppf(0.5 + level / 2.0)
    return pred, pred - z * se, pred + z * se


def effect_plot_data(
    fit, newdata: pd.DataFrame, marginal: bool | str = False, level: float = 0.95
) -> pd.DataFrame:
    """Predictions of the fixed-effects part for ``newdata``, with a confidence band.

    On the link scale, for row ``i`` with fixed-effects design ``x_i``, offset ``o_i`` and
    random-effects design ``z_i``:

    - conditional (``marginal=False``): ``pred = x_iᵀβ + o_i``, the linear predictor of a
      group whose random effects are zero, with variance ``x_iᵀ V_β x_i``
      (``V_β = fit.vcov("fixed-effects")``);
    - exact marginal (``marginal=True``): ``pred = g(μ_i)`` with the population-averaged mean
      ``μ_i = E_b g⁻¹(x_iᵀβ + o_i + z_iᵀb)``, ``b ~ N(0, D)``, by quadrature, as
      ``fit.predict(newdata, type="marginal")``; its variance by the delta method in all the
      parameters (``fit.vcov("all")``);
    - marginal coefficients (``marginal="coefficients"``, GLMMadaptive's
      ``effectPlotData(..., marginal = TRUE)``): ``pred = x_iᵀβ_M + o_i`` with the
      coefficients ``β_M`` of :func:`~glmm_ppl.marginal_coefs` and the variance
      ``x_iᵀ V_M x_i`` from their delta-method covariance matrix. ``g⁻¹(x_iᵀβ_M)`` is a
      least-squares summary of the marginal means over the fitted rows, not ``μ_i``: on the
      vignette's binary model the two differ by up to 0.011 over times 0 to 15, and by 0.10
      with random slopes.

    The band is ``pred ± z σ_i`` with ``z`` the ``(1 + level)/2`` quantile of the standard
    normal. The ``*_response`` columns apply the inverse link of the main part to ``pred``,
    ``low`` and ``upp`` (every link is increasing, so the band stays a band, inside the
    range of the mean); for zero-inflated and hurdle families they are therefore the mean of
    the main part, not of the response, and for counts of successes the probability.

    Parameters
    ----------
    fit : MixedModelFit
    newdata : pandas.DataFrame
        The columns the fixed-effects formula (and any offset) needs, and for
        ``marginal=True`` those of the random-effects formula.
    marginal : {False, True, "coefficients"}
        The conditional predictions, the exact marginal means or the marginal coefficients'
        predictions.
    level : float
        Confidence level, strictly between 0 and 1.

    Returns
    -------
    pandas.DataFrame
        A copy of ``newdata`` with the columns ``"pred"``, ``"low"``, ``"upp"`` (link scale)
        and ``"pred_response"``, ``"low_response"``, ``"upp_response"``; columns of
        ``newdata`` with these names are replaced. ``attrs`` holds ``"response"`` (the
        response's name), ``"family"``, ``"link"``, ``"zero_part"`` (whether the family has
        one), ``"marginal"`` and ``"level"``, which :func:`plot_effects` uses for its labels.

    Raises
    ------
    TypeError
        If ``newdata`` is not a DataFrame.
    ValueError
        For a ``marginal`` other than False, True and ``"coefficients"``, a ``level`` outside
        ``(0, 1)`` or ``newdata`` the formulas cannot be applied to.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.postfit.effects import effect_plot_data
    >>> df = gp.load_vignette("binary")
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
    >>> grid = pd.DataFrame({"time": np.tile([0.0, 5.0, 10.0], 2),
    ...                      "sex": np.repeat(["male", "female"], 3)})
    >>> out = effect_plot_data(fm1, grid)
    >>> out.columns.tolist()
    ['time', 'sex', 'pred', 'low', 'upp', 'pred_response', 'low_response', 'upp_response']
    >>> out["pred"].round(2).tolist()
    [-2.62, -1.19, 0.23, -3.94, -2.32, -0.69]
    >>> effect_plot_data(fm1, grid, marginal=True)["pred_response"].round(3).tolist()
    [0.166, 0.329, 0.535, 0.074, 0.195, 0.399]
    >>> effect_plot_data(fm1, grid, marginal="coefficients")["pred_response"].round(3).tolist()
    [0.169, 0.326, 0.535, 0.077, 0.19, 0.396]
    """
    if not isinstance(newdata, pd.DataFrame):
        raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    marginal = _check_marginal(marginal)
    if fit.family.categories:
        raise ValueError(
            f"effect_plot_data: the {fit.family.name} family's response is a set of category "
            "probabilities, not the inverse link of the linear predictor; predict(newdata, "
            "type_pred='response', type='mean_subject' or 'marginal', se_fit=True) gives each "
            "category's probability with its interval"
        )
    if (
        isinstance(level, (bool, np.bool_))
        or not isinstance(level, (int, float, np.integer, np.floating))
        or not 0 < level < 1
    ):
        raise ValueError(f"level must be a number strictly between 0 and 1, got {level!r}")
    arrays = model_arrays(fit.design, newdata)
    X = np.asarray(arrays.X, dtype=float)
    offset = np.asarray(arrays.offset, dtype=float)[:, 0]
    columns = _link_scale(fit, newdata, X, offset, marginal, float(level))
    out = newdata.copy()
    inverse = fit.family.link.inverse
    for name, values in zip(_LINK_COLUMNS, columns, strict=True):
        out[name] = values
    for name, values in zip(_RESPONSE_COLUMNS, columns, strict=True):
        out[name] = inverse(np.asarray(values, dtype=float))
    out.attrs.update(
        response=fit.design.response_name,
        family=fit.family.name,
        link=fit.family.link.name,
        zero_part=bool(fit.family.zero_part),
        marginal=marginal,
        level=float(level),
    )
    return out


def _ylabel(attrs: dict, scale: str) -> str:
    """The axis label of :func:`plot_effects` from the ``attrs`` of
    :func:`effect_plot_data`'s output (generic when they are absent)."""
    marginal = attrs.get("marginal", False)
    link = attrs.get("link")
    if scale == "link":
        if marginal is True:
            return f"Marginal mean on the {link or 'link'} scale"
        what = "Marginal linear predictor" if marginal == "coefficients" else "Linear predictor"
        return f"{what} ({link} link)" if link else what
    if attrs.get("family") in _PROBABILITY_FAMILIES:
        what = "probability"
    elif attrs.get("response"):
        what = f"mean of {attrs['response']}"
    else:
        what = "mean"
    if marginal == "coefficients":
        label = f"{what.capitalize()} from marginal coefficients"
    else:
        label = f"{'Marginal' if marginal else 'Predicted'} {what}"
    return label + (" (main part)" if attrs.get("zero_part") else "")


def plot_effects(
    data: pd.DataFrame,
    x: str,
    *,
    by: str | None = None,
    ax=None,
    scale: str = "response",
):
    """Plot predictions against ``x`` with their confidence band.

    Draws one line (``pred``) and one shaded band (``low`` to ``upp``) per level of ``by``
    (or a single pair without it), with the rows sorted by ``x``. The vertical axis is
    labelled from ``data.attrs`` (set by :func:`effect_plot_data`): for example "Predicted
    probability" for a binomial model on the response scale, "Marginal mean of y" for exact
    marginal means of other families, "Linear predictor (logit link)" on the link scale; a
    data frame without them gets "Predicted mean" or "Linear predictor". A new figure has a
    constrained layout.

    Parameters
    ----------
    data : pandas.DataFrame
        The output of :func:`effect_plot_data`.
    x : str
        The column on the horizontal axis.
    by : str, optional
        A column whose levels get separate lines (and a legend).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.
    scale : {"response", "link"}
        ``"response"`` plots the ``*_response`` columns, ``"link"`` the link-scale ones.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    TypeError
        If ``data`` is not a DataFrame.
    ValueError
        For an unknown ``scale``, or a column (``x``, ``by`` or the prediction columns) that
        ``data`` lacks.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, pandas as pd
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.postfit.effects import effect_plot_data, plot_effects
    >>> df = gp.load_vignette("binary")
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
    >>> grid = pd.DataFrame({"time": np.tile(np.linspace(0, 15, 31), 2),
    ...                      "sex": np.repeat(["male", "female"], 31)})
    >>> ax = plot_effects(effect_plot_data(fm1, grid, marginal=True), "time", by="sex")
    >>> len(ax.get_lines()), ax.get_ylabel()
    (2, 'Marginal probability')
    >>> ax = plot_effects(effect_plot_data(fm1, grid), "time", by="sex", scale="link")
    >>> ax.get_ylabel()
    'Linear predictor (logit link)'
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if scale == "response":
        columns = _RESPONSE_COLUMNS
    elif scale == "link":
        columns = _LINK_COLUMNS
    else:
        raise ValueError(f"unknown scale {scale!r}; valid: 'response', 'link'")
    for role, name in (("x", x), ("by", by)):
        if name is not None and name not in data.columns:
            raise ValueError(f"{role} column {name!r} is not in data")
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise ValueError(
            f"data lacks the columns {', '.join(map(repr, missing))} of scale={scale!r}; "
            "make data with effect_plot_data"
        )
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(layout="constrained")
    pred, low, upp = columns
    if by is None:
        pieces = [(None, data)]
    else:
        pieces = list(data.groupby(by, sort=False, observed=True, dropna=False))
    for level, piece in pieces:
        piece = piece.sort_values(x, kind="stable")
        xs = piece[x].to_numpy()
        label = None if by is None else str(level)
        (line,) = ax.plot(xs, piece[pred].to_numpy(dtype=float), label=label)
        ax.fill_between(
            xs,
            piece[low].to_numpy(dtype=float),
            piece[upp].to_numpy(dtype=float),
            color=line.get_color(),
            alpha=0.25,
            linewidth=0,
        )
    ax.set_xlabel(x)
    ax.set_ylabel(_ylabel(data.attrs, scale))
    if by is not None:
        ax.legend(title=by)
    return ax
