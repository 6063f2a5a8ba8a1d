"""From formulas and a data frame to the arrays of a mixed model.

``fixed`` is ``"y ~ terms"`` (R syntax: ``*``, ``:``, ``I()``, ``poly()``, ``log()``…; factors —
pandas categoricals in category order, strings sorted — use treatment coding with the first
level as reference). ``random`` is ``"~ terms | g"`` (correlated random effects, full ``D``) or
``"~ terms || g"`` (independent random effects, diagonal ``D``) for one grouping column ``g``.
Rows are sorted by group (stably), so each group is a contiguous block; rows with missing values
in the columns a model uses are dropped with a warning that counts them.
Formula terms are parsed by formulaic; the model specs are kept so new data gets the same
columns, and kept per formula and column types (:mod:`glmm_ppl.design.spec_cache`) so a
refit of data like the last ones is not parsed and encoded again. The rows used are chosen by
:mod:`glmm_ppl.design.rows`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from formulaic import model_matrix
from formulaic.errors import FormulaicError

from ..families import Family
from .dispersion import bind_dispersion, dispersion_formulas
from .factor_checks import check_factors
from .nested import factor_labels, nest, nested_effects
from .per_row import per_row_column
from .response import aux_values, bind_family, computed_columns, parse_response
from .row_weights import add_row_weights, read_row_weights
from .rows import NO_ROWS, complete_rows, formula_columns, plain_text
from .spec_cache import cached_matrix
from .terms import random_terms, unquote
from .thresholds import drop_intercept

__all__ = [
    "Design",
    "aux_values",
    "bind_family",
    "build_design",
    "NO_ROWS",
    "plain_text",
    "check_rank",
    "check_rank_of_crossprod",
    "column_sizes",
    "complete_rows",
    "formula_columns",
    "group_label",
    "model_matrix_of",
    "offset_values",
    "parse_response",
    "split_fixed",
    "split_offsets",
    "unquote",
]

_TREATMENT = re.compile(r"(?P<var>[A-Za-z_.][\w.]*)\[T\.(?P<level>[^\]]*)\]")


@dataclass(frozen=True)
class Design:
    """The arrays and names of a mixed model, rows sorted by group.

    Attributes
    ----------
    y : ndarray (N,)
    X : ndarray (N, p)
        Fixed-effects design; columns named ``fixed_names`` (R style: ``(Intercept)``,
        ``sexfemale``, ``sexfemale:time``).
    Z : ndarray (N, q_main)
        Random-effects design of the main part; columns named ``random_names[:q_main]``
        (none when only the zero part has random effects, ``random=None``).
    starts : ndarray (n + 1,)
        First row of each group, then ``N``.
    groups : pandas.Index
        The group labels, in the order of ``starts``.
    diagonal : bool
        Whether ``D`` is diagonal (``||``).
    rows : ndarray (N,)
        Index labels of the data rows used, in the sorted order.
    family : Family
        The family as the data use it (with trials when the response counts successes).
    aux : ndarray (N, n_aux)
        Per-row data the family reads besides ``y`` (``family.aux_names``: trials, censoring,
        row weights).
    X_zi, Z_zi : ndarray or None
        Fixed- and random-effects designs of the zero part (zero-inflated and hurdle
        families); ``Z_zi`` has ``q - q_main`` columns, named ``random_names[q_main:]``
        (``zi_`` prefixed).
    offset : ndarray (N, E) or None
        Offsets of the linear predictors.
    weights : ndarray (n,) or None
        Multipliers of the groups' log-likelihoods.
    factors : tuple of Factor
        With several grouping factors, each one (outermost first, the first gives ``groups``):
        its random effects are its block of ``Z``'s columns and of ``D``
        (:class:`~glmm_ppl.engine.covariance.Blocks` in ``diagonal``); rows are sorted by
        the units of every factor (:mod:`glmm_ppl.design.nested`).
    crossed : bool
        Whether some of the ``factors`` are crossed rather than nested (the model is fitted
        by the Laplace approximation over all random effects jointly).
    """

    y: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    starts: np.ndarray
    groups: pd.Index
    group_name: str
    response_name: str
    fixed_names: list[str]
    random_names: list[str]
    diagonal: bool
    fixed: str
    random: str | None
    rows: np.ndarray
    n_dropped: int = 0
    specs: dict = field(default_factory=dict, repr=False, compare=False)
    family: Family | None = field(default=None, repr=False)
    aux: np.ndarray | None = field(default=None, repr=False)
    X_zi: np.ndarray | None = field(default=None, repr=False)
    zi_fixed_names: list[str] = field(default_factory=list)
    Z_zi: np.ndarray | None = field(default=None, repr=False)
    zi_fixed: str | None = None
    zi_random: str | None = None
    offset: np.ndarray | None = field(default=None, repr=False)
    weights: np.ndarray | None = field(default=None, repr=False)
    factors: tuple = field(default=(), repr=False)
    crossed: bool = False

    @property
    def nested(self) -> bool:
        """Whether the model has several grouping factors (``factors``), nested or
        ``crossed``."""
        return len(self.factors) > 1

    @property
    def levels(self) -> np.ndarray:
        """``(N, L)``: each row's unit of each grouping factor, outermost first."""
        return np.column_stack([f.index for f in self.factors])

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    @property
    def nobs(self) -> int:
        return len(self.y)

    @property
    def q_main(self) -> int:
        """Number of random effects of the main part."""
        return self.Z.shape[1]

    @property
    def q(self) -> int:
        """Number of random effects (both parts)."""
        return len(self.random_names)

    @property
    def n_eta(self) -> int:
        """Number of linear predictors (2 with a zero part)."""
        return 1 if self.X_zi is None else 2

    def response_spread(self) -> float:
        """The standard deviation of the response."""
        return float(np.std(self.y))

    def response_data(self) -> np.ndarray:
        """``(N, 1 + n_aux)``: the response, then the family's per-row data."""
        aux = self.aux if self.aux is not None else np.zeros((self.nobs, 0))
        return np.column_stack([self.y, aux])

    def Z_by_predictor(self) -> np.ndarray:
        """``(N, E, q)``: the random-effects design of each linear predictor."""
        Z = np.zeros((self.nobs, self.n_eta, self.q))
        Z[:, 0, : self.q_main] = self.Z
        if self.Z_zi is not None:
            Z[:, 1, self.q_main :] = self.Z_zi
        return Z

    def fixed_part(self, beta: np.ndarray, gamma: np.ndarray | None = None) -> np.ndarray:
        """``η⁰``, shape ``(N, E)``: ``Xβ`` (and ``X_zi γ``) plus the offsets."""
        eta = (self.X @ beta)[:, None]
        if self.X_zi is not None:
            eta = np.column_stack([eta[:, 0], self.X_zi @ gamma])
        return eta if self.offset is None else eta + self.offset


