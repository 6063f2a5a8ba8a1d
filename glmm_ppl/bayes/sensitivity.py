"""Prior sensitivity: MAP refits over a grid of prior hyperparameters, and ArviZ's
power-scaling diagnostic on NUTS output.

:func:`prior_sensitivity` refits a MAP fit (:func:`glmm_ppl.mixed_model` with ``priors=``)
for every combination of the hyperparameters of one prior. The hyperparameters are PyTensor
shared variables inside one compiled log-prior graph: moving to the next grid point sets
their values, so the whole grid costs one compilation, and each fit starts from the
estimates of the previous grid point. :func:`plot_prior_sensitivity` draws the table as one
panel per parameter.

:func:`psens` is the MCMC counterpart: the power-scaling sensitivity of Kallioinen et al.
(ArviZ's ``psens``) on the ``InferenceData`` of :func:`glmm_ppl.sample`, which
reweights the draws instead of refitting.
"""

from __future__ import annotations

import inspect
import itertools
import warnings

import numpy as np
import pandas as pd
import pytensor

from ..fitting.blas import blas_threads
from ..fitting.graph import MixedModelGraph
from ..fitting.identification import SingularFitWarning, boundary_problem
from ..fitting.optimize import Control, ConvergenceWarning, fit_mixed
from .priors import make_priors

try:
    from pytensor.graph.traversal import ancestors
except ImportError:  # PyTensor before 2.32
    from pytensor.graph.basic import ancestors

__all__ = ["prior_sensitivity", "plot_prior_sensitivity", "psens"]

_COLUMNS = (
    "parameter",
    "estimate",
    "std_error",
    "loglik",
    "log_prior",
    "converged",
    "at_boundary",
    "natural_name",
    "log_scale",
)


#: Wald bands wider than this on the scale of θ (a factor e^±10 for a log SD) are not drawn
_WIDEST_BAND = 10.0


def _check_grid(grid) -> dict[str, list[float]]:
    if not isinstance(grid, dict):
        raise TypeError(
            f"grid must be a dict mapping hyperparameter names to lists of values, "
            f"got {type(grid).__name__}"
        )
    if not grid:
        raise ValueError(
            "grid is empty: give at least one hyperparameter with its values, "
            "e.g. {'sigma': [0.5, 1, 2.5]}"
        )
    out = {}
    for name, values in grid.items():
        if not isinstance(name, str):
            raise TypeError(f"grid keys must be hyperparameter names (str), got {name!r}")
        if name in _COLUMNS:
            raise ValueError(
                f"grid name {name!r} clashes with a column of the result; rename the "
                "hyperparameter (the prior callable's argument)"
            )
        values = list(np.atleast_1d(np.asarray(values, dtype=object)))
        if not values:
            raise ValueError(f"grid[{name!r}] has no values")
        checked = []
        for v in values:
            ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
                v, (bool, np.bool_)
            )
            if not ok or not np.isfinite(v):
                raise ValueError(
                    f"grid[{name!r}] must hold finite numbers (one scalar per grid point), "
                    f"got {v!r}"
                )
            checked.append(float(v))
        out[name] = checked
    return out


def _check_arguments(prior, names: list[str]) -> None:
    """The grid's names against the parameters of the prior callable."""
    if not callable(prior):
        raise TypeError(
            "prior must be a callable building a PyMC distribution from the hyperparameters, "
            f"e.g. lambda sigma: pm.Normal.dist(0, sigma); got {prior!r}"
        )
    try:
        params = list(inspect.signature(prior).parameters.values())
    except (TypeError, ValueError):  # no signature to read (some builtins): calling will tell
        return
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = [p.name for p in params if p.kind in kinds]
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        unknown = [n for n in names if n not in accepted]
        if unknown:
            raise ValueError(
                f"grid names {', '.join(map(repr, unknown))} that the prior callable does not "
                f"accept; its arguments: {', '.join(map(repr, accepted)) or 'none'}"
            )
    missing = [
        p.name
        for p in params
        if p.kind in kinds and p.default is inspect.Parameter.empty and p.name not in names
    ]
    if missing:
        raise ValueError(
            f"the prior callable needs {', '.join(map(repr, missing))}, which the grid does "
            "not give; add them to the grid (a single value keeps one fixed)"
        )


