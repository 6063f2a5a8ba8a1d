"""Parametric bootstrap: responses simulated from a fit, and the model refitted to each.

``bootstrap`` simulates ``nsim`` data sets from a fitted mixed model
(:meth:`glmm_ppl.MixedModelFit.simulate`, new random effects for every data set), refits the
model to each and returns the replicates of every parameter with percentile intervals.
``bootstrap_lrt`` is the test behind ``anova(m0, m1, bootstrap=B)``: the likelihood-ratio
statistic's null distribution from data sets simulated from the smaller model, to which both
models are refitted. Its p-value ``(1 + #{LRT* ≥ LRT}) / (1 + B)`` is valid where the χ² one is
not, such as for a variance tested on the boundary of its range (0).

Each refit starts from the fit's estimates (with standard deviations near 0 raised: a refit
that starts there stays there) and runs the optimizer of :func:`glmm_ppl.mixed_model` with the fit's
rule, penalty and control settings. Only the response changes between data sets: the formulas
are not parsed again, and the compiled objective of the model's structure is reused; each refit
builds a fresh quadrature engine, which holds the response and the modes of the random effects
(0.4 to 2 ms on the package's test models, under 1% of a refit). A refit counts as converged
when the optimizer says so, and also when it stops at the boundary (a variance at 0, a
correlation at ±1 or an extra parameter at the edge of its range), where the maximum lies:
under the null of a variance test about half the data sets put it there, or more with binary
data. Refits that fail otherwise (including data sets without a maximum-likelihood estimate,
such as separation) are dropped, with a warning that counts them.

Data set ``k`` is drawn from its own random stream, the ``k``-th child of ``seed``
(:class:`numpy.random.SeedSequence`), so the results do not depend on how the refits are spread
over threads, and a larger ``nsim`` with the same seed extends the replicates of a smaller one.
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..engine.covariance import free_entries, theta_to_D
from ..fitting.blas import blas_threads
from ..fitting.glm import fit_glm_arrays
from ..fitting.graph import MixedModelGraph
from ..fitting.identification import boundary_problem, existence_problems, extra_at_edge
from ..fitting.rule import fit_checked
from .glm import GLMFit
from .results import MixedModelFit
from .simulate import check_seed, simulate

__all__ = ["BootstrapLRT", "BootstrapResult", "bootstrap", "bootstrap_lrt", "check_nsim"]

#: Threads that refit data sets side by side. Measured on a 2-core machine, one refit after
#: another against two at a time (medians of 3 to 5 runs; the results are identical): fm1
#: (800 rows, 11 nodes) 100 data sets 3.2 s and 3.3 s, its LRT against the GLM 3.7 s and 4.0 s;
#: a random intercept on 4,000 rows, 60 data sets, 4.5 s and 2.7 s; fm2 (121 nodes), 40 data
#: sets, 8.1 s and 7.1 s; 20,000 rows, 24 data sets, 3.8 s and 3.1 s (the engine splits each
#: evaluation over both cores here already); two nested factors (1,920 rows), 16 data sets,
#: 2.8 s and 2.7 s; VerbAgg's crossed factors (7,584 rows), 10 data sets, 4.2 s and 3.3 s.
#: Two threads overlap one refit's compiled kernels (which release the GIL) with the other's
#: Python; on the smallest models the Python is most of a refit, and they break even.
_THREADS = 2
#: The smallest starting standard deviation of a refit, relative to the optimizer's own start.
_SD_FLOOR = 0.3
#: Below this many data sets a progress bar is not shown unless asked for.
_PROGRESS_FROM = 100
#: Bootstrap statistics closer than this to the observed one count as ties (the refits'
#: log-likelihoods are precise to about 1e-6; boundary fits give 0 up to that).
_TIE = 1e-5


# ---- arguments --------------------------------------------------------------------------------
def check_nsim(value, name: str = "nsim") -> int:
    """``value`` as a number of simulated data sets, or a ``ValueError`` naming ``name``.

    Examples
    --------
    >>> check_nsim(20)
    20
    >>> check_nsim(0, "bootstrap")
    Traceback (most recent call last):
    ...
    ValueError: bootstrap must be a positive integer (the number of simulated data sets), got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"{name} must be a positive integer (the number of simulated data sets), got {value!r}"
        )
    return int(value)