def split_fixed(fixed: str) -> tuple[str, str]:
    """Split ``"y ~ terms"`` into the response column and ``"~ terms"``.

    Examples
    --------
    >>> split_fixed("y ~ sex * time")
    ('y', '~ sex * time')
    """
    if not isinstance(fixed, str) or fixed.count("~") != 1:
        raise ValueError(f"fixed must be a formula 'response ~ terms', got {fixed!r}")
    lhs, rhs = fixed.split("~")
    lhs = lhs.strip()
    if not lhs:
        raise ValueError(f"fixed formula {fixed!r} has no response: write 'y ~ terms'")
    return lhs, "~ " + (rhs.strip() or "1")


def _r_names(columns) -> list[str]:
    """formulaic's column names in R's style: ``Intercept`` → ``(Intercept)``,
    ``sex[T.female]`` → ``sexfemale``."""
    out = []
    for c in columns:
        c = "(Intercept)" if c == "Intercept" else _TREATMENT.sub(r"\g<var>\g<level>", str(c))
        out.append(c)
    return out


def _formulaic_matrix(formula: str, data: pd.DataFrame, what: str):
    """Model matrix, R-style column names and spec, built by formulaic."""
    try:
        mm = model_matrix(formula, data, na_action="raise")
    except FormulaicError as err:
        hint = ""
        if "^" in formula and "xor" in str(err):
            hint = "; powers are written ** in a formula, e.g. I(time**2) (^ is Python's xor)"
        raise ValueError(f"cannot build the {what} design from {formula!r}: {err}{hint}") from None
    return np.asarray(mm, dtype=float), _r_names(mm.columns), mm.model_spec


