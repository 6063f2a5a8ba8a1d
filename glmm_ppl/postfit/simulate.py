"""Responses simulated from a fitted mixed model, and simulation-based (DHARMa) residuals.

A simulated data set draws, for each group, random effects ``b_i ~ N(0, D̂)`` (with several
grouping factors, for each unit of each factor from its block of ``D̂``; or takes the
empirical Bayes modes ``b̂_i``), forms the linear predictors ``η = Xβ̂ + offset + Z b_i`` (and
``η_zi = X_zi γ̂ + offset_zi + Z_zi b_i`` for a zero part) and draws ``y`` from the family given
``η`` and ``φ̂``, with the fit's own per-row data (trials). Rows are in the fit's order, sorted by
group: ``fit.design.rows`` holds the index labels of the data rows they come from.

Scaled residuals are DHARMa's probability integral transform of the observed value within its
simulated distribution, ``u = P̂(y* < y) + U · P̂(y* = y)`` with ``U ~ Uniform(0, 1)``, which is
uniform on ``(0, 1)`` when the model is right (up to the resolution ``1/nsim``).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from ..engine.covariance import theta_to_D
from .factors import row_effects

__all__ = ["simulate", "scaled_residuals", "check_seed"]

#: The warning of :func:`simulate` for a fit with row weights (``row_weights=``).
ROW_WEIGHTS_NOT_SIMULATED = (
    "the fit has row weights, which simulation does not use: each row is drawn once from its "
    "distribution given the random effects (a data set of the same shape cannot repeat a row "
    "by its weight)"
)

# rows × simulations drawn per call of the family's simulator (bounds the memory used)
_CHUNK = 2_000_000


def _check_nsim(nsim) -> int:
    if isinstance(nsim, bool) or not isinstance(nsim, numbers.Integral) or nsim < 1:
        raise ValueError(f"nsim must be a positive integer, got {nsim!r}")
    return int(nsim)


def check_seed(seed):
    """``seed`` if it is None, a non-negative integer or a Generator; else a clear error."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"seed must be None, a non-negative integer or a numpy.random.Generator, got "
            f"{type(seed).__name__}"
        )
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _rng(seed) -> np.random.Generator:
    seed = check_seed(seed)
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _factor(D: np.ndarray) -> np.ndarray:
    """``L`` with ``L Lᵀ = D``; by eigendecomposition, so a (nearly) singular ``D`` is fine."""
    values, vectors = np.linalg.eigh(D)
    return vectors * np.sqrt(np.clip(values, 0.0, None))


def _parts(fit):
    """``η⁰`` (N, E) with offsets, ``Z`` (N, E, q) and ``φ`` (``exp`` of ``θ``'s extra entries,
    which the family makes per-row values of a dispersion sub-model)."""
    d = fit.design
    gamma = fit.fixef("zero_part").to_numpy() if d.X_zi is not None else None
    eta0 = d.fixed_part(fit.fixef().to_numpy(), gamma)
    return eta0, d.Z_by_predictor(), np.exp(fit.theta[fit.layout.blocks["extra"]])


def _effects(fit, rng, m: int, new: bool) -> np.ndarray:
    """``(m, N, q)``: each row's random effects in ``m`` simulations: drawn per unit of every
    grouping factor from ``N(0, D̂)``, or the modes."""
    d = fit.design
    D = theta_to_D(fit.theta[fit.layout.blocks["var-cov"]], d.q, d.diagonal)
    if d.nested:
        modes = row_effects(d, fit.modes, d.levels)
        if not new:
            return np.broadcast_to(modes, (m, *modes.shape))
        parts = []
        for factor, (_, _, _, rows, _) in zip(d.factors, d.diagonal.parts(), strict=True):
            b = rng.standard_normal((m, factor.n_units, factor.q)) @ _factor(D[rows, rows]).T
            parts.append(b[:, factor.index, :])
        return np.concatenate(parts, axis=2)
    group = np.repeat(np.arange(d.n_groups), np.diff(d.starts))
    if new:
        b = rng.standard_normal((m, d.n_groups, d.q)) @ _factor(D).T
    else:
        b = np.broadcast_to(np.asarray(fit.modes, dtype=float), (m, d.n_groups, d.q))
    return b[:, group, :]


