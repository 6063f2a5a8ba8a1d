"""``mixed_model``: from formulas and a data frame to a fitted model."""

from __future__ import annotations

import difflib
import inspect
import warnings

import pandas as pd

from .design.dask_data import is_dask_dataframe
from .design.formula import split_bambi_formula
from .design.matrices import build_design, split_fixed
from .families import Family, get_family
from .fit_result import fit_result
from .fitting.blas import blas_threads
from .fitting.graph import MixedModelGraph
from .fitting.identification import (
    SingularFitWarning,
    check_identified,
    scale_advice,
)
from .fitting.optimize import Control
from .fitting.parameters import ParameterLayout, phis_from_coefficients
from .fitting.penalty import make_penalty
from .fitting.rule import (
    QuadratureWarning,
    check_nodes,
    check_points,
    default_points,
    fit_checked,
)
from .postfit.results import MixedModelFit

__all__ = ["mixed_model", "SingularFitWarning", "QuadratureWarning"]


#: the R spellings users bring (GLMMadaptive, lme4, glmmTMB) of mixed_model's keywords
_R_NAMES = {"nAGQ": "n_agq", "formula": "fixed", "ziformula": "zi_fixed", "start": "initial_values"}


def _unknown_keywords(unknown: dict) -> str:
    """The error for keywords mixed_model does not take, with the one that was meant."""
    keywords = [k for k in inspect.signature(mixed_model).parameters if k != "unknown"]
    name = sorted(unknown)[0]
    meant = _R_NAMES.get(name) or next(
        iter(difflib.get_close_matches(name.lower(), keywords, n=1, cutoff=0.6)), None
    )
    hint = f"; did you mean {meant!r}?" if meant else f"; it takes {', '.join(keywords)}"
    return f"mixed_model() got an unexpected keyword argument {name!r}{hint}"


def _has_zero_part(family) -> bool:
    """Whether ``family`` names a zero-inflated or hurdle family (False for one not known)."""
    try:
        return bool(get_family(family).zero_part)
    except (TypeError, ValueError):
        return False


def _formulas(fixed, random, zi_random=None, family=None) -> tuple[str, str | None]:
    """The fixed and random formulas, from two formulas or from one with ``(… | g)`` in it;
    ``random`` is None when only the zero part has random effects (``zi_random``)."""
    split_fixed(fixed)  # a formula 'response ~ terms', or its error
    in_fixed, in_random = split_bambi_formula(fixed)
    if random is None:
        if in_random is None:
            if zi_random is not None:
                return fixed, None
            zero = (
                "; or, for random effects in the zero part only, give them as zi_random ('~ 1 | g')"
                if family is not None and _has_zero_part(family)
                else ""
            )
            raise ValueError(
                f"no random effects in {fixed!r}: add them to the formula as bambi does "
                f"('y ~ x + (1 | g)') or give them as random ('~ 1 | g'){zero}"
            )
        return in_fixed, in_random
    if in_random is not None:
        raise ValueError(
            f"random effects given twice, in the formula {fixed!r} and as random={random!r}: "
            "give them in one place"
        )
    return fixed, random