def _streams(seed, n: int) -> list[np.random.SeedSequence]:
    """One seed per data set: the children of ``seed``'s sequence (a Generator gives the
    entropy of the sequence, and is advanced)."""
    seed = check_seed(seed)
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(0, 2**63))
    return np.random.SeedSequence(seed).spawn(n)


def _check_progress(progress) -> None:
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None (automatic), got {progress!r}")


def _check_fit(fit, what: str) -> None:
    """Refuse fits the bootstrap cannot reproduce by simulation and refitting."""
    if not isinstance(fit, MixedModelFit):
        raise TypeError(f"{what} must be a fit from glmm_ppl.mixed_model, got {type(fit).__name__}")
    if fit.priors is not None:
        raise ValueError(
            f"{what} has priors (a MAP fit): the parametric bootstrap refits by maximum "
            "likelihood, and a MAP estimate's sampling distribution is not a posterior; refit "
            "without priors, or use glmm_ppl.sample for the posterior"
        )
    if fit.design.weights is not None:
        raise ValueError(
            f"{what} has group weights: each simulated group would count as that many groups "
            "in the refits, which is not a draw from the model; refit without weights"
        )
    if fit.family.row_weighted:
        raise ValueError(
            f"{what} has row weights: a simulated data set draws each row once, and a refit "
            "with the weights would count a row's one draw as that many observations, which is "
            "not a draw from the model; use fit.vcov(sandwich=True) for robust standard errors, "
            "or refit without row_weights"
        )
    if "censoring" in fit.family.aux_names:
        raise ValueError(
            f"{what} has a censored response: simulation draws uncensored values, so the data "
            "sets would not reproduce the data's censoring"
        )


# ---- refits -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Refit:
    """One refit: ``θ`` (fixed effects first), the log-likelihood (with the penalty of a
    penalized fit, as ``fit.loglik``) and whether it counts (converged or on the boundary)."""

    theta: np.ndarray
    loglik: float
    ok: bool


def _warm_start(fit: MixedModelFit) -> dict:
    """``initial_values`` at the fit's estimates, with ``D`` moved off the boundary.

    A refit that starts from a variance near 0 stays there: the log-likelihood is flat in the
    log standard deviation (measured on 60 binary data sets simulated without random effects,
    refitted with a random intercept: from a standard deviation of 0.01, 51 refits stopped
    short of the maximum that the default start finds, from 0.05, 6, from 0.1 and above none).
    So each standard deviation starts at least at ``_SD_FLOOR`` of the optimizer's own
    start (1 on the link scale per unit of the effect's column, as :func:`glmm_ppl.mixed_model`
    starts; times the residual spread with an identity link), and the correlations are shrunk
    towards 0 to within ±0.9 (a boundary fit's may be ±1).
    """
    d = fit.design
    D = theta_to_D(fit.theta[fit.layout.blocks["var-cov"]], d.q, d.diagonal)
    spread = np.concatenate(
        [d.Z.std(axis=0)] + ([d.Z_zi.std(axis=0)] if d.Z_zi is not None else [])
    )
    floor = _SD_FLOOR / np.maximum(spread, 1.0)
    if fit.family.link.name == "identity" and fit.family.n_eta == 1:
        residuals = d.y - d.fixed_part(fit.fixef().to_numpy())[:, 0]
        floor = floor * max(float(np.sqrt(np.mean(residuals**2))), 1e-12)
    sd = np.sqrt(np.clip(np.diag(D), 0.0, None))
    safe = np.where(sd > 0, sd, 1.0)
    corr = D / np.outer(safe, safe)
    np.fill_diagonal(corr, 1.0)
    top = np.max(np.abs(corr - np.eye(len(sd))), initial=0.0)
    shrink = min(1.0, 0.9 / top) if top > 0 else 1.0  # towards I: positive definite
    corr = shrink * corr + (1.0 - shrink) * np.eye(len(sd))
    new_sd = np.maximum(sd, floor)
    D = corr * np.outer(new_sd, new_sd)
    start = {"betas": fit.fixef().to_numpy(), "D": D}
    if d.X_zi is not None:
        start["gammas"] = fit.fixef("zero_part").to_numpy()
    if fit.family.n_phis:
        start["phis"] = np.exp(fit.theta[fit.layout.blocks["extra"]])
    return start


