"""Whether the data identify the model: refusals before the fit, findings after it.

Some data sets have no maximum-likelihood estimate, or one that the data do not pin down,
and an optimizer still stops somewhere and reports convergence. These checks name the cause:

- before the fit (errors): a binary response with one row per group, whose random-intercept
  variance cannot be told apart from the intercept (lme4 refuses it too); a censored-normal
  response with no observed value, all censored on one side;
- after the fit (problems that mark the fit as not converged): a binary response constant
  within every group, whose random-effects variance grows without bound; fixed effects whose
  standard errors are huge (separation: a level or combination of predictors where the
  response is all 0 or all 1, so that a coefficient runs to ±∞); a log-likelihood flat along
  some direction of the parameters.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_identified", "existence_problems"]

#: A fixed effect's standard error above this many times max(1, |estimate|) means the data do
#: not bound it (separation gives ratios in the thousands; identified effects stay below 10).
SE_RATIO = 100.0
#: Smallest eigenvalue of the correlation-scaled information matrix below which the
#: log-likelihood counts as flat along its eigenvector.
FLAT = 1e-9
#: Standard error of a log standard deviation or log extra parameter above which the data do
#: not bound it (a factor e^±20 either way).
LOG_SE = 10.0


def _binary(design, family) -> bool:
    """Whether the response is Bernoulli: the binomial family without trials above one."""
    if family.name != "binomial":
        return False
    if "trials" not in family.aux_names or design.aux is None:
        return True
    trials = design.aux[:, family.aux_names.index("trials")]
    return bool(np.all(trials <= 1.0))


def check_identified(design, family) -> None:
    """Refuse data whose model has no estimate to find, naming the cause.

    Raises
    ------
    ValueError
        A binary response with a single row in every group (with random effects in the main
        predictor), or a censored-normal response whose rows are all censored on one side.

    Examples
    --------
    >>> import pandas as pd, glmm_ppl as gp
    >>> df = pd.DataFrame({"y": [0, 1, 1, 0], "x": [1.0, 2.0, 3.0, 4.0], "g": [1, 2, 3, 4]})
    >>> gp.mixed_model("y ~ x", "~ 1 | g", df, "binomial")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: every group of 'g' has a single binary response: ...
    """
    sizes = np.diff(design.starts)
    if design.q_main and _binary(design, family) and np.all(sizes == 1):
        raise ValueError(
            f"every group of {design.group_name!r} has a single binary response: the variance "
            "of its random effects cannot be told apart from the fixed effects (lme4 refuses "
            "this too); fit a GLM (glmm_ppl.glm) or give the groups more rows"
        )
    if "censoring" in family.aux_names and design.aux is not None:
        codes = design.aux[:, family.aux_names.index("censoring")]
        if np.all(codes == 1.0) or np.all(codes == 2.0):
            side = "left" if codes[0] == 1.0 else "right"
            raise ValueError(
                f"every row is {side} censored: with no observed value the mean and sigma have "
                "no finite estimate; the model needs observed rows"
            )


def _flat_direction(info: np.ndarray, cov, fixed) -> list | None:
    """The parameters along which the log-likelihood is flat, or None: a variance or extra
    parameter (log scale) with a standard error above ``LOG_SE``, or the smallest eigenvalue
    of the correlation-scaled information below ``FLAT`` (a ridge across parameters)."""
    if cov is not None:
        se = np.sqrt(np.abs(np.diag(cov)))
        loose = [j for j in range(len(se)) if j not in set(fixed) and se[j] > LOG_SE]
        if loose:
            return loose[:2]
    scale = np.sqrt(np.abs(np.diag(info)))
    scale[scale == 0.0] = 1.0
    eigval, eigvec = np.linalg.eigh(info / np.outer(scale, scale))
    if eigval[0] >= FLAT * max(eigval[-1], 1.0):
        return None
    weights = np.abs(eigvec[:, 0])
    return [j for j in np.argsort(-weights)[:2] if weights[j] > 0.3]


def existence_problems(
    design, family, layout, theta: np.ndarray, hessian: np.ndarray, boundary: bool = False
) -> list:
    """Messages for an estimate that does not exist or that the data do not pin down (empty
    when there is none). ``boundary``: the fit is known to be at a boundary (a variance at 0,
    a correlation at ±1), where the log-likelihood is flat by nature, so flatness is not
    reported again.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> existence_problems(fm1.design, fm1.family, fm1.layout, fm1.theta, fm1.hessian)
    []
    """
    problems = []
    if design.q_main and _binary(design, family):
        y, starts = design.y, design.starts
        lo, hi = np.minimum.reduceat(y, starts[:-1]), np.maximum.reduceat(y, starts[:-1])
        if np.all(lo == hi):
            problems.append(
                "the response is constant within every group (all 0 or all 1): the "
                "random-effects variance has no finite maximum-likelihood estimate (it grows "
                "without bound); the model cannot be fitted to these data"
            )
    info = -np.asarray(hessian, dtype=float)
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov = None
    blocks = layout.blocks
    fixed = np.r_[
        np.arange(blocks["fixed-effects"].start, blocks["fixed-effects"].stop),
        np.arange(blocks["zero_part"].start, blocks["zero_part"].stop),
    ]
    if cov is not None:
        se = np.sqrt(np.abs(np.diag(cov)))
        loose = [j for j in fixed if se[j] > SE_RATIO * max(1.0, abs(theta[j]))]
        if loose:
            names = [layout.names[j] for j in loose]
            problems.append(
                f"the data do not bound the fixed effect(s) {', '.join(map(repr, names))} "
                f"(standard error {se[loose[0]]:.3g} for an estimate of {theta[loose[0]]:.3g}): "
                "a level or combination of predictors where the response is all 0 or all 1 "
                "(separation) sends a coefficient to ±∞; penalized=True (a Student-t prior on "
                "the fixed effects) or priors= give finite estimates"
            )
    if not problems and not boundary:
        flat = _flat_direction(info, cov, fixed)
        if flat is not None:
            names = [layout.names[j] for j in flat]
            problems.append(
                "the log-likelihood is flat along a direction of the parameters (mostly "
                f"{', '.join(map(repr, names))}): the data do not identify them, and the "
                "estimates are one point of a ridge"
            )
    return problems
