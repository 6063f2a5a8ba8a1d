"""Priors as PyMC distributions, and their log density on the model's parameters ``θ``.

``priors`` maps a key to an unregistered PyMC distribution (``pm.Normal.dist(0, 2.5)``):

=======================  ================================================================
key                      applies to
=======================  ================================================================
``"fixed"``              every fixed effect (a name below overrides it for one)
a fixed-effect name      that coefficient (``"time"``, ``"sexfemale:time"``)
``"zero_part"``          every fixed effect of the zero part; ``"zi_<name>"`` one of them
``"sd"``                 every random-effect standard deviation; ``"sd_<name>"`` one of them
``"corr"``               the correlations of a full ``D``: an LKJ shape ``η`` (a number or
                         ``pm.LKJCorr.dist(n=q, eta=η)``)
an extra parameter       e.g. ``"size"`` (negative binomial), ``"sigma"`` (Gaussian); with a
                         dispersion sub-model its coefficients (``"disp_grpb"``), on their
                         own (log-linear) scale, as fixed effects
=======================  ================================================================

Parameters without a prior have a flat one on their unconstrained scale (``θ``: β, the
log-Cholesky entries of ``D``, ``log φ``). A prior on a standard deviation or an extra
parameter is a density on its natural scale: for sampling, the log-Jacobian of ``θ ↦`` that
scale is added (``jacobian=True``); a MAP fit maximises the density without it, as PyMC's
``find_MAP`` does. With a full ``D`` (``|``), ``"sd"`` and ``"corr"`` form PyMC's
``LKJCholeskyCov`` on the Cholesky factor, whose packed form with log diagonal is ``θ_D``
itself; an ``"sd"`` prior alone takes ``η = 1`` (uniform correlations), a ``"corr"`` prior
alone leaves the standard deviations flat.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.distributions.distribution import SymbolicRandomVariable
from pymc.distributions.shape_utils import change_dist_size
from pytensor.graph.basic import Variable
from pytensor.tensor.random.op import RandomVariable

from ..engine.covariance import Blocks, has_correlations
from ..engine.ops import COMPILE_LOCK, NUMPY_MODE
from ..fitting.parameters import ParameterLayout

__all__ = ["PriorSpec", "make_priors"]


def _is_distribution(value) -> bool:
    owner = getattr(value, "owner", None)
    if not isinstance(value, Variable) or owner is None:
        return False
    return isinstance(owner.op, (RandomVariable, SymbolicRandomVariable))


class PriorSpec:
    """Validated priors of one model, and their log density as a PyTensor graph of ``θ``.

    Built by :func:`make_priors`; ``log_prior(theta, jacobian)`` is the graph,
    ``compiled()`` a NumPy function ``θ ↦ (log prior, gradient)`` (without the Jacobian: the
    MAP objective).
    """

    def __init__(self, priors: dict, layout: ParameterLayout):
        self.priors, self.layout = dict(priors), layout
        self._fns = {}  # jacobian -> compiled (log prior, gradient)

    def __repr__(self) -> str:
        return f"PriorSpec({', '.join(self.priors)})"

    def describe(self) -> list[str]:
        """One line per prior with its parameters, for summaries (``sd ~ HalfNormal(0, 3)``,
        PyMC's notation: the distribution's parameters in order)."""
        return [f"{key} ~ {_show(dist)}" for key, dist in self.priors.items()]

    # ---- the graph -----------------------------------------------------------------------
    def log_prior(self, theta, jacobian: bool):
        """Log prior density at ``θ`` (a PyTensor vector laid out as the fit's ``θ``)."""
        lay, pr = self.layout, self.priors
        p, pz, t = lay.p, len(lay.zi_names), lay.n_theta_D
        total = pt.as_tensor_variable(np.float64(0.0))
        for j, name in enumerate(lay.fixed_names):
            dist = pr.get(name, pr.get("fixed"))
            if dist is not None:
                total = total + pm.logp(dist, theta[j])
        for j, name in enumerate(lay.zi_names):
            dist = pr.get(f"zi_{name}", pr.get("zero_part"))
            if dist is not None:
                total = total + pm.logp(dist, theta[p + j])
        theta_D = theta[p + pz : p + pz + t]
        total = total + self._log_prior_D(theta_D, jacobian)
        for m, name in enumerate(_extra_keys(lay)):
            dist = pr.get(name)
            if dist is not None:
                log_phi = theta[p + pz + t + m]
                if not lay.extra_log:  # an entry reported as a coefficient: as a fixed effect
                    total = total + pm.logp(dist, log_phi)
                    continue
                total = total + pm.logp(dist, pt.exp(log_phi)) + (log_phi if jacobian else 0.0)
        return total

    def _log_prior_D(self, theta_D, jacobian: bool):
        """The priors of ``D``'s parameters, block by block with several grouping factors."""
        lay = self.layout
        if not isinstance(lay.diagonal, Blocks):
            return self._log_prior_block(lay.random_names, lay.diagonal, theta_D, jacobian)
        total = pt.as_tensor_variable(np.float64(0.0))
        for _, _, diagonal, rows, entries in lay.diagonal.parts():
            names = lay.random_names[rows]
            total = total + self._log_prior_block(names, diagonal, theta_D[entries], jacobian)
        return total

    def _log_prior_block(self, names, diagonal: bool, theta_D, jacobian: bool):
        pr, q = self.priors, len(names)
        total = pt.as_tensor_variable(np.float64(0.0))
        sd_dists = [pr.get(f"sd_{name}", pr.get("sd")) for name in names]
        if diagonal or q == 1:
            for k, dist in enumerate(sd_dists):  # θ_k = log sd_k
                if dist is not None:
                    total = (
                        total + pm.logp(dist, pt.exp(theta_D[k])) + (theta_D[k] if jacobian else 0)
                    )
            return total
        if "corr" not in pr and all(d is None for d in sd_dists):
            return total
        sd = pr.get("sd")
        sd_dist = pm.HalfFlat.dist(shape=q) if sd is None else change_dist_size(sd, (q,))
        lkj = pm.LKJCholeskyCov.dist(
            n=q, eta=_lkj_eta(pr.get("corr", 1.0)), sd_dist=sd_dist, compute_corr=False
        )
        rows, cols = np.tril_indices(q)
        diag = np.flatnonzero(rows == cols)
        packed = pt.set_subtensor(theta_D[diag], pt.exp(theta_D[diag]))
        total = total + pm.logp(lkj, packed)
        return total + (pt.sum(theta_D[diag]) if jacobian else 0.0)

    def compiled(self, jacobian: bool = False):
        """``θ ↦ (log prior, ∂/∂θ)`` in NumPy, compiled once (``jacobian``: with the Jacobian
        of the log-scale parameters, the density of ``θ`` that MCMC samples). One compiled
        function is not safe to call from several threads at once: give each its ``copy()``."""
        with COMPILE_LOCK:
            if jacobian not in self._fns:
                theta = pt.dvector("theta")
                lp = self.log_prior(theta, jacobian=jacobian)
                self._fns[jacobian] = pytensor.function(
                    [theta],
                    [lp, pytensor.grad(lp, theta, disconnected_inputs="ignore")],
                    mode=NUMPY_MODE,
                )
        return self._fns[jacobian]


_NARROW = ("float16", "float32", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")


def _float64(dist):
    """``dist`` with its parameters in double precision: PyTensor stores Python numbers in the
    narrowest exact type (``2.5`` as float32, ``200`` as int16), which would compute the log
    density in single precision."""
    op = dist.owner.op
    if not isinstance(op, RandomVariable):
        return dist
    rng, size, *params = dist.owner.inputs
    params = [pt.cast(p, "float64") if p.dtype in _NARROW else p for p in params]
    return op.make_node(rng, size, *params).default_output()


def _show(value) -> str:
    """A prior with its parameters in the order PyMC takes them (``HalfNormal(0, 3)``), or an
    LKJ shape given as a number."""
    if isinstance(value, int | float | np.floating | np.integer):
        return f"LKJ(eta={float(value):g})"
    op = value.owner.op
    name = (getattr(op, "_print_name", None) or (_name(value),))[0]
    try:
        params = [np.asarray(p.eval()) for p in op.dist_params(value.owner)]
    except Exception:  # a symbolic distribution (a mixture, a censored one): its name alone
        return name
    shown = [f"{float(v):g}" if v.ndim == 0 else np.array2string(v, precision=4) for v in params]
    return f"{name}({', '.join(shown)})"


def _name(dist) -> str:
    op = dist.owner.op
    name = getattr(op, "name", None) or type(op).__name__
    return str(name).replace("_rv", "")


def _lkj_eta(value):
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"priors['corr']: the LKJ shape must be positive, got {value!r}")
        return float(value)
    if _is_distribution(value) and "lkj" in _name(value).lower():
        return value.owner.inputs[-1]  # LKJCorr(n, eta): eta is its last parameter
    raise TypeError(
        f"priors['corr'] must be an LKJ shape (a positive number) or pm.LKJCorr.dist(n, eta), "
        f"got {value!r}"
    )


def _extra_keys(layout: ParameterLayout) -> list[str]:
    """The prior keys of the extra entries of ``θ``: the extra parameters' names (their priors
    are on the natural scale), or for coefficients (a dispersion sub-model's, an ordinal
    model's thresholds) the entries' names in ``fit.names``, whose priors are on the entries
    as they are."""
    if layout.extra_log:
        return list(layout.phi_names)
    return layout.names[layout.blocks["extra"]]


def make_priors(priors, layout: ParameterLayout, penalized: bool) -> PriorSpec | None:
    """Check ``priors`` against the model's parameters.

    Raises
    ------
    ValueError
        For a key that names no parameter (the message lists the valid keys), a ``"corr"``
        prior where ``D`` has no correlations, or fixed-effect priors together with
        ``penalized`` (the penalty is a prior on the fixed effects).
    TypeError
        For a value that is not a PyMC distribution (``pm.Normal.dist(0, 2.5)``).
    """
    if priors is None:
        return None
    if not isinstance(priors, dict):
        raise TypeError(
            f"priors must be a dict of PyMC distributions by parameter, got {type(priors).__name__}"
        )
    valid = ["fixed", *layout.fixed_names]
    if layout.zi_names:
        valid += ["zero_part", *[f"zi_{n}" for n in layout.zi_names]]
    valid += ["sd", *[f"sd_{n}" for n in layout.random_names]]
    correlated = has_correlations(layout.q, layout.diagonal)
    if correlated:
        valid.append("corr")
    valid += _extra_keys(layout)
    unknown = [k for k in priors if k not in valid]
    if unknown:
        extra = ""
        if "corr" in unknown and not correlated:
            extra = " ('corr' needs correlated random effects: terms joined by '|')"
        raise ValueError(
            f"priors for parameters the model does not have: {', '.join(map(repr, unknown))}"
            f"{extra}; valid keys: {', '.join(map(repr, valid))}"
        )
    for key, value in priors.items():
        if key == "corr":
            _lkj_eta(value)
            continue
        if not _is_distribution(value):
            raise TypeError(
                f"priors[{key!r}] must be an unregistered PyMC distribution such as "
                f"pm.Normal.dist(0, 2.5) (created with .dist(), outside a model), got {value!r}"
            )
        if value.type.ndim != 0:
            raise ValueError(
                f"priors[{key!r}] must be a scalar distribution (it is applied to each "
                f"parameter), got one with {value.type.ndim} dimension(s)"
            )
    if penalized and any(k == "fixed" or k in layout.fixed_names for k in priors):
        raise ValueError(
            "penalized=True is a Student-t prior on the fixed effects: give either penalized or "
            "priors on the fixed effects, not both"
        )
    priors = {k: v if k == "corr" else _float64(v) for k, v in priors.items()}
    return PriorSpec(priors, layout) if priors else None