class _MixedRefit:
    """Refits of a mixed model to new responses (in its row order)."""

    def __init__(self, fit: MixedModelFit):
        self.fit, self.start = fit, _warm_start(fit)
        self.control = fit.opt_summary.control
        probe = MixedModelGraph(fit.design, fit.family, fit.n_agq, fit.penalty)
        self.uses_blas = bool(getattr(probe.engine, "uses_blas", False))

    def _fit(self, design, start):
        """``fit_checked`` of a fresh graph of ``design`` from ``start`` (None: mixed_model's
        own start), or None if the optimizer's algebra met a non-finite Hessian."""
        fit = self.fit
        graph = MixedModelGraph(design, fit.family, fit.n_agq, fit.penalty)
        try:
            return fit_checked(graph, self.control, start)
        except np.linalg.LinAlgError:
            return None

    def __call__(self, y: np.ndarray) -> _Refit:
        fit = self.fit
        design = dataclasses.replace(fit.design, y=y)
        # near the boundary D⁻¹ overflows harmlessly: no warnings from each refit
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            out = self._fit(design, self.start) or self._fit(design, None)
        if out is None:
            return _Refit(np.full(len(fit.theta), np.nan), float("nan"), False)
        graph, theta, objective, H, opt, _ = out
        if not np.isfinite(objective):
            return _Refit(theta, float(objective), False)
        if opt.converged:  # mixed_model's checks for estimates that do not exist, but not
            # flatness, which a variance near 0 has by nature (flat in its log)
            ok = not existence_problems(design, fit.family, graph.layout, theta, H, True)
        else:  # at the boundary the Hessian test does not apply: the maximum is at the edge
            edge = extra_at_edge(graph.split(theta)["log_phis"], fit.family, design)
            ok = bool(edge or boundary_problem(graph.unpack(theta)[1], design.random_names))
        return _Refit(theta, float(objective), ok)


class _GLMRefit:
    """Refits of a GLM to new responses, on the arrays of the mixed model it is nested in (its
    fixed-effects columns, offset and trials, in that model's row order)."""

    def __init__(self, glm: GLMFit, larger: MixedModelFit):
        d = larger.design
        self.family = glm.family
        self.X = np.ascontiguousarray(d.X[:, [d.fixed_names.index(n) for n in glm.coef.index]])
        self.offset = None if d.offset is None else d.offset[:, :1]
        self.aux = {}
        for name in glm.family.aux_names:
            if name not in larger.family.aux_names:
                raise ValueError(f"the GLM's {name!r} is not among the mixed model's data")
            self.aux[name] = d.aux[:, larger.family.aux_names.index(name)]
        offset = 0.0 if self.offset is None else self.offset[:, 0]
        self.eta = self.X @ glm.coef.to_numpy() + offset
        self.phis = np.asarray(glm.phis, dtype=float)
        again = self(np.asarray(d.y, dtype=float))
        if not np.isclose(again.loglik, glm.loglik, rtol=1e-8, atol=1e-6):
            raise ValueError(
                f"the GLM refitted on the mixed model's arrays has log-likelihood "
                f"{again.loglik:.6f}, not its own {glm.loglik:.6f}: its design differs from the "
                "mixed model's columns of the same names"
            )

    def simulate(self, rng: np.random.Generator) -> np.ndarray:
        y = self.family.simulate(self.eta, self.phis, rng, **self.aux)
        return np.asarray(y, dtype=float)

    def __call__(self, y: np.ndarray) -> _Refit:
        Y = np.column_stack([y, *self.aux.values()])
        coef, phis, loglik, _ = fit_glm_arrays([self.X], Y, self.family, self.offset)
        theta = np.concatenate([coef, np.log(phis)])
        return _Refit(theta, float(loglik), bool(np.isfinite(loglik) and np.all(np.isfinite(coef))))


