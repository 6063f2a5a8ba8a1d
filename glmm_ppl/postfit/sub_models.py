"""The coefficients of a fit's sub-models: the main part's and the zero part's fixed effects,
and the family's extra parameters when they are reported as coefficients
(:meth:`glmm_ppl.families.Family.extra_coefficients`: a dispersion sub-model, ``disp_fixed``,
or an ordinal model's thresholds), with their covariance by the delta method.

A dispersion sub-model's coefficients ``γ`` are the fit's extra entries of ``θ`` themselves:
``exp(γ)`` is no extra parameter of any row, so the natural-scale views of the extra
parameters (``fit.phis``) are refused for it and point here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["extra_coefficients", "extra_covariance", "extra_labels", "fixef", "natural_phis"]


def _valid(fit) -> tuple[str, ...]:
    extra = fit.family.extra_sub_model
    return ("main", "zero_part") + ((extra,) if extra else ())


def fixef(fit, sub_model: str = "main") -> pd.Series:
    """The estimates of one sub-model (:meth:`MixedModelFit.fixef`).

    Raises
    ------
    ValueError
        For an unknown ``sub_model`` (the message lists the fit's), or ``"zero_part"`` for a
        family without a zero part.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> fixef(fm1).index.tolist()
    ['(Intercept)', 'time']
    >>> fixef(fm1, "dispersion")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown sub_model 'dispersion'; valid: 'main', 'zero_part' (a dispersion ...
    """
    valid = _valid(fit)
    if sub_model not in valid:
        hint = (
            " (a dispersion sub-model needs disp_fixed= in mixed_model)"
            if sub_model == "dispersion"
            else ""
        )
        raise ValueError(
            f"unknown sub_model {sub_model!r}; valid: {', '.join(map(repr, valid))}{hint}"
        )
    if sub_model == "zero_part":
        if fit.design.X_zi is None:
            raise ValueError(
                f"the {fit.family.name} family has no zero part; sub_model='zero_part' "
                "applies to zero-inflated and hurdle families"
            )
        s, names = fit.layout.blocks["zero_part"], fit.design.zi_fixed_names
    elif sub_model == "main":
        s, names = fit.layout.blocks["fixed-effects"], fit.design.fixed_names
    else:
        return extra_coefficients(fit)[1]
    return pd.Series(fit.theta[s].copy(), index=list(names), name="Estimate")


def _table(fit):
    return fit.family.extra_coefficients(fit.theta[fit.layout.blocks["extra"]])


def extra_coefficients(fit) -> tuple[str, pd.Series] | None:
    """The title and values of the extra parameters' table of coefficients, or None when the
    family reports them on their natural scale.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> extra_coefficients(fm1) is None
    True
    """
    table = _table(fit)
    if table is None:
        return None
    title, names, values, _ = table
    return title, pd.Series(np.asarray(values, dtype=float), index=list(names), name="Estimate")


def extra_labels(fit) -> list[str]:
    """The names of the extra coefficients among all the fit's parameters: a dispersion
    sub-model's as ``disp_<column>`` (as in ``fit.names``), others as the family names them."""
    if fit.family.disp_names:
        return list(fit.family.phi_names)
    return list(extra_coefficients(fit)[1].index)


def extra_covariance(fit, sandwich: bool = False) -> pd.DataFrame:
    """Covariance of the extra coefficients, ``J V Jᵀ`` with ``V = fit.vcov("extra")`` and
    ``J`` the Jacobian of the coefficients in the fit's extra entries.

    Examples
    --------
    >>> import numpy as np, pandas as pd, glmm_ppl as gp
    >>> rng = np.random.default_rng(1)
    >>> df = pd.DataFrame({"id": np.repeat(np.arange(40), 5), "grp": np.tile(["a", "b"], 100)})
    >>> sigma = np.where(df["grp"] == "a", 0.5, 2.0)
    >>> df["y"] = rng.normal(size=40)[df["id"]] + sigma * rng.normal(size=200)
    >>> fit = gp.mixed_model("y ~ 1", "~ 1 | id", df, "gaussian", disp_fixed="~ grp")
    >>> fit.fixef("dispersion").round(1).tolist()  # log 0.5, log 4
    [-0.7, 1.4]
    >>> extra_covariance(fit).index.tolist()
    ['(Intercept)', 'grpb']
    """
    title, names, values, J = _table(fit)
    J = np.asarray(J, dtype=float)
    V = J @ fit.vcov("extra", sandwich=sandwich).to_numpy() @ J.T
    return pd.DataFrame(V, index=list(names), columns=list(names))


def natural_phis(fit) -> pd.Series:
    """The extra parameters on their natural scale (:attr:`MixedModelFit.phis`).

    Raises
    ------
    ValueError
        With a dispersion sub-model, whose parameter differs by row.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("poisson"),
    ...                      "negative_binomial")
    >>> natural_phis(fit).index.tolist()
    ['size']
    """
    family = fit.family
    if family.extra_sub_model == "thresholds":
        raise ValueError(
            f"the {family.name} family's extra parameters are its thresholds, which have no "
            "natural scale: they are fit.fixef('thresholds'), with standard errors in "
            "fit.summary() and fit.to_dataframe('extra')"
        )
    if family.disp_names:
        base = type(family).phi_names[0]
        raise ValueError(
            f"the {family.name} {base} follows a dispersion sub-model (disp_fixed), so it "
            "differs by row and has no single value: its coefficients (log scale) are "
            "fit.fixef('dispersion'), with standard errors in fit.summary() and "
            "fit.to_dataframe('extra')"
        )
    values = np.exp(fit.theta[fit.layout.blocks["extra"]])
    return pd.Series(values, index=list(family.phi_names), dtype=float)
