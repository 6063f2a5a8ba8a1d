"""The fitted mixed model: estimates, uncertainty and fit statistics (immutable).

Notation: ``θ = (β, γ, θ_D, log φ)`` as in :mod:`glmm_ppl.model` (``γ``: the zero part's fixed
effects, if any); ``vcov`` is the inverse of the
negative Hessian of the objective at ``θ̂`` (the log-likelihood plus the log prior, if any), on
that scale. Variance components are reported as ``D`` and, in :meth:`confint`, back-transformed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .covariance import theta_to_D
from .design import Design
from .families import Family
from .fit import OptSummary
from .priors import StudentTPenalty

__all__ = ["MixedModelFit"]

_PARMS = ("all", "fixed-effects", "zero_part", "var-cov", "extra")


@dataclass(frozen=True, eq=False)
class MixedModelFit:
    """A generalized linear mixed model fitted by adaptive Gauss–Hermite quadrature.

    Returned by :func:`glmm_ppl.mixed_model`; not built by hand.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> fit.nobs, fit.n_groups, fit.n_params, fit.converged
    (800, 100, 3, True)

    Attributes
    ----------
    family : Family
    loglik : float
        Log-likelihood at the estimates; for penalized fits it includes the penalty, as
        GLMMadaptive's does.
    n_agq : int
        Quadrature points per random effect.
    converged : bool
    opt_summary : OptSummary
        What the optimizer did.
    warnings : tuple of str
        Problems found during the fit (non-convergence, a near-singular ``D``).
    """

    family: Family
    design: Design = field(repr=False)
    theta: np.ndarray = field(repr=False)
    names: list = field(repr=False)
    hessian: np.ndarray = field(repr=False)
    loglik: float
    n_agq: int
    penalty: StudentTPenalty | None
    opt_summary: OptSummary = field(repr=False)
    modes: np.ndarray = field(repr=False)
    post_cov: np.ndarray = field(repr=False)
    warnings: tuple = ()
    log_prior: float = 0.0
    priors: object = field(default=None, repr=False)

    # ---- sizes ---------------------------------------------------------------------------
    @property
    def nobs(self) -> int:
        """Number of observations used."""
        return self.design.nobs

    @property
    def n_groups(self) -> int:
        """Number of groups."""
        return self.design.n_groups

    @property
    def n_params(self) -> int:
        """Number of estimated parameters (fixed effects, ``D`` and extra parameters)."""
        return len(self.theta)

    @property
    def converged(self) -> bool:
        return self.opt_summary.converged

    # ---- fit statistics ------------------------------------------------------------------
    @property
    def aic(self) -> float:
        """``−2 log L + 2k``."""
        return -2.0 * self.loglik + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        """``−2 log L + k log n`` with ``n`` the number of groups, as GLMMadaptive."""
        return -2.0 * self.loglik + np.log(self.n_groups) * self.n_params

    # ---- estimates -----------------------------------------------------------------------
    def _blocks(self) -> dict[str, slice]:
        """Where each block of ``θ`` sits: fixed effects, zero part, ``D``, extra parameters."""
        d, k = self.design, len(self.theta)
        p = d.X.shape[1]
        p_zi = 0 if d.X_zi is None else d.X_zi.shape[1]
        n_phi = self.family.n_phis
        return {
            "fixed-effects": slice(0, p),
            "zero_part": slice(p, p + p_zi),
            "var-cov": slice(p + p_zi, k - n_phi),
            "extra": slice(k - n_phi, k),
            "all": slice(0, k),
        }

    def fixef(self, sub_model: str = "main") -> pd.Series:
        """Fixed-effects estimates, named by the design columns.

        Parameters
        ----------
        sub_model : {"main", "zero_part"}
            ``"zero_part"``: the coefficients of the zero part (logit scale) of a zero-inflated
            or hurdle model.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> fm1.fixef().round(2).tolist()
        [-2.62, -1.32, 0.29, 0.04]
        """
        if sub_model not in ("main", "zero_part"):
            raise ValueError(f"unknown sub_model {sub_model!r}; valid: 'main', 'zero_part'")
        if sub_model == "zero_part":
            if self.design.X_zi is None:
                raise ValueError(
                    f"the {self.family.name} family has no zero part; sub_model='zero_part' "
                    "applies to zero-inflated and hurdle families"
                )
            s, names = self._blocks()["zero_part"], self.design.zi_fixed_names
        else:
            s, names = self._blocks()["fixed-effects"], self.design.fixed_names
        return pd.Series(self.theta[s].copy(), index=list(names), name="Estimate")

    @property
    def D(self) -> pd.DataFrame:
        """Covariance matrix of the random effects (zero-part ones prefixed ``zi_``)."""
        names = self.design.random_names
        theta_D = self.theta[self._blocks()["var-cov"]]
        D = theta_to_D(theta_D, len(names), self.design.diagonal)
        return pd.DataFrame(D, index=names, columns=names)

    @property
    def phis(self) -> pd.Series:
        """The family's extra parameters (natural scale); empty when it has none."""
        values = np.exp(self.theta[self._blocks()["extra"]])
        return pd.Series(values, index=list(self.family.phi_names), dtype=float)

    def ranef(self, post_vars: bool = False) -> pd.DataFrame:
        """Empirical Bayes modes of the random effects, one row per group.

        Parameters
        ----------
        post_vars : bool
            Add the posterior variances (``var.<name>``) and, with several random effects,
            covariances (``cov.<a>.<b>``): the inverse curvature at the modes.
        """
        names = self.design.random_names
        q = len(names)
        out = pd.DataFrame(self.modes.copy(), index=self.design.groups, columns=names)
        if post_vars:
            for a in range(q):
                out[f"var.{names[a]}"] = self.post_cov[:, a, a]
            for a in range(q):
                for b in range(a + 1, q):
                    out[f"cov.{names[a]}.{names[b]}"] = self.post_cov[:, a, b]
        return out

    # ---- uncertainty ---------------------------------------------------------------------
    def _slice(self, parm: str) -> slice:
        if parm not in _PARMS:
            raise ValueError(f"unknown parm {parm!r}; valid: {', '.join(map(repr, _PARMS))}")
        if parm == "zero_part" and self.design.X_zi is None:
            raise ValueError(
                f"the {self.family.name} family has no zero part; parm='zero_part' applies to "
                "zero-inflated and hurdle families"
            )
        return self._blocks()[parm]

    def vcov(self, parm: str = "fixed-effects", sandwich: bool = False) -> pd.DataFrame:
        """Covariance matrix of the estimates: the inverse of the negative Hessian.

        Parameters
        ----------
        parm : {"fixed-effects", "zero_part", "var-cov", "extra", "all"}
            ``"zero_part"``: the zero part's fixed effects; ``"var-cov"`` is on the log-Cholesky
            scale (parameters ``D_jk``), ``"extra"`` on the log scale of the extra parameters.
        sandwich : bool
            The robust ("sandwich") covariance ``H⁻¹ (Σ_i w_i s_i s_iᵀ) H⁻¹`` from the
            per-group scores ``s_i`` (``w_i`` the group weights, 1 without), valid when
            the random-effects distribution or the variance function is misspecified.
        """
        if sandwich:
            from .robust import sandwich_vcov

            return sandwich_vcov(self, parm)
        s = self._slice(parm)
        try:
            V = np.linalg.inv(-self.hessian)[s, s]
        except np.linalg.LinAlgError:
            raise ValueError(
                "the Hessian is singular at the estimates, so there are no standard errors; "
                "the fit did not converge (see summary() and opt_summary)"
            ) from None
        # the zero part alone is named as fixef(sub_model="zero_part") names it; together with
        # the other blocks its names carry the zi_ prefix that keeps them apart
        names = self.design.zi_fixed_names if parm == "zero_part" else self.names[s]
        return pd.DataFrame(V, index=list(names), columns=list(names))

    def confint(self, parm: str = "fixed-effects", level: float = 0.95) -> pd.DataFrame:
        """Wald confidence intervals.

        Fixed effects (and the zero part's, with ``parm="zero_part"``) on their own scale;
        variance components back-transformed: variances through the log scale (so the bounds
        stay positive), covariances by the delta method; extra parameters through the log
        scale.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> fm1.confint().columns.tolist()
        ['2.5 %', 'Estimate', '97.5 %']
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1, got {level!r}")
        z = stats.norm.ppf(0.5 + level / 2)
        cols = [f"{100 * (1 - level) / 2:g} %", "Estimate", f"{100 * (1 + level) / 2:g} %"]
        parts = []
        blocks = [("fixed-effects", self.design.fixed_names)]
        if self.design.X_zi is not None:
            prefix = "" if parm == "zero_part" else "zi_"
            blocks.append(("zero_part", [prefix + n for n in self.design.zi_fixed_names]))
        for block, names in blocks:
            if parm in (block, "all"):
                est = self.theta[self._slice(block)]
                se = np.sqrt(np.diag(self.vcov(block)))
                parts.append(pd.DataFrame(np.c_[est - z * se, est, est + z * se], names, cols))
        if parm in ("var-cov", "all"):
            parts.append(self._confint_varcov(z, cols))
        if parm in ("extra", "all") and self.family.n_phis:
            s = self._slice("extra")
            est, se = self.theta[s], np.sqrt(np.diag(self.vcov("extra")))
            parts.append(
                pd.DataFrame(
                    np.exp(np.minimum(np.c_[est - z * se, est, est + z * se], 700.0)),
                    list(self.family.phi_names),
                    cols,
                )
            )
        if not parts:
            self._slice(parm)  # raises for an unknown parm
            return pd.DataFrame(columns=cols)
        return pd.concat(parts)

    def _confint_varcov(self, z: float, cols: list[str]) -> pd.DataFrame:
        s = self._slice("var-cov")
        names, diag = self.design.random_names, self.design.diagonal
        q = len(names)
        rows, cols_ = np.triu_indices(q) if not diag else (np.arange(q), np.arange(q))

        def vech(t):
            return theta_to_D(t, q, diag)[rows, cols_]

        t = self.theta[s]
        est = vech(t)
        h = 1e-6
        J = np.column_stack([(vech(t + h * e) - vech(t - h * e)) / (2 * h) for e in np.eye(len(t))])
        V = J @ self.vcov("var-cov").to_numpy() @ J.T
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

    # ---- after the fit (see the modules named for the details) ------------------------------
    def predict(self, newdata=None, type_pred="link", type="mean_subject", **kwargs):
        """Predictions; see :func:`glmm_ppl.predict.predict`."""
        from .predict import predict

        return predict(self, newdata, type_pred=type_pred, type=type, **kwargs)

    def fitted(self, type: str = "mean_subject") -> pd.Series:
        """Fitted response means; see :func:`glmm_ppl.predict.fitted`."""
        from .predict import fitted

        return fitted(self, type)

    def residuals(self, type: str = "subject_specific", kind: str = "response") -> pd.Series:
        """Response or Pearson residuals; see :func:`glmm_ppl.predict.residuals`."""
        from .predict import residuals

        return residuals(self, type, kind)

    def coef(self) -> pd.DataFrame:
        """Subject-specific coefficients; see :func:`glmm_ppl.predict.coef`."""
        from .predict import coef

        return coef(self)

    def marginal_coefs(self, std_errors: bool = False, **kwargs) -> pd.DataFrame:
        """Population-averaged coefficients; see :func:`glmm_ppl.marginal.marginal_coefs`."""
        from .marginal import marginal_coefs

        return marginal_coefs(self, std_errors=std_errors, **kwargs)

    def simulate(self, nsim: int = 1, seed=None, new_random_effects: bool = True) -> np.ndarray:
        """Responses drawn from the fitted model; see :func:`glmm_ppl.simulate.simulate`."""
        from .simulate import simulate

        return simulate(self, nsim=nsim, seed=seed, new_random_effects=new_random_effects)

    def effect_plot_data(self, newdata, marginal: bool = False, level: float = 0.95):
        """Effect-plot table; see :func:`glmm_ppl.effects.effect_plot_data`."""
        from .effects import effect_plot_data

        return effect_plot_data(self, newdata, marginal=marginal, level=level)

    def scoring_rules(self, newdata=None, **kwargs) -> pd.DataFrame:
        """Proper scoring rules; see :func:`glmm_ppl.scoring.scoring_rules`."""
        from .scoring import scoring_rules

        return scoring_rules(self, newdata, **kwargs)

    def check_quadrature(self, n_agq=None, refit: bool = False) -> pd.DataFrame:
        """The integration error; see :func:`glmm_ppl.quadcheck.check_quadrature`."""
        from .quadcheck import check_quadrature

        return check_quadrature(self, n_agq=n_agq, refit=refit)

    def to_dataframe(self, effects: str = "all", conf_level: float = 0.95) -> pd.DataFrame:
        """Tidy table of the estimates; see :func:`glmm_ppl.tidy.tidy`."""
        from .tidy import tidy

        return tidy(self, effects=effects, conf_level=conf_level)

    def to_inference_data(self, draws: int = 4000, seed=None):
        """The fit as ArviZ ``InferenceData`` (draws from the asymptotic normal of ``θ``); see
        :func:`glmm_ppl.bayes.to_inference_data`."""
        from .bayes import to_inference_data

        return to_inference_data(self, draws=draws, seed=seed)

    def glance(self) -> pd.DataFrame:
        """One-row table of fit statistics; see :func:`glmm_ppl.tidy.glance`."""
        from .tidy import glance

        return glance(self)

    # ---- display ---------------------------------------------------------------------------
    def summary(self):
        """A summary printed like GLMMadaptive's (data, fit statistics, random effects, fixed
        effects table, quadrature and optimizer); also renders as HTML in notebooks."""
        from .summary import Summary

        return Summary.from_fit(self)

    def __repr__(self) -> str:
        return (
            f"<MixedModelFit {self.design.fixed}, random {self.design.random}, "
            f"{self.family!r}: logLik {self.loglik:.4f}, {self.n_groups} groups, "
            f"{'converged' if self.converged else 'NOT converged'}>"
        )
