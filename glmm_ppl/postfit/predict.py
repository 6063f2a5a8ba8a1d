"""Predictions from a fitted mixed model: population-level, marginal and subject-specific.

Notation: ``η⁰ = Xβ (+ offset)`` (and ``η⁰_zi = X_zi γ`` for a zero part), ``b_i ~ N(0, D)``,
``h(η) = E[y | η]`` the family's response mean (the inverse link, times the trials, with the
zero part and truncation for zero-inflated and hurdle families).

- ``mean_subject``: ``b = 0``: ``η⁰`` and ``h(η⁰)``.
- ``marginal``: averaged over the random-effects distribution,
  ``E_b h(η⁰ + zᵀb) = ∫ h(η⁰ + zᵀb) N(b; 0, D) db``, by a Gauss–Hermite product rule (15 points
  per random effect up to two, 7 beyond); on the link scale ``g(E_b g⁻¹(η⁰ + zᵀb))`` of the
  main part. GLMMadaptive's marginal predictions are instead ``g⁻¹(xᵀβ_M)`` with the marginal
  coefficients ``β_M`` (:func:`glmm_ppl.postfit.marginal.marginal_coefs`, a least-squares summary of
  the marginal means over the fitted rows): on the vignette's fm1 the two differ by up to
  0.011 in probability over times 0 to 15. ``effect_plot_data(..., marginal="coefficients")``
  gives GLMMadaptive's.
- ``subject_specific``: ``η⁰ + zᵀb̂_i`` with the empirical Bayes modes; groups the fit did not
  see get their modes from the rows of ``newdata`` (which must then hold the response) —
  dynamic prediction. With crossed grouping factors a level the fit did not see gets 0 for
  its factor and the row's other levels keep their modes (a new subject answering a known
  item gets the item's mode); such modes are not re-estimated from ``newdata``.
- ``zero_part``: the zero part's probability ``logistic(η⁰_zi)`` at ``b = 0``.
- ``zero_part_subject_specific``: the zero part's probability with the groups' empirical Bayes
  modes, ``logistic(η⁰_zi + z_ziᵀb̂_i)`` (GLMMadaptive's ``zi_probs`` of its subject-specific
  predictions); new groups get their modes from the rows of ``newdata``, as for
  ``subject_specific``, whose response mean uses the zero part's modes too.

Standard errors: for the population-level types the delta method with the Jacobian of the
predictions in ``θ`` (central differences) and ``vcov("all")``; for subject-specific ones
``θ`` is drawn from its asymptotic normal distribution, the modes recomputed at each draw and
``b`` drawn from its posterior (normal at the mode, with the inverse curvature), so the
interval carries both uncertainties.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy import stats

from ..design.dask_data import is_dask_dataframe
from ..design.matrices import group_label
from ..design.newdata import ModelArrays, model_arrays, response_columns
from ..engine.agq import AGQ
from ..engine.covariance import theta_to_D
from ..engine.quadrature import product_rule
from ..families import Family
from .factors import NestedModes, fitted_effects

__all__ = ["predict", "prediction_function", "fitted", "residuals", "coef"]

_TYPES = ("mean_subject", "marginal", "subject_specific", "zero_part", "zero_part_subject_specific")
#: the types that use the groups' empirical Bayes modes
_SUBJECT = ("subject_specific", "zero_part_subject_specific")
_SCALES = ("link", "response")


def _check(name: str, value, valid) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(map(repr, valid))}")


def _params(fit, theta: np.ndarray):
    """``(β, γ, D, φ)`` from a parameter vector laid out as ``fit.theta``."""
    blocks = fit.layout.blocks
    D = theta_to_D(theta[blocks["var-cov"]], len(fit.design.random_names), fit.design.diagonal)
    return (
        theta[blocks["fixed-effects"]],
        theta[blocks["zero_part"]],
        D,
        np.exp(theta[blocks["extra"]]),
    )


def _data(family: Family, arrays: ModelArrays, eta: np.ndarray) -> dict:
    """Keyword data of the family's response mean and variance: ``eta_zi`` and the per-row
    columns other than the censoring and the row weights (which neither reads)."""
    data = {"eta_zi": eta[:, 1]} if family.zero_part else {}
    names = [n for n in family.aux_names if n not in ("censoring", "row_weight")]
    absent = [c for n in names if n in arrays.missing for c in arrays.missing[n]]
    if absent:
        why = (
            "the dispersion sub-model (disp_fixed) gives each row's "
            f"{type(family).phi_names[0]} from them"
            if any(n.startswith("disp:") and n in arrays.missing for n in names)
            else "they give the number of trials of each row"
        )
        raise ValueError(
            f"response-scale predictions of the {family.name} family need the column(s) "
            f"{', '.join(repr(c) for c in dict.fromkeys(absent))} in newdata, without missing "
            f"values ({why})"
        )
    data.update({n: arrays.aux[n] for n in names})
    return data


def _response(
    family: Family, arrays: ModelArrays, eta: np.ndarray, phis, categories: bool = True
) -> np.ndarray:
    """The response means, or for an ordinal family (with ``categories``) the category
    probabilities ``(N, K)``."""
    row_phis, data = family.row_parts(phis, _data(family, arrays, eta))
    if categories and family.categories:
        return family.category_probabilities(eta[:, 0], row_phis)
    return family.response_mean(eta[:, 0], row_phis, **data)


def _root(D: np.ndarray) -> np.ndarray:
    """A square root ``L`` of ``D = L Lᵀ`` (eigen-decomposition: ``D`` may be singular)."""
    lam, V = np.linalg.eigh(D)
    return V * np.sqrt(np.clip(lam, 0.0, None))


def _rule(q: int):
    n = 15 if q <= 2 else 7
    return product_rule(n, q)


def _marginal(fit, arrays, eta0, D, phis, scale: str) -> np.ndarray:
    """``E_b`` of the response mean (or of ``g⁻¹(η)`` on the link scale) over ``N(0, D)``."""
    family = fit.family
    nodes, log_w = _rule(D.shape[0])
    L = _root(D)
    total = 0.0
    for z, lw in zip(nodes, log_w, strict=True):
        eta = eta0 + arrays.Z @ (L @ z)
        value = family.mean(eta[:, 0]) if scale == "link" else _response(family, arrays, eta, phis)
        total = total + np.exp(lw) * value
    if scale == "link":
        return family.link.link(total)
    return total


def _engine(fit, Y, Z, groups) -> tuple[AGQ, np.ndarray, np.ndarray]:
    """An AGQ engine over the rows of some groups; returns it, the row order and group codes
    per sorted row."""
    codes, labels = pd.factorize(groups, sort=True)
    order = np.argsort(codes, kind="stable")
    codes = codes[order]
    starts = np.r_[np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]), len(codes)]
    engine = AGQ(Y[order], Z[order], starts, fit.family, fit.n_agq)
    return engine, order, codes


class _Modes:
    """Empirical Bayes modes of the groups a prediction needs, recomputable at any ``θ``:
    groups the fit saw from the fitted data, new ones from the rows of ``newdata``."""

    def __init__(self, fit, arrays: ModelArrays):
        self.fit, self.arrays = fit, arrays
        self.known = arrays.known
        new = ~arrays.known
        self.new_engine = None
        if new.any():
            if arrays.groups is None:
                raise ValueError(
                    f"subject-specific predictions need the grouping column "
                    f"{fit.design.group_name!r} in newdata"
                )
            if arrays.y is None:
                labels = pd.unique(arrays.groups[new])
                raise ValueError(
                    f"newdata has {len(labels)} group(s) the fit did not see (for example "
                    f"{group_label(labels[0])}): their random effects are estimated from their "
                    f"rows, which then need {response_columns(fit.design, arrays)} without "
                    "missing values; or use type='mean_subject' or 'marginal' ('zero_part' for "
                    "the zero part)"
                )
            self.new_rows = np.flatnonzero(new)
            self.new_engine, self.new_order, self.new_codes = _engine(
                fit, arrays.y[new], arrays.Z[new], arrays.groups[new]
            )
        self.fit_engine = None  # a fit on a dask DataFrame: its rows are on the workers
        if self.known.any() and not getattr(fit.design, "rows_on_workers", False):
            d = fit.design
            index = np.repeat(np.arange(d.n_groups), np.diff(d.starts))
            self.fit_arrays = model_arrays(d)
            self.fit_engine = AGQ(
                d.response_data(), d.Z_by_predictor(), d.starts, fit.family, fit.n_agq
            )
            self.fit_index = index

    def at(self, theta: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Random effects per row of the prediction data: the modes at ``θ``, or with ``rng``
        draws from the normal approximation of their posterior."""
        beta, gamma, D, phis = _params(self.fit, theta)
        b = np.zeros((len(self.known), D.shape[0]))
        parts = []
        if self.known.any() and self.fit_engine is None:
            if rng is not None or not np.array_equal(theta, self.fit.theta):
                raise ValueError(
                    "subject-specific standard errors of a fit on a dask DataFrame need the "
                    "groups' modes at other parameter values, from the training rows on the "
                    "workers: predict without se_fit, or fit the data in one process"
                )
            b[self.known] = self.fit.modes[self.arrays.index[self.known]]
        elif self.known.any():
            eng = self.fit_engine
            eng.modes = self.fit.modes.copy()
            eng.update_modes(self.fit_arrays.fixed_part(beta, gamma), D, phis)
            parts.append((eng, self.arrays.index[self.known], np.flatnonzero(self.known)))
        if self.new_engine is not None:
            eng = self.new_engine
            new_arrays = self.arrays
            eta0 = new_arrays.fixed_part(beta, gamma)[self.new_rows][self.new_order]
            eng.modes = np.zeros_like(eng.modes)
            eng.update_modes(eta0, D, phis)
            codes = np.empty(len(self.new_rows), dtype=np.int64)
            codes[self.new_order] = self.new_codes
            parts.append((eng, codes, self.new_rows))
        for eng, group_of_row, rows in parts:
            modes = eng.modes
            if rng is not None:
                cov = eng.posterior_covariance()
                z = rng.standard_normal(modes.shape)
                modes = modes + np.einsum("gij,gj->gi", np.linalg.cholesky(cov), z)
            b[rows] = modes[group_of_row]
        return b


