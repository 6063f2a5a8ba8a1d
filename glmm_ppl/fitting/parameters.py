"""The parameter vector ``θ = (β, γ, θ_D, log φ)``: where each block sits and what it is called.

``β`` are the fixed effects, ``γ`` the fixed effects of the zero part (zero-inflated and
hurdle families; none otherwise), ``θ_D`` the log-Cholesky parameters of the random-effects
covariance ``D`` (:mod:`glmm_ppl.engine.covariance`) and ``log φ`` the logs of the family's
extra parameters. The graph, the optimizer, the fit object, the priors and the samplers all
ask one :class:`ParameterLayout` where a block is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.covariance import Blocks, n_theta, theta_names

__all__ = ["ParameterLayout", "phis_from_coefficients"]


def _log_sd(q: int, diagonal) -> list[int]:
    """The entries of ``θ_D`` that are log standard deviations (conditional ones below the
    first effect of a full block)."""
    if isinstance(diagonal, Blocks):
        return [
            entries.start + k
            for _, size, diag, _, entries in diagonal.parts()
            for k in _log_sd(size, diag)
        ]
    if diagonal:
        return list(range(q))
    rows, cols = np.tril_indices(q)  # the packed order of the factor's entries
    return [int(k) for k in np.flatnonzero(rows == cols)]


@dataclass(frozen=True)
class ParameterLayout:
    """Where the blocks of ``θ`` sit and what they are called.

    Parameters
    ----------
    fixed_names, zi_names, random_names : tuple of str
        Names of the fixed effects, of the zero part's fixed effects and of the random effects.
    diagonal : bool or Blocks
        Whether ``D`` is diagonal (independent random effects, ``||``); the
        :class:`~glmm_ppl.engine.covariance.Blocks` of a model with several grouping factors.
    phi_names : tuple of str
        Names of the family's extra parameters.
    extra_log : bool
        Whether the extra entries of ``θ`` are the logs of the extra parameters (named
        ``log(<name>)``); False for parameters reported as coefficients (a dispersion
        sub-model's, named as they are, ``disp_(Intercept)``; an ordinal model's thresholds),
        which are not logs of a natural-scale value.
    extra_names : tuple of str, optional
        Names of the extra entries of ``θ`` (:meth:`Family.extra_theta_names`); by default
        from ``phi_names`` and ``extra_log``.

    Examples
    --------
    >>> lay = ParameterLayout(("(Intercept)", "time"), (), ("(Intercept)", "time"), False, ())
    >>> lay.p, lay.q, lay.n_theta_D, lay.size
    (2, 2, 3, 5)
    >>> lay.names
    ['(Intercept)', 'time', 'D_11', 'D_12', 'D_22']
    >>> lay.blocks["var-cov"]
    slice(2, 5, None)
    >>> lay.log_scale  # the log-Cholesky factor's diagonal
    [2, 4]
    """

    fixed_names: tuple[str, ...]
    zi_names: tuple[str, ...]
    random_names: tuple[str, ...]
    diagonal: bool | Blocks
    phi_names: tuple[str, ...]
    extra_log: bool = True
    extra_names: tuple[str, ...] | None = None

    @classmethod
    def of(cls, design, family) -> ParameterLayout:
        """The layout of a model with this design and family."""
        return cls(
            fixed_names=tuple(design.fixed_names),
            zi_names=tuple(design.zi_fixed_names),
            random_names=tuple(design.random_names),
            diagonal=design.diagonal
            if isinstance(design.diagonal, Blocks)
            else bool(design.diagonal),
            phi_names=tuple(family.phi_names),
            extra_log=family.extra_sub_model is None,
            extra_names=tuple(family.extra_theta_names()),
        )

    # ---- sizes ---------------------------------------------------------------------------
    @property
    def p(self) -> int:
        """Number of fixed effects."""
        return len(self.fixed_names)

    @property
    def p_zi(self) -> int:
        """Number of fixed effects of the zero part."""
        return len(self.zi_names)

    @property
    def q(self) -> int:
        """Number of random effects (the size of ``D``)."""
        return len(self.random_names)

    @property
    def n_theta_D(self) -> int:
        """Number of parameters of ``D``."""
        return n_theta(self.q, self.diagonal)

    @property
    def n_phis(self) -> int:
        """Number of extra parameters."""
        return len(self.phi_names)

    @property
    def size(self) -> int:
        """Length of ``θ``."""
        return self.p + self.p_zi + self.n_theta_D + self.n_phis

    # ---- blocks and names ------------------------------------------------------------------
    @property
    def blocks(self) -> dict[str, slice]:
        """The slice of ``θ`` of each block, keyed as ``vcov``'s ``parm``: ``"fixed-effects"``,
        ``"zero_part"``, ``"var-cov"``, ``"extra"`` and ``"all"``."""
        a = self.p
        b = a + self.p_zi
        c = b + self.n_theta_D
        return {
            "fixed-effects": slice(0, a),
            "zero_part": slice(a, b),
            "var-cov": slice(b, c),
            "extra": slice(c, self.size),
            "all": slice(0, self.size),
        }

    @property
    def names(self) -> list[str]:
        """Names of the entries of ``θ``: the fixed effects, ``zi_<name>`` for the zero part,
        ``D_jk`` and ``log(<name>)`` for the extra parameters (the names of a dispersion
        sub-model's coefficients as they are)."""
        return (
            list(self.fixed_names)
            + [f"zi_{name}" for name in self.zi_names]
            + theta_names(self.q, self.diagonal)
            + list(
                self.extra_names
                if self.extra_names is not None
                else [f"log({name})" if self.extra_log else name for name in self.phi_names]
            )
        )

    @property
    def log_scale(self) -> list[int]:
        """The entries of ``θ`` that are logarithms of a natural-scale parameter: the log
        standard deviations of ``D`` (all of ``θ_D`` when ``D`` is diagonal, else the diagonal
        of its log-Cholesky factor, which is a standard deviation only for the first random
        effect and otherwise a conditional one) and the logs of the extra parameters (not the
        coefficients of a dispersion sub-model)."""
        start = self.blocks["var-cov"].start
        log_sd = [start + k for k in _log_sd(self.q, self.diagonal)]
        extra = self.blocks["extra"] if self.extra_log else slice(0, 0)
        return log_sd + list(range(extra.start, extra.stop))

    @property
    def natural_names(self) -> list[str]:
        """Names of the entries of ``θ`` on their natural scale where ``exp`` gives one: the
        standard deviations ``sd(<random effect>)`` of a diagonal ``D`` (or of a single random
        effect) and the extra parameters; the other entries keep their names."""
        names = self.names
        start = self.blocks["var-cov"].start
        parts = (
            self.diagonal.parts()
            if isinstance(self.diagonal, Blocks)
            else [
                (
                    "",
                    self.q,
                    self.diagonal,
                    slice(0, self.q),
                    slice(0, n_theta(self.q, self.diagonal)),
                )
            ]
        )
        for _, q, diagonal, rows, entries in parts:
            if diagonal or q == 1:
                for k, name in enumerate(self.random_names[rows]):
                    names[start + entries.start + k] = f"sd({name})"
        if self.extra_log:  # coefficients (dispersion, thresholds) keep their entries' names
            names[self.blocks["extra"]] = list(self.phi_names)
        return names

    def split(self, theta) -> dict:
        """The blocks of ``θ``: ``beta``, ``gamma`` (zero part), ``theta_D``, ``log_phis``."""
        blocks = self.blocks
        theta = theta if hasattr(theta, "owner") else np.asarray(theta, dtype=float)
        return {
            "beta": theta[blocks["fixed-effects"]],
            "gamma": theta[blocks["zero_part"]],
            "theta_D": theta[blocks["var-cov"]],
            "log_phis": theta[blocks["extra"]],
        }


def phis_from_coefficients(values, family) -> dict:
    """A user's ``initial_values`` with ``phis`` given as ``fit.fixef`` reports them (the
    coefficients of a dispersion sub-model, an ordinal model's thresholds) turned into the
    family's ``φ``, as the fit starts from them; ``values`` unchanged otherwise (and where
    their shape is wrong, which :func:`fit_checked`'s checks report).

    Raises
    ------
    ValueError
        For thresholds that do not increase.

    Examples
    --------
    >>> import pandas as pd
    >>> from glmm_ppl.families import cumulative
    >>> fam = cumulative().bind_response(pd.Series([1, 2, 3]), "y")
    >>> phis_from_coefficients({"phis": [-1.0, 0.5]}, fam)["phis"].round(4).tolist()
    [0.3679, 1.5]
    """
    if not (family.extra_sub_model and isinstance(values, dict) and "phis" in values):
        return values
    given = np.atleast_1d(np.asarray(values["phis"], dtype=float))
    if given.shape != (family.n_phis,) or not np.all(np.isfinite(given)):
        return values
    entries = family.coefficient_entries(given)
    if entries is None:
        raise ValueError(
            f"initial_values['phis'] are the {family.name} family's {family.extra_sub_model}, "
            f"which must increase, got {given.tolist()}"
        )
    return {**values, "phis": np.exp(entries)}