def simulate(fit, nsim: int = 1, seed=None, new_random_effects: bool = True) -> np.ndarray:
    """Draw responses from a fitted mixed model.

    Parameters
    ----------
    fit : MixedModelFit
    nsim : int
        Number of simulated data sets.
    seed : int, numpy.random.Generator or None
        Seed of the random numbers (the same seed gives the same draws); a Generator is used
        as it is (and advanced); None draws fresh entropy.
    new_random_effects : bool
        True: each simulated data set draws new random effects ``b_i ~ N(0, D̂)`` (the
        unconditional distribution, as DHARMa and ``simulate(re.form = NA)`` in lme4).
        False: the random effects are held at the empirical Bayes modes ``fit.modes``
        (conditional on the groups' estimated effects).

    Returns
    -------
    ndarray, shape (N, nsim)
        One column per simulated data set; rows in the fit's order (sorted by group), whose
        data index labels are ``fit.design.rows``. For counts of successes the draws use the
        fit's trials; for censored data they are uncensored draws. Row weights
        (``row_weights=``) are not used: each row is drawn once, with a warning.

    Raises
    ------
    ValueError
        If ``nsim`` is not a positive integer, or the family has no simulator.
    TypeError
        If ``seed`` is not None, an integer or a Generator.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.postfit.simulate import simulate
    >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> y = simulate(fit, nsim=3, seed=1)
    >>> y.shape, bool(set(y.ravel()) <= {0.0, 1.0})
    ((800, 3), True)
    >>> bool((simulate(fit, 3, seed=1) == y).all())
    True
    """
    if fit.family.row_weighted:
        warnings.warn(ROW_WEIGHTS_NOT_SIMULATED, UserWarning, stacklevel=3)
    return _draw(fit, nsim, seed, new_random_effects)


def _draw(fit, nsim, seed, new_random_effects: bool) -> np.ndarray:
    """The draws of :func:`simulate` (without its warning about row weights)."""
    nsim = _check_nsim(nsim)
    rng = _rng(seed)
    d, family = fit.design, fit.family
    eta0, Z, phis = _parts(fit)
    N, E = eta0.shape
    aux = d.aux if d.aux is not None else np.zeros((N, 0))
    out = np.empty((nsim, N))
    chunk = max(1, _CHUNK // max(N, 1))
    for start in range(0, nsim, chunk):
        m = min(chunk, nsim - start)
        b = _effects(fit, rng, m, new_random_effects)
        eta = eta0[None] + np.einsum("neq,snq->sne", Z, b)  # (m, N, E)
        data = {"eta_zi": eta[:, :, 1].ravel()} if family.zero_part else {}
        for k, name in enumerate(family.aux_names):
            if name != "row_weight":  # not drawn: see ROW_WEIGHTS_NOT_SIMULATED
                data[name] = np.tile(aux[:, k], m)
        row_phis, data = family.row_parts(phis, data)
        try:
            y = family.simulate(eta[:, :, 0].ravel(), row_phis, rng, **data)
        except NotImplementedError as err:
            raise ValueError(
                f"cannot simulate from the {family.name} family: {err} (a custom family "
                "needs simulate=; see glmm_ppl.families.custom_family)"
            ) from None
        out[start : start + m] = np.asarray(y, dtype=float).reshape(m, N)
    return out.T


def scaled_residuals(
    fit, nsim: int = 250, seed=None, new_random_effects: bool = True
) -> np.ndarray:
    """DHARMa's scaled (quantile) residuals: uniform on ``(0, 1)`` under the fitted model.

    For each observation ``y_j`` and its ``nsim`` simulated values ``y*_j``,
    ``u_j = #(y* < y_j)/nsim + U_j · #(y* = y_j)/nsim`` with ``U_j ~ Uniform(0, 1)``: ties
    (discrete responses) are spread uniformly over the probability of the observed value.
    Values pile up near 0 and 1 under overdispersion, near 0.5 under underdispersion.

    Parameters
    ----------
    fit : MixedModelFit
    nsim : int
        Number of simulated data sets (the residuals' resolution is ``1/nsim``).
    seed : int, numpy.random.Generator or None
        As in :meth:`MixedModelFit.simulate`; the tie-breaking uniforms come from the same
        stream.
    new_random_effects : bool
        As in :meth:`MixedModelFit.simulate`; True (DHARMa's default) compares each
        observation with the model's marginal distribution over the random effects. Censored
        observations are compared with uncensored draws, so their residuals are not uniform.
        Row weights (``row_weights=``) do not change a row's distribution: each row has one
        residual, whatever its weight (weight them in any summary of the residuals).

    Returns
    -------
    ndarray, shape (N,)
        In the fit's row order (``fit.design.rows``).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.postfit.simulate import scaled_residuals
    >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> u = scaled_residuals(fit, nsim=100, seed=2)
    >>> u.shape, bool(((u >= 0) & (u <= 1)).all())
    ((800,), True)
    """
    rng = _rng(seed)
    sims = _draw(fit, nsim, rng, new_random_effects)
    y = np.asarray(fit.design.y, dtype=float)[:, None]
    below = np.mean(sims < y, axis=1)
    ties = np.mean(sims == y, axis=1)
    return below + rng.uniform(size=len(below)) * ties
