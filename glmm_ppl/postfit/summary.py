"""The printed summary of a fit, laid out like GLMMadaptive's.

One table model feeds both displays: :class:`Summary` holds the sections as small DataFrames
and lines of text; ``str()`` formats them for the console, ``_repr_html_`` for notebooks.
Nothing here computes estimates; it only arranges what the fit holds.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..design.row_weights import row_weights_of
from ..engine.covariance import project, theta_to_D
from .sub_models import extra_coefficients, extra_covariance

__all__ = ["Summary", "format_pvalue", "wald_table"]


def wald_table(estimate: pd.Series, se: np.ndarray) -> pd.DataFrame:
    """Estimate, standard error, z value and two-sided normal p-value, one row per effect.

    Examples
    --------
    >>> wald_table(pd.Series([2.0], index=["x"]), np.array([1.0])).round(4).to_dict("records")
    [{'Estimate': 2.0, 'Std.Err': 1.0, 'z-value': 2.0, 'p-value': 0.0455}]
    """
    est = np.asarray(estimate, dtype=float)
    z = est / se
    return pd.DataFrame(
        {"Estimate": est, "Std.Err": se, "z-value": z, "p-value": 2 * stats.norm.sf(np.abs(z))},
        index=estimate.index,
    )


def format_pvalue(p: float) -> str:
    """p-values as R prints them in GLMMadaptive's tables.

    Examples
    --------
    >>> format_pvalue(0.0396), format_pvalue(3e-9)
    ('0.0396', '< 1e-04')
    """
    if not np.isfinite(p):
        return ""
    return "< 1e-04" if p < 1e-4 else f"{p:.4f}"


def _sd_corr(D: np.ndarray, names, diagonal) -> pd.DataFrame:
    """Standard deviations and the free correlations (lower triangle, one column per effect
    but the last) of a random-effects covariance matrix."""
    sd = np.sqrt(np.diag(D))
    out = pd.DataFrame({"StdDev": sd}, index=list(names))
    free = project(np.ones_like(D), diagonal) != 0  # correlations within blocks only
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where(free, D / np.outer(sd, sd), np.nan)
    for j in range(len(sd) - 1):
        if free[j + 1 :, j].any():
            out["Corr" if j == 0 else f"Corr.{j + 1}"] = [np.nan] * (j + 1) + list(corr[j + 1 :, j])
    return out


def _row_weights_line(w: np.ndarray) -> str:
    """The summary's line on the row weights (``row_weights=``)."""
    zero = int(np.sum(w == 0))
    line = f"Row weights: sum {w.sum():g} (min {w.min():g}, max {w.max():g})"
    return line + (f"; {zero} row(s) of weight 0, not counted as observations" if zero else "")


