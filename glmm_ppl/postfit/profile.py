"""Profile-likelihood confidence intervals (``profile_confint``) and the profiles behind
them (:func:`profile`), as lme4's ``profile`` and ``confint(method = "profile")``.

Each parameter ``ψ`` is profiled on a scale where the profile is close to linear in the
signed root ``ζ(c) = sign(c − ψ̂) √(2 (ℓ(θ̂) − max_{θ: ψ(θ) = c} ℓ(θ)))``: fixed effects as
they are, standard deviations of the random effects and extra parameters on the log scale,
correlations on Fisher's ``atanh`` scale. The covariance matrix of the random effects is
written as ``D = S R S`` (``S`` the standard deviations, ``R`` the correlations), so fixing
one of them leaves the others free, as in lme4. The interval's ends are where
``ζ = ±z_{(1+level)/2}``: the profile is stepped out from the estimate along the Wald
prediction until it crosses, then the crossing is found by Brent's method; every point
re-maximises over all the other parameters (L-BFGS), warm-started on the line that the
estimates' covariance predicts.

A standard deviation whose profile does not reach the level before it vanishes gets the
lower bound 0 (the interval is then one-sided, as lme4's); a correlation whose profile does
not reach it before ±1 gets ±1; a fixed effect or extra parameter whose profile levels off
gets an infinite bound, with a warning.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..engine.covariance import D_to_theta, free_entries, theta_to_D
from ..fitting.glm import central_differences
from ..fitting.graph import MixedModelGraph
from ..fitting.optimize import small_rule

__all__ = ["profile", "profile_confint"]

#: how far the profile goes: standard deviations down to this fraction of the estimate,
#: correlations up to this absolute value (past it the random effects are collinear)
_SD_FLOOR, _MAX_COR = 1e-4, 0.9999
_MAX_STEPS = 30
_R1 = 1.0 - 1e-15  # |correlation| below this: atanh stays finite
#: the ends are found to this accuracy in ζ (a thousandth of a standard error in ψ, where
#: the profile is linear)
_ZETA_TOL = 1e-3


def _bfgs(B: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The BFGS update of a positive-definite curvature ``B`` (of the negated objective)
    after a step ``s`` that changed the negated gradient by ``y``; ``B`` when ``yᵀs ≤ 0``."""
    ys, Bs = y @ s, B @ s
    if not ys > 1e-12 * np.sqrt((y @ y) * (s @ s)):
        return B
    return B + np.outer(y, y) / ys - np.outer(Bs, Bs) / (s @ Bs)


