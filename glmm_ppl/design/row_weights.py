"""Observation-level (row) weights: ``mixed_model(..., row_weights=...)``.

Each row's log density is multiplied by its weight inside the integral over the random
effects,

``ℓ_i = log ∫ Π_j p(y_ij | b)^{w_ij} N(b; 0, D) db``,

so a row of integer weight ``k`` counts as ``k`` copies of that row in its group (frequency
weights, as lme4's prior weights of non-binomial families). The family reads the weights as
its per-row column ``"row_weight"`` (:meth:`glmm_ppl.families.Family.with_row_weights`), so
every engine integrates the weighted densities and differentiates them by automatic
differentiation.

Weights are given as :func:`glmm_ppl.mixed_model`'s ``offset=`` is: a column name, a pandas
Series matched to the data by index label, or an array with one value per row of the data.
They must be finite and non-negative; a missing weight is an error (not a dropped row), and
rows dropped for missing values in the model's other columns drop their weights too. A row
of weight 0 stays in the fit (it has fitted values and residuals) but adds nothing to the
log-likelihood, and ``fit.nobs`` does not count it; a group, a unit of a grouping factor or
the whole data whose weights are all 0 is an error. Weights that are all 1 give the model
without weights (the same fit, with nothing about weights in its summary).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..families import Family
from .per_row import per_row_column

__all__ = [
    "ROW_WEIGHT_COLUMN",
    "add_row_weights",
    "read_row_weights",
    "row_weights_of",
    "unit_row_weights",
]

#: The data column that holds weights given as a Series or an array.
ROW_WEIGHT_COLUMN = "(row weights)"


def _label(value) -> str:
    value = value.item() if isinstance(value, np.generic) else value
    return repr(value)


def read_row_weights(data: pd.DataFrame, row_weights) -> tuple[pd.DataFrame, str | None]:
    """``data`` with the weights as a column, and that column's name (None without weights).

    The weights are checked over all the rows of ``data``: numeric, none missing, finite and
    non-negative.

    Parameters
    ----------
    data : pandas.DataFrame
    row_weights : str, pandas.Series, array-like or None
        A column of ``data``, a Series indexed like ``data``, or one value per row.

    Returns
    -------
    data : pandas.DataFrame
        With the column ``"(row weights)"`` added for a Series or an array.
    column : str or None

    Raises
    ------
    ValueError
        For an unknown column, a Series without a value for some row, an array of the wrong
        length, non-numeric weights, missing weights (NaN) or negative or infinite ones; the
        message names the column and counts the rows.

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1, 0, 2], "w": [1.0, 2.0, 0.5]})
    >>> read_row_weights(df, "w")[1]
    'w'
    >>> out, column = read_row_weights(df, [1, 1, 3])
    >>> column, out[column].tolist()
    ('(row weights)', [1.0, 1.0, 3.0])
    >>> read_row_weights(df, [1.0, -2.0, -1.0])
    Traceback (most recent call last):
    ...
    ValueError: row_weights must be finite and non-negative; 2 row(s) are not (for example -2)
    """
    if row_weights is None:
        return data, None
    if isinstance(row_weights, str) and row_weights not in data.columns:
        raise ValueError(
            f"row_weights column {row_weights!r} not found in data; available columns: "
            f"{', '.join(map(str, data.columns))}"
        )
    data, column = per_row_column(data, row_weights, "row_weights", ROW_WEIGHT_COLUMN)
    what = "row_weights" if column == ROW_WEIGHT_COLUMN else f"row_weights column {column!r}"
    values = data[column]
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise ValueError(f"{what} must be numeric, got dtype {values.dtype}")
    values = values.to_numpy(dtype=float)
    missing = np.isnan(values)
    if missing.any():
        raise ValueError(
            f"{what} has {int(missing.sum())} missing value(s) (NaN); give every row a weight "
            "(0 leaves a row out of the log-likelihood) or drop those rows from data"
        )
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        raise ValueError(
            f"{what} must be finite and non-negative; {int(bad.sum())} row(s) are not (for "
            f"example {values[bad][0]:g})"
        )
    if column == ROW_WEIGHT_COLUMN:
        data = data.assign(**{ROW_WEIGHT_COLUMN: values})
    return data, column


def add_row_weights(
    family: Family,
    aux: dict,
    df: pd.DataFrame,
    column: str | None,
    codes: np.ndarray,
    groups,
    group: str,
    factors=(),
) -> tuple[Family, dict]:
    """The family with or without row weights, and the per-row data ``aux`` with the weights
    of the rows used (``df``, sorted as the design) when they are not all 1.

    Raises
    ------
    ValueError
        When every weight is 0, or all the weights of a group (``codes`` into ``groups``, of
        the column ``group``) or of a unit of one of the grouping ``factors`` are.

    Examples
    --------
    >>> from glmm_ppl.families import poisson
    >>> df = pd.DataFrame({"w": [1.0, 2.0, 0.0, 1.0]})
    >>> fam, aux = add_row_weights(poisson(), {}, df, "w", np.array([0, 0, 1, 1]), [1, 2], "g")
    >>> fam.aux_names, aux["row_weight"].tolist()
    (('row_weight',), [1.0, 2.0, 0.0, 1.0])
    >>> df = pd.DataFrame({"w": [1.0, 2.0, 0.0, 0.0]})
    >>> add_row_weights(poisson(), {}, df, "w", np.array([0, 0, 1, 1]), [1, 2], "g")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: row_weights column 'w' is 0 in every row of 1 group(s) of 'g' (for example 2): ...
    """
    if column is None or np.all(df[column].to_numpy(dtype=float) == 1.0):
        return family.with_row_weights(False), aux
    weights = df[column].to_numpy(dtype=float)
    what = "row_weights" if column == ROW_WEIGHT_COLUMN else f"row_weights column {column!r}"
    if not np.any(weights > 0):
        raise ValueError(f"{what} is 0 in every row used: there is nothing to fit")
    levels = [(group, codes, list(groups))]
    levels += [(f.name, f.index, list(f.labels)) for f in factors[1:]]
    for name, index, labels in levels:
        empty = np.flatnonzero(np.bincount(index, weights=weights, minlength=len(labels)) <= 0)
        if len(empty):
            raise ValueError(
                f"{what} is 0 in every row of {len(empty)} group(s) of {name!r} (for example "
                f"{_label(labels[empty[0]])}): a group needs a positive weight in some row (or "
                "leave it out of data)"
            )
    return family.with_row_weights(), {**aux, "row_weight": weights}


def row_weights_of(design) -> np.ndarray:
    """``(N,)``: the design's row weights, in its row order (ones without weights).

    Examples
    --------
    >>> from glmm_ppl.design.matrices import build_design
    >>> from glmm_ppl.families import poisson
    >>> df = pd.DataFrame({"y": [0, 3, 1, 2], "g": [2, 1, 2, 1], "w": [1.0, 2.0, 0.5, 0.0]})
    >>> row_weights_of(build_design("y ~ 1", "~ 1 | g", df, poisson(), row_weights="w"))
    array([2. , 0. , 1. , 0.5])
    """
    family = design.family
    if family is None or not family.row_weighted:
        return np.ones(design.nobs)
    return np.asarray(design.aux[:, family.aux_names.index("row_weight")], dtype=float)


def unit_row_weights(family: Family, Y: np.ndarray | None) -> np.ndarray | None:
    """``Y`` (the response, then the family's per-row data) with every row weight 1: the rows
    as single observations (``Y`` itself when the family has no row weights).

    Examples
    --------
    >>> from glmm_ppl.families import poisson
    >>> unit_row_weights(poisson().with_row_weights(), np.array([[3.0, 2.5]])).tolist()
    [[3.0, 1.0]]
    """
    if Y is None or not family.row_weighted:
        return Y
    Y = np.array(Y, dtype=float, copy=True)
    Y[:, 1 + family.aux_names.index("row_weight")] = 1.0
    return Y
