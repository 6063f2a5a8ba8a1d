"""Telling dask data from pandas data without importing dask."""

from __future__ import annotations

__all__ = ["is_dask_dataframe"]


def is_dask_dataframe(data) -> bool:
    """Whether ``data`` is a dask DataFrame (without importing dask for other data)."""
    module = type(data).__module__
    if not module.startswith(("dask.", "dask_expr")):
        return False
    import dask.dataframe as dd

    return isinstance(data, dd.DataFrame)