def _std_errors(H: np.ndarray) -> np.ndarray:
    try:
        V = np.linalg.inv(-H)
    except np.linalg.LinAlgError:
        return np.full(len(H), np.nan)
    diag = np.diag(V)
    return np.sqrt(np.where(diag > 0, diag, np.nan))


def _initial_values(graph: MixedModelGraph, theta: np.ndarray) -> dict:
    fixed, D, phis = graph.unpack(theta)
    values = {"betas": fixed[: graph.p], "D": D, "phis": phis}
    if graph.p_zi:
        values["gammas"] = fixed[graph.p :]
    return values


def _best_fit(graph: MixedModelGraph, control, starts: list):
    """The MAP fit of ``graph`` from each start (the previous grid point's estimates, the
    original fit's), the one with the highest objective: a start at a boundary (an SD pushed
    to 0 by a narrow prior) stays there, while the posterior mode may have moved away."""
    best = None
    for k, start in enumerate(starts):
        if k and np.array_equal(start, starts[0]):
            continue
        theta, objective, _, H, opt = fit_mixed(graph, control, _initial_values(graph, start))
        if best is None or objective > best[1]:
            best = (theta, objective, H, opt)
    return best


def prior_sensitivity(fit, prior, grid: dict, key: str = "fixed", control=None) -> pd.DataFrame:
    """Refit the MAP estimates over a grid of hyperparameters of one prior.

    Every combination of the grid's values (the Cartesian product, in the order given)
    replaces the prior ``key`` of ``fit`` by ``prior(**values)``; the fit's other priors and
    its penalty stay. The hyperparameters are PyTensor shared variables of one compiled
    log-prior graph, so the grid needs no recompilation. Each grid point is fitted from the
    estimates of the previous point and from ``fit``'s, and the higher posterior mode is kept,
    so the table does not depend on the order of the grid.

    Parameters
    ----------
    fit : MixedModelFit
        A fit of :func:`glmm_ppl.mixed_model` (with or without priors).
    prior : callable
        Builds an unregistered PyMC distribution from the hyperparameters as keyword
        arguments, e.g. ``lambda nu, sigma: pm.StudentT.dist(nu=nu, mu=0, sigma=sigma)``; it
        is called once, with shared variables.
    grid : dict
        Hyperparameter name → list of values, e.g. ``{"nu": [3, 30], "sigma": [0.5, 2.5]}``;
        the names are the arguments of ``prior``.
    key : str
        The prior it sets, as the keys of ``mixed_model(priors=...)``: ``"fixed"``, a
        fixed-effect name, ``"sd"``, ``"sd_<name>"``, an extra parameter's name…
    control : dict or Control, optional
        Optimizer settings; by default those of ``fit``.

    Returns
    -------
    pandas.DataFrame
        One row per grid point and parameter: the hyperparameter columns, ``parameter``
        (the names of ``fit.names``), ``estimate`` and ``std_error`` (from the Hessian of the
        objective, on the scale of ``θ``), ``loglik`` (with the penalty, if any, as
        ``fit.loglik``), ``log_prior`` (the log density of all priors at the estimates, without
        Jacobian), ``converged``, ``at_boundary`` (a variance at 0 or a correlation at ±1),
        ``natural_name`` (``sd(<random effect>)`` for a log standard deviation, the extra
        parameter's name for its log) and ``log_scale`` (whether ``exp`` of the estimate is
        that natural-scale parameter).

    Raises
    ------
    ValueError
        For an empty grid, grid names the prior callable does not accept (or arguments it
        needs that the grid lacks), non-numeric values, a prior that ignores a grid name, an
        unknown ``key`` (as ``mixed_model(priors=...)`` reports it), or a prior on
        the fixed effects of a penalized fit.
    TypeError
        If ``prior`` is not callable or does not return a PyMC distribution.

    Warns
    -----
    ConvergenceWarning
        When some grid points did not converge (their ``converged`` is False).
    SingularFitWarning
        When some grid points are at a boundary (their ``at_boundary`` is True).

    Examples
    --------
    >>> import pymc as pm
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.bayes.sensitivity import prior_sensitivity
    >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("poisson"), "poisson")
    >>> table = prior_sensitivity(
    ...     fit, lambda sigma: pm.Normal.dist(0, sigma), {"sigma": [0.1, 10.0]}, key="time"
    ... )
    >>> table.columns.tolist()
    ['sigma', 'parameter', 'estimate', 'std_error', 'loglik', 'log_prior', 'converged',
     'at_boundary', 'natural_name', 'log_scale']
    >>> time = table[table.parameter == "time"].set_index("sigma")["estimate"]
    >>> bool(abs(time[0.1]) < abs(time[10.0]) <= abs(fit.fixef()["time"]) + 1e-6)
    True
    """
    grid = _check_grid(grid)
    names = list(grid)
    _check_arguments(prior, names)
    shared = {n: pytensor.shared(np.float64(grid[n][0]), name=n) for n in names}
    dist = prior(**shared)
    others = {} if fit.priors is None else {k: v for k, v in fit.priors.priors.items() if k != key}
    spec = make_priors({**others, key: dist}, fit.layout, fit.penalty is not None)
    used = set(ancestors([dist]))
    unused = [n for n, var in shared.items() if var not in used]
    if unused:
        raise ValueError(
            f"the prior does not depend on the grid name(s) {', '.join(map(repr, unused))}: "
            "the callable ignores them"
        )
    control = fit.opt_summary.control if control is None else Control.from_user(control)
    graph = MixedModelGraph(fit.design, fit.family, fit.n_agq, fit.penalty, spec)
    graph.engine.modes = fit.modes.copy()
    theta, rows, failed, boundary = fit.theta, [], [], []
    natural, on_log = fit.layout.natural_names, set(fit.layout.log_scale)
    with blas_threads(1):
        for point in itertools.product(*grid.values()):
            for var, value in zip(shared.values(), point, strict=True):
                var.set_value(np.float64(value))
            theta, objective, H, opt = _best_fit(graph, control, [theta, fit.theta])
            log_prior = float(spec.compiled()(theta)[0])
            hyper = dict(zip(names, point, strict=True))
            if not opt.converged:
                failed.append(hyper)
            at_boundary = boundary_problem(graph.unpack(theta)[1], fit.design.random_names)
            if at_boundary:
                boundary.append(hyper)
            se = _std_errors(H)
            for j, name in enumerate(graph.names):
                rows.append(
                    {
                        **hyper,
                        "parameter": name,
                        "estimate": float(theta[j]),
                        "std_error": float(se[j]),
                        "loglik": float(objective - log_prior),
                        "log_prior": log_prior,
                        "converged": bool(opt.converged),
                        "at_boundary": at_boundary is not None,
                        "natural_name": natural[j],
                        "log_scale": j in on_log and natural[j] != name,
                    }
                )
    for points, what, category in (
        (failed, "the fit did not converge", ConvergenceWarning),
        (boundary, "the random-effects covariance is at a boundary", SingularFitWarning),
    ):
        if points:
            shown = "; ".join(", ".join(f"{k}={v:g}" for k, v in h.items()) for h in points[:5])
            more = f" and {len(points) - 5} more" if len(points) > 5 else ""
            column = "converged" if category is ConvergenceWarning else "at_boundary"
            warnings.warn(
                f"{what} at {len(points)} of the grid points ({shown}{more}); see the column "
                f"{column!r}",
                category,
                stacklevel=2,
            )
    return pd.DataFrame(rows, columns=[*names, *_COLUMNS])