def _reorder(source: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """Positions in ``source`` of the row labels ``target`` (None when they are in the same
    order)."""
    if np.array_equal(source, target):
        return None
    if not pd.Index(source).is_unique:
        raise ValueError(
            "the models order the rows differently and the data's row labels repeat, so the "
            "simulated responses cannot be matched to the rows: give the data a unique index"
        )
    positions = pd.Index(source).get_indexer(target)
    if len(source) != len(target) or np.any(positions < 0):
        raise ValueError("the models were fitted to different rows of the data")
    return positions


# ---- running the replicates ---------------------------------------------------------------------
def _run(task, n: int, progress, uses_blas: bool, desc: str) -> list:
    """``[task(0), …, task(n − 1)]``, on ``_THREADS`` threads, with a progress bar."""
    bar = None
    if progress or (progress is None and n >= _PROGRESS_FROM):
        try:
            from tqdm import tqdm
        except ImportError:
            if progress:
                raise ImportError("progress=True needs tqdm: pip install tqdm") from None
        else:
            bar = tqdm(total=n, desc=desc, unit="data set")
    out: list = [None] * n
    # BLAS threads beside the refits' threads only slow the small algebra (as in mixed_model)
    limit = blas_threads(None if uses_blas else 1)
    pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="glmm_ppl_bootstrap")
    try:
        with limit:
            jobs = {pool.submit(task, k): k for k in range(n)}
            for job in as_completed(jobs):
                out[jobs[job]] = job.result()
                if bar is not None:
                    bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    return out


# ---- the likelihood-ratio test ------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BootstrapLRT:
    """The parametric bootstrap of a likelihood-ratio statistic (``bootstrap_lrt``).

    Attributes
    ----------
    statistic : float
        The observed ``LRT = 2 (log L₁ − log L₀)``.
    replicates : ndarray
        ``LRT*`` of the data sets whose refits both converged, in the order of the data sets;
        values within about 1e-6 of 0 (either sign) are fits of the larger model on the
        boundary.
    nsim : int
        Number of simulated data sets.
    n_failed : int
        Data sets dropped because a refit did not converge.
    names : tuple of str
        The smaller model's name (the data are simulated from it) and the larger one's.

    Examples
    --------
    >>> test = BootstrapLRT(3.2, np.array([0.0, 0.0, 0.4, 3.5, 1.1]), nsim=5, n_failed=0)
    >>> test.p_value  # (1 + 1) / (1 + 5)
    0.3333333333333333
    >>> test
    <BootstrapLRT: LRT 3.2000, p 0.3333 from 5 of 5 simulated data sets (0 dropped)>
    """

    statistic: float
    replicates: np.ndarray
    nsim: int
    n_failed: int
    names: tuple = ("m0", "m1")

    @property
    def p_value(self) -> float:
        """``(1 + #{LRT* ≥ LRT}) / (1 + B)``, ``B`` the data sets kept (NaN when none is);
        differences below 1e-5 count as ties.

        Examples
        --------
        >>> BootstrapLRT(2.0, np.array([0.0, 0.5, 3.0, 1.99999]), 5, 1).p_value
        0.6
        """
        if len(self.replicates) == 0:
            return float("nan")
        exceed = int(np.sum(self.replicates >= self.statistic - _TIE))
        return (1 + exceed) / (1 + len(self.replicates))

    def __repr__(self) -> str:
        return (
            f"<BootstrapLRT: LRT {self.statistic:.4f}, p {self.p_value:.4g} from "
            f"{len(self.replicates)} of {self.nsim} simulated data sets ({self.n_failed} dropped)>"
        )