def _point(fit, arrays, theta, what, type_pred, modes: _Modes | None, b=None) -> np.ndarray:
    beta, gamma, D, phis = _params(fit, theta)
    eta0 = arrays.fixed_part(beta, gamma)
    family = fit.family
    if what == "marginal":
        return _marginal(fit, arrays, eta0, D, phis, type_pred)
    if what in _SUBJECT:
        if b is None:
            b = modes.at(theta)
        eta0 = eta0 + np.einsum("neq,nq->ne", arrays.Z, b)
    if what in ("zero_part", "zero_part_subject_specific"):
        return eta0[:, 1] if type_pred == "link" else stats.logistic.cdf(eta0[:, 1])
    return eta0[:, 0] if type_pred == "link" else _response(family, arrays, eta0, phis)


def _prepare(fit, newdata, type_pred: str, type: str):
    """The model's arrays on ``newdata`` and, for subject-specific predictions, the modes."""
    _check("type_pred", type_pred, _SCALES)
    _check("type", type, _TYPES)
    if type.startswith("zero_part") and fit.design.X_zi is None:
        raise ValueError(
            f"the {fit.family.name} family has no zero part; type={type!r} applies to "
            "zero-inflated and hurdle families"
        )
    if fit.family.categories and type == "marginal" and type_pred == "link":
        raise ValueError(
            f"the {fit.family.name} family has no marginal linear predictor: averaging over "
            "the random effects applies to its category probabilities "
            "(type_pred='response')"
        )
    arrays = model_arrays(fit.design, newdata)
    modes = None
    if type in _SUBJECT:
        modes = (NestedModes if fit.design.nested else _Modes)(fit, arrays)
    return arrays, modes


