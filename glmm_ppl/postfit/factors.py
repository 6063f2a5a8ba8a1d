"""A fit with several grouping factors (nested or crossed), factor by factor.

``D`` is block diagonal, one block per factor, and the modes are kept factor by factor (the
factor with the fewest levels first): here they become one covariance matrix and one table
of modes per factor, keyed by the factor's name (``"school"``, ``"school:class"``; ``"item"``,
``"id"``), and each row's random effects are put together from its unit of every factor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..engine.covariance import theta_to_D

__all__ = [
    "D_by_factor",
    "NestedModes",
    "fitted_effects",
    "group_counts",
    "ranef_by_factor",
    "ranef_table",
    "row_effects",
]


def D_by_factor(fit) -> dict[str, pd.DataFrame]:
    """The covariance matrix of each factor's random effects, named by its effects."""
    d = fit.design
    D = theta_to_D(fit.theta[fit.layout.blocks["var-cov"]], d.q, d.diagonal)
    out = {}
    for factor, (_, _, _, rows, _) in zip(d.factors, d.diagonal.parts(), strict=True):
        names = factor.random_names
        out[factor.name] = pd.DataFrame(D[rows, rows], index=names, columns=names)
    return out


def group_counts(fit) -> str:
    """``"100 groups"``, or with several grouping factors the levels of each
    (``"groups item 24, id 316"``)."""
    d = fit.design
    if d.nested:
        return "groups " + ", ".join(f"{f.name} {f.n_units}" for f in d.factors)
    return f"{d.n_groups} groups"


def ranef_table(fit, post_vars: bool = False) -> pd.DataFrame:
    """The modes of a fit with one grouping factor, one row per group (and with
    ``post_vars`` their posterior variances and covariances)."""
    names = fit.design.random_names
    out = pd.DataFrame(fit.modes.copy(), index=fit.design.groups, columns=names)
    return _with_post_vars(out, fit.post_cov) if post_vars else out


def _with_post_vars(table: pd.DataFrame, cov: np.ndarray) -> pd.DataFrame:
    """The modes' table with each unit's posterior variances (``var.<effect>``) and
    covariances (``cov.<effect>.<effect>``) from ``cov`` (units, q, q) added."""
    names = list(table.columns)
    for a in range(len(names)):
        table[f"var.{names[a]}"] = cov[:, a, a]
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            table[f"cov.{names[a]}.{names[b]}"] = cov[:, a, b]
    return table


def _modes_by_factor(design, modes: np.ndarray, n_units=None) -> list[np.ndarray]:
    """The flat modes (level by level) as one ``(units, q)`` array per factor; ``n_units``
    when they are not the fit's units."""
    n_units = [f.n_units for f in design.factors] if n_units is None else n_units
    out, start = [], 0
    for factor, n in zip(design.factors, n_units, strict=True):
        out.append(np.asarray(modes[start : start + n * factor.q]).reshape(n, factor.q))
        start += n * factor.q
    return out


def ranef_by_factor(fit, post_vars: bool = False) -> dict[str, pd.DataFrame]:
    """The modes of each factor's units (and with ``post_vars`` their posterior variances and
    covariances), indexed by the units' labels."""
    d = fit.design
    out = {}
    for k, (factor, modes) in enumerate(
        zip(d.factors, _modes_by_factor(d, fit.modes), strict=True)
    ):
        names = factor.random_names
        table = pd.DataFrame(
            modes.copy(), index=pd.Index(factor.labels, name=factor.name), columns=names
        )
        out[factor.name] = _with_post_vars(table, fit.post_cov[k]) if post_vars else table
    return out


def row_effects(design, modes: np.ndarray, units: np.ndarray, n_units=None) -> np.ndarray:
    """``(N, q)``: each row's random effects, its units' modes at every level side by side (0
    for a unit the fit did not see: a new class of a known school gets the school's mode)."""
    out = np.zeros((len(units), design.q))
    start = 0
    for k, (factor, per_unit) in enumerate(
        zip(design.factors, _modes_by_factor(design, modes, n_units), strict=True)
    ):
        known = units[:, k] >= 0
        out[known, start : start + factor.q] = per_unit[units[known, k]]
        start += factor.q
    return out


def fitted_effects(fit, arrays) -> np.ndarray:
    """``(N, q)``: each row's random effects at the fit's modes (0 for groups, or units, the
    fit did not see)."""
    if fit.design.nested:
        return row_effects(fit.design, fit.modes, arrays.units)
    b = np.zeros((len(arrays.index), fit.design.q))
    known = arrays.index >= 0
    b[known] = np.asarray(fit.modes)[arrays.index[known]]
    return b


