"""Values given per row of the data — a column name, a pandas Series matched to the data by
index label, or an array with one value per row — as a column of the data (``offset=``,
``row_weights=``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["per_row_column"]


def _label(value) -> str:
    """A data value as users wrote it (``3``, ``'a'``), not as NumPy's repr."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def per_row_column(
    data: pd.DataFrame, value, argument: str, column: str
) -> tuple[pd.DataFrame, str | None]:
    """``data`` with ``value`` as one of its columns, and that column's name.

    Parameters
    ----------
    data : pandas.DataFrame
    value : str, pandas.Series, array-like or None
        A column of ``data`` (returned as it is), a Series indexed like ``data`` or one value
        per row; None gives ``(data, None)``.
    argument : str
        The argument's name, for the errors.
    column : str
        The name of the column a Series or an array becomes.

    Raises
    ------
    ValueError
        For a Series with repeated index labels or without a value for some row, or an
        array of the wrong length.

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1, 0, 2]}, index=[10, 11, 12])
    >>> out, name = per_row_column(df, pd.Series([0.5, 1.0, 2.0], index=[12, 11, 10]), "offset",
    ...                            "(offset)")
    >>> name, out[name].tolist()
    ('(offset)', [2.0, 1.0, 0.5])
    >>> per_row_column(df, [1.0, 2.0], "offset", "(offset)")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: offset must have one value per row of data (3), got 2; or give a column name ...
    """
    if value is None or isinstance(value, str):
        return data, value
    if isinstance(value, pd.Series):  # matched by index label, as a column would be
        if not value.index.is_unique:
            raise ValueError(f"{argument} (a Series) has repeated index labels; index it like data")
        missing = ~data.index.isin(value.index)
        if missing.any():
            raise ValueError(
                f"{argument} (a Series) has no value for {int(missing.sum())} row(s) of data (for "
                f"example index {_label(data.index[missing][0])}); index it like data"
            )
        return data.assign(**{column: value.reindex(data.index).to_numpy()}), column
    values = np.asarray(value).reshape(-1)
    if len(values) != len(data):
        raise ValueError(
            f"{argument} must have one value per row of data ({len(data)}), got {len(values)}; "
            "or give a column name or a pandas Series indexed like data"
        )
    return data.assign(**{column: values}), column