def bootstrap_lrt(
    m0, m1, nsim: int, seed=None, progress: bool | None = None, names=("m0", "m1")
) -> BootstrapLRT:
    """The likelihood-ratio statistic's null distribution by the parametric bootstrap.

    Each data set is simulated from the smaller model ``m0`` (new random effects for each), and
    both models are refitted to it from their own estimates; ``LRT* = 2 (log L₁* − log L₀*)``.
    :func:`glmm_ppl.anova` with ``bootstrap=`` calls this after checking that the models are
    nested fits of the same data.

    Parameters
    ----------
    m0 : MixedModelFit or GLMFit
        The smaller model, from which the data are simulated; a GLM (no random effects) is
        refitted on the arrays of ``m1`` (the columns of its fixed effects, offset and trials).
    m1 : MixedModelFit
        The larger model.
    nsim : int
        Number of simulated data sets.
    seed : int, numpy.random.Generator or None
        The same seed gives the same result, whatever the threads do.
    progress : bool or None
        Show a progress bar (tqdm); None shows it from 100 data sets on.
    names : tuple of str
        The models' names in the warning about refits that did not converge.

    Returns
    -------
    BootstrapLRT

    Warns
    -----
    UserWarning
        When refits did not converge: the warning counts them and their data sets are
        dropped.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> df = gp.load_vignette("binary")
    >>> m0 = gp.glm("y ~ sex * time", df, "binomial")
    >>> m1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
    >>> test = bootstrap_lrt(m0, m1, nsim=20, seed=1)
    >>> round(test.statistic, 2), test.p_value  # no LRT* comes near 162: p = 1/21
    (162.07, 0.047619047619047616)
    """
    nsim = check_nsim(nsim, "nsim")
    _check_progress(progress)
    if not isinstance(m1, MixedModelFit):
        raise TypeError(
            "the parametric bootstrap needs the larger model to be a mixed model (from "
            f"glmm_ppl.mixed_model), got {type(m1).__name__}"
        )
    _check_fit(m1, names[1])
    if isinstance(m0, GLMFit):  # simulated in m1's row order, on m1's arrays
        refit0 = sim = _GLMRefit(m0, m1)
        order = None
    else:  # simulated in m0's row order
        _check_fit(m0, names[0])
        refit0, sim = _MixedRefit(m0), None
        order = _reorder(m0.design.rows, m1.design.rows)
    refit1 = _MixedRefit(m1)
    streams = _streams(seed, nsim)

    def one(k: int) -> tuple[_Refit, _Refit]:
        rng = np.random.default_rng(streams[k])
        y = sim.simulate(rng) if sim is not None else simulate(m0, 1, seed=rng)[:, 0]
        return refit0(y), refit1(y if order is None else y[order])

    uses_blas = refit1.uses_blas or getattr(refit0, "uses_blas", False)
    pairs = _run(one, nsim, progress, uses_blas, "bootstrap LRT")
    failed = [(not r0.ok, not r1.ok) for r0, r1 in pairs]
    kept = np.array([2.0 * (r1.loglik - r0.loglik) for r0, r1 in pairs if r0.ok and r1.ok])
    n_failed = sum(a or b for a, b in failed)
    if n_failed:
        warnings.warn(
            f"{n_failed} of {nsim} bootstrap data sets were dropped because a refit did not "
            f"converge ({names[0]}: {sum(a for a, _ in failed)}, {names[1]}: "
            f"{sum(b for _, b in failed)}); the bootstrap p-value uses the other "
            f"{nsim - n_failed}",
            UserWarning,
            stacklevel=3,
        )
    statistic = 2.0 * (float(m1.loglik) - float(m0.loglik))
    return BootstrapLRT(statistic, kept, nsim, n_failed, tuple(names))


# ---- the parameters -----------------------------------------------------------------------------
def _labels(fit: MixedModelFit) -> list[str]:
    """The parameters on their natural scale, named as ``fit.confint("all")`` names them."""
    d = fit.design
    names = list(d.fixed_names) + [f"zi_{n}" for n in d.zi_fixed_names]
    rows, cols = free_entries(d.q, d.diagonal)
    r = d.random_names
    names += [
        f"var.{r[a]}" if a == b else f"cov.{r[a]}.{r[b]}" for a, b in zip(rows, cols, strict=True)
    ]
    return names + list(fit.family.phi_names)


