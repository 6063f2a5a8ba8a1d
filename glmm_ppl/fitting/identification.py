"""Whether the data identify the model: refusals before the fit, findings after it.

Some data sets have no maximum-likelihood estimate, or one that the data do not pin down,
and an optimizer still stops somewhere and reports convergence. These checks name the cause:

- before the fit (errors): a binary response with one row per group, whose random-intercept
  variance cannot be told apart from the intercept (lme4 refuses it too); a censored-normal
  response with no observed value, all censored on one side;
- before the fit (warnings): a response or covariate far from unit scale, to rescale;
- after the fit (problems that mark the fit as not converged): a binary response constant
  within every group, whose random-effects variance grows without bound; fixed effects whose
  standard errors are huge (separation: a level or combination of predictors where the
  response is all 0 or all 1, so that a coefficient runs to ±∞); a log-likelihood flat along
  some direction of the parameters.
"""

from __future__ import annotations

import numpy as np

from ..design.dispersion import dispersion_design

__all__ = [
    "SingularFitWarning",
    "boundary_problem",
    "check_identified",
    "existence_problems",
    "extra_at_edge",
    "scale_advice",
]

#: A fixed effect whose contribution to a logit or log linear predictor (its standard error
#: times the column's root mean square) is this uncertain is not bounded by the data:
#: separation gives thousands, identified effects a few units at most.
SE_LINK = 50.0
#: Smallest eigenvalue of the correlation-scaled information matrix below which the
#: log-likelihood counts as flat along its eigenvector.
FLAT = 1e-9
#: Standard error of a log standard deviation or log extra parameter above which the data do
#: not bound it (a factor e^±20 either way).
LOG_SE = 10.0


class SingularFitWarning(UserWarning):
    """A boundary fit: the estimated random-effects covariance matrix is (nearly) singular (a
    correlation at ±1 or a variance at 0), or an extra parameter of the family ran to the edge
    of its range (a negative-binomial size to ∞: no overdispersion). The fit is still returned;
    its summary repeats the message.

    Examples
    --------
    >>> import warnings, glmm_ppl as gp
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", gp.SingularFitWarning)
    ...     fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> fit.warnings
    ()
    """


def boundary_problem(D: np.ndarray, names: list[str]) -> str | None:
    """The message for a random-effects covariance at the boundary of its space (a variance
    at 0, a correlation at ±1), or None.

    Examples
    --------
    >>> boundary_problem(np.diag([1.0, 1e-12]), ["(Intercept)", "time"])
    'boundary (singular) fit: the variance of time is estimated near 0'
    """
    sd = np.sqrt(np.diag(D))
    if np.any(sd < 1e-4 * max(1.0, sd.max())):
        small = [n for n, s in zip(names, sd, strict=False) if s < 1e-4 * max(1.0, sd.max())]
        return f"boundary (singular) fit: the variance of {', '.join(small)} is estimated near 0"
    corr = D / np.outer(sd, sd)
    i, j = np.triu_indices(len(sd), 1)
    high = np.abs(corr[i, j]) > 0.99
    if high.any():
        k = int(np.argmax(np.abs(corr[i, j])))
        return (
            f"boundary (singular) fit: the correlation of {names[i[k]]} and {names[j[k]]} is "
            f"estimated at {corr[i[k], j[k]]:.3f}; consider independent random effects ('||') "
            "or fewer random terms"
        )
    return None


def extra_at_edge(log_phis: np.ndarray, family, design) -> str | None:
    """A message when an extra parameter ran towards 0 or ∞: beyond e^±12 (the data do not
    bound it, and the model is at a limit, e.g. a negative binomial at its Poisson limit), or,
    for a ``sigma`` in the response's units (identity link), below 1e-8 of its spread."""
    if family.extra_sub_model == "thresholds":
        return _merged_thresholds(log_phis, family)
    in_response_units = family.link.name == "identity" and family.n_eta == 1
    names, values = family.phi_names, log_phis
    if family.disp_names:  # the sub-model's extremes over the rows, for the parameter it models
        names, values = _row_extremes(np.asarray(log_phis, dtype=float), family, design)
    for name, value in zip(names, values, strict=True):
        if name == "sigma" and in_response_units:
            spread = design.response_spread()
            if spread > 0 and np.exp(value) < 1e-8 * spread:
                return (
                    f"the {family.name} parameter 'sigma' ran to {np.exp(value):.3g}, against a "
                    f"response spread of {spread:.3g}: the model reproduces the data exactly, "
                    "so sigma has no positive estimate"
                )
        elif abs(value) > 12.0:
            return (
                f"the {family.name} parameter {name!r} ran to {np.exp(value):.3g}, the edge of "
                "its range: the data do not bound it and the model is at a limiting case (for a "
                "size or precision, no overdispersion: consider the Poisson or binomial family)"
            )
    return None


def _row_extremes(gamma: np.ndarray, family, design) -> tuple[list, np.ndarray]:
    """The smallest and largest log extra parameter over the rows of a dispersion sub-model
    (``x_dⱼᵀγ``), named as the parameter it models."""
    log_phi = dispersion_design(design) @ gamma
    name = type(family).phi_names[0]
    return [name, name], np.array([log_phi.min(), log_phi.max()])


