"""From formulas and a data frame to the arrays of a mixed model.

``fixed`` is ``"y ~ terms"`` (R syntax: ``*``, ``:``, ``I()``, ``poly()``, ``log()``…; factors —
pandas categoricals in category order, strings sorted — use treatment coding with the first
level as reference). ``random`` is ``"~ terms | g"`` (correlated random effects, full ``D``) or
``"~ terms || g"`` (independent random effects, diagonal ``D``) for one grouping column ``g``.
Rows are sorted by group (stably), so each group is a contiguous block; rows with missing values
in the columns a model uses are dropped with a warning that counts them.
Formula terms are parsed by formulaic; the model specs are kept so new data gets the same
columns.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix
from formulaic.errors import FormulaicError

from .families import Family

__all__ = ["Design", "build_design", "complete_rows", "parse_random", "split_fixed"]

_RANDOM = re.compile(r"^\s*~?(?P<terms>[^|]*?)\s*(?P<bar>\|\|?)\s*(?P<group>[^|]+?)\s*$")
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
    Z : ndarray (N, q)
        Random-effects design; columns named ``random_names``.
    starts : ndarray (n + 1,)
        First row of each group, then ``N``.
    groups : pandas.Index
        The group labels, in the order of ``starts``.
    diagonal : bool
        Whether ``D`` is diagonal (``||``).
    rows : ndarray (N,)
        Index labels of the data rows used, in the sorted order.
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
    random: str
    rows: np.ndarray
    n_dropped: int = 0
    specs: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    @property
    def nobs(self) -> int:
        return len(self.y)


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


def parse_random(random: str) -> tuple[str, str, bool]:
    """Split ``"~ terms | g"`` into ``("~ terms", "g", diagonal)``.

    Examples
    --------
    >>> parse_random("~ time || id")
    ('~ time', 'id', True)
    """
    m = _RANDOM.match(random) if isinstance(random, str) else None
    if m is None or not m.group("group"):
        raise ValueError(
            f"random must look like '~ 1 | g', '~ x | g' (correlated) or '~ x || g' "
            f"(independent), got {random!r}"
        )
    terms = m.group("terms").strip() or "1"
    return "~ " + terms, m.group("group").strip(), m.group("bar") == "||"


def _r_names(columns) -> list[str]:
    """formulaic's column names in R's style: ``Intercept`` → ``(Intercept)``,
    ``sex[T.female]`` → ``sexfemale``."""
    out = []
    for c in columns:
        c = "(Intercept)" if c == "Intercept" else _TREATMENT.sub(r"\g<var>\g<level>", str(c))
        out.append(c)
    return out


def _matrix(formula: str, data: pd.DataFrame, what: str):
    """Model matrix, R-style column names and spec; errors name the formula or column."""
    try:
        mm = model_matrix(formula, data, na_action="raise")
    except FormulaicError as err:
        raise ValueError(f"cannot build the {what} design from {formula!r}: {err}") from None
    X, names = np.asarray(mm, dtype=float), _r_names(mm.columns)
    finite = np.isfinite(X)
    if not finite.all():
        k = int(np.flatnonzero(~finite.all(axis=0))[0])
        bad = X[~finite[:, k], k]
        raise ValueError(
            f"the {what} column {names[k]!r} has {len(bad)} value(s) that are not finite "
            f"(for example {bad[0]:g}); remove or recode those rows"
        )
    return X, names, mm.model_spec


def _check_rank(X: np.ndarray, names: list[str], what: str = "fixed-effects") -> None:
    rank = np.linalg.matrix_rank(X)
    if rank == X.shape[1]:
        return
    # columns that are linear combinations of the earlier ones
    aliased = [
        name
        for k, name in enumerate(names)
        if np.linalg.matrix_rank(X[:, : k + 1]) <= np.linalg.matrix_rank(X[:, :k])
    ]
    raise ValueError(
        f"the {what} design is rank deficient (rank {rank} < {X.shape[1]} columns); "
        f"these columns are linear combinations of earlier ones: {', '.join(aliased)}"
    )


def complete_rows(
    data: pd.DataFrame, formulas: list[str], columns: list[str], stacklevel: int = 4
) -> tuple[pd.DataFrame, int]:
    """The columns the formulas and ``columns`` use, without rows that miss any of them.

    Raises
    ------
    TypeError
        If ``data`` is not a DataFrame.
    ValueError
        Naming the columns not found (and listing the available ones), or when every row
        misses a value.

    Warns
    -----
    UserWarning
        Counting the rows dropped, per column.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    needed = set(columns)
    try:
        for formula in formulas:
            needed |= set(map(str, Formula(formula).required_variables))
    except FormulaicError as err:
        raise ValueError(f"cannot parse the formulas {', '.join(formulas)}: {err}") from None
    missing = sorted(needed - set(map(str, data.columns)))
    if missing:
        raise ValueError(
            f"column(s) {', '.join(map(repr, missing))} not found in data; "
            f"available columns: {', '.join(map(str, data.columns))}"
        )
    if len(data) == 0:
        raise ValueError("data has no rows")
    df = data[[c for c in data.columns if str(c) in needed]]
    na = df.isna()
    n_dropped = int(na.any(axis=1).sum())
    if n_dropped == len(df):
        raise ValueError("every row has a missing value in the columns the model uses")
    if n_dropped:
        per_col = ", ".join(f"{c!r}: {int(k)}" for c, k in na.sum().items() if k)
        warnings.warn(
            f"dropped {n_dropped} of {len(df)} rows with missing values ({per_col})",
            UserWarning,
            stacklevel=stacklevel,  # the user's call: mixed_model → build_design → here
        )
        df = df.loc[~na.any(axis=1)]
        # levels left without rows would become empty design columns (R drops them too)
        df = df.apply(
            lambda c: (
                c.cat.remove_unused_categories() if isinstance(c.dtype, pd.CategoricalDtype) else c
            )
        )
    return df, n_dropped


def build_design(fixed: str, random: str, data: pd.DataFrame, family: Family) -> Design:
    """Check the data against the formulas and build the design arrays.

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
    response, fixed_rhs = split_fixed(fixed)
    random_terms, group, diagonal = parse_random(random)
    df, n_dropped = complete_rows(data, [fixed_rhs, random_terms], [response, group])
    codes, groups = pd.factorize(df[group], sort=True)
    if len(groups) < 2:
        raise ValueError(
            f"grouping column {group!r} has a single group ({groups[0]}); a mixed model "
            "needs at least two groups"
        )
    order = np.argsort(codes, kind="stable")
    df = df.iloc[order]
    codes = codes[order]
    y = family.check_response(df[response], response)
    if np.all(y == y[0]):
        raise ValueError(
            f"response column {response!r} has the same value ({y[0]:g}) in every row used: "
            "there is nothing to fit"
        )
    X, fixed_names, fixed_spec = _matrix(fixed_rhs, df, "fixed-effects")
    _check_rank(X, fixed_names)
    Z, random_names, random_spec = _matrix(random_terms, df, "random-effects")
    if Z.shape[1] == 0:
        raise ValueError(f"random formula {random!r} has no terms")
    _check_rank(Z, random_names, "random-effects")
    starts = np.r_[np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]), len(codes)]
    return Design(
        y=y,
        X=X,
        Z=Z,
        starts=starts,
        groups=pd.Index(groups, name=group),
        group_name=group,
        response_name=response,
        fixed_names=fixed_names,
        random_names=random_names,
        diagonal=diagonal,
        fixed=fixed,
        random=random,
        rows=df.index.to_numpy(),
        n_dropped=n_dropped,
        specs={"fixed": fixed_spec, "random": random_spec},
    )