def prediction_function(
    fit, newdata: pd.DataFrame | None = None, type_pred: str = "link", type: str = "mean_subject"
):
    """The predictions of :func:`predict` as a function of the parameters.

    Returns ``f(θ)``, the predictions for ``newdata`` at a parameter vector laid out as
    ``fit.theta`` (subject-specific ones with the modes recomputed at ``θ``); the arrays of
    ``newdata`` are built once. Delta-method standard errors of any summary of predictions
    follow from its Jacobian in ``θ`` and ``fit.vcov("all")``.

    Examples
    --------
    >>> import glmm_ppl as gp, pandas as pd
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> nd = pd.DataFrame({"time": [0.0, 5.0], "sex": ["male", "female"]})
    >>> f = prediction_function(fm1, nd, type_pred="response", type="marginal")
    >>> f(fm1.theta).round(3).tolist()
    [0.166, 0.195]
    """
    arrays, modes = _prepare(fit, newdata, type_pred, type)

    def at(theta) -> np.ndarray:
        return _point(fit, arrays, np.asarray(theta, dtype=float), type, type_pred, modes)

    return at


def predict(
    fit,
    newdata: pd.DataFrame | None = None,
    type_pred: str = "link",
    type: str = "mean_subject",
    se_fit: bool = False,
    level: float = 0.95,
    n_draws: int = 200,
    seed: int | None = None,
):
    """Predictions for the fitted data or ``newdata``.

    Parameters
    ----------
    fit : MixedModelFit
    newdata : pandas.DataFrame or dask.dataframe.DataFrame, optional
        The fitted rows (in the fit's order, grouped) when omitted. Dask data are predicted
        partition by partition on the workers (a lazy dask Series or DataFrame); for the
        subject-specific types they are shuffled by group first, so that a new group's rows
        are together.
    type_pred : {"link", "response"}
    type : str
        ``"mean_subject"``, ``"marginal"``, ``"subject_specific"``, ``"zero_part"`` or
        ``"zero_part_subject_specific"``; see the module notes. New groups in ``newdata``
        (labels the fit did not see) get random effects estimated from their own rows for the
        subject-specific types, so ``newdata`` must then hold the response (with crossed
        grouping factors they get 0 instead); the other types do not use the group.
    se_fit : bool
        Also standard errors and ``level`` intervals.
    level : float
    n_draws, seed : int
        Draws of ``θ`` and ``b`` behind the subject-specific intervals.

    Returns
    -------
    pandas.Series or pandas.DataFrame
        The predictions (indexed like the data rows), or with ``se_fit`` the columns
        ``pred``, ``se``, ``low``, ``upp``.

    Examples
    --------
    >>> import glmm_ppl as gp, pandas as pd
    >>> df = gp.load_vignette("binary")
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
    >>> nd = pd.DataFrame({"time": [0.0, 5.0], "sex": ["male", "female"]})
    >>> p = fm1.predict(nd, type_pred="response", type="marginal")
    >>> p.round(3).tolist()
    [0.166, 0.195]
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level!r}")
    if is_dask_dataframe(newdata):
        return _on_partitions(fit, newdata, type_pred, type, se_fit, level, n_draws, seed)
    arrays, modes = _prepare(fit, newdata, type_pred, type)
    theta = fit.theta
    pred = _point(fit, arrays, theta, type, type_pred, modes)
    if not se_fit:
        if pred.ndim == 2:  # an ordinal family's category probabilities
            return _categories(fit, {"pred": pred}, arrays.rows)["pred"]
        return pd.Series(pred, index=arrays.rows, name="pred")
    z = stats.norm.ppf(0.5 + level / 2)
    V = fit.vcov("all").to_numpy()
    if type in _SUBJECT:
        rng = np.random.default_rng(seed)
        draws = rng.multivariate_normal(theta, V, size=int(n_draws), method="eigh")
        sims = np.array(
            [_point(fit, arrays, t, type, type_pred, modes, b=modes.at(t, rng)) for t in draws]
        )
        se = sims.std(axis=0, ddof=1)
        low, upp = np.quantile(sims, [(1 - level) / 2, (1 + level) / 2], axis=0)
    else:
        se, low, upp = _delta(fit, arrays, theta, V, type, type_pred, pred, z)
    if pred.ndim == 2:  # probabilities: intervals within [0, 1]
        stats_ = {"pred": pred, "se": se, "low": np.clip(low, 0, 1), "upp": np.clip(upp, 0, 1)}
        return _categories(fit, stats_, arrays.rows)
    return pd.DataFrame({"pred": pred, "se": se, "low": low, "upp": upp}, index=arrays.rows)


def _categories(fit, tables: dict, rows) -> pd.DataFrame:
    """Tables ``(N, K)`` by category, under column groups named by the keys of ``tables``."""
    columns = pd.Index(fit.family.categories, name="category")
    return pd.concat(
        {name: pd.DataFrame(t, index=rows, columns=columns) for name, t in tables.items()}, axis=1
    )


def _jacobian(f, theta: np.ndarray) -> np.ndarray:
    h = 1e-5 * np.maximum(np.abs(theta), 1.0)
    cols = []
    for j, hj in enumerate(h):
        e = np.zeros(len(theta))
        e[j] = hj
        cols.append(np.ravel(f(theta + e) - f(theta - e)) / (2 * hj))
    return np.stack(cols, axis=1)


def _delta(fit, arrays, theta, V, what, type_pred, pred, z):
    """Delta-method standard errors and intervals. On the response scale of families whose
    mean is the inverse link (times the trials), the interval is the link-scale one mapped
    back, so it stays inside the response's range."""
    family = fit.family
    monotone = type(family).response_mean is Family.response_mean or what == "zero_part"
    scale = "link" if (type_pred == "link" or monotone) else "response"

    def f(t):
        return _point(fit, arrays, t, what, scale, None)

    J = _jacobian(f, theta)
    center = f(theta)
    se_scale = np.sqrt(np.einsum("ij,jk,ik->i", J, V, J)).reshape(np.shape(center))
    low, upp = center - z * se_scale, center + z * se_scale
    if scale == type_pred:
        return se_scale, low, upp
    if what == "zero_part":
        return se_scale, stats.logistic.cdf(low), stats.logistic.cdf(upp)
    # response scale through the link: h = n g⁻¹(η); se by the delta method
    n = 1.0
    if family.with_trials and "trials" in arrays.aux:
        n = arrays.aux["trials"]
    dh = n * (family.mean(center + 1e-6) - family.mean(center - 1e-6)) / 2e-6
    return np.abs(dh) * se_scale, n * family.mean(low), n * family.mean(upp)