def mixed_model(
    fixed: str,
    random: str | None = None,
    data: pd.DataFrame | None = None,
    family: str | Family | None = None,
    *,
    n_agq: int | None = None,
    penalized: bool | dict = False,
    priors: dict | None = None,
    zi_fixed: str | None = None,
    zi_random: str | None = None,
    offset=None,
    weights=None,
    trials: str | None = None,
    censoring: str | None = None,
    row_weights=None,
    disp_fixed: str | None = None,
    initial_values: dict | None = None,
    control: dict | Control | None = None,
    client=None,
    n_shards: int | None = None,
    **unknown,
) -> MixedModelFit:
    """Fit a generalized linear mixed model by adaptive Gauss–Hermite quadrature.

    The random effects ``b_i ~ N(0, D)`` of each group are integrated out of
    ``p(y_i) = ∫ Π_j p(y_ij | x_ijᵀβ + z_ijᵀb_i) N(b_i; 0, D) db_i``, and ``β``, ``D`` (and any
    extra parameters of the family) maximise the log-likelihood (plus the log penalty).

    Parameters
    ----------
    fixed : str
        ``"y ~ terms"`` in R's formula syntax; ``offset(expr)`` terms are offsets. For
        successes out of trials write ``"p(successes, trials) ~ terms"`` (bambi) or
        ``"cbind(successes, failures) ~ terms"`` (R); for censored data
        ``"cbind(y, indicator) ~ terms"``. Without ``random``, the formula holds the random
        effects too, as bambi and lme4 write them: ``"y ~ x + (1 | g)"``, ``"y ~ x + (x | g)"``
        or ``"y ~ x + (x || g)"`` (one such term, one grouping column).
    random : str, optional
        ``"~ 1 | g"`` (random intercepts), ``"~ x | g"`` (correlated intercepts and slopes, full
        ``D``) or ``"~ x || g"`` (independent, diagonal ``D``); ``g`` is a column of ``data``.
        Leave it out when ``fixed`` has a ``(… | g)`` term, or when only the zero part has
        random effects (``zi_random``). With ``random`` left out the data and family may
        follow the formula positionally: ``mixed_model(formula, df, family)``.
    data : pandas.DataFrame or dask.dataframe.DataFrame
        A dask DataFrame is fitted on the Dask cluster of ``client`` (by default the current
        ``distributed.Client``): its groups are split over long-lived shards on the workers,
        and the fit is the one a pandas DataFrame of the same rows gets (see the docs page
        "Fitting on a cluster"; one grouping column, 4 or more points).
    family : str or Family
        A name (``"binomial"``, ``"poisson"``, ``"negative_binomial"``, ``"gamma"``…; see
        :data:`glmm_ppl.families.FAMILIES`) or a family object such as
        ``glmm_ppl.families.binomial(link="probit")`` or one written by the user.
        ``"cumulative"`` fits an ordinal response (an ordered categorical or integer codes)
        by a cumulative-link model, as R's ``clmm``: thresholds replace the intercept.
    n_agq : int or "auto", optional
        Quadrature points per random effect; 11 with at most two random effects, 7 otherwise
        (as GLMMadaptive) and with nested grouping factors, whose groups' integrals have the
        effects of all their units; 1 (the Laplace approximation, the only choice) with
        crossed ones; at most 100, and ``n_agq**q`` at most 100,000. After the fit, the
        log-likelihood at the estimates is evaluated with a finer rule (one evaluation, see
        :func:`glmm_ppl.check_quadrature`); a change above ``control={"rule_tol": ...}``
        (0.005 by default) is a :class:`QuadratureWarning`. ``"auto"`` starts from the
        default and refits with about 1.5 times the points until that change is within the
        tolerance; ``fit.n_agq`` is the rule it settled on.
    penalized : bool or dict
        ``True`` adds GLMMadaptive's Student-t penalty on the fixed effects (df 3, mean 0,
        scale 1); a dict with keys ``pen_mu``, ``pen_sigma``, ``pen_df`` sets it.
    zi_fixed, zi_random : str, optional
        Zero-inflated and hurdle families only: the fixed effects (``"~ x"``, logit link;
        ``"~ 1"`` by default) and random effects (``"~ 1 | g"``, same grouping column) of the
        zero part. Its random effects join the main ones in one ``D``, correlated unless
        either formula uses ``||`` (then ``D`` is diagonal). With ``random=None`` and no
        ``(… | g)`` term in ``fixed``, the zero part alone has random effects (glmmTMB's
        ``ziformula = ~ x + (1 | g)`` with none in the conditional model); the groups are
        then those of ``zi_random``'s grouping column.
    offset : str, pandas.Series or array-like, optional
        Added to the main linear predictor, as ``offset(...)`` in ``fixed``: a column name, a
        Series matched to ``data`` by index label, or an array with one value per row.
    weights : str, pandas.Series or array-like, optional
        One positive weight per group multiplying its log-likelihood (as replicates of the
        group): a column constant within groups, a Series indexed by group label, or an array
        in the sorted order of the group labels.
    trials : str, optional
        Column of numbers of trials: the response then counts successes (binomial,
        zi_binomial, beta_binomial).
    censoring : str, optional
        censored_normal only: column with 0 (observed), 1 (left censored: the value is an
        upper bound) or 2 (right censored: a lower bound).
    row_weights : str, pandas.Series or array-like, optional
        One non-negative weight per row (a column name, a Series matched to ``data`` by index
        label, or an array with one value per row) multiplying the row's log density inside
        the integral over its group's random effects: a row of weight ``k`` counts as ``k``
        copies of itself in its group (frequency weights, lme4's ``weights=``). A row of
        weight 0 adds nothing (and ``fit.nobs`` leaves it out); weights all 1 give the
        unweighted fit. With sampling (survey) weights the estimates are pseudo-likelihood
        estimates: use ``fit.vcov(sandwich=True)``. For binomial counts of successes the
        trials, not weights, give the number of trials.
    disp_fixed : str, optional
        A dispersion sub-model, as glmmTMB's ``dispformula``: ``"~ grp"`` gives the family's
        extra parameter (the sigma of gaussian, students_t, censored_normal and
        hurdle_lognormal, the size of the negative binomials, the precision of beta,
        beta_binomial and hurdle_beta, the shape of gamma) a log-linear predictor of its own,
        ``log φ_j = x_jᵀγ``; the coefficients ``γ`` are ``fit.fixef("dispersion")`` (named
        ``disp_<column>`` among the parameters). ``"~ 1"`` is the model without one. Note that
        glmmTMB 1.1's gaussian ``dispformula`` is on ``log σ²``: its coefficients are twice these.
    priors : dict, optional
        PyMC distributions (``pm.Normal.dist(0, 2.5)``) by parameter: ``"fixed"`` or a
        fixed-effect name, ``"zero_part"``/``"zi_<name>"``, ``"sd"``/``"sd_<name>"`` (random-effect
        standard deviations), ``"corr"`` (LKJ shape), or an extra parameter's name; the fit is
        then a MAP fit (log-likelihood + log prior). Parameters without a prior have a flat
        one on their unconstrained scale; the MAP maximizes the density of a standard
        deviation or extra parameter on its natural scale, without the log-Jacobian, as
        PyMC's ``find_MAP`` does (:func:`glmm_ppl.sample` adds it).
    initial_values : dict, optional
        Keys ``betas``, ``gammas`` (zero part), ``D``, ``phis`` override the starting values
        (``phis`` on the natural scale; for parameters reported as coefficients, as
        ``fit.fixef`` reports them: a dispersion sub-model's coefficients, an ordinal model's
        increasing thresholds).
    control : dict or Control, optional
        Optimizer settings (see :class:`glmm_ppl.Control`).
    client : distributed.Client, optional
        Dask data only: the cluster to fit on (by default the current client).
    n_shards : int, optional
        Dask data only: how many shards to split the groups into (by default one per worker).
    **unknown
        Not taken: a keyword mixed_model does not know raises a ``TypeError`` that names the
        one probably meant (R's ``nAGQ`` is ``n_agq``).

    Returns
    -------
    MixedModelFit

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> df = gp.load_vignette("binary")
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, family="binomial")
    >>> round(fm1.loglik, 3)
    -374.52
    >>> same = gp.mixed_model("y ~ sex * time + (1 | id)", data=df, family="bernoulli")
    >>> round(same.loglik, 3)
    -374.52
    """
    if unknown:
        raise TypeError(_unknown_keywords(unknown))
    if isinstance(random, pd.DataFrame) and family is None:  # mixed_model(formula, df, family)
        random, data, family = None, random, data
    fixed, random = _formulas(fixed, random, zi_random, family)
    if data is None:
        raise TypeError("mixed_model() needs data, a pandas DataFrame")
    if family is None:
        raise TypeError(
            "mixed_model() needs a family, e.g. family='binomial' (see glmm_ppl.families)"
        )
    family = get_family(family)
    auto = isinstance(n_agq, str) and n_agq == "auto"
    if not (auto or n_agq is None):
        check_points(n_agq)
    if is_dask_dataframe(data):
        from .distributed.fit import fit_on_cluster

        return fit_on_cluster(
            fixed, random, data, family, client=client, n_shards=n_shards, n_agq=n_agq,
            penalized=penalized, priors=priors, zi_fixed=zi_fixed, zi_random=zi_random,
            offset=offset, weights=weights, trials=trials, censoring=censoring,
            row_weights=row_weights, disp_fixed=disp_fixed, initial_values=initial_values,
            control=control,
        )  # fmt: skip
    if client is not None or n_shards is not None:
        raise TypeError(
            "client= and n_shards= apply to a dask DataFrame, fitted on a cluster; data is a "
            f"{type(data).__name__}"
        )
    control = Control.from_user(control)
    design = build_design(
        fixed,
        random,
        data,
        family,
        zi_fixed=zi_fixed,
        zi_random=zi_random,
        offset=offset,
        weights=weights,
        trials=trials,
        censoring=censoring,
        row_weights=row_weights,
        disp_fixed=disp_fixed,
    )
    family = design.family
    q = design.q
    if design.crossed:
        if auto:
            raise ValueError(
                "n_agq='auto' with crossed grouping factors: their likelihood does not split "
                "into independent groups, so it is not integrated by quadrature; crossed "
                "factors are fitted by the Laplace approximation (leave n_agq out, or n_agq=1)"
            )
        n_agq = 1 if n_agq is None else n_agq
    if n_agq is None or auto:
        n_agq = default_points(q, design.nested)
    check_nodes(n_agq, q)
    check_identified(design, family)
    for note in scale_advice(design, family):
        warnings.warn(note, UserWarning, stacklevel=2)
    penalty = make_penalty(penalized, design.X.shape[1])
    prior_spec = None
    if priors is not None:  # PyMC is imported only for models with priors
        from .bayes.priors import make_priors

        prior_spec = make_priors(priors, ParameterLayout.of(design, family), penalty is not None)
    initial_values = phis_from_coefficients(initial_values, family)
    graph = MixedModelGraph(design, family, int(n_agq), penalty, prior_spec)
    with blas_threads(graph.engine):
        graph, theta, objective, H, opt, rule = fit_checked(graph, control, initial_values, auto)
    modes = graph.engine.modes.copy(), graph.engine.posterior_covariance()
    return fit_result(graph, theta, objective, H, opt, rule, modes, auto=auto)