def _natural(fit: MixedModelFit, theta: np.ndarray) -> np.ndarray:
    """``θ`` on the scale of ``_labels``: fixed effects, the free entries of ``D`` and the
    extra parameters."""
    d, blocks = fit.design, fit.layout.blocks
    rows, cols = free_entries(d.q, d.diagonal)
    D = theta_to_D(theta[blocks["var-cov"]], d.q, d.diagonal)
    fixed = theta[: blocks["var-cov"].start]  # β, then γ
    extra = theta[blocks["extra"]]  # coefficients (dispersion, thresholds) as reported
    extra = np.exp(extra) if fit.layout.extra_log else fit.family.coefficient_values(extra)
    return np.concatenate([fixed, D[rows, cols], extra])


def _percent(p: float) -> str:
    return f"{100 * p:g} %"


def _check_level(level) -> float:
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise ValueError(f"level must be a number between 0 and 1, got {level!r}")
    return float(level)


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """The parametric bootstrap of a fit's parameters (``bootstrap``).

    Attributes
    ----------
    replicates : pandas.DataFrame
        One row per simulated data set whose refit converged (indexed by the data set's
        number, so the dropped ones are missing), one column per parameter, named and scaled
        as the rows of ``fit.confint("all")``: fixed effects, zero-part fixed effects
        (``zi_``), variances ``var.<effect>`` and covariances ``cov.<a>.<b>`` of the random
        effects, and the family's extra parameters.
    estimates : pandas.Series
        The fit's estimates on the same scale.
    nsim : int
        Number of simulated data sets.
    n_failed : int
        Refits that did not converge (their data sets are dropped).
    level : float
        The default level of ``confint``.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> df = gp.load_vignette("binary")
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
    >>> boot = bootstrap(fm1, nsim=20, seed=1)
    >>> boot.replicates.shape, boot.n_failed
    ((20, 5), 0)
    >>> boot.replicates.columns.equals(fm1.confint("all").index)
    True
    """

    replicates: pd.DataFrame
    estimates: pd.Series
    nsim: int
    n_failed: int
    level: float = 0.95

    @property
    def std_errors(self) -> pd.Series:
        """The replicates' standard deviations: bootstrap standard errors.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
        >>> boot = bootstrap(fm1, nsim=20, seed=2)
        >>> boot.std_errors.index.tolist()
        ['(Intercept)', 'time', 'var.(Intercept)']
        """
        return self.replicates.std(ddof=1).rename("Std.Err")

    def confint(self, level: float | None = None) -> pd.DataFrame:
        """Percentile intervals: the replicates' ``(1 − level)/2`` and ``(1 + level)/2``
        quantiles, with the estimates, laid out as ``fit.confint("all")``.

        Parameters
        ----------
        level : float, optional
            The level; :attr:`level` by default.

        Examples
        --------
        >>> import glmm_ppl as gp
        >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
        >>> ci = bootstrap(fm1, nsim=20, seed=2).confint(0.9)
        >>> ci.columns.tolist()
        ['5 %', 'Estimate', '95 %']
        >>> bool((ci["5 %"] <= ci["95 %"]).all())
        True
        """
        level = self.level if level is None else _check_level(level)
        low, high = (1 - level) / 2, (1 + level) / 2
        if len(self.replicates):
            q = self.replicates.quantile([low, high]).to_numpy()
        else:
            q = np.full((2, len(self.estimates)), np.nan)
        return pd.DataFrame(
            {_percent(low): q[0], "Estimate": self.estimates.to_numpy(), _percent(high): q[1]},
            index=self.estimates.index,
        )

    def _table(self) -> pd.DataFrame:
        ci = self.confint()
        return pd.concat([ci[["Estimate"]], self.std_errors, ci.drop(columns="Estimate")], axis=1)

    def __repr__(self) -> str:
        return (
            f"Parametric bootstrap: {len(self.replicates)} of {self.nsim} simulated data sets "
            f"kept ({self.n_failed} refits did not converge); percentile intervals\n"
            + self._table().round(4).to_string()
        )

    def _repr_html_(self) -> str:
        head = self.__repr__().splitlines()[0]
        return f"<p>{head}</p>" + self._table().round(4).to_html()


