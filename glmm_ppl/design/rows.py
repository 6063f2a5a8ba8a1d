"""The rows a model uses: its columns checked, rows with missing values dropped.

:func:`complete_rows` finds the columns the formulas read (formulaic's required variables,
parsed once per formula string by :mod:`glmm_ppl.design.parsed`), refuses columns a formula
cannot use, and drops the rows that miss a value in any of them, found column by column on
the arrays (no frame of booleans is built). The data frame is returned as it is unless some
of its columns are not used, hold pandas ``string`` values or some rows are dropped.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
from formulaic.errors import FormulaicError

from .parsed import CACHE_SIZE, required_names

__all__ = ["NO_ROWS", "complete_rows", "formula_columns", "plain_text"]


def plain_text(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its pandas ``string`` columns as Python objects, which formulaic reads as
    categories (it takes the ``string`` dtype, dask's for text, for a numeric one).

    Examples
    --------
    >>> plain_text(pd.DataFrame({"s": pd.array(["a", "b"], dtype="string")})).dtypes["s"]
    dtype('O')
    """
    text = [c for c in df.columns if isinstance(df[c].dtype, pd.StringDtype)]
    return df.astype(dict.fromkeys(text, object)) if text else df


#: The error of data without rows (after every check of the columns).
NO_ROWS = "data has no rows"


#: A backquoted name, a string literal (which names no column), or a bare name with what
#: follows it: "(" for a call, "=" (not "==") for a keyword argument.
_TOKEN = re.compile(
    r"`(?P<quoted>[^`]+)`|'[^']*'|\"[^\"]*\""
    r"|(?<![\w.])(?P<bare>[A-Za-z_][\w.]*)(?P<next>\s*(?:\(|=(?!=)))?"
)


@lru_cache(maxsize=CACHE_SIZE)
def _names_in(formula: str) -> tuple[frozenset[str], frozenset[str]]:
    """The names a formula writes (backquoted or bare; not keyword arguments such as
    ``degree=`` nor text in string literals) and the ones it calls as functions.

    Examples
    --------
    >>> names, calls = _names_in("y ~ poly(x, degree=2) + C(g, Treatment('a')) + `my x`")
    >>> sorted(names), sorted(calls)
    (['g', 'my x', 'x', 'y'], ['C', 'Treatment', 'poly'])
    """
    names, calls = set(), set()
    for m in _TOKEN.finditer(formula):
        if m.group("quoted"):
            names.add(m.group("quoted"))
        elif m.group("bare"):
            after = (m.group("next") or "").strip()
            if after == "(":
                calls.add(m.group("bare"))
            elif not after:
                names.add(m.group("bare"))
    return frozenset(names), frozenset(calls)


def formula_columns(formula: str, required, names: set) -> tuple[set, set]:
    """The columns a formula uses, and the names it calls as functions.

    ``required`` are formulaic's required variables, corrected by the names the formula
    writes: formulaic leaves out a column named like a function (``log``, ``C``, ``I``) and
    reads a dotted name (``x.1``) as an attribute of ``x``. ``names`` are the data's columns;
    a required name that is not among them stays (it is missing).

    Examples
    --------
    >>> used, calls = formula_columns("y ~ x.1 + log", {"y", "x"}, {"y", "x.1", "log"})
    >>> sorted(used), calls
    (['log', 'x.1', 'y'], set())
    """
    tokens, calls = _names_in(formula)
    used = {
        str(v)
        for v in required
        if str(v) in names or not any(t.startswith(f"{v}.") for t in tokens)
    }
    return used | (tokens & names), set(calls)


def _check_names(labels: list[str], needed: set, in_formulas: set, called: set) -> None:
    """Columns the model uses: not duplicated, not named as the intercept or like a function
    the formula calls. ``labels`` are the data's column names as text."""
    if len(set(labels)) < len(labels):
        columns = pd.Index(labels)
        duplicated = sorted(set(columns[columns.duplicated()]) & needed)
        if duplicated:
            name = duplicated[0]
            raise ValueError(
                f"data has {int((columns == name).sum())} columns named {name!r}: drop or "
                "rename the duplicates (for example data.loc[:, ~data.columns.duplicated()])"
            )
    reserved = sorted(in_formulas & {"Intercept", "(Intercept)"})
    if reserved:
        raise ValueError(
            f"column {reserved[0]!r} has the name the design gives the intercept, so the "
            "formula would read it as the constant: rename the column (for example "
            f"data.rename(columns={{{reserved[0]!r}: 'intercept_'}}))"
        )
    shadowing = sorted(in_formulas & called)
    if shadowing:
        name = shadowing[0]
        raise ValueError(
            f"column {name!r} has the name of the function {name}() that the formula calls: "
            f"rename the column (for example data.rename(columns={{{name!r}: {name + '_'!r}}}))"
        )