class _Parametrization:
    """The profile's scale ``φ`` of ``θ``: fixed effects, log standard deviations and
    ``atanh`` correlations of ``D``, log extra parameters (a dispersion sub-model's coefficients
    as they are, like fixed effects); labels and the natural scale."""

    def __init__(self, fit):
        d = fit.design
        self.q, self.diagonal = d.q, d.diagonal
        self.rows, self.cols = free_entries(d.q, d.diagonal)
        self.D = fit.parameter_slice("var-cov")
        names, random = fit.names, d.random_names
        labels = list(names[: self.D.start])
        for a, b in zip(self.rows, self.cols, strict=True):
            labels.append(f"sd.{random[a]}" if a == b else f"cor.{random[a]}.{random[b]}")
        self.labels = labels + list(fit.family.phi_names)
        self.family, self.extra = fit.family, fit.parameter_slice("extra")
        # extra parameters reported as coefficients (a dispersion sub-model's, an ordinal
        # model's thresholds) are profiled as they are reported, like fixed effects
        self.coefficients = not fit.layout.extra_log
        self.kind = (
            ["fixed"] * self.D.start
            + ["sd" if a == b else "cor" for a, b in zip(self.rows, self.cols, strict=True)]
            + ["fixed" if self.coefficients else "extra"] * fit.family.n_phis
        )

    def phi(self, theta: np.ndarray) -> np.ndarray:
        D = theta_to_D(theta[self.D], self.q, self.diagonal)
        sd = np.sqrt(np.diag(D))
        on = self.rows == self.cols
        values = np.where(
            on,
            np.log(sd[self.rows]),
            np.arctanh(
                np.clip(D[self.rows, self.cols] / (sd[self.rows] * sd[self.cols]), -_R1, _R1)
            ),
        )
        extra = theta[self.extra]
        if self.coefficients:
            extra = self.family.coefficient_values(extra)
        return np.concatenate([theta[: self.D.start], values, extra])

    def theta_D(self, values: np.ndarray) -> np.ndarray | None:
        """``θ_D`` of the ``φ`` entries of ``D``; None where the correlations do not form a
        positive-definite matrix."""
        on = self.rows == self.cols
        with np.errstate(over="ignore"):
            sd = np.ones(self.q)
            sd[self.rows[on]] = np.exp(values[on])
            R = np.eye(self.q)
            R[self.rows[~on], self.cols[~on]] = np.tanh(values[~on])
            R[self.cols[~on], self.rows[~on]] = np.tanh(values[~on])
            try:
                return D_to_theta(R * np.outer(sd, sd), self.diagonal)
            except ValueError:
                return None

    def theta(self, phi: np.ndarray) -> np.ndarray | None:
        """``θ`` of ``φ`` (None where :meth:`theta_D` is)."""
        theta_D = self.theta_D(phi[self.D])
        extra = self.theta_extra(phi[self.extra])
        if theta_D is None or extra is None:
            return None
        return np.concatenate([phi[: self.D.start], theta_D, extra])

    def theta_extra(self, values: np.ndarray) -> np.ndarray | None:
        """The extra entries of ``θ`` of their ``φ`` entries (None where no parameters give
        them, e.g. thresholds out of order)."""
        return self.family.coefficient_entries(values) if self.coefficients else values

    def natural(self, j: int, value):
        """A value of ``φ_j`` on the scale the table reports."""
        kind = self.kind[j]
        if kind in ("sd", "extra"):
            return np.exp(value)
        return np.tanh(value) if kind == "cor" else value

    def limit(self, j: int, estimate: float, side: int, step: float) -> float:
        """How far the profile of ``φ_j`` goes on one side (``step``: its standard error):
        a standard deviation down to a ten-thousandth of its estimate, a correlation to
        ±0.9999, otherwise 50 standard errors or a factor ``e²⁵`` on the log scale."""
        kind = self.kind[j]
        if kind == "sd" and side < 0:
            return estimate + np.log(_SD_FLOOR)
        if kind == "cor":
            return side * np.arctanh(_MAX_COR)
        if kind == "fixed":
            return estimate + side * 50 * step
        if kind == "sd":  # upwards from an estimate at 0 too
            return max(estimate, -10.0) + 25.0
        return estimate + side * min(50 * step, 25.0)

    def edge(self, j: int, side: int) -> float:
        """The end reported when the profile of ``φ_j`` stays within the level up to its
        limit: 0 for a standard deviation, ±1 for a correlation, infinite otherwise."""
        kind = self.kind[j]
        if kind == "sd" and side < 0:
            return 0.0
        return float(side) if kind == "cor" else side * np.inf