def fitted(fit, type: str = "mean_subject") -> pd.Series:
    """Fitted response means of the data rows (``predict(type_pred="response")``); for an
    ordinal family the category probabilities, one column per category.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> fitted(fm1, "subject_specific").shape
    (800,)
    """
    return predict(fit, None, type_pred="response", type=type)


def residuals(fit, type: str = "subject_specific", kind: str = "response") -> pd.Series:
    """Residuals ``y − ŷ`` (``kind="response"``) or ``(y − ŷ)/√Var(y)`` (``"pearson"``).

    ``Var(y)`` is the family's conditional variance at the same linear predictor; for
    ``type="marginal"`` the marginal variance ``E_b Var + Var_b E`` by quadrature.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> float(residuals(fm1, kind="pearson").abs().max()) > 0
    True
    """
    _check("type", type, _TYPES[:3])
    _check("kind", kind, ("response", "pearson"))
    arrays = model_arrays(fit.design)
    mean = predict(fit, None, type_pred="response", type=type).to_numpy()
    if mean.ndim == 2:  # category probabilities: the mean of the category codes 1 … K
        mean = mean @ np.arange(1.0, mean.shape[1] + 1)
    resid = arrays.y[:, 0] - mean
    if kind == "pearson":
        resid = resid / np.sqrt(_variance(fit, arrays, type, mean))
    return pd.Series(resid, index=arrays.rows, name="residual")