@dataclass(frozen=True)
class Summary:
    """Sections of a fit summary: ``call``, ``data``, ``model``, ``fit_stats``,
    ``random_effects``, ``fixed_effects``, ``zero_part`` (the zero part's fixed effects, or
    None), ``integration``, ``optimization`` (DataFrames or lines of text), ``notes`` (the
    fit's warnings) and, with several grouping factors, ``random_blocks``: the random
    effects factor by factor, as ``(title, table)`` pairs, the title naming the factor and
    its number of levels (``"id (316 levels)"``); ``random_effects`` then has them all, named
    ``<factor>.<effect>``. ``extra``: ``(title, table)`` of the extra parameters when the
    family reports them as coefficients (``"Dispersion sub-model (log sigma)"`` with
    ``disp_fixed``), a Wald table as the fixed effects' (else they are lines of ``model``).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> s = fm1.summary()
    >>> s.fixed_effects.columns.tolist()
    ['Estimate', 'Std.Err', 'z-value', 'p-value']
    """

    call: str
    data: list
    model: list
    fit_stats: pd.DataFrame
    random_effects: pd.DataFrame
    fixed_effects: pd.DataFrame
    zero_part: pd.DataFrame | None
    integration: list
    optimization: list
    notes: list
    random_blocks: list | None = None
    extra: tuple | None = None

    @classmethod
    def from_fit(cls, fit) -> Summary:
        d = fit.design
        call = (
            f"mixed_model(fixed = {d.fixed}, random = {d.random}, "
            + (f"zi_fixed = {d.zi_fixed}, " if d.zi_fixed else "")
            + (f"zi_random = {d.zi_random}, " if d.zi_random else "")
            + (
                f"disp_fixed = ~ {d.specs['disp_fixed'].formula}, "
                if "disp_fixed" in d.specs
                else ""
            )
            + f"family = {fit.family!r}"
            + (f", penalized = {fit.penalty.describe()}" if fit.penalty else "")
            + ")"
        )
        data = [f"Number of Observations: {fit.nobs}", f"Number of Groups: {fit.n_groups}"]
        if d.nested:
            data[1] = "Number of Groups: " + ", ".join(f"{f.name} {f.n_units}" for f in d.factors)
        if d.n_dropped:
            data.append(f"Rows dropped for missing values: {d.n_dropped}")
        if d.weights is not None:
            data.append(f"Group weights: sum {d.weights.sum():g}")
        if fit.family.row_weighted:
            data.append(_row_weights_line(row_weights_of(d)))
        model = [f"family: {fit.family.name}", f"link: {fit.family.link.name}"]
        est = fit.fixef()
        fit_stats = pd.DataFrame(
            {"log.Lik": [fit.loglik], "AIC": [fit.aic], "BIC": [fit.bic]}, index=[""]
        )
        D = theta_to_D(fit.theta[fit.layout.blocks["var-cov"]], d.q, d.diagonal)
        re = _sd_corr(D, fit.design.random_names, d.diagonal)
        blocks = None
        if d.nested:  # one table per factor, titled with its number of levels
            blocks = [
                (
                    f"{factor.name} ({factor.n_units} levels)",
                    _sd_corr(D[rows, rows], factor.random_names, diagonal),
                )
                for factor, (_, _, diagonal, rows, _) in zip(
                    d.factors, d.diagonal.parts(), strict=True
                )
            ]
        fe = wald_table(est, np.sqrt(np.diag(fit.vcov("fixed-effects"))))
        zero_part = None
        if d.X_zi is not None:
            zero_part = wald_table(fit.fixef("zero_part"), np.sqrt(np.diag(fit.vcov("zero_part"))))
        coefficients = extra_coefficients(fit) if fit.family.n_phis else None
        extra = None
        if coefficients is not None:  # a dispersion sub-model's (or thresholds): a Wald table
            se = np.sqrt(np.diag(extra_covariance(fit).to_numpy()))
            extra = (coefficients[0], wald_table(coefficients[1], se))
        elif fit.family.n_phis:
            ci = fit.confint("extra")
            for name, (low, value, high) in zip(ci.index, ci.to_numpy(), strict=True):
                model.append(f"{name}: {value:.4f} (95% CI {low:.4f}, {high:.4f})")
        if fit.priors is not None:
            model.append(
                f"priors (MAP fit; log prior {fit.log_prior:.4f}): "
                + "; ".join(fit.priors.describe())
            )
        if fit.penalty is not None:
            model.append(
                f"penalty: {fit.penalty.describe()} on the fixed effects; log.Lik includes "
                f"{fit.penalty.logp_numpy(est.to_numpy()):.4f} from it"
            )
        integration = [
            "method: adaptive Gauss-Hermite quadrature rule",
            f"quadrature points: {fit.n_agq}",
        ]
        if d.crossed:
            integration = [
                "method: Laplace approximation over all random effects jointly (crossed "
                "grouping factors)"
            ]
        rule = fit.rule_check
        if rule is not None:
            integration.append(
                f"log-likelihood change with {rule.finer} points: {rule.change:.2g}"
                + (" (the rule may be too coarse)" if rule.coarse else "")
            )
        notes = list(fit.warnings)
        o = fit.opt_summary
        optimization = [
            f"method: {o.optimizer}",
            f"iterations: EM {o.em_iterations}, scoring {o.scoring_iterations}, "
            f"quasi-Newton {o.qn_iterations} ({o.evaluations} evaluations), "
            f"Newton {o.newton_iterations}",
            f"converged: {'TRUE' if o.converged else 'FALSE'} "
            f"(Newton decrement {o.newton_decrement:.2g})",
            f"time: {o.time_s:.3f} s",
        ]
        return cls(
            call,
            data,
            model,
            fit_stats,
            re,
            fe,
            zero_part,
            integration,
            optimization,
            notes,
            blocks,
            extra,
        )

    # ---- text --------------------------------------------------------------------------
    @staticmethod
    def _table_text(t: pd.DataFrame) -> str:
        if t.empty:
            return "(none)"
        out = pd.DataFrame(index=t.index)
        for col in ("Estimate", "Std.Err", "z-value"):
            out[col] = t[col].map(lambda v: f"{v:.4f}")
        out["p-value"] = t["p-value"].map(format_pvalue)
        return out.to_string()

    def _re_text(self) -> str:
        def text(table: pd.DataFrame) -> str:
            return table.to_string(float_format=lambda v: f"{v:.4f}", na_rep="")

        if self.random_blocks is None:
            return text(self.random_effects)
        return "\n".join(f"{title}:\n{text(table)}" for title, table in self.random_blocks)

    def __str__(self) -> str:
        parts = [
            "Call:",
            self.call,
            "",
            "Data Descriptives:",
            *self.data,
            "",
            "Model:",
            *(" " + m for m in self.model),
            "",
            "Fit statistics:",
            self.fit_stats.to_string(float_format=lambda v: f"{v:.4f}"),
            "",
            "Random effects covariance matrix:",
            self._re_text(),
            "",
            "Fixed effects:",
            self._table_text(self.fixed_effects),
            "",
            "Integration:",
            *self.integration,
            "",
            "Optimization:",
            *self.optimization,
        ]
        if self.zero_part is not None:
            idx = parts.index("Integration:")
            parts[idx:idx] = ["Zero-part coefficients:", self._table_text(self.zero_part), ""]
        if self.extra is not None:
            idx = parts.index("Integration:")
            parts[idx:idx] = [f"{self.extra[0]}:", self._table_text(self.extra[1]), ""]
        if self.notes:
            parts += ["", "Warnings:", *("- " + n for n in self.notes)]
        return "\n".join(parts)

    def __repr__(self) -> str:
        return str(self)

    # ---- HTML --------------------------------------------------------------------------
    def _re_html(self) -> str:
        if self.random_blocks is None:
            return self.random_effects.to_html(float_format="%.4f", na_rep="")
        return "".join(
            f"<p>{html.escape(title)}</p>" + table.to_html(float_format="%.4f", na_rep="")
            for title, table in self.random_blocks
        )

    def _repr_html_(self) -> str:
        def lines(items):
            return "<br>".join(html.escape(i) for i in items)

        def table(t):
            t = t.copy()
            t["p-value"] = t["p-value"].map(format_pvalue)
            return t.to_html(float_format="%.4f")

        sections = [
            f"<p><b>Call:</b> <code>{html.escape(self.call)}</code></p>",
            f"<p><b>Data:</b> {lines(self.data)}<br><b>Model:</b> {lines(self.model)}</p>",
            "<p><b>Fit statistics</b></p>" + self.fit_stats.to_html(float_format="%.4f"),
            "<p><b>Random effects</b></p>" + self._re_html(),
            "<p><b>Fixed effects</b></p>" + table(self.fixed_effects),
            f"<p>{lines(self.integration)}<br>{lines(self.optimization)}</p>",
        ]
        if self.zero_part is not None:
            sections.insert(-1, "<p><b>Zero-part coefficients</b></p>" + table(self.zero_part))
        if self.extra is not None:
            title = f"<p><b>{html.escape(self.extra[0])}</b></p>"
            sections.insert(-1, title + table(self.extra[1]))
        if self.notes:
            sections.append(f"<p><b>Warnings:</b><br>{lines(self.notes)}</p>")
        return "<div class='glmm-ppl-summary'>" + "".join(sections) + "</div>"