class _Profiler:
    """The profile log-likelihood of each entry of ``φ``, warm-started."""

    def __init__(self, fit):
        if fit.priors is not None:
            raise ValueError(
                "profile intervals are intervals of the likelihood, and this fit is a MAP fit "
                "with priors= (its objective adds the log prior); use Wald intervals "
                "(method='wald') or the posterior of gp.sample"
            )
        if not fit.converged:
            warnings.warn(
                f"{fit.opt_summary.problem or 'the fit did not converge'}: the profiles start "
                "from estimates that may not be the maximum, and their intervals may be "
                "unreliable",
                UserWarning,
                stacklevel=4,
            )
        self.graph = MixedModelGraph(fit.design, fit.family, fit.n_agq, fit.penalty)
        if not fit.design.crossed:
            self.graph.engine.modes = np.array(fit.modes, dtype=float)
        self.exact = not small_rule(self.graph)
        self.par = _Parametrization(fit)
        self.phi_hat = self.par.phi(fit.theta)
        self.top = self.graph(fit.theta)[0]
        J = central_differences(self.par.phi, fit.theta, 1e-6)
        self.V = J @ fit.vcov("all").to_numpy() @ J.T
        self.se = np.sqrt(np.clip(np.diag(self.V), 0.0, None))
        # the curvature in φ at the estimates, negated (positive definite)
        self.H = np.linalg.pinv(self.V, hermitian=True)
        # the correlations stay within ±0.9999: where the maximum lies at ±1 (a standard
        # deviation profiled towards 0 can take it there) it is reached at the bound
        cor = np.array([k == "cor" for k in self.par.kind])
        edge = np.where(cor, np.arctanh(_MAX_COR), np.inf)
        self.bounds = np.stack([-edge, edge])
        self.last: dict[tuple, tuple] = {}  # by (j, side): (φ_j, maximiser, curvature)
        self.trace: list[tuple[str, float, float]] = []

    def _objective(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        if self.exact:
            obj, _, grad = self.graph(theta)
            return obj, grad

        def value(t):
            return self.graph(t)[0]

        return value(theta), central_differences(value, theta, 1e-6)

    def _value(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        """The objective and its gradient in ``φ`` (not finite outside the parameter space)."""
        theta = self.par.theta(phi)
        if theta is None:
            return -np.inf, np.zeros_like(phi)
        obj, grad = self._objective(theta)
        if not np.isfinite(obj):
            return -np.inf, np.zeros_like(phi)
        D, E = self.par.D, self.par.extra  # dθ/dφ is the identity but in these blocks
        grad = grad.copy()
        grad[D] = central_differences(self.par.theta_D, phi[D], 1e-7).T @ grad[D]
        if self.par.coefficients and E.stop > E.start:
            grad[E] = central_differences(self.par.theta_extra, phi[E], 1e-7).T @ grad[E]
        return obj, grad

    def _maximum(self, j: int, c: float) -> float:
        """``max ℓ`` over ``φ`` with ``φ_j = c`` (the objective, penalty included):
        quasi-Newton steps (BFGS updates of the curvature, which starts from the estimates'
        and is carried along the profile; step-halving keeps the objective rising), from the
        last maximum of this profile moved along the line the estimates' covariance
        predicts; L-BFGS from where they stop when they do not converge (quadrature rules
        whose fixed-node gradient is off by more than the tolerance, curvature that changes
        fast along the profile)."""
        free = np.flatnonzero(np.arange(len(self.phi_hat)) != j)
        side = np.sign(c - self.phi_hat[j])
        last_c, last, B = self.last.get((j, side), (self.phi_hat[j], self.phi_hat, None))
        if B is None:
            B = self.H[np.ix_(free, free)]
        slope = self.V[:, j] / self.V[j, j] if 0 < self.se[j] < 10 else 0.0
        phi = last + slope * (c - last_c)
        phi[j] = c
        obj, grad = self._value(phi)
        converged = not len(free)
        for _ in range(15 if len(free) and np.isfinite(obj) else 0):
            try:
                step = np.linalg.solve(B, grad[free])
            except np.linalg.LinAlgError:  # no curvature to step with: L-BFGS
                break
            decrement = 0.5 * grad[free] @ step
            if decrement < 1e-8:
                converged = True
                break
            for t in 0.5 ** np.arange(6):
                trial = phi.copy()
                trial[free] = np.clip(trial[free] + t * step, *self.bounds[:, free])
                new, new_grad = self._value(trial)
                if new >= obj:
                    break
            if new < obj or new - obj < 1e-7:  # no rise left, but not converged: L-BFGS
                phi, obj = (trial, new) if new >= obj else (phi, obj)
                break
            B = _bfgs(B, t * step, grad[free] - new_grad[free])
            phi, obj, grad = trial, new, new_grad
        if not converged:
            phi, obj = self._lbfgs(phi, free)
        self.last[(j, side)] = (c, phi, B)
        return obj

    def _lbfgs(self, phi: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, float]:
        scale = np.where(self.se[free] > 0, self.se[free], 1.0)
        start = phi.copy()

        def fun(x):
            point = start.copy()
            point[free] += x * scale
            obj, grad = self._value(point)
            if not np.isfinite(obj):
                return np.inf, np.zeros_like(x)
            return -obj, -grad[free] * scale

        lo, hi = (self.bounds[:, free] - start[free]) / scale
        res = optimize.minimize(
            fun,
            np.zeros(len(free)),
            jac=True,
            method="L-BFGS-B",
            bounds=optimize.Bounds(np.minimum(lo, 0), np.maximum(hi, 0)),
            options={"gtol": 1e-6, "ftol": 1e-13, "maxiter": 500},
        )
        start[free] += res.x * scale
        return start, -float(res.fun)

    def zeta(self, j: int, c: float) -> float:
        """The signed root of the likelihood-ratio statistic at ``φ_j = c``."""
        lr = max(2.0 * (self.top - self._maximum(j, c)), 0.0)
        z = float(np.sign(c - self.phi_hat[j]) * np.sqrt(lr))
        self.trace.append((self.par.labels[j], float(self.par.natural(j, c)), z))
        return z

    def end(self, j: int, side: int, z: float) -> tuple[float, bool]:
        """Where ``|ζ|`` reaches ``z`` on one side (on the ``φ`` scale), and whether that is
        the limit of ``φ_j`` instead: secant steps from the estimate (doubling jumps where
        the profile is flat, as it is from a variance estimated at 0), then the Illinois
        variant of regula falsi once bracketed."""
        hat = self.phi_hat[j]
        step = self.se[j] if 0 < self.se[j] < 10 else 1.0
        if self.par.kind[j] == "fixed" and not 0 < self.se[j] < 10:
            step = max(1.0, abs(hat))  # an estimate run off to a large value: back to 0
        limit = self.par.limit(j, hat, side, step)
        inner, outer, previous = (hat, -z), None, None  # (φ_j, |ζ| − z) below and above
        c, jump, kept = hat + side * z * step, 4 * step, 0
        for _ in range(_MAX_STEPS):
            if side * (c - limit) >= 0:
                c = limit
            f = abs(self.zeta(j, c)) - z
            if abs(f) < _ZETA_TOL:
                return c, False
            if f < 0:
                if c == limit:
                    return limit, True
                previous, inner = inner, (c, f)
                if kept == 1 and outer is not None:
                    outer = (outer[0], outer[1] / 2)
                kept = 1
            else:
                outer = (c, f)
                if kept == -1:
                    inner = (inner[0], inner[1] / 2)
                kept = -1
            if outer is None:  # on along the secant through the last two points
                slope = (inner[1] - previous[1]) / (inner[0] - previous[0])
                reach = -inner[1] / slope if side * slope > 0 else np.inf
                if abs(reach) > jump:
                    reach, jump = side * jump, 2 * jump
                c = inner[0] + side * max(side * reach * 1.05, 0.1 * step)
            else:
                (a, fa), (b, fb) = inner, outer
                c = a - fa * (b - a) / (fb - fa)
        if outer is None:
            return limit, True
        warnings.warn(
            f"the end of the profile interval of {self.par.labels[j]!r} was not found to "
            f"{_ZETA_TOL:g} in ζ within {_MAX_STEPS} steps; it is the last estimate",
            UserWarning,
            stacklevel=4,
        )
        return c, False


def _labels(fit, par: _Parametrization, parm) -> list[int]:
    """Indices into ``φ`` of ``parm``: a block as :meth:`MixedModelFit.vcov` takes them, or
    one or more of the profile table's row labels."""
    if isinstance(parm, str) and parm in ("all", "fixed-effects", "zero_part", "var-cov", "extra"):
        s = fit.parameter_slice(parm)
        return list(range(len(par.labels)))[s]
    wanted = [parm] if isinstance(parm, str) else list(parm)
    unknown = [w for w in wanted if w not in par.labels]
    if unknown:
        raise ValueError(
            f"no parameter {unknown[0]!r} to profile; the parameters are "
            f"{', '.join(map(repr, par.labels))} (or a block: 'fixed-effects', 'zero_part', "
            "'var-cov', 'extra', 'all')"
        )
    return [par.labels.index(w) for w in wanted]


def _run(fit, parm, level: float) -> tuple[_Profiler, list[int], list[list[float]], float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level!r}")
    prof = _Profiler(fit)
    index = _labels(fit, prof.par, parm)
    z = float(stats.norm.ppf(0.5 + level / 2))
    rows = []
    for j in index:
        ends = []
        for side in (-1, 1):
            c, at_limit = prof.end(j, side, z)
            ends.append(prof.par.edge(j, side) if at_limit else prof.par.natural(j, c))
        rows.append([ends[0], prof.par.natural(j, prof.phi_hat[j]), ends[1]])
        if any(np.isinf(e) for e in ends):
            warnings.warn(
                f"the profile of {prof.par.labels[j]!r} does not reach the {level:g} level on "
                "one side within a wide range: that side of its interval is unbounded",
                UserWarning,
                stacklevel=3,
            )
    return prof, index, rows, z


def profile_confint(fit, parm="fixed-effects", level: float = 0.95) -> pd.DataFrame:
    """Profile-likelihood confidence intervals (:meth:`MixedModelFit.confint` with
    ``method="profile"``).

    Parameters
    ----------
    fit : MixedModelFit
    parm : str or list of str
        A block (``"fixed-effects"``, ``"zero_part"``, ``"var-cov"``, ``"extra"``, ``"all"``)
        or row labels of the table (``"time"``, ``"sd.(Intercept)"``).
    level : float

    Returns
    -------
    pandas.DataFrame
        The lower end, the estimate and the upper end; variance components as standard
        deviations (``sd.<effect>``) and correlations (``cor.<effect>.<effect>``), as lme4
        reports them; a standard deviation whose interval reaches 0 has the lower end 0.

    Raises
    ------
    ValueError
        For an unknown parameter or block, or a fit with priors (a MAP fit).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> ci = profile_confint(fit, "sd.(Intercept)")
    >>> ci.round(2)
                    2.5 %  Estimate  97.5 %
    sd.(Intercept)   1.71      2.16    2.72
    """
    prof, index, rows, _ = _run(fit, parm, level)
    cols = [f"{100 * (1 - level) / 2:g} %", "Estimate", f"{100 * (1 + level) / 2:g} %"]
    labels = [prof.par.labels[j] for j in index]
    if parm == "zero_part":
        labels = fit.design.zi_fixed_names
    return pd.DataFrame(rows, index=labels, columns=cols)


def profile(fit, parm="all", level: float = 0.99) -> pd.DataFrame:
    """The likelihood profile of each parameter: the points that
    ``fit.confint(method="profile")`` evaluates out to ``level``, for plotting ``ζ`` against the
    parameter (straight when the Wald interval is exact).

    Parameters
    ----------
    fit : MixedModelFit
    parm : str or list of str
        As for ``fit.confint(method="profile")``.
    level : float
        How far out each profile goes.

    Returns
    -------
    pandas.DataFrame
        Columns ``parameter``, ``value`` (on the scale of the table of
        ``profile_confint``) and ``zeta`` (the signed root of the likelihood-ratio
        statistic), sorted by parameter and value, the estimates included (``zeta`` 0).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fit = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> p = profile(fit, "time")
    >>> bool(p["zeta"].is_monotonic_increasing), bool(p["zeta"].max() >= 2.57)
    (True, True)
    """
    prof, index, _, _ = _run(fit, parm, level)
    hats = [(prof.par.labels[j], float(prof.par.natural(j, prof.phi_hat[j])), 0.0) for j in index]
    out = pd.DataFrame(prof.trace + hats, columns=["parameter", "value", "zeta"])
    out["parameter"] = pd.Categorical(out["parameter"], [prof.par.labels[j] for j in index])
    return out.drop_duplicates().sort_values(["parameter", "value"], ignore_index=True)