def model_matrix_of(formula: str, data: pd.DataFrame, what: str):
    """Model matrix, R-style column names and spec; errors name the formula or column.

    The spec is kept per formula and column types (:mod:`glmm_ppl.design.spec_cache`), so
    data like the last ones are not parsed and encoded again."""
    X, names, spec = cached_matrix(formula, data, lambda: _formulaic_matrix(formula, data, what))
    finite = np.isfinite(X)
    if not finite.all():
        k = int(np.flatnonzero(~finite.all(axis=0))[0])
        bad = X[~finite[:, k], k]
        raise ValueError(
            f"the {what} column {names[k]!r} has {len(bad)} value(s) that are not finite "
            f"(for example {bad[0]:g}); remove or recode those rows"
        )
    return X, names, spec


#: Covariate magnitudes beyond which a design column is refused: products and squares of
#: such values overflow or underflow in the fit (and no measurement needs them).
_TOO_LARGE, _TOO_SMALL = 1e100, 1e-100


def _no_check(X: np.ndarray, names: list[str], what: str = "fixed-effects") -> None:
    """No rank check (a part of the data may lack a level that the whole has)."""


def check_rank(X: np.ndarray, names: list[str], what: str = "fixed-effects") -> None:
    """Refuse a design whose columns are on an unusable scale or linearly dependent; the rank
    is that of the columns scaled to unit length, so it does not depend on their units."""
    _check_scale(column_sizes(X), names, what)
    norms = np.linalg.norm(X, axis=0)
    _check_dependence(X / np.where(norms > 0, norms, 1.0), names, what)


def column_sizes(X: np.ndarray) -> np.ndarray:
    """The largest ``|x|`` of each column (0 without rows): what :func:`check_rank` holds
    against the usable scale."""
    return np.abs(X).max(axis=0, initial=0.0)


def check_rank_of_crossprod(
    C: np.ndarray, size: np.ndarray, names: list[str], what: str = "fixed-effects"
) -> None:
    """:func:`check_rank` of a design known by ``XᵀX`` and its columns' largest ``|x|`` (a
    design summed over shards): ``R = Λ^½ Vᵀ`` from ``XᵀX = V Λ Vᵀ`` has the singular values
    and the column dependencies of ``X``."""
    _check_scale(size, names, what)
    norms = np.sqrt(np.maximum(np.diag(C), 0.0))
    scale = np.where(norms > 0, norms, 1.0)
    values, vectors = np.linalg.eigh(C / np.outer(scale, scale))
    _check_dependence(np.sqrt(np.maximum(values, 0.0))[:, None] * vectors.T, names, what)


def _check_scale(size: np.ndarray, names: list[str], what: str) -> None:
    for k, name in enumerate(names):
        if size[k] > _TOO_LARGE or 0 < size[k] < _TOO_SMALL:
            raise ValueError(
                f"the {what} column {name!r} has values of order {size[k]:.0e}: rescale it "
                "(its coefficient scales back by the same factor)"
            )


def _check_dependence(X: np.ndarray, names: list[str], what: str) -> None:
    """Refuse columns (scaled to unit length) that are linearly dependent, naming those that
    are combinations of the earlier ones."""
    rank = np.linalg.matrix_rank(X)
    if rank == X.shape[1]:
        return
    aliased = [
        name
        for k, name in enumerate(names)
        if np.linalg.matrix_rank(X[:, : k + 1]) <= np.linalg.matrix_rank(X[:, :k])
    ]
    raise ValueError(
        f"the {what} design is rank deficient (rank {rank} < {X.shape[1]} columns); "
        f"these columns are linear combinations of earlier ones: {', '.join(aliased)}"
    )


def split_offsets(rhs: str) -> tuple[str, list[str]]:
    """``"~ x + offset(log(e))"`` → ``("~ x", ["log(e)"])``: offsets leave the formula."""
    exprs, out, i = [], [], 0
    for m in re.finditer(r"\boffset\s*\(", rhs):
        if m.start() < i:
            continue
        depth, k = 1, m.end()
        while k < len(rhs) and depth:
            depth += {"(": 1, ")": -1}.get(rhs[k], 0)
            k += 1
        if depth:
            raise ValueError(f"unbalanced parentheses in {rhs!r}")
        before = rhs[: m.start()].rstrip()
        if not before.endswith(("~", "+")) or rhs[k:].lstrip()[:1] not in ("", "+"):
            raise ValueError(
                f"offset(...) must be added as a term of its own ('~ x + offset(log(e))'), "
                f"got {rhs!r}"
            )
        exprs.append(rhs[m.end() : k - 1].strip())
        out.append(rhs[i : m.start()])
        i = k
    out.append(rhs[i:])
    clean = re.sub(r"\+\s*\+", "+", "".join(out))
    clean = re.sub(r"~\s*\+", "~", clean)
    clean = re.sub(r"\+\s*$", "", clean.strip())
    if re.fullmatch(r"~\s*", clean):
        clean = "~ 1"
    return clean, exprs


