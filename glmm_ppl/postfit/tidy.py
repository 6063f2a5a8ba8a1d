"""A fit as tidy tables, in the layout of broom.mixed: :func:`tidy` (one row per parameter)
and :func:`glance` (one row per model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..engine.covariance import free_entries, theta_to_D
from .sub_models import extra_coefficients, extra_covariance, extra_labels

__all__ = ["tidy", "glance"]

_EFFECTS = ("fixed", "zero_part", "ran_pars", "extra")
_COLUMNS = [
    "effect",
    "term",
    "estimate",
    "std_error",
    "statistic",
    "p_value",
    "conf_low",
    "conf_high",
]


def _wald_rows(effect: str, est: pd.Series, V: pd.DataFrame, z: float) -> pd.DataFrame:
    se = np.sqrt(np.diag(V.to_numpy()))
    values = est.to_numpy(dtype=float)
    statistic = values / se
    return pd.DataFrame(
        {
            "effect": effect,
            "term": list(est.index),
            "estimate": values,
            "std_error": se,
            "statistic": statistic,
            "p_value": 2.0 * stats.norm.sf(np.abs(statistic)),
            "conf_low": values - z * se,
            "conf_high": values + z * se,
        }
    )


def _ran_pars(fit, level: float) -> pd.DataFrame:
    d = fit.design
    D = theta_to_D(fit.theta[fit.layout.blocks["var-cov"]], d.q, d.diagonal)
    names = list(d.random_names)
    sd = np.sqrt(np.diag(D))
    ci = fit.confint("var-cov", level=level)
    rows = []
    for a, name in enumerate(names):
        low = high = np.nan
        if f"var.{name}" in ci.index:
            bounds = ci.loc[f"var.{name}"].to_numpy(dtype=float)
            low, high = np.sqrt(np.clip(bounds[[0, 2]], 0.0, None))
        rows.append((f"sd__{name}", sd[a], low, high))
    for a, b in zip(*free_entries(d.q, d.diagonal), strict=True):
        if a < b:
            corr = D[a, b] / (sd[a] * sd[b]) if sd[a] * sd[b] > 0 else np.nan
            rows.append((f"cor__{names[a]}.{names[b]}", corr, np.nan, np.nan))
    out = pd.DataFrame(rows, columns=["term", "estimate", "conf_low", "conf_high"])
    out.insert(0, "effect", "ran_pars")
    return out


def _extra(fit, level: float) -> pd.DataFrame:
    if not fit.family.n_phis:
        return pd.DataFrame(columns=_COLUMNS)
    coefficients = extra_coefficients(fit)
    if coefficients is not None:  # a dispersion sub-model's, tested against 0 as fixed effects
        est = pd.Series(coefficients[1].to_numpy(), index=extra_labels(fit))
        V = extra_covariance(fit)
        return _wald_rows("extra", est, V, stats.norm.ppf(0.5 + level / 2))
    ci = fit.confint("extra", level=level).to_numpy(dtype=float)
    phis = fit.phis
    se_log = np.sqrt(np.diag(fit.vcov("extra").to_numpy()))
    return pd.DataFrame(
        {
            "effect": "extra",
            "term": list(phis.index),
            "estimate": phis.to_numpy(),
            "std_error": phis.to_numpy() * se_log,  # delta method from the log scale
            "statistic": np.nan,
            "p_value": np.nan,
            "conf_low": ci[:, 0],
            "conf_high": ci[:, 2],
        }
    )


def tidy(fit, effects="fixed", conf_level: float = 0.95) -> pd.DataFrame:
    """The estimates as a table, one row per parameter, like ``broom.mixed::tidy``.

    Parameters
    ----------
    fit : MixedModelFit
    effects : str or list of str
        ``"fixed"`` (fixed effects), ``"zero_part"`` (the zero part's fixed effects, logit
        scale), ``"ran_pars"`` (standard deviations ``sd__<effect>`` and correlations
        ``cor__<a>.<b>`` of the random effects), ``"extra"`` (the family's extra parameters,
        natural scale; the coefficients of a dispersion sub-model, ``disp_<column>``, on the
        log scale with z tests as the fixed effects') or ``"all"`` (every block the model
        has); or a list of them.
    conf_level : float
        Level of the Wald confidence intervals. Standard deviations get the square roots of
        the bounds of :meth:`MixedModelFit.confint` for the variances; correlations get none;
        extra parameters get :meth:`MixedModelFit.confint`'s (from the log scale).

    Returns
    -------
    pandas.DataFrame
        Columns ``effect``, ``term``, ``estimate``, ``std_error``, ``statistic`` (z),
        ``p_value``, ``conf_low``, ``conf_high``; ``NaN`` where a column does not apply
        (random-effect parameters have an estimate and, for standard deviations, bounds;
        extra parameters have no test against 0).

    Raises
    ------
    ValueError
        For an unknown ``effects`` or ``conf_level`` outside (0, 1), or ``"zero_part"``
        for a family without a zero part.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.postfit.tidy import tidy
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> t = tidy(fm1, effects="all")
    >>> t[["effect", "term"]].values.tolist()[-2:]
    [['fixed', 'sexfemale:time'], ['ran_pars', 'sd__(Intercept)']]
    >>> t.columns.tolist()[2:5]
    ['estimate', 'std_error', 'statistic']
    """
    if not (isinstance(conf_level, (int, float)) and 0 < conf_level < 1):
        raise ValueError(f"conf_level must be between 0 and 1, got {conf_level!r}")
    valid = (*_EFFECTS, "all")
    wanted = [effects] if isinstance(effects, str) else list(effects)
    unknown = [e for e in wanted if e not in valid]
    if unknown or not wanted:
        raise ValueError(
            f"unknown effects {', '.join(map(repr, unknown)) or '(none given)'}; valid: "
            f"{', '.join(map(repr, valid))}"
        )
    has_zero = fit.design.X_zi is not None
    if "zero_part" in wanted and not has_zero:
        raise ValueError(
            f"the {fit.family.name} family has no zero part; effects='zero_part' applies to "
            "zero-inflated and hurdle families"
        )
    if "all" in wanted:
        wanted = [e for e in _EFFECTS if e != "zero_part" or has_zero]
    z = stats.norm.ppf(0.5 + conf_level / 2)
    parts = []
    for effect in _EFFECTS:
        if effect not in wanted:
            continue
        if effect == "fixed":
            parts.append(_wald_rows("fixed", fit.fixef(), fit.vcov("fixed-effects"), z))
        elif effect == "zero_part":
            est, V = fit.fixef("zero_part"), fit.vcov("zero_part")
            parts.append(_wald_rows("zero_part", est, V, z))
        elif effect == "ran_pars":
            parts.append(_ran_pars(fit, conf_level))
        else:
            parts.append(_extra(fit, conf_level))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=_COLUMNS)
    out = pd.concat(parts, ignore_index=True).reindex(columns=_COLUMNS)
    for col in _COLUMNS[2:]:
        out[col] = out[col].astype(float)
    return out


def glance(fit) -> pd.DataFrame:
    """Fit statistics as a one-row table, like ``broom.mixed::glance``.

    Parameters
    ----------
    fit : MixedModelFit

    Returns
    -------
    pandas.DataFrame
        Columns ``nobs``, ``n_groups``, ``logLik`` (including the penalty of a penalized
        fit, as ``fit.loglik``), ``AIC``, ``BIC`` (``n`` = number of groups), ``df`` (number
        of parameters), ``converged``, ``n_agq``, ``family``, ``link``.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.postfit.tidy import glance
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> g = glance(fm1)
    >>> g[["nobs", "n_groups", "df", "family", "link"]].values.tolist()
    [[800, 100, 5, 'binomial', 'logit']]
    """
    return pd.DataFrame(
        {
            "nobs": [int(fit.nobs)],
            "n_groups": [int(fit.n_groups)],
            "logLik": [float(fit.loglik)],
            "AIC": [float(fit.aic)],
            "BIC": [float(fit.bic)],
            "df": [int(fit.n_params)],
            "converged": [bool(fit.converged)],
            "n_agq": [int(fit.n_agq)],
            "family": [fit.family.name],
            "link": [fit.family.link.name],
        }
    )