def _check_dtype(label: str, dtype) -> None:
    """A column in a formula: not dates or durations, which have no numeric meaning in a
    design."""
    if (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    ):
        how = (
            f"data[{label!r}].dt.total_seconds() / 86400"
            if pd.api.types.is_timedelta64_dtype(dtype)
            else f"(data[{label!r}] - data[{label!r}].min()).dt.days"
        )
        raise ValueError(
            f"column {label!r} holds {dtype} values, which a formula cannot use: give a "
            f"number (for example in days, {how}) or a category"
        )


def _missing(values: pd.Series) -> np.ndarray | None:
    """Which values of a column are missing (as ``isna``); None for a dtype that cannot miss
    any (integers, booleans)."""
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return None
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        return np.isnan(values.to_numpy())
    if isinstance(dtype, pd.CategoricalDtype):
        return np.asarray(values.array.codes) < 0
    return values.isna().to_numpy()


def complete_rows(
    data: pd.DataFrame,
    formulas: list[str],
    columns: list[str],
    stacklevel: int = 4,
    keep_levels: bool = False,
) -> tuple[pd.DataFrame, int]:
    """The columns the formulas and ``columns`` use, without rows that miss any of them;
    categorical columns lose the levels left without rows, unless ``keep_levels``.

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

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1.0, None, 3.0], "x": [1, 2, 3], "z": ["a", "b", "c"]})
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     out, n_dropped = complete_rows(df, ["~ x"], ["y"], stacklevel=2)
    >>> out.columns.tolist(), out.index.tolist(), n_dropped
    (['y', 'x'], [0, 2], 1)
    >>> str(caught[0].message)
    "dropped 1 of 3 rows with missing values ('y': 1)"
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    labels = [str(c) for c in data.columns]
    names = set(labels)
    in_formulas, called = set(), set()
    try:
        for formula in formulas:
            used, calls = formula_columns(formula, required_names(formula), names)
            in_formulas |= used
            called |= calls
    except FormulaicError as err:
        raise ValueError(f"cannot parse the formulas {', '.join(formulas)}: {err}") from None
    needed = in_formulas | set(columns)
    missing = sorted(needed - names)
    if missing:
        raise ValueError(
            f"column(s) {', '.join(map(repr, missing))} not found in data; "
            f"available columns: {', '.join(map(str, data.columns))}"
        )
    _check_names(labels, needed, in_formulas, called)
    pairs = zip(data.columns, labels, strict=True)
    used = [(c, label, data[c]) for c, label in pairs if label in needed]
    for _, label, values in used:
        if label in in_formulas:
            _check_dtype(label, values.dtype)
    if len(data) == 0:
        raise ValueError(NO_ROWS)
    if len(used) == len(labels):
        df = data
    else:
        df = data.take([k for k, label in enumerate(labels) if label in needed], axis=1)
    masks = [(c, _missing(values)) for c, _, values in used]
    text = [c for c, _, values in used if isinstance(values.dtype, pd.StringDtype)]
    if text:  # as plain_text: formulaic reads them as categories
        df = df.astype(dict.fromkeys(text, object))
    dropped = np.zeros(len(df), dtype=bool)
    for _, mask in masks:
        if mask is not None:
            dropped |= mask
    n_dropped = int(dropped.sum())
    if n_dropped == len(df):
        raise ValueError("every row has a missing value in the columns the model uses")
    if n_dropped:
        per_col = ", ".join(
            f"{c!r}: {int(mask.sum())}" for c, mask in masks if mask is not None and mask.any()
        )
        warnings.warn(
            f"dropped {n_dropped} of {len(df)} rows with missing values ({per_col})",
            UserWarning,
            stacklevel=stacklevel,  # the user's call: mixed_model → build_design → here
        )
        df = df.loc[~dropped]
    if n_dropped and not keep_levels:
        # levels left without rows would become empty design columns (R drops them too)
        df = df.apply(
            lambda c: (
                c.cat.remove_unused_categories() if isinstance(c.dtype, pd.CategoricalDtype) else c
            )
        )
    return df, n_dropped