class NestedModes:
    """The random effects of each row of prediction data, recomputable at any ``θ``: the
    modes of the units the fit saw (from the fitted data), and for rows of a top-level group
    the fit did not see, the modes of its units from the rows of the data themselves (which
    need the response). A new inner unit of a known top-level group gets 0 (its parents keep
    their modes).

    With crossed factors a unit the fit did not see gets 0 for its factor, whatever the other
    factors' units (a new subject answering a known item gets the item's mode): their modes
    are not re-estimated from the rows of the data, since that would need the joint
    posterior of the new units and all the fitted ones.
    """

    def __init__(self, fit, arrays):
        from ..design.newdata import model_arrays
        from ..fitting.graph import quadrature_engine

        self.fit, self.arrays, d = fit, arrays, fit.design
        self.fit_arrays = model_arrays(d)
        self.fit_engine = quadrature_engine(d, fit.family, fit.n_agq)
        new = arrays.units[:, 0] < 0
        self.new_rows = np.flatnonzero(new)
        self.new_engine = None
        if d.crossed:
            if arrays.labels is not None:
                absent = [f for k, f in enumerate(d.factors) if pd.isna(arrays.labels[:, k]).any()]
                if absent:
                    columns = dict.fromkeys(c for f in absent for c in f.columns)
                    raise ValueError(
                        "subject-specific predictions of crossed grouping factors need the "
                        f"grouping column(s) {', '.join(map(repr, columns))} in newdata (with "
                        "a value in every row; a level the fit did not see gets 0)"
                    )
            return
        if new.any():
            if arrays.labels is None or pd.isna(arrays.labels[new]).any():
                raise ValueError(
                    "subject-specific predictions need the grouping columns "
                    f"{', '.join(map(repr, d.factors[-1].columns))} in newdata"
                )
            if arrays.y is None:
                labels = pd.unique(arrays.groups[new])
                raise ValueError(
                    f"newdata has {len(labels)} group(s) of {d.factors[0].name} the fit did not "
                    f"see (for example {labels[0]!r}): their random effects are estimated from "
                    "their rows, which then need the response; or use type='mean_subject' or "
                    "'marginal'"
                )
            self._new_units(arrays)

    def _new_units(self, arrays) -> None:
        """A multilevel engine over the rows of the new top-level groups, nested as in the
        fit."""
        from ..engine.multilevel import MultilevelAGQ

        d = self.fit.design
        labels = arrays.labels[self.new_rows]
        codes = np.column_stack(
            [pd.factorize(labels[:, k], sort=True)[0] for k in range(len(d.factors))]
        )
        self.new_order = np.lexsort(codes.T[::-1])
        codes = codes[self.new_order]
        levels = np.column_stack(
            [pd.factorize(codes[:, k])[0] for k in range(codes.shape[1])]
        )  # units numbered in the order of the sorted rows
        rows = self.new_rows[self.new_order]
        self.new_levels = levels
        self.new_engine = MultilevelAGQ(
            arrays.y[rows], arrays.Z[rows, 0, :], levels,
            tuple(f.q for f in d.factors), self.fit.family, self.fit.n_agq,
        )  # fmt: skip

    def at(self, theta: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Random effects per row at ``θ`` (with ``rng``, a draw from the normal approximation
        of each unit's posterior)."""
        d = self.fit.design
        parts = self.fit.layout.split(theta)
        beta, gamma, phis = parts["beta"], parts["gamma"], np.exp(parts["log_phis"])
        D = theta_to_D(parts["theta_D"], d.q, d.diagonal)
        eng = self.fit_engine
        eng.modes = np.array(self.fit.modes, dtype=float)
        eng.update_modes(self.fit_arrays.fixed_part(beta, gamma), D, phis)
        b = row_effects(d, _draw(eng, rng), self.arrays.units)
        if self.new_engine is not None:
            rows = self.new_rows[self.new_order]
            eng = self.new_engine
            eng.modes = np.zeros_like(eng.modes)
            eng.update_modes(self.arrays.fixed_part(beta, gamma)[rows], D, phis)
            b[rows] = row_effects(d, _draw(eng, rng), self.new_levels, eng.n_units)
        return b


def _draw(engine, rng) -> np.ndarray:
    """The engine's modes, or a draw around them from each unit's posterior covariance."""
    modes = np.array(engine.modes, dtype=float)
    if rng is None:
        return modes
    draws, start = [], 0
    for cov in engine.posterior_covariance():
        n, q = cov.shape[:2]
        z = rng.standard_normal((n, q))
        draws.append(modes[start : start + n * q].reshape(n, q) + np.einsum(
            "gij,gj->gi", np.linalg.cholesky(cov), z
        ))  # fmt: skip
        start += n * q
    return np.concatenate([x.ravel() for x in draws])
