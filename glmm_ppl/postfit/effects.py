"""Effect plots: predictions of the fixed-effects part on a grid, with pointwise Wald bands.

:func:`effect_plot_data` is GLMMadaptive's ``effectPlotData``: the linear predictor
``x_iᵀβ`` of each row of new data (random effects at zero), or its marginal version
``x_iᵀβ_M`` (:func:`glmm_ppl.marginal_coefs`), with a confidence band; the band is
mapped to the response scale through the inverse link. :func:`plot_effects` draws it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..design.newdata import model_arrays
from .marginal import marginal_fit

__all__ = ["effect_plot_data", "plot_effects"]

_LINK_COLUMNS = ("pred", "low", "upp")
_RESPONSE_COLUMNS = ("pred_response", "low_response", "upp_response")


def effect_plot_data(
    fit, newdata: pd.DataFrame, marginal: bool = False, level: float = 0.95
) -> pd.DataFrame:
    """Predictions of the fixed-effects part for ``newdata``, with a confidence band.

    On the link scale, for row ``i`` with fixed-effects design ``x_i`` and offset ``o_i``:

    - conditional (``marginal=False``): ``pred = x_iᵀβ + o_i``, the linear predictor of a
      group whose random effects are zero, with variance ``x_iᵀ V_β x_i``
      (``V_β = fit.vcov("fixed-effects")``);
    - marginal (``marginal=True``): ``pred = x_iᵀβ_M + o_i`` with the population-averaged
      coefficients ``β_M`` of :func:`~glmm_ppl.marginal_coefs` and the variance
      ``x_iᵀ V_M x_i`` from its delta-method covariance matrix.

    The band is ``pred ± z σ_i`` with ``z`` the ``(1 + level)/2`` quantile of the standard
    normal. The ``*_response`` columns apply the inverse link of the main part to ``pred``,
    ``low`` and ``upp`` (every link is increasing, so the band stays a band); for zero-inflated
    and hurdle families they are therefore the mean of the main part, not of the response.

    Parameters
    ----------
    fit : MixedModelFit
    newdata : pandas.DataFrame
        The columns the fixed-effects formula (and any offset) needs.
    marginal : bool
        Use the marginal coefficients.
    level : float
        Confidence level, strictly between 0 and 1.

    Returns
    -------
    pandas.DataFrame
        A copy of ``newdata`` with the columns ``"pred"``, ``"low"``, ``"upp"`` (link scale)
        and ``"pred_response"``, ``"low_response"``, ``"upp_response"``; columns of
        ``newdata`` with these names are replaced.

    Raises
    ------
    TypeError
        If ``newdata`` is not a DataFrame or ``marginal`` is not a bool.
    ValueError
        For a ``level`` outside ``(0, 1)`` or ``newdata`` the formulas cannot be applied to.

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
    >>> effect_plot_data(fm1, grid, marginal=True)["pred"].round(2).tolist()
    [-1.59, -0.73, 0.14, -2.48, -1.45, -0.42]
    """
    if not isinstance(newdata, pd.DataFrame):
        raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    if not isinstance(marginal, (bool, np.bool_)):
        raise TypeError(f"marginal must be True or False, got {type(marginal).__name__}")
    if (
        isinstance(level, (bool, np.bool_))
        or not isinstance(level, (int, float, np.integer, np.floating))
        or not 0 < level < 1
    ):
        raise ValueError(f"level must be a number strictly between 0 and 1, got {level!r}")
    arrays = model_arrays(fit.design, newdata)
    X = np.asarray(arrays.X, dtype=float)
    offset = np.asarray(arrays.offset, dtype=float)[:, 0]
    if marginal:
        _, beta, V = marginal_fit(fit, True, None)
    else:
        beta = fit.fixef().to_numpy(dtype=float)
        V = fit.vcov("fixed-effects").to_numpy(dtype=float)
    pred = X @ beta + offset
    se = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", X, V, X), 0.0, None))
    z = stats.norm.ppf(0.5 + float(level) / 2.0)
    out = newdata.copy()
    inverse = fit.family.link.inverse
    for name, values in zip(_LINK_COLUMNS, (pred, pred - z * se, pred + z * se), strict=True):
        out[name] = values
    for name, link_name in zip(_RESPONSE_COLUMNS, _LINK_COLUMNS, strict=True):
        out[name] = inverse(out[link_name].to_numpy(dtype=float))
    return out


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
    (or a single pair without it), with the rows sorted by ``x``.

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
    >>> grid = pd.DataFrame({"time": np.tile(np.linspace(0, 10, 21), 2),
    ...                      "sex": np.repeat(["male", "female"], 21)})
    >>> ax = plot_effects(effect_plot_data(fm1, grid), "time", by="sex")
    >>> len(ax.get_lines()), ax.get_ylabel()
    (2, 'pred_response')
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

        _, ax = plt.subplots()
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
    ax.set_ylabel(pred)
    if by is not None:
        ax.legend(title=by)
    return ax
