"""The covariance of a fit's estimates (inverse negative Hessian) and Wald confidence intervals,
each parameter on a scale where it is near normal."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..engine.covariance import free_entries, theta_to_D
from ..fitting.glm import central_differences
from .sub_models import extra_coefficients, extra_covariance, extra_labels

__all__ = ["hessian_vcov", "wald_confint"]


def hessian_vcov(fit, parm: str = "fixed-effects") -> pd.DataFrame:
    """The block ``parm`` of ``(−H)⁻¹``, ``H`` the Hessian of the objective at the estimates
    (:meth:`MixedModelFit.vcov`), labelled by the parameter names.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> hessian_vcov(fm1, "all").shape
    (3, 3)
    """
    s = fit.parameter_slice(parm)
    try:
        V = np.linalg.inv(-fit.hessian)[s, s]
    except np.linalg.LinAlgError:
        raise ValueError(
            "the Hessian is singular at the estimates, so there are no standard errors; "
            "the fit did not converge (see summary() and opt_summary)"
        ) from None
    # the zero part alone is named as fixef(sub_model="zero_part") names it; together with
    # the other blocks its names carry the zi_ prefix that keeps them apart
    names = fit.design.zi_fixed_names if parm == "zero_part" else fit.names[s]
    return pd.DataFrame(V, index=list(names), columns=list(names))


def wald_confint(fit, parm: str = "fixed-effects", level: float = 0.95) -> pd.DataFrame:
    """Wald confidence intervals of a fit's parameters (:meth:`MixedModelFit.confint`).

    Fixed effects (and the zero part's) on their own scale; variances through the log scale
    (so the bounds stay positive), covariances by the delta method; extra parameters through
    the log scale, or, when the family reports them as coefficients (a dispersion sub-model's,
    named ``disp_<column>``), those on their own scale.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> wald_confint(fm1, "var-cov").round(3)
                      2.5 %  Estimate  97.5 %
    var.(Intercept)   2.931     4.648   7.371
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level!r}")
    z = stats.norm.ppf(0.5 + level / 2)
    cols = [f"{100 * (1 - level) / 2:g} %", "Estimate", f"{100 * (1 + level) / 2:g} %"]
    parts = []
    blocks = [("fixed-effects", fit.design.fixed_names)]
    if fit.design.X_zi is not None:
        prefix = "" if parm == "zero_part" else "zi_"
        blocks.append(("zero_part", [prefix + n for n in fit.design.zi_fixed_names]))
    for block, names in blocks:
        if parm in (block, "all"):
            est = fit.theta[fit.parameter_slice(block)]
            se = np.sqrt(np.diag(fit.vcov(block)))
            parts.append(pd.DataFrame(np.c_[est - z * se, est, est + z * se], names, cols))
    if parm in ("var-cov", "all"):
        parts.append(_varcov(fit, z, cols))
    coefficients = extra_coefficients(fit) if fit.family.n_phis else None
    if parm in ("extra", "all") and coefficients is not None:  # e.g. a dispersion sub-model
        est = coefficients[1].to_numpy()
        se = np.sqrt(np.diag(extra_covariance(fit).to_numpy()))
        parts.append(pd.DataFrame(np.c_[est - z * se, est, est + z * se], extra_labels(fit), cols))
    elif parm in ("extra", "all") and fit.family.n_phis:
        s = fit.parameter_slice("extra")
        est, se = fit.theta[s], np.sqrt(np.diag(fit.vcov("extra")))
        parts.append(
            pd.DataFrame(
                np.exp(np.minimum(np.c_[est - z * se, est, est + z * se], 700.0)),
                list(fit.family.phi_names),
                cols,
            )
        )
    if not parts:
        fit.parameter_slice(parm)  # raises for an unknown parm
        return pd.DataFrame(columns=cols)
    return pd.concat(parts)


def _varcov(fit, z: float, cols: list[str]) -> pd.DataFrame:
    """Variances (through the log scale) and covariances (delta method) of ``D``."""
    s = fit.parameter_slice("var-cov")
    names, diag = fit.design.random_names, fit.design.diagonal
    q = len(names)
    rows, cols_ = free_entries(q, diag)

    def vech(t):
        return theta_to_D(t, q, diag)[rows, cols_]

    t = fit.theta[s]
    est = vech(t)
    J = central_differences(vech, t, 1e-6)
    V = J @ fit.vcov("var-cov").to_numpy() @ J.T
    out, labels = [], []
    for k, (a, b) in enumerate(zip(rows, cols_, strict=False)):
        se = np.sqrt(V[k, k])
        if a == b:
            se_log = se / est[k]
            out.append(est[k] * np.exp([-z * se_log, 0.0, z * se_log]))
            labels.append(f"var.{names[a]}")
        else:
            out.append([est[k] - z * se, est[k], est[k] + z * se])
            labels.append(f"cov.{names[a]}.{names[b]}")
    return pd.DataFrame(np.array(out), labels, cols)