def bootstrap(
    fit, nsim: int = 500, seed=None, level: float = 0.95, progress: bool | None = None
) -> BootstrapResult:
    """Parametric bootstrap of a fit's parameters, with percentile intervals.

    Simulates ``nsim`` data sets from the fit (new random effects ``b ~ N(0, D̂)`` for each,
    the fit's offsets and trials), refits the model to each from its estimates (the same
    quadrature rule, penalty and control settings), and collects every parameter on its
    natural scale.

    Parameters
    ----------
    fit : MixedModelFit
        A maximum-likelihood (or penalized) fit; with several grouping factors, nested or
        crossed, too.
    nsim : int
        Number of simulated data sets. Percentile intervals need many for their tails: at a
        95% level, 1000 or more for two stable digits.
    seed : int, numpy.random.Generator or None
        The same seed gives the same replicates, whatever the threads do; data set ``k`` has
        its own stream, so a larger ``nsim`` extends the replicates of a smaller one.
    level : float
        The level of the percentile intervals (``BootstrapResult.confint``).
    progress : bool or None
        Show a progress bar (tqdm); None shows it from 100 data sets on.

    Returns
    -------
    BootstrapResult
        The replicates (a DataFrame whose columns are the rows of ``fit.confint("all")``),
        the estimates, the number of refits that failed, and percentile intervals.

    Raises
    ------
    ValueError
        If ``nsim`` is not a positive integer or ``level`` is not in (0, 1); for a fit with
        priors (a MAP fit: the bootstrap refits by maximum likelihood), with group weights or
        row weights (a simulated data set draws each row once: it cannot reproduce them), or
        with a censored response (simulation does not reproduce the censoring).
    TypeError
        If ``fit`` is not a mixed model fit, or ``seed`` or ``progress`` has the wrong type.

    Warns
    -----
    UserWarning
        When refits did not converge: the warning counts them and they are dropped
        (``n_failed``). A refit stopped at the boundary (a variance at 0) is kept.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> df = gp.load_vignette("binary")
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", df, "binomial")
    >>> boot = bootstrap(fm1, nsim=20, seed=1)
    >>> boot.confint().columns.tolist()
    ['2.5 %', 'Estimate', '97.5 %']
    >>> boot.confint().index.equals(fm1.confint("all").index)
    True
    >>> bool(bootstrap(fm1, nsim=20, seed=1).replicates.equals(boot.replicates))
    True
    """
    nsim = check_nsim(nsim, "nsim")
    level = _check_level(level)
    _check_progress(progress)
    _check_fit(fit, "fit")
    refit = _MixedRefit(fit)
    streams = _streams(seed, nsim)

    def one(k: int) -> _Refit:
        return refit(simulate(fit, 1, seed=np.random.default_rng(streams[k]))[:, 0])

    refits = _run(one, nsim, progress, refit.uses_blas, "bootstrap")
    kept = [k for k, r in enumerate(refits) if r.ok]
    labels = _labels(fit)
    values = np.array([_natural(fit, refits[k].theta) for k in kept]).reshape(
        len(kept), len(labels)
    )
    n_failed = nsim - len(kept)
    if n_failed:
        warnings.warn(
            f"{n_failed} of {nsim} bootstrap refits did not converge and were dropped; the "
            f"replicates and intervals use the other {len(kept)}",
            UserWarning,
            stacklevel=2,
        )
    return BootstrapResult(
        replicates=pd.DataFrame(values, index=pd.Index(kept, name="data set"), columns=labels),
        estimates=pd.Series(_natural(fit, fit.theta), index=labels, name="Estimate"),
        nsim=nsim,
        n_failed=n_failed,
        level=level,
    )