def _merged_thresholds(entries: np.ndarray, family) -> str | None:
    """A message when two neighbouring thresholds of an ordinal model ran together (the log of
    their difference, an entry of ``θ``, below −12): the data hardly tell the category between
    them from its neighbours. The first threshold itself may take any value."""
    names = family.phi_names
    for k, step in enumerate(np.asarray(entries, dtype=float)[1:]):
        if step < -12.0:
            return (
                f"the {family.name} thresholds {names[k]!r} and {names[k + 1]!r} ran together "
                f"(they differ by {np.exp(step):.3g}): the data hardly separate the category "
                "between them from its neighbours; merge it with one of them"
            )
    return None


def scale_advice(design, family) -> list[str]:
    """Advice to rescale a response (identity link) or a fixed-effects column far from unit
    scale, or to centre a column far from 0: the fit's steps and tolerances are absolute.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> scale_advice(fm1.design, fm1.family)
    []
    """
    notes = (_response_scale(design, family), _covariate_scale(design))
    return [note for note in notes if note]


def _response_scale(design, family) -> str | None:
    """Advice to rescale a response on the linear predictor's own scale (identity link) whose
    spread is far from 1: the optimizer's steps and tolerances are absolute."""
    if family.link.name != "identity" or family.n_eta != 1:
        return None
    spread = float(np.std(design.y))
    if not np.isfinite(spread) or spread == 0 or 1e-4 <= spread <= 1e6:
        return None
    factor = 10.0 ** np.round(np.log10(spread))
    how = f"divide it by {factor:.0e}" if factor > 1 else f"multiply it by {1 / factor:.0e}"
    return (
        f"the response {design.response_name!r} has a standard deviation of {spread:.3g}: the "
        "fit's steps and tolerances assume a scale near 1, so estimates on this scale may be "
        f"inaccurate or fail to converge; {how} (the fixed effects, standard deviations and "
        "sigma scale back by the same factor)"
    )


def _covariate_scale(design) -> str | None:
    """Advice to rescale or centre fixed-effects columns far from unit scale: the fit's steps
    in their coefficients (and the Hessian's differences) are absolute."""
    X = design.X
    for k, name in enumerate(design.fixed_names):
        size = float(np.sqrt(np.mean(X[:, k] ** 2)))
        spread, centre = float(np.std(X[:, k])), float(np.mean(X[:, k]))
        if size > 1e6 or 0 < size < 1e-4:
            fix = "rescale it (its coefficient scales back by the same factor)"
        elif spread > 0 and abs(centre) > 1e3 * spread:
            fix = f"centre it (subtract its mean, {centre:.6g}; only the intercept changes)"
        else:
            continue
        return (
            f"the fixed-effects column {name!r} has values of order {size:.0e} and a spread "
            f"of {spread:.2g}: the fit's steps assume coefficients near 1, so its estimates may "
            f"be inaccurate or fail to converge; {fix}"
        )
    return None


def _binary(design, family) -> bool:
    """Whether the response is Bernoulli: the binomial family without trials above one."""
    if family.name != "binomial":
        return False
    if "trials" not in family.aux_names or design.aux is None:
        return True
    trials = design.aux[:, family.aux_names.index("trials")]
    return bool(np.all(trials <= 1.0))


def _level_index(design) -> list[tuple[str, np.ndarray]]:
    """Each grouping factor's name and each row's level of it (the groups with one factor)."""
    if len(design.factors) > 1:
        return [(f.name, np.asarray(f.index)) for f in design.factors]
    return [(design.group_name, np.repeat(np.arange(design.n_groups), np.diff(design.starts)))]


def _level_sizes(design) -> list[tuple[str, np.ndarray]]:
    """Each grouping factor's name and its levels' numbers of rows."""
    return [(name, np.bincount(index)) for name, index in _level_index(design)]


def check_identified(design, family) -> None:
    """Refuse data whose model has no estimate to find, naming the cause.

    Raises
    ------
    ValueError
        A binary response with a single row in every group (with several grouping factors,
        in every level of one of them; with random effects in the main predictor), or a
        censored-normal response whose rows are all censored on one side.

    Examples
    --------
    >>> import pandas as pd, glmm_ppl as gp
    >>> df = pd.DataFrame({"y": [0, 1, 1, 0], "x": [1.0, 2.0, 3.0, 4.0], "g": [1, 2, 3, 4]})
    >>> gp.mixed_model("y ~ x", "~ 1 | g", df, "binomial")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: every group of 'g' has a single binary response: ...
    """
    if design.q_main and _binary(design, family):
        for name, sizes in _level_sizes(design):
            if not np.all(sizes == 1):
                continue
            if len(design.factors) < 2:
                fix = "fit a GLM (glmm_ppl.glm) or give the groups more rows"
            else:
                fix = f"leave {name!r} out or give its levels more rows"
            raise ValueError(
                f"every {'group' if len(design.factors) < 2 else 'level'} of {name!r} has a "
                "single binary response: the variance of its random effects cannot be told "
                f"apart from the fixed effects (lme4 refuses this too); {fix}"
            )
    if "censoring" in family.aux_names and design.aux is not None:
        codes = design.aux[:, family.aux_names.index("censoring")]
        if np.all(codes == 1.0) or np.all(codes == 2.0):
            side = "left" if codes[0] == 1.0 else "right"
            raise ValueError(
                f"every row is {side} censored: with no observed value the mean and sigma have "
                "no finite estimate; the model needs observed rows"
            )


