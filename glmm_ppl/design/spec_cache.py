"""Model specs kept per formula and column types, and the matrices built again from them.

formulaic builds a design in two steps: it works out the columns a formula makes from the
data's column types and categories (the model spec), then fills them in. The first step does
not depend on the data's values, so a spec is kept per formula string and *signature* of the
columns the formula reads: each column's kind (its NumPy dtype for numbers; its categories,
in order, for categorical and text columns). Data with the same signature get the same spec,
and their matrix is filled in here with NumPy, by the operations formulaic's pandas
materializer performs (treatment-coded indicators of the categories, products of the
factors of each term, in formulaic's order), so the numbers are the same bit for bit.

Only formulas whose factors are all columns looked up by name (``sex * time``, ``0 + x``; no
function calls or transforms, whose state depends on the data's values) and columns without
missing values take this path, and only once the kept spec's matrix has been checked against
formulaic's on the data that made it (same names, same values, same memory layout); anything
else is built by formulaic every time. The cache is bounded (least recently used specs are
dropped first).
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from formulaic.parser.types import Factor
from formulaic.transforms.contrasts import TreatmentContrasts
from formulaic.utils.sentinels import UNSET

from .parsed import lookup_factors

__all__ = ["CACHE_SIZE", "cached_matrix", "clear", "size"]

#: How many (formula, column signature) specs are kept.
CACHE_SIZE = 256

_CATEGORICAL = Factor.Kind.CATEGORICAL
_NUMERICAL = Factor.Kind.NUMERICAL


@dataclass(frozen=True)
class _Column:
    """A column a formula reads: its signature, and its values (numbers) or the codes of its
    categories."""

    signature: tuple
    values: np.ndarray | None = None
    codes: np.ndarray | None = None


@dataclass(frozen=True)
class _Entry:
    """A kept spec: the R-style column names, the spec, how to fill in each term (None when
    formulaic's matrix could not be reproduced) and whether formulaic's array is writeable."""

    names: tuple[str, ...]
    spec: object
    terms: tuple | None
    writeable: bool


_cache: OrderedDict = OrderedDict()
_lock = threading.Lock()


def clear() -> None:
    """Forget every kept spec."""
    with _lock:
        _cache.clear()


def size() -> int:
    """How many specs are kept (at most :data:`CACHE_SIZE`)."""
    with _lock:
        return len(_cache)


def _column(values) -> _Column | None:
    """The column as the fast path reads it, or None for a column it leaves to formulaic
    (another dtype, or missing values)."""
    if not isinstance(values, pd.Series):
        return None  # a name formulaic would find elsewhere, or duplicated columns
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _categories(values.array, "category")
    if not isinstance(dtype, np.dtype):
        return None
    if dtype.kind in "iuf":
        array = values.to_numpy()
        if dtype.kind == "f" and np.isnan(array).any():
            return None
        return _Column(("number", dtype.str), values=array)
    if dtype.kind == "O":
        try:
            categorical = pd.Categorical(values)  # formulaic's categories of a text column
        except Exception:  # unhashable values: formulaic reports them
            return None
        return _categories(categorical, "object")
    return None


def _categories(categorical: pd.Categorical, kind: str) -> _Column | None:
    """A categorical column: its categories in order (as text, with their dtype) and each
    row's code; None with missing values."""
    codes = np.asarray(categorical.codes)
    if (codes < 0).any():
        return None
    categories = categorical.categories
    levels = tuple(map(repr, categories))  # 1, 1.0 and "1" are different levels
    return _Column((kind, str(categories.dtype), levels), codes=codes)


def _columns(formula: str, data: pd.DataFrame) -> dict[str, _Column] | None:
    """The columns ``formula`` reads, by name, or None when formulaic must build it (a
    factor that is not a column of ``data``, or a column the fast path leaves to it)."""
    factors = lookup_factors(formula)
    if factors is None or not isinstance(data, pd.DataFrame):
        return None
    out = {}
    for name in factors:
        if name not in data.columns:
            return None
        column = _column(data[name])
        if column is None:
            return None
        out[name] = column
    return out


def _plan(spec) -> tuple | None:
    """How to fill in each scoped term of ``spec``: its scale and, per factor, its name and
    the categories whose indicators it makes (None for a number); None for a spec this
    module cannot reproduce."""
    structure, state = getattr(spec, "structure", None), getattr(spec, "encoder_state", {})
    if structure is None or spec.transform_state:
        return None
    terms = []
    for term in structure:
        for scoped in term.scoped_terms:
            factors = []
            for scoped_factor in scoped.factors:
                expr = scoped_factor.factor.expr
                kind, encoding = state.get(expr, (None, {}))
                if kind is _NUMERICAL:
                    factors.append((expr, None, ()))
                    continue
                contrasts = getattr(encoding.get("contrasts"), "contrasts", None)
                if kind is not _CATEGORICAL or type(contrasts) is not TreatmentContrasts:
                    return None
                if contrasts.base is not UNSET:
                    return None
                levels = list(encoding["categories"])
                first = 1 if scoped_factor.reduced else 0  # reduced rank: the first level is
                factors.append((expr, range(first, len(levels)), levels))  # the reference
            terms.append((scoped.scale, tuple(factors)))
    return tuple(terms)


def _names(terms: tuple) -> list[str]:
    """formulaic's column names of the planned terms."""
    out = []
    for _, factors in terms:
        if not factors:
            out.append("Intercept")
            continue
        names = []
        for expr, indices, levels in factors:
            if indices is None:
                names.append([expr])
            else:
                form = "{}[{}]" if indices.start == 0 else "{}[T.{}]"
                names.append([form.format(expr, levels[k]) for k in indices])
        out += [":".join(reversed(p)) for p in itertools.product(*reversed(names))]
    return out


def _term_columns(factors: list[list[np.ndarray]], scale) -> list[np.ndarray]:
    """The columns of one term, as formulaic's pandas materializer computes them: the factors
    with one column multiplied first, then every combination of the others' columns (the
    first factor's varying fastest), scaled."""
    solo = [k for k, columns in enumerate(factors) if len(columns) == 1]
    if solo:
        product = functools.reduce(np.multiply, (np.asanyarray(factors[k][0]) for k in solo))
        factors = [columns for k, columns in enumerate(factors) if k not in solo] + [[product]]
    return [
        scale * functools.reduce(np.multiply, (np.array(p) for p in reversed(combination)))
        for combination in itertools.product(*reversed(factors))
    ]


def _fill(terms: tuple, columns: dict[str, _Column], n: int) -> np.ndarray:
    """The matrix of the planned terms on the columns (``n`` rows), laid out as formulaic's
    (column-major)."""
    out = []
    for scale, factors in terms:
        if not factors:
            out.append(scale * (1 * np.ones(n)))
            continue
        encoded = []
        for expr, indices, _ in factors:
            column = columns[expr]
            if indices is None:
                encoded.append([column.values])
            else:
                encoded.append([column.codes == k for k in indices])
        out += _term_columns(encoded, scale)
    X = np.empty((len(out), n)).T
    for k, values in enumerate(out):
        X[:, k] = values
    return X


def _same(A: np.ndarray, B: np.ndarray) -> bool:
    """Whether two float arrays are the same bit for bit, in the same memory layout."""
    return (
        A.shape == B.shape
        and A.dtype == B.dtype == np.float64
        and A.flags.c_contiguous == B.flags.c_contiguous
        and A.flags.f_contiguous == B.flags.f_contiguous
        and np.array_equal(A.view(np.int64), B.view(np.int64))
    )


def _entry(X: np.ndarray, names: list[str], spec, columns: dict, n: int) -> _Entry:
    """The spec kept, with its plan if the plan reproduces formulaic's matrix ``X``."""
    terms = _plan(spec)
    if terms is not None:
        try:
            same = _names(terms) == list(spec.column_names) and _same(_fill(terms, columns, n), X)
        except Exception:  # anything unforeseen: formulaic builds this one every time
            same = False
        terms = terms if same else None
    return _Entry(tuple(names), spec, terms, bool(X.flags.writeable))


def cached_matrix(
    formula: str, data: pd.DataFrame, build: Callable[[], tuple]
) -> tuple[np.ndarray, list[str], object]:
    """``(X, names, spec)`` of ``formula`` on ``data``: from a kept spec when one fits the
    signature of the columns the formula reads, else from ``build()`` (formulaic), whose spec
    is then kept.

    Parameters
    ----------
    formula : str
        A one-sided formula (``"~ sex * time"``).
    data : pandas.DataFrame
    build : callable
        Builds ``(X, names, spec)`` with formulaic (``X`` a float array, ``names`` R-style);
        its errors propagate.

    Examples
    --------
    >>> from formulaic import model_matrix
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "g": pd.Series(["a", "b", "a"], dtype=object)})
    >>> def build():
    ...     mm = model_matrix("~ g * x", df, na_action="raise")
    ...     return np.asarray(mm, dtype=float), list(mm.columns), mm.model_spec
    >>> X1, names1, spec1 = cached_matrix("~ g * x", df, build)
    >>> X2, names2, spec2 = cached_matrix("~ g * x", df, build)  # from the kept spec
    >>> names2, spec2 is spec1, bool((X1 == X2).all())
    (['Intercept', 'g[T.b]', 'x', 'g[T.b]:x'], True, True)
    """
    columns = _columns(formula, data)
    if columns is None:
        return build()
    key = (formula, tuple(sorted((name, c.signature) for name, c in columns.items())))
    with _lock:
        entry = _cache.get(key)
        if entry is not None:
            _cache.move_to_end(key)
    if entry is None:
        X, names, spec = build()
        entry = _entry(X, names, spec, columns, len(data))
        with _lock:
            _cache[key] = entry
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        return X, names, spec
    if entry.terms is None:
        return build()
    X = _fill(entry.terms, columns, len(data))
    X.flags.writeable = entry.writeable
    return X, list(entry.names), entry.spec