def offset_values(exprs: list[str], df: pd.DataFrame, where: str) -> np.ndarray | None:
    if not exprs:
        return None
    total = np.zeros(len(df))
    for expr in exprs:
        values, _, _ = model_matrix_of(f"~ 0 + {expr}", df, f"{where} offset")
        if values.shape[1] != 1:
            raise ValueError(
                f"offset({expr}) in the {where} formula must be one numeric column, got "
                f"{values.shape[1]} columns"
            )
        total += values[:, 0]
    return total


def group_label(value) -> str:
    """A data value as users wrote it (``3``, ``'a'``), not as NumPy's repr."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _group_weights(weights, df: pd.DataFrame, data: pd.DataFrame, group: str, groups) -> np.ndarray:
    """One weight per group (in the order of ``groups``) from a column name, a Series indexed
    by group label, or an array in the order of the sorted group labels of ``data``."""
    if isinstance(weights, str):
        if weights not in df.columns:
            raise ValueError(f"weights column {weights!r} not found in data")
        per_group = df.groupby(group, sort=True, observed=True)[weights].agg(["min", "max"])
        varying = per_group.index[per_group["min"] != per_group["max"]]
        if len(varying):
            raise ValueError(
                f"weights column {weights!r} must be constant within each group of {group!r}; "
                f"it varies in {len(varying)} group(s) (for example {group_label(varying[0])})"
            )
        values = per_group["min"].reindex(groups).to_numpy(dtype=float)
    elif isinstance(weights, pd.Series):
        missing = [g for g in groups if g not in weights.index]
        if missing:
            raise ValueError(
                f"weights has no value for {len(missing)} group(s) of {group!r} (for example "
                f"{group_label(missing[0])}); index it by the group labels"
            )
        values = weights.reindex(groups).to_numpy(dtype=float)
    else:
        values = np.asarray(weights, dtype=float).reshape(-1)
        all_groups = pd.Index(pd.unique(data[group].dropna())).sort_values()
        if len(values) != len(all_groups):
            raise ValueError(
                f"weights must have one value per group of {group!r} ({len(all_groups)}, in "
                f"sorted order of the labels), got {len(values)}; or pass a pandas Series "
                "indexed by group label, or a column name"
            )
        values = pd.Series(values, index=all_groups).reindex(groups).to_numpy()
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        raise ValueError(
            f"weights must be positive and finite; {int(bad.sum())} group(s) are not (for "
            f"example {values[bad][0]:g})"
        )
    return values


def _group_codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Each row's group and the groups in sorted order, as ``pd.factorize(values, sort=True)``
    gives them (integer labels: read from the array, in one pass when they are sorted).

    Examples
    --------
    >>> codes, groups = _group_codes(pd.Series([3, 1, 1, 2]))
    >>> codes.tolist(), groups
    ([2, 0, 0, 1], Index([1, 2, 3], dtype='int64'))
    """
    if not (isinstance(values.dtype, np.dtype) and values.dtype.kind in "iu"):
        return pd.factorize(values, sort=True)
    labels = values.to_numpy()
    if np.all(labels[1:] >= labels[:-1]):
        first = np.empty(len(labels), dtype=bool)  # the first row of each group
        first[:1] = True
        np.not_equal(labels[1:], labels[:-1], out=first[1:])
        return np.cumsum(first) - 1, pd.Index(labels[first])
    codes, uniques = pd.factorize(labels, sort=True)
    return codes, pd.Index(uniques)


def _zero_part_term(zi_random: str) -> tuple[str, str, bool]:
    """The one term of ``zi_random``: ``(effects, grouping column, diagonal)``."""
    terms = random_terms(zi_random)
    if len(terms) > 1:
        raise ValueError(
            f"zi_random takes the random effects of one grouping column, got {zi_random!r}"
        )
    return terms[0].terms, terms[0].name, terms[0].diagonal


def _main_terms(random: str | None, zi_random: str | None) -> list:
    """The main part's random-effects terms; without ``random``, one without effects on the
    grouping column of ``zi_random`` (random effects in the zero part only)."""
    if random is not None:
        return random_terms(random)
    if zi_random is None:
        raise ValueError("no random effects: give random ('~ 1 | g') or zi_random ('~ 1 | g')")
    _zero_part_term(zi_random)  # one term, or its error
    return [replace(random_terms(zi_random)[0], terms="~ 0")]