def _variance(fit, arrays, what, mean) -> np.ndarray:
    family = fit.family
    beta, gamma, D, phis = _params(fit, fit.theta)
    eta0 = arrays.fixed_part(beta, gamma)

    def var_at(eta):
        row_phis, data = family.row_parts(phis, _data(family, arrays, eta))
        return family.response_variance(eta[:, 0], row_phis, **data)

    if what == "mean_subject":
        return var_at(eta0)
    if what == "subject_specific":
        return var_at(eta0 + np.einsum("neq,nq->ne", arrays.Z, fitted_effects(fit, arrays)))
    nodes, log_w = _rule(D.shape[0])
    L = _root(D)
    second = np.zeros(len(eta0))
    for z, lw in zip(nodes, log_w, strict=True):
        eta = eta0 + arrays.Z @ (L @ z)
        second += np.exp(lw) * (var_at(eta) + _response(family, arrays, eta, phis, False) ** 2)
    return second - mean**2


def coef(fit) -> pd.DataFrame:
    """Subject-specific coefficients: the fixed effects plus each group's random effects on
    the terms they share (random terms without a fixed counterpart are added as columns).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> coef(fm1).shape
    (100, 2)
    """
    d = fit.design
    if d.nested:  # as lme4: per factor, the fixed effects plus that factor's random effects
        return {
            name: _coef_table(fit, table[factor.random_names], factor.random_names)
            for factor, (name, table) in zip(d.factors, fit.ranef().items(), strict=True)
        }
    return _coef_table(fit, fit.ranef(), d.random_names[: d.q_main])


def _coef_table(fit, ranef: pd.DataFrame, names) -> pd.DataFrame:
    fixed = fit.fixef()
    out = pd.DataFrame(
        np.tile(fixed.to_numpy(), (len(ranef), 1)), index=ranef.index, columns=list(fixed.index)
    )
    for name in names:
        if name in out.columns:
            out[name] = out[name] + ranef[name].to_numpy()
        else:
            out[name] = ranef[name].to_numpy()
    return out


def _on_partitions(fit, newdata, type_pred, type, se_fit, level, n_draws, seed):
    """:func:`predict` of each partition of a dask DataFrame, on the workers."""
    local = dataclasses.replace(fit, cluster=None)  # the shards' actors stay on the driver

    def part(df):
        return predict(local, df, type_pred, type, se_fit, level, n_draws, seed)

    meta = part(newdata.head(2, npartitions=1)).iloc[:0]  # the output's columns and types
    if "subject_specific" in type and fit.design.group_name in newdata.columns:
        newdata = newdata.shuffle(on=fit.design.group_name, shuffle_method="tasks")
    return newdata.map_partitions(part, meta=meta)