def plot_prior_sensitivity(table: pd.DataFrame, x: str, parameters=None, by: str | None = None):
    """Small multiples of :func:`prior_sensitivity`: estimate ± 1.96 standard errors against
    one hyperparameter, one panel per parameter.

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`prior_sensitivity`.
    x : str
        The hyperparameter on the horizontal axis (logarithmic when all its values are
        positive and span more than a factor of 20).
    parameters : list of str, optional
        The parameters to show (values of the ``parameter`` column); all by default.
    by : str, optional
        Another hyperparameter: one line (and band) per value, with a legend.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes per parameter.

    Raises
    ------
    ValueError
        For columns ``table`` lacks, unknown parameters, or a hyperparameter other than ``x``
        and ``by`` that varies in ``table`` (select its rows first).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pymc as pm
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.bayes.sensitivity import plot_prior_sensitivity, prior_sensitivity
    >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("poisson"), "poisson")
    >>> table = prior_sensitivity(
    ...     fit, lambda sigma: pm.Normal.dist(0, sigma), {"sigma": [0.1, 10.0]}, key="time"
    ... )
    >>> fig = plot_prior_sensitivity(table, "sigma", parameters=["(Intercept)", "time"])
    >>> [ax.get_title() for ax in fig.axes]
    ['(Intercept)', 'time']
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in _COLUMNS[:6] if c not in table.columns]  # the rest are optional
    if missing:
        raise ValueError(
            f"table lacks the columns {', '.join(map(repr, missing))}; make it with "
            "prior_sensitivity"
        )
    hyper = [c for c in table.columns if c not in _COLUMNS]
    for role, name in (("x", x), ("by", by)):
        if name is not None and name not in hyper:
            raise ValueError(
                f"{role}={name!r} is not a hyperparameter of the table; "
                f"valid: {', '.join(map(repr, hyper))}"
            )
    if by == x:
        raise ValueError(f"by must differ from x, both are {x!r}")
    varying = [c for c in hyper if c not in (x, by) and table[c].nunique() > 1]
    if varying:
        raise ValueError(
            f"the table varies {', '.join(map(repr, varying))} besides x: give it as by, or "
            f"select the rows of one value (table[table[{varying[0]!r}] == ...])"
        )
    available = list(dict.fromkeys(table["parameter"]))
    if parameters is None:
        parameters = available
    else:
        parameters = [parameters] if isinstance(parameters, str) else list(parameters)
        unknown = [p for p in parameters if p not in available]
        if unknown:
            raise ValueError(
                f"unknown parameters {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(map(repr, available))}"
            )
        if not parameters:
            raise ValueError("parameters is empty: give at least one parameter to plot")
    import matplotlib.pyplot as plt

    n = len(parameters)
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.0 * ncols, 3.0 * nrows), squeeze=False, layout="constrained"
    )
    for ax in axes.ravel()[n:]:
        fig.delaxes(ax)
    xs_all = table[x].to_numpy(dtype=float)
    log_x = bool(np.all(xs_all > 0) and xs_all.max() / xs_all.min() > 20)
    for ax, name in zip(axes.ravel(), parameters, strict=False):
        rows = table[table["parameter"] == name]
        pieces = [(None, rows)] if by is None else list(rows.groupby(by, sort=True))
        for level, piece in pieces:
            piece = piece.sort_values(x, kind="stable")
            xs = piece[x].to_numpy(dtype=float)
            est = piece["estimate"].to_numpy(dtype=float)
            half = 1.96 * piece["std_error"].to_numpy(dtype=float)
            # a parameter the data do not bound has no useful band (a log SD at 0: ±1e5)
            half = np.where(np.isfinite(half) & (half < _WIDEST_BAND), half, np.nan)
            lo, hi = est - half, est + half
            natural = bool(piece["log_scale"].iloc[0]) if "log_scale" in piece else False
            if natural:  # standard deviations and extra parameters on their own scale
                est, lo, hi = np.exp(est), np.exp(lo), np.exp(hi)
            label = None if by is None else f"{level:g}"
            (line,) = ax.plot(xs, est, marker="o", label=label)
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        if log_x:
            ax.set_xscale("log")
        ax.set_title(rows["natural_name"].iloc[0] if "natural_name" in rows else name)
        ax.set_xlabel(x)
    axes[0, 0].set_ylabel("estimate, 95% Wald band")
    if by is not None:
        axes[0, 0].legend(title=by)
    return fig


def psens(idata, component: str = "prior", *, var_names=None, delta: float = 0.01):
    """Power-scaling sensitivity (ArviZ's ``psens``) of the posterior from
    :func:`glmm_ppl.sample`, one row per parameter.

    The prior (``log_prior`` group) or the likelihood (``log_likelihood``: the per-group
    values, summed) is raised to the powers ``1/(1 + delta)`` and ``1 + delta``, the draws
    are reweighted by Pareto-smoothed importance sampling, and the sensitivity is the
    derivative of the distance between the reweighted and the original posterior
    (Kallioinen et al., 2024). As a rule of thumb, a prior sensitivity above 0.05 marks an
    informative prior, a likelihood sensitivity below 0.05 a weak likelihood.

    Parameters
    ----------
    idata : arviz.InferenceData
        From :func:`glmm_ppl.sample` on a fit with priors (for ``component="prior"``).
    component : {"prior", "likelihood"}
    var_names : list of str, optional
        Posterior variables; by default those of ``beta``, ``gamma``, ``sd``, ``corr`` and
        ``phi`` (or ``thresholds``, ``dispersion``) that ``idata`` has.
    delta : float
        Step of the power-scaling.

    Returns
    -------
    pandas.DataFrame
        Indexed by labels such as ``beta[time]``; columns ``variable`` and ``sensitivity``.
        Correlations appear once per pair.

    Raises
    ------
    ImportError
        If the installed ArviZ has no ``psens`` (added in ArviZ 0.18).
    ValueError
        For an unknown ``component``, or ``idata`` without its group.

    Examples
    --------
    >>> import pymc as pm
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.bayes import sample
    >>> from glmm_ppl.bayes.sensitivity import psens
    >>> priors = {"fixed": pm.Normal.dist(0, 2), "sd": pm.HalfNormal.dist(3)}
    >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial",
    ...                      priors=priors)
    >>> idata = sample(fit, draws=40, tune=40, chains=1, random_seed=1, progressbar=False)
    >>> table = psens(idata)
    >>> table.index.tolist()
    ['beta[(Intercept)]', 'beta[time]', 'sd[(Intercept)]']
    >>> bool(np.isfinite(table["sensitivity"]).all())
    True
    """
    import arviz as az

    power_scaling = getattr(az, "psens", None)
    if power_scaling is None:
        raise ImportError(
            f"psens needs arviz.psens, which ArviZ 0.18 added; the installed ArviZ is "
            f"{az.__version__} (pip install 'arviz>=0.18')"
        )
    groups = {"prior": "log_prior", "likelihood": "log_likelihood"}
    if component not in groups:
        raise ValueError(f"unknown component {component!r}; valid: 'prior', 'likelihood'")
    if groups[component] not in idata.groups():
        hint = (
            "sample a fit with priors (mixed_model(..., priors=...))"
            if component == "prior"
            else "use glmm_ppl.bayes.sample, which stores the per-group log-likelihood (but "
            "not for crossed grouping factors, whose likelihood does not split into groups)"
        )
        raise ValueError(f"idata has no {groups[component]} group: {hint}")
    if var_names is None:
        # the extra parameters are "phi", or their sub-model's coefficients
        reported = ("beta", "gamma", "sd", "corr", "phi", "thresholds", "dispersion")
        var_names = [v for v in reported if v in idata.posterior]
    else:
        var_names = [var_names] if isinstance(var_names, str) else list(var_names)
        unknown = [v for v in var_names if v not in idata.posterior]
        if unknown:
            raise ValueError(
                f"unknown posterior variables {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(map(repr, idata.posterior.data_vars))}"
            )
    result = power_scaling(idata, component=component, var_names=var_names, delta=delta)
    labels, variables, values = [], [], []
    for var in var_names:
        da = result[var]
        for idx in np.ndindex(da.shape):
            if var == "corr" and idx[0] >= idx[1]:
                continue  # the diagonal is 1 and the matrix symmetric: each pair once
            coords = [str(da.coords[dim].values[i]) for dim, i in zip(da.dims, idx, strict=True)]
            labels.append(f"{var}[{', '.join(coords)}]" if coords else var)
            variables.append(var)
            values.append(float(da.values[idx]))
    return pd.DataFrame({"variable": variables, "sensitivity": values}, index=labels)
