"""The design of a model whose rows stay on the cluster: names, formulas and groups only.

The fit object of a cluster fit holds a :class:`ClusterDesign`: everything a design says
about the model (column names, formula specs for new data, the family, the groups and their
weights, the numbers of rows) without the rows themselves, which stay in the workers' shards.
Asking it for the rows raises :class:`RowsOnWorkersError`, which says what to do instead.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

__all__ = ["ClusterDesign", "RowsOnWorkersError", "without_rows"]

#: The design's per-row arrays (and the methods that return them).
_ROWS = frozenset({"y", "X", "Z", "rows", "aux", "starts", "response_data", "Z_by_predictor"})


class RowsOnWorkersError(RuntimeError):
    """A method of a cluster fit needs the training rows, which stay on the workers.

    A fit of a dask DataFrame keeps its rows in the workers' shards; its design on the driver
    names the columns and groups but has no rows, and asking it for them raises this error.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.design.matrices import build_design
    >>> d = build_design("y ~ time", "~ 1 | id", gp.load_vignette("binary"), gp.families.binomial())
    >>> cd = ClusterDesign(without_rows(d), d.groups, d.nobs, 0, None, (d.nobs, 1.0, 1.0))
    >>> try:
    ...     cd.X
    ... except RowsOnWorkersError as err:
    ...     print(str(err)[:62])
    this needs the training rows (the design's 'X'), which stay on
    """


def without_rows(design):
    """``design`` with its per-row arrays cut to no rows (for the driver's copy)."""
    empty = {}
    for f in dataclasses.fields(design):
        value = getattr(design, f.name)
        if f.name in ("y", "X", "Z", "rows", "aux", "X_zi", "Z_zi", "offset"):
            empty[f.name] = None if value is None else value[:0]
    return dataclasses.replace(design, **empty, starts=np.zeros(1, dtype=np.int64))


class ClusterDesign:
    """A design's description without its rows.

    Parameters
    ----------
    meta : Design
        A shard's design without rows (:func:`without_rows`): names, specs, family.
    groups : pandas.Index
        All groups, sorted, as an in-process fit orders them.
    nobs, n_dropped : int
        Rows used and rows dropped for missing values, over all shards.
    weights : ndarray or None
        The group weights, in the order of ``groups``.
    response_sums : tuple of float
        ``(N, Σy, Σy²)`` over all rows: the response's spread, and what tells two fits' data
        apart (``anova``).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> from glmm_ppl.design.matrices import build_design
    >>> df = gp.load_vignette("binary")
    >>> d = build_design("y ~ time", "~ 1 | id", df, gp.families.binomial())
    >>> sums = (d.nobs, d.y.sum(), (d.y**2).sum())
    >>> cd = ClusterDesign(without_rows(d), d.groups, d.nobs, 0, None, sums)
    >>> cd.nobs, cd.n_groups, cd.fixed_names
    (800, 100, ['(Intercept)', 'time'])
    """

    #: What reporting asks to tell a design of a cluster fit from one with its rows.
    rows_on_workers = True

    def __init__(self, meta, groups: pd.Index, nobs: int, n_dropped: int, weights, response_sums):
        self._meta = dataclasses.replace(meta, groups=groups, n_dropped=n_dropped, weights=weights)
        self._nobs = int(nobs)
        self.response_sums = tuple(float(v) for v in response_sums)

    def response_spread(self) -> float:
        """The standard deviation of the response (from the shards' sums)."""
        n, s1, s2 = self.response_sums
        return float(np.sqrt(max(s2 / n - (s1 / n) ** 2, 0.0)))

    @property
    def nobs(self) -> int:
        return self._nobs

    @property
    def meta(self):
        """The design without rows (a :class:`~glmm_ppl.design.matrices.Design`)."""
        return self._meta

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in _ROWS:
            raise RowsOnWorkersError(
                f"this needs the training rows (the design's {name!r}), which stay on the "
                "cluster's workers in a fit on a dask DataFrame; pass the data as newdata= "
                "(predict takes pandas or dask data), or fit a pandas DataFrame"
            )
        return getattr(self._meta, name)

    def __getstate__(self) -> dict:
        return self.__dict__

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