def build_design(
    fixed: str,
    random: str | None,
    data: pd.DataFrame,
    family: Family,
    *,
    zi_fixed: str | None = None,
    zi_random: str | None = None,
    offset=None,
    weights=None,
    trials: str | None = None,
    censoring: str | None = None,
    row_weights=None,
    disp_fixed: str | None = None,
    part: bool = False,
) -> Design:
    """Check the data against the formulas and build the design arrays.

    With ``part=True`` the data are one part of the model's data (a shard of whole groups):
    the design's rank is not checked (a part may lack a level of a factor), and the levels of
    categorical columns are their dtype's categories, with or without rows.

    Raises
    ------
    ValueError
        For a missing column, a response outside the family's support, fewer than two groups,
        or a rank-deficient fixed-effects design; every message names the column or term.

    Warns
    -----
    UserWarning
        When rows with missing values are dropped (the message counts them).

    Examples
    --------
    >>> from glmm_ppl.families import binomial
    >>> df = pd.DataFrame({"y": [0, 1, 1, 0], "x": [0.0, 1.0, 2.0, 3.0], "g": [1, 1, 2, 2]})
    >>> d = build_design("y ~ x", "~ 1 | g", df, binomial())
    >>> d.fixed_names, d.random_names, d.n_groups
    (['(Intercept)', 'x'], ['(Intercept)'], 2)
    """
    rank_check = _no_check if part else check_rank
    lhs, fixed_rhs = split_fixed(fixed)
    response, second, form = parse_response(lhs)
    fixed_rhs, fixed_offsets = split_offsets(fixed_rhs)
    terms = _main_terms(random, zi_random)
    nested = len(terms) > 1
    group, diagonal = terms[0].name, terms[0].diagonal
    family, aux_columns = bind_family(family, second, form, trials, censoring)
    if nested and (family.zero_part or weights is not None):
        what = "families with a zero part" if family.zero_part else "weights="
        raise ValueError(f"several grouping factors ({random!r}) are not available with {what}")
    if not family.zero_part and (zi_fixed is not None or zi_random is not None):
        raise ValueError(
            f"zi_fixed and zi_random apply to zero-inflated and hurdle families, not {family.name}"
        )
    formulas = [fixed_rhs, *[t.terms for t in terms]]
    columns = [response, *dict.fromkeys(c for t in terms for c in t.columns)]
    formulas += [f"~ {e}" for e in fixed_offsets]
    formulas += dispersion_formulas(disp_fixed, family)
    columns += [c for c, _ in aux_columns.values()]
    data = computed_columns(data, aux_columns)
    zi_offsets: list[str] = []
    if family.zero_part:
        zi_fixed = "~ 1" if zi_fixed is None else zi_fixed
        if not isinstance(zi_fixed, str) or "~" not in zi_fixed:
            raise ValueError(f"zi_fixed must be a formula such as '~ x', got {zi_fixed!r}")
        zi_rhs, zi_offsets = split_offsets("~ " + zi_fixed.split("~", 1)[1].strip())
        formulas += [zi_rhs, *[f"~ {e}" for e in zi_offsets]]
        if zi_random is not None:
            zi_terms, zi_group, zi_diagonal = _zero_part_term(zi_random)
            if zi_group != group:
                raise ValueError(
                    f"zi_random must use the grouping column of random ({group!r}), got "
                    f"{zi_group!r}"
                )
            diagonal = diagonal or zi_diagonal
            formulas.append(zi_terms)
    data, offset_column = per_row_column(data, offset, "offset", "(offset)")
    if offset_column is not None:
        columns.append(offset_column)
    if isinstance(weights, str):
        columns.append(weights)
    data, weight_column = read_row_weights(data, row_weights)
    columns += [weight_column] if weight_column else []
    df, n_dropped = complete_rows(data, formulas, columns, keep_levels=part)
    units, crossed = None, False
    if nested:
        df, terms, units, crossed = nest(df, terms)
        group = terms[0].name
    if len(terms[0].columns) > 1:  # a factor of label combinations: its labels as a column
        df = df.assign(**{group: factor_labels(df, terms[0].columns).to_numpy()})
    codes, groups = _group_codes(df[group])
    if len(groups) < 2:
        raise ValueError(
            f"grouping column {group!r} has a single group ({groups[0]}); a mixed model "
            "needs at least two groups"
        )
    if np.any(codes[1:] < codes[:-1]):  # nested rows, and data sorted by group, are sorted
        order = np.argsort(codes, kind="stable")
        df = df.iloc[order]
        codes = codes[order]
    aux = aux_values(family, aux_columns, df, response)
    family = family.bind_response(df[response], response)
    y = family.check_response(df[response], response, **aux)
    if not aux and np.all(y == y[0]):
        raise ValueError(
            f"response column {response!r} has the same value ({y[0]:g}) in every row used: "
            "there is nothing to fit"
        )
    family, disp_spec = bind_dispersion(disp_fixed, df, family, aux, (model_matrix_of, rank_check))
    X, fixed_names, fixed_spec = model_matrix_of(fixed_rhs, df, "fixed-effects")
    if family.intercept_free:
        X, fixed_names = drop_intercept(X, fixed_names, fixed_rhs)
    rank_check(X, fixed_names)
    factors = ()
    if nested:
        Z, random_names, diagonal, factors = nested_effects(
            df, terms, units, model_matrix_of, rank_check
        )
        check_factors(Z, factors, family)
        random_spec = None
    else:
        Z, random_names, random_spec = model_matrix_of(terms[0].terms, df, "random-effects")
        if Z.shape[1] == 0 and random is not None:
            raise ValueError(f"random formula {random!r} has no terms")
        rank_check(Z, random_names, "random-effects")
    specs = {
        "fixed": fixed_spec,
        "random": random_spec,
        # how new data get their offsets: the formulas' offset(...) terms, the offset= column
        "offsets": {
            "fixed": fixed_offsets,
            "zi": zi_offsets,
            "column": offset if isinstance(offset, str) else (None if offset is None else ""),
        },
        "response": (response, aux_columns),
    }
    if disp_spec is not None:
        specs["disp_fixed"] = disp_spec
    X_zi = Z_zi = None
    zi_names: list[str] = []
    if family.zero_part:
        X_zi, zi_names, specs["zi_fixed"] = model_matrix_of(zi_rhs, df, "zero-part fixed-effects")
        rank_check(X_zi, zi_names, "zero-part fixed-effects")
        if zi_random is not None:
            Z_zi, zi_random_names, specs["zi_random"] = model_matrix_of(
                zi_terms, df, "zero-part random-effects"
            )
            rank_check(Z_zi, zi_random_names, "zero-part random-effects")
            random_names = random_names + [f"zi_{n}" for n in zi_random_names]
    offsets = [offset_values(fixed_offsets, df, "fixed")]
    if offset is not None:
        column = offset if isinstance(offset, str) else "(offset)"
        if not pd.api.types.is_numeric_dtype(df[column]) or pd.api.types.is_bool_dtype(df[column]):
            raise ValueError(f"offset column {column!r} must be numeric, got {df[column].dtype}")
        extra = df[column].to_numpy(dtype=float)
        if not np.all(np.isfinite(extra)):
            raise ValueError(f"offset column {column!r} has values that are not finite")
        offsets[0] = extra if offsets[0] is None else offsets[0] + extra
    if family.zero_part:
        offsets.append(offset_values(zi_offsets, df, "zi_fixed"))
    offset_matrix = None
    if any(o is not None for o in offsets):
        offset_matrix = np.column_stack([np.zeros(len(df)) if o is None else o for o in offsets])
    family, aux = add_row_weights(family, aux, df, weight_column, codes, groups, group, factors)
    starts = np.r_[np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]), len(codes)]
    return Design(
        y=y,
        X=X,
        Z=Z,
        starts=starts,
        groups=pd.Index(groups, name=group),
        group_name=group,
        response_name=lhs,
        fixed_names=fixed_names,
        random_names=random_names,
        diagonal=diagonal,
        fixed=fixed,
        random=random,
        rows=df.index.to_numpy(),
        n_dropped=n_dropped,
        specs=specs,
        family=family,
        aux=np.column_stack([aux[n] for n in family.aux_names]) if aux else None,
        X_zi=X_zi,
        zi_fixed_names=zi_names,
        Z_zi=Z_zi,
        zi_fixed=zi_fixed if family.zero_part else None,
        zi_random=zi_random,
        offset=offset_matrix,
        weights=None if weights is None else _group_weights(weights, df, data, group, groups),
        factors=factors,
        crossed=crossed,
    )