def _rms_columns(design, layout) -> np.ndarray:
    """The root mean square of each fixed-effects column, 1 for the other entries of ``θ``."""
    out = np.ones(layout.size)
    blocks = layout.blocks
    out[blocks["fixed-effects"]] = np.sqrt(np.mean(design.X**2, axis=0))
    if design.X_zi is not None:
        out[blocks["zero_part"]] = np.sqrt(np.mean(design.X_zi**2, axis=0))
    return out


def _on_link_scale(family, layout) -> list:
    """The fixed effects whose linear predictor has a link of its own scale (logit, log, …):
    the main predictor unless its link is the identity (its scale is the response's), and the
    zero part (logit)."""
    blocks = layout.blocks
    entries = list(range(blocks["zero_part"].start, blocks["zero_part"].stop))
    if family.link.name != "identity":
        entries = list(range(blocks["fixed-effects"].start, blocks["fixed-effects"].stop)) + entries
    return entries


def _flat_direction(info: np.ndarray, cov, layout) -> list | None:
    """The parameters along which the log-likelihood is flat, or None: a log standard
    deviation or log extra parameter with a standard error above ``LOG_SE``, or the smallest
    eigenvalue of the correlation-scaled information below ``FLAT`` (a ridge across
    parameters)."""
    if cov is not None:
        se = np.sqrt(np.abs(np.diag(cov)))
        loose = [j for j in layout.log_scale if se[j] > LOG_SE]
        if loose:
            return loose[:2]
    scale = np.sqrt(np.abs(np.diag(info)))
    scale[scale == 0.0] = 1.0
    eigval, eigvec = np.linalg.eigh(info / np.outer(scale, scale))
    if eigval[0] >= FLAT * max(eigval[-1], 1.0):
        return None
    weights = np.abs(eigvec[:, 0])
    top = np.argsort(-weights)
    return [int(top[0])] + [int(j) for j in top[1:2] if weights[j] > 0.3]


def existence_problems(
    design,
    family,
    layout,
    theta: np.ndarray,
    hessian: np.ndarray,
    boundary: bool = False,
    priors=None,
) -> list:
    """Messages for an estimate that does not exist or that the data do not pin down (empty
    when there is none). ``boundary``: the fit is known to be at a boundary (a variance at 0,
    a correlation at ±1), where the log-likelihood is flat by nature, so flatness is not
    reported again. ``priors``: the fit's priors (a prior on the standard deviations gives
    their MAP estimate a finite value even where the likelihood has none).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> existence_problems(fm1.design, fm1.family, fm1.layout, fm1.theta, fm1.hessian)
    []
    """
    problems = []
    sd_prior = priors is not None and any(k == "sd" or k.startswith("sd_") for k in priors.priors)
    if design.q_main and _binary(design, family) and not sd_prior:
        for name, index in _level_index(design):
            lo = np.full(index.max() + 1, np.inf)
            hi = np.full(index.max() + 1, -np.inf)
            np.minimum.at(lo, index, design.y)
            np.maximum.at(hi, index, design.y)
            if np.all(lo == hi):
                where = "every group" if len(design.factors) < 2 else f"every level of {name!r}"
                problems.append(
                    f"the response is constant within {where} (all 0 or all 1): the "
                    "random-effects variance has no finite maximum-likelihood estimate (it "
                    "grows without bound); the model cannot be fitted to these data"
                )
                break
    info = -np.asarray(hessian, dtype=float)
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov = None
    if cov is not None:
        se = np.sqrt(np.abs(np.diag(cov)))
        on_link = se * _rms_columns(design, layout)
        loose = [j for j in _on_link_scale(family, layout) if on_link[j] > SE_LINK]
        if loose:
            names = [layout.names[j] for j in loose]
            j = loose[0]
            problems.append(
                f"the data do not bound the fixed effect(s) {', '.join(map(repr, names))} "
                f"(standard error {se[j]:.3g} for an estimate of {theta[j]:.3g}): a level or "
                "combination of predictors where the response sits at the edge of its range "
                "(all 0, or all 1 for a binary response: separation) sends a coefficient to "
                "±∞; penalized=True (a Student-t prior on the fixed effects) or priors= give "
                "finite estimates"
            )
    if not problems and not boundary:
        flat = _flat_direction(info, cov, layout)
        if flat is not None:
            names = [layout.names[j] for j in flat]
            problems.append(
                "the log-likelihood is flat along a direction of the parameters (mostly "
                f"{', '.join(map(repr, names))}): the data do not identify them, and the "
                "estimates are one point of a ridge"
            )
    return problems
