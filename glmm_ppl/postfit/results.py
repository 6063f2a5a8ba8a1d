"""The fitted mixed model: estimates, uncertainty and fit statistics (immutable).

Notation: ``θ = (β, γ, θ_D, log φ)`` as in :mod:`glmm_ppl.fitting.parameters` (``γ``: the zero
part's fixed effects, if any); ``vcov`` is the inverse of the negative Hessian of the objective
at ``θ̂`` (the log-likelihood plus the log prior, if any), on that scale. Variance components
are reported as ``D`` and, in :meth:`confint`, back-transformed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..design.matrices import Design
from ..design.row_weights import row_weights_of
from ..engine.covariance import theta_to_D
from ..families import Family
from ..fitting.optimize import OptSummary
from ..fitting.parameters import ParameterLayout
from ..fitting.penalty import StudentTPenalty
from . import effects as _effects
from . import factors as _factors
from . import marginal as _marginal
from . import predict as _predict
from . import quadcheck as _quadcheck
from . import sandwich as _sandwich
from . import scoring_rules as _scoring_rules
from . import simulate as _simulate
from . import sub_models as _sub_models
from . import summary as _summary
from . import tidy as _tidy
from .uncertainty import hessian_vcov, wald_confint

__all__ = ["MixedModelFit"]

_PARMS = ("all", "fixed-effects", "zero_part", "var-cov", "extra")


@dataclass(frozen=True, eq=False)
class MixedModelFit:
    """A generalized linear mixed model fitted by adaptive Gauss–Hermite quadrature.

    Returned by :func:`glmm_ppl.mixed_model`; not built by hand. The estimates are in
    :meth:`fixef`, :attr:`D` and :attr:`phis`, their covariance in :meth:`vcov`; the other
    methods give predictions, residuals, simulations and tables.

    Attributes
    ----------
    family : Family
        The family of the response.
    loglik : float
        Log-likelihood at the estimates; for penalized fits it includes the penalty, as
        GLMMadaptive's does (but not the log prior of a fit with ``priors=``).
    n_agq : int
        Quadrature points per random effect (1, the Laplace approximation, for crossed
        grouping factors).
    theta : ndarray
        All estimates on the scale of the optimization: fixed effects, the zero part's fixed
        effects, the log-Cholesky parameters of ``D`` (``D_jk``) and the logs of the extra
        parameters.
    layout : ParameterLayout
        Where each block of ``theta`` sits (``layout.blocks``) and the names of its entries.
    names : list of str
        The names of the entries of ``theta`` (the labels of ``vcov("all")``).
    hessian : ndarray
        Hessian of the objective at ``theta``.
    modes, post_cov : ndarray
        Empirical Bayes modes of the random effects (groups × random effects, groups in sorted
        label order) and their posterior covariance matrices (the inverse curvature).
    opt_summary : OptSummary
        What the optimizer did.
    warnings : tuple of str
        Problems found during the fit (non-convergence, a near-singular ``D``).
    log_prior : float
        Log prior density at the estimates of a MAP fit with ``priors=`` (0 without); the
        MAP estimates maximize ``loglik + log_prior``.
    rule_check : RuleCheck or None
        The log-likelihood at the estimates under a finer quadrature rule (``finer`` points,
        ``change``, ``coarse``: whether the change exceeds the tolerance); None when no finer
        rule fits within 100,000 nodes per group.
    design : object
        The arrays the model was fitted to (``design.rows``: the data index labels of the
        fitted rows, in the fit's order); for a fit on a dask DataFrame, a description
        without the rows, which stay on the workers.
    cluster : ClusterShards or None
        A fit on a dask DataFrame's shards and costs (docs: "Fitting on a cluster").

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> fit.nobs, fit.n_groups, fit.n_params, fit.converged
    (800, 100, 3, True)
    >>> fit.names
    ['(Intercept)', 'time', 'D_11']
    """

    family: Family
    design: Design = field(repr=False)
    theta: np.ndarray = field(repr=False)
    layout: ParameterLayout = field(repr=False)
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
    rule_check: object = field(default=None, repr=False)
    cluster: object = field(default=None, repr=False)

    # ---- sizes ---------------------------------------------------------------------------
    @property
    def nobs(self) -> int:
        """Number of observations used (rows with missing values are left out, and so are
        rows of row weight 0, which add nothing to the log-likelihood; as R's ``glm``).

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial").nobs
        800
        """
        return int(np.count_nonzero(row_weights_of(self.design)))

    @property
    def n_groups(self) -> int:
        """Number of groups (levels of the grouping factor; with several factors, of the one
        with the fewest levels, whose groups are independent only when the others are nested
        in it).

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
        >>> fit.n_groups
        100
        """
        return self.design.n_groups

    @property
    def n_params(self) -> int:
        """Number of estimated parameters (fixed effects, ``D`` and extra parameters).

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> gp.mixed_model("y ~ time", "~ time | id", df, "binomial").n_params  # 2 + 3
        5
        """
        return len(self.theta)

    @property
    def names(self) -> list[str]:
        """The names of the entries of ``theta``, as ``layout.names``.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> fit = gp.mixed_model("y ~ time", "~ time | id", gp.load_vignette("binary"), "binomial")
        >>> fit.names
        ['(Intercept)', 'time', 'D_11', 'D_12', 'D_22']
        """
        return self.layout.names

    @property
    def converged(self) -> bool:
        """Whether the optimizer converged.

        ``opt_summary`` and :meth:`summary` say more. A fit that did not converge is still
        returned, with a :class:`~glmm_ppl.ConvergenceWarning`.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
        >>> fit.converged
        True
        """
        return self.opt_summary.converged

    # ---- fit statistics ------------------------------------------------------------------
    @property
    def aic(self) -> float:
        """Akaike's information criterion ``−2 log L + 2k``, ``k`` the number of parameters.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> round(gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial").aic, 2)
        759.04
        """
        return -2.0 * self.loglik + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        """Bayesian information criterion ``−2 log L + k log n`` with ``n`` the number of
        groups, as GLMMadaptive (lme4 uses the number of observations); with crossed grouping
        factors, which have no independent groups, the number of observations.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> round(float(gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial").bic), 2)
        772.07
        """
        n = self.nobs if self.design.crossed else self.n_groups
        return float(-2.0 * self.loglik + np.log(n) * self.n_params)

    # ---- estimates -----------------------------------------------------------------------
    def fixef(self, sub_model: str = "main") -> pd.Series:
        """Fixed-effects estimates, named by the design columns.

        Parameters
        ----------
        sub_model : {"main", "zero_part", "dispersion"}
            ``"zero_part"``: the coefficients of the zero part (logit scale) of a zero-inflated
            or hurdle model; ``"dispersion"``: those of the dispersion sub-model (``disp_fixed``,
            log scale; the family's ``extra_sub_model``, such as an ordinal model's thresholds).

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> fm1.fixef().round(2).tolist()
        [-2.62, -1.32, 0.29, 0.04]
        """
        return _sub_models.fixef(self, sub_model)

    @property
    def D(self) -> pd.DataFrame | dict:
        """Covariance matrix of the random effects (zero-part ones prefixed ``zi_``); with
        several grouping factors, a dict of one matrix per factor, keyed by its name.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> gp.mixed_model("y ~ sex * time", "~ time || id", df, "binomial").D.round(3)
                     (Intercept)   time
        (Intercept)        0.921  0.000
        time               0.000  0.085
        """
        if self.design.nested:
            return _factors.D_by_factor(self)
        names = self.design.random_names
        theta_D = self.theta[self.layout.blocks["var-cov"]]
        D = theta_to_D(theta_D, len(names), self.design.diagonal)
        return pd.DataFrame(D, index=names, columns=names)

    @property
    def phis(self) -> pd.Series:
        """The family's extra parameters (natural scale), by name; empty when it has none. With
        a dispersion sub-model (no single value) or an ordinal model's thresholds (no natural
        scale) an error points to ``fixef("dispersion")`` or ``fixef("thresholds")``.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("poisson")
        >>> fit = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "negative_binomial")
        >>> fit.phis.index.tolist()
        ['size']
        """
        return _sub_models.natural_phis(self)

    def ranef(self, post_vars: bool = False) -> pd.DataFrame | dict:
        """Empirical Bayes modes of the random effects, one row per group; with several
        grouping factors, a dict of one table per factor (indexed by its units' labels,
        ``"3:2"`` for class 2 of school 3 under ``school/class``).

        Parameters
        ----------
        post_vars : bool
            Add the posterior variances (``var.<name>``) and, with several random effects,
            covariances (``cov.<a>.<b>``): the inverse curvature at the modes.

        Returns
        -------
        pandas.DataFrame
            Indexed by the group labels (sorted), one column per random effect.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> fm1.ranef(post_vars=True).head(3).round(3)
            (Intercept)  var.(Intercept)
        id
        1        -1.381            0.831
        2         2.366            0.798
        3         1.737            0.509
        """
        if self.design.nested:
            return _factors.ranef_by_factor(self, post_vars)
        return _factors.ranef_table(self, post_vars)

    # ---- uncertainty ---------------------------------------------------------------------
    def parameter_slice(self, parm: str) -> slice:
        """Where the block ``parm`` sits in ``theta``: ``"fixed-effects"``, ``"zero_part"``,
        ``"var-cov"``, ``"extra"`` or ``"all"``, as ``vcov`` takes them; a clear error for an
        unknown block or a zero part the family does not have.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
        >>> fit.parameter_slice("var-cov")
        slice(2, 3, None)
        """
        if parm not in _PARMS:
            raise ValueError(f"unknown parm {parm!r}; valid: {', '.join(map(repr, _PARMS))}")
        if parm == "zero_part" and self.design.X_zi is None:
            raise ValueError(
                f"the {self.family.name} family has no zero part; parm='zero_part' applies to "
                "zero-inflated and hurdle families"
            )
        return self.layout.blocks[parm]

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

        Returns
        -------
        pandas.DataFrame
            Labelled by the parameter names.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> fm1.vcov().round(4)
                        (Intercept)  sexfemale    time  sexfemale:time
        (Intercept)          0.1980    -0.1760 -0.0116          0.0100
        sexfemale           -0.1760     0.4144  0.0095         -0.0237
        time                -0.0116     0.0095  0.0016         -0.0014
        sexfemale:time       0.0100    -0.0237 -0.0014          0.0030
        >>> fm1.vcov("all").index.tolist()
        ['(Intercept)', 'sexfemale', 'time', 'sexfemale:time', 'D_11']
        """
        if sandwich:
            return _sandwich.sandwich_vcov(self, parm)
        return hessian_vcov(self, parm)

    def confint(self, parm="fixed-effects", level: float = 0.95, method: str = "wald"):
        """Confidence intervals: Wald (``method="wald"``) or profile likelihood (``"profile"``).

        Wald: fixed effects (and the zero part's, ``parm="zero_part"``) on their own scale;
        variances through the log scale (positive bounds), covariances by the delta method;
        extra parameters through the log scale. Profile: every parameter re-maximising
        over the others, variance components as standard deviations and correlations (as
        lme4 reports them), a lower end of 0 where the profile of a standard deviation
        does not reach the level (``glmm_ppl.postfit.profile.profile_confint``; ``parm``
        may also name rows, such as ``"sd.(Intercept)"``).

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> fm1.confint().columns.tolist()
        ['2.5 %', 'Estimate', '97.5 %']
        >>> fm1.confint("time", method="profile").round(3)
              2.5 %  Estimate  97.5 %
        time  0.211     0.285   0.367
        """
        if method == "profile":
            from .profile import profile_confint

            return profile_confint(self, parm, level)
        if method != "wald":
            raise ValueError(f"unknown method {method!r}; valid: 'wald', 'profile'")
        return wald_confint(self, parm, level)

    # ---- after the fit (the computations live in the modules imported below) ------------------
    def predict(self, newdata=None, type_pred="link", type="mean_subject", **kwargs):
        """Predictions for the fitted data or ``newdata``, optionally with standard errors.

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            The columns the formulas need (and, for ``type="subject_specific"`` with groups
            the fit did not see, the response and the grouping column). The fitted rows, in
            the fit's order (sorted by group), when omitted.
        type_pred : {"link", "response"}
            The scale: linear predictor or the mean of the response.
        type : str
            What is predicted (see Notes): ``"mean_subject"``, ``"marginal"``,
            ``"subject_specific"``, ``"zero_part"`` or ``"zero_part_subject_specific"``.
        se_fit : bool, default False
            Also standard errors and ``level`` intervals (keyword).
        level : float, default 0.95
            Level of the intervals (keyword).
        n_draws : int, default 200
            Draws of ``θ`` and ``b`` behind the subject-specific intervals (keyword).
        seed : int, optional
            Seed of those draws (keyword).

        Returns
        -------
        pandas.Series or pandas.DataFrame
            The predictions (indexed like the data rows), or with ``se_fit=True`` the columns
            ``pred``, ``se``, ``low``, ``upp``.

        Notes
        -----
        ``"mean_subject"``: a group whose random effects are 0; ``"marginal"``: averaged
        over the random-effects distribution (exactly, by quadrature; GLMMadaptive's
        marginal predictions use :meth:`marginal_coefs` instead); ``"subject_specific"``:
        with the empirical Bayes modes (groups the fit did not see get theirs from their
        rows of ``newdata``; with a zero part, its random effects enter the response mean
        too); ``"zero_part"``: the zero part's probability at ``b = 0``;
        ``"zero_part_subject_specific"``: the zero part's probability with the empirical Bayes
        modes (GLMMadaptive's ``zi_probs``). The module ``glmm_ppl.postfit.predict`` gives
        the formulas and how the standard errors are computed.

        Examples
        --------
        >>> import glmm_ppl as gp, pandas as pd
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> nd = pd.DataFrame({"time": [0.0, 5.0, 10.0], "sex": ["male", "female", "female"]})
        >>> fm1.predict(nd, type_pred="response", type="marginal", se_fit=True).round(3)
            pred     se    low    upp
        0  0.166  0.039  0.104  0.256
        1  0.195  0.038  0.132  0.280
        2  0.399  0.048  0.309  0.496
        >>> fm1.predict(nd).round(3).tolist()  # linear predictor of a group with b = 0
        [-2.619, -2.316, -0.69]
        """
        return _predict.predict(self, newdata, type_pred=type_pred, type=type, **kwargs)

    def fitted(self, type: str = "mean_subject") -> pd.Series:
        """Fitted response means of the data rows: ``predict(type_pred="response")``.

        Parameters
        ----------
        type : {"mean_subject", "marginal", "subject_specific", "zero_part"}
            As in :meth:`predict`.

        Returns
        -------
        pandas.Series
            In the fit's row order (sorted by group), indexed by the data's row labels.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> fm1.fitted().head(3).round(3).tolist()
        [0.068, 0.071, 0.106]
        >>> fm1.fitted("subject_specific").shape
        (800,)
        """
        return _predict.fitted(self, type)

    def residuals(self, type: str = "subject_specific", kind: str = "response") -> pd.Series:
        """Response residuals ``y − ŷ`` or Pearson residuals ``(y − ŷ)/√Var(y)``.

        Parameters
        ----------
        type : {"subject_specific", "mean_subject", "marginal"}
            Which fitted values ``ŷ`` (see :meth:`predict`).
        kind : {"response", "pearson"}
            ``Var(y)`` is the family's conditional variance at the same linear predictor;
            for ``type="marginal"`` the marginal variance ``E_b Var + Var_b E`` by
            quadrature.

        Returns
        -------
        pandas.Series
            In the fit's row order, indexed by the data's row labels.

        See Also
        --------
        glmm_ppl.scaled_residuals : Simulation-based residuals, uniform under the model.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> fm1.residuals(kind="pearson").head(3).round(3).tolist()
        [-0.135, -0.138, -0.173]
        """
        return _predict.residuals(self, type, kind)

    def coef(self) -> pd.DataFrame | dict:
        """Subject-specific coefficients: the fixed effects plus each group's random effects.

        Random effects on terms without a fixed counterpart are added as columns.

        Returns
        -------
        pandas.DataFrame
            One row per group (sorted labels), one column per coefficient.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> fm1.coef().head(3).round(3)
            (Intercept)  sexfemale   time  sexfemale:time
        id
        1        -4.000     -1.324  0.285            0.04
        2        -0.253     -1.324  0.285            0.04
        3        -0.882     -1.324  0.285            0.04
        """
        return _predict.coef(self)

    def marginal_coefs(self, std_errors: bool = False, **kwargs) -> pd.DataFrame:
        """Population-averaged coefficients (Hedeker et al. 2018), as GLMMadaptive's.

        The same as :func:`glmm_ppl.marginal_coefs` with this fit, which describes the
        computation, the keyword arguments and the result.

        Parameters
        ----------
        std_errors : bool
            Add delta-method standard errors, z-values and p-values.
        **kwargs
            ``n_agq``: quadrature points per random effect.

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> fm1.marginal_coefs()["Estimate"].round(2).tolist()
        [-1.59, -0.89, 0.17, 0.03]
        """
        return _marginal.marginal_coefs(self, std_errors=std_errors, **kwargs)

    def simulate(self, nsim: int = 1, seed=None, new_random_effects: bool = True) -> np.ndarray:
        """Draw responses from the fitted model.

        Parameters
        ----------
        nsim : int
            Number of simulated data sets.
        seed : int, numpy.random.Generator or None
            Seed of the random numbers (the same seed gives the same draws); a Generator is
            used as it is (and advanced); None draws fresh entropy.
        new_random_effects : bool
            True: each simulated data set draws new random effects ``b_i ~ N(0, D̂)`` (the
            unconditional distribution, as DHARMa and ``simulate(re.form = NA)`` in lme4).
            False: the random effects are held at the empirical Bayes modes (conditional on
            the groups' estimated effects).

        Returns
        -------
        ndarray, shape (N, nsim)
            One column per simulated data set; rows in the fit's order (sorted by group),
            whose data index labels are ``design.rows``. For counts of successes the draws
            use the fit's trials; for censored data they are uncensored draws. Row weights
            (``row_weights=``) are not used: each row is drawn once (a data set of the same
            shape cannot repeat rows), and a ``UserWarning`` says so. A cluster fit draws
            on its shards, each from its own stream of ``seed``.

        See Also
        --------
        glmm_ppl.scaled_residuals : DHARMa's residuals from such simulations.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> y = fm1.simulate(nsim=100, seed=1)
        >>> y.shape, bool((fm1.simulate(nsim=100, seed=1) == y).all())
        ((800, 100), True)
        """
        if self.cluster is not None:  # its rows are on the shards
            return self.cluster.simulate(self, nsim, seed, new_random_effects)
        return _simulate.simulate(self, nsim=nsim, seed=seed, new_random_effects=new_random_effects)

    def effect_plot_data(self, newdata, marginal: bool | str = False, level: float = 0.95):
        """Predictions of the fixed-effects part for ``newdata`` with a confidence band.

        The same as :func:`glmm_ppl.effect_plot_data` with this fit (which describes the
        parameters and the columns); draw the result with :func:`glmm_ppl.plot_effects`.
        ``marginal``: False (random effects at zero), True (the exact marginal mean, as
        ``predict(type="marginal")``) or ``"coefficients"`` (GLMMadaptive's ``g⁻¹(xᵀβ_M)``).

        Examples
        --------
        >>> import glmm_ppl as gp, pandas as pd
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> grid = pd.DataFrame({"time": [0.0, 10.0], "sex": ["female", "female"]})
        >>> fm1.effect_plot_data(grid, marginal=True)["pred_response"].round(3).tolist()
        [0.074, 0.399]
        >>> fm1.effect_plot_data(grid, marginal="coefficients")["pred_response"].round(3).tolist()
        [0.077, 0.396]
        """
        return _effects.effect_plot_data(self, newdata, marginal=marginal, level=level)

    def scoring_rules(self, newdata=None, **kwargs) -> pd.DataFrame:
        """Logarithmic, quadratic and spherical scores of each observation (discrete families).

        The same as :func:`glmm_ppl.scoring_rules` with this fit.

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            Data to score, with the response; the fitted data by default.
        **kwargs
            ``max_count``: the largest count of the support of count families.

        Returns
        -------
        pandas.DataFrame
            Columns ``id``, ``logarithmic``, ``quadratic``, ``spherical``.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> round(float(fm1.scoring_rules()["logarithmic"].sum()), 1)
        -262.9
        """
        return _scoring_rules.scoring_rules(self, newdata, **kwargs)

    def check_quadrature(self, n_agq=None, refit: bool = False) -> pd.DataFrame:
        """The log-likelihood at the estimates under finer quadrature rules.

        The same as :func:`glmm_ppl.check_quadrature` with this fit.

        Parameters
        ----------
        n_agq : int, sequence of int or None
            Points per random effect of the rules to try; by default two finer rules.
        refit : bool
            Also refit with each rule and report how far the estimates move.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``n_agq``, with ``logLik`` and its ``change`` from ``loglik``.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> bool(fm1.check_quadrature()["change"].abs().max() < 1e-3)
        True
        """
        return _quadcheck.check_quadrature(self, n_agq=n_agq, refit=refit)

    def to_dataframe(self, effects: str = "all", conf_level: float = 0.95) -> pd.DataFrame:
        """The estimates as a tidy table, one row per parameter (``broom.mixed::tidy``).

        The same as :func:`glmm_ppl.tidy` with this fit, but every block by default.

        Parameters
        ----------
        effects : str or list of str
            ``"fixed"``, ``"zero_part"``, ``"ran_pars"``, ``"extra"`` or ``"all"``.
        conf_level : float
            Level of the Wald confidence intervals.

        Returns
        -------
        pandas.DataFrame
            Columns ``effect``, ``term``, ``estimate``, ``std_error``, ``statistic``,
            ``p_value``, ``conf_low``, ``conf_high``.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> fm1.to_dataframe()["term"].tolist()
        ['(Intercept)', 'sexfemale', 'time', 'sexfemale:time', 'sd__(Intercept)']
        """
        return _tidy.tidy(self, effects=effects, conf_level=conf_level)

    def to_inference_data(self, draws: int = 4000, seed=None):
        """The fit as ArviZ ``InferenceData``: draws from the asymptotic normal of ``θ``.

        The same as :func:`glmm_ppl.to_inference_data` with this fit: the variables are
        those that :func:`glmm_ppl.sample` gives, so a MAP fit and a posterior can be compared
        with the same ArviZ calls.

        Parameters
        ----------
        draws : int
            Number of draws.
        seed : int, optional
            Seed of the draws.

        Returns
        -------
        arviz.InferenceData

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> idata = fm1.to_inference_data(draws=500, seed=1)
        >>> "beta" in idata.posterior
        True
        """
        from ..bayes.sampling import to_inference_data

        return to_inference_data(self, draws=draws, seed=seed)

    def glance(self) -> pd.DataFrame:
        """Fit statistics as a one-row table (``broom.mixed::glance``).

        The same as :func:`glmm_ppl.glance` with this fit.

        Returns
        -------
        pandas.DataFrame
            Columns ``nobs``, ``n_groups``, ``logLik``, ``AIC``, ``BIC``, ``df``,
            ``converged``, ``n_agq``, ``family``, ``link``.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> fm1.glance()[["nobs", "n_groups", "df"]].values.tolist()
        [[800, 100, 5]]
        """
        return _tidy.glance(self)

    # ---- display ---------------------------------------------------------------------------
    def summary(self):
        """A summary laid out like GLMMadaptive's.

        Data, fit statistics, random effects, the fixed-effects table, the quadrature and the
        optimizer, and any warning of the fit; print it, or let a notebook render it as HTML.

        Returns
        -------
        object
            Printable (``str``) and with an HTML representation.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> df = gp.load_vignette("binary")
        >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
        >>> print(fm1.summary())  # doctest: +ELLIPSIS
        Call:
        mixed_model(fixed = y ~ sex * time, random = ~ 1 | id, family = binomial(link='logit'))
        ...
        Fit statistics:
           log.Lik      AIC      BIC
         -374.5197 759.0394 772.0653
        ...
        Fixed effects:
                       Estimate Std.Err  z-value  p-value
        (Intercept)     -2.6191  0.4450  -5.8861  < 1e-04
        sexfemale       -1.3235  0.6438  -2.0558   0.0398
        time             0.2852  0.0396   7.2095  < 1e-04
        sexfemale:time   0.0401  0.0545   0.7361   0.4617
        ...
        """
        return _summary.Summary.from_fit(self)

    def __repr__(self) -> str:
        return (
            f"<MixedModelFit {self.design.fixed}, random {self.design.random}, "
            f"{self.family!r}: logLik {self.loglik:.4f}, {_factors.group_counts(self)}, "
            f"{'converged' if self.converged else 'NOT converged'}>"
        )
