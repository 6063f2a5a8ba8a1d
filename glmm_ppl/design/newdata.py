"""The model's arrays for new data: the fitted formulas applied to another data frame.

The formula specs kept by :func:`glmm_ppl.design.matrices.build_design` rebuild ``X``,
``Z`` (and the zero part's) with the same columns, factor levels and transforms; offsets are
recomputed from their ``offset(...)`` terms or the ``offset=`` column. Rows keep the order of
``newdata``; each row knows its group and whether the fit saw that group.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from formulaic.errors import DataMismatchWarning, FormulaicError

from .dispersion import dispersion_columns
from .matrices import Design, formula_columns, offset_values, plain_text
from .nested import factor_labels
from .response import aux_values
from .row_weights import unit_row_weights

__all__ = ["ModelArrays", "model_arrays", "response_columns"]


@dataclass(frozen=True)
class ModelArrays:
    """Arrays of a model on some data, rows in the data's order.

    Attributes
    ----------
    X : ndarray (N, p)
    X_zi : ndarray (N, p_zi) or None
    Z : ndarray (N, E, q)
        Random-effects design of each linear predictor.
    offset : ndarray (N, E)
    groups : ndarray (N,)
        Group label of each row (None where the data have no grouping column).
    known : ndarray (N,) of bool
        Whether the fit saw the row's group.
    index : ndarray (N,) of int
        The row's group position in the fit (``-1`` for new groups).
    y : ndarray (N, 1 + n_aux) or None
        Response and per-row data, when the data have them. Row weights (``row_weights=``)
        are 1 here: the rows of new data, and of the fitted data, count once each.
    rows : pandas.Index
        The data's index.
    aux : dict
        The per-row data (``trials``, ``censoring``) the data have, with or without the
        response; ``missing`` names the columns of those they lack.
    missing : dict
    units : ndarray (N, L) of int or None
        With several grouping factors, the row's unit of each (``-1``: one the fit did not
        see).
    labels : ndarray (N, L) of object or None
        With several grouping factors, the row's label of each (None where the data lack its
        columns).
    """

    X: np.ndarray
    X_zi: np.ndarray | None
    Z: np.ndarray
    offset: np.ndarray
    groups: np.ndarray | None
    known: np.ndarray
    index: np.ndarray
    y: np.ndarray | None
    rows: pd.Index
    aux: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)
    units: np.ndarray | None = None
    labels: np.ndarray | None = None

    def fixed_part(self, beta: np.ndarray, gamma: np.ndarray | None) -> np.ndarray:
        """``η⁰`` (N, E)."""
        eta = (self.X @ beta)[:, None]
        if self.X_zi is not None:
            eta = np.column_stack([eta[:, 0], self.X_zi @ gamma])
        return eta + self.offset


_NUMBERS = {"integer", "floating", "mixed-integer-float", "decimal"}
_TEXT = {"string", "bytes"}


def _kind(values) -> str:
    """``"number"``, ``"text"`` or ``"other"`` for the labels' inferred type (categories by
    their values)."""
    if isinstance(values, pd.CategoricalIndex | pd.Categorical) or isinstance(
        getattr(values, "dtype", None), pd.CategoricalDtype
    ):
        values = np.asarray(values)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    return "number" if kind in _NUMBERS else "text" if kind in _TEXT else "other"


def match_groups(fit_groups: pd.Index, labels: pd.Series) -> np.ndarray:
    """Each label's position among the fit's groups (``-1``: a group the fit did not see).

    Labels match by value as a pandas join matches them: ``1`` and ``1.0`` are the same group.
    Numbers and text never match (``1`` is not ``"1"``): when all the labels are of the other
    kind than the fit's groups, that is an error that names the column and the fix, not a
    silent set of new groups.

    Examples
    --------
    >>> fit_groups = pd.Index([1, 2, 3], name="id")
    >>> match_groups(fit_groups, pd.Series([2.0, 7.0], name="id")).tolist()
    [1, -1]
    >>> match_groups(fit_groups, pd.Series(["2"], name="id"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: newdata's group column 'id' holds text (for example '2') but the fit's ...
    """
    index = pd.Index(fit_groups).get_indexer(np.asarray(labels, dtype=object))
    if len(labels) == 0 or (index >= 0).any():
        return index
    ours, theirs = _kind(fit_groups), _kind(labels)
    if {ours, theirs} == {"number", "text"}:
        fix = (
            f"pd.to_numeric(newdata[{labels.name!r}])"
            if ours == "number"
            else f"newdata[{labels.name!r}].astype(str)"
        )
        raise ValueError(
            f"newdata's group column {labels.name!r} holds {_KINDS[theirs]} (for example "
            f"{_plain(pd.Series(labels).dropna().iloc[0])!r}) but the fit's groups are "
            f"{_KINDS[ours]} (for example {_plain(fit_groups[0])!r}): convert it, e.g. "
            f"newdata[{labels.name!r}] = {fix}"
        )
    return index


_KINDS = {"number": "numbers", "text": "text"}


def _plain(value):
    """A NumPy scalar as the Python value it holds (for messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _matrix_from_spec(spec, data: pd.DataFrame, what: str) -> np.ndarray:
    """The fit's columns of one design (a formulaic model spec) on new data; errors name the
    missing column or the levels the fit did not see."""
    names = {str(c) for c in data.columns}
    used, _ = formula_columns(str(spec.formula), spec.required_variables, names)
    absent = sorted(used - names)
    if absent:
        raise ValueError(
            f"newdata needs the column(s) {', '.join(map(repr, absent))} of the {what} "
            f"formula; it has {', '.join(map(str, data.columns))}"
        )
    for factor, state in getattr(spec, "factor_contrasts", {}).items():
        name = str(factor)
        if name in data.columns:
            values = pd.Series(data[name]).dropna()
            unseen = pd.unique(values[~values.isin(state.levels)])
            if len(unseen):
                raise ValueError(
                    f"newdata's column {name!r} has level(s) the fit did not see: "
                    f"{', '.join(map(repr, map(_plain, unseen[:5])))}; the fitted levels are "
                    f"{', '.join(map(repr, map(_plain, state.levels)))}"
                )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DataMismatchWarning)
            mm = spec.get_model_matrix(data, na_action="raise")
    except DataMismatchWarning as err:
        raise ValueError(f"newdata has factor levels the fit did not see ({what}): {err}") from None
    except (FormulaicError, KeyError, NameError) as err:
        raise ValueError(f"cannot build the {what} design for newdata: {err}") from None
    X = np.asarray(mm, dtype=float)
    if not np.all(np.isfinite(X)):
        raise ValueError(
            f"newdata has missing or non-finite values in the {what} columns "
            f"({int((~np.isfinite(X)).any(axis=1).sum())} rows); predictions need them"
        )
    return X


def unit_index(design, newdata: pd.DataFrame) -> np.ndarray:
    """``(N, L)``: each row's unit of each factor among the fit's (``-1``: a unit the fit did
    not see, or a row without the factor's columns)."""
    out = np.full((len(newdata), len(design.factors)), -1, dtype=np.int64)
    for k, factor in enumerate(design.factors):
        if all(c in newdata.columns for c in factor.columns):
            labels = factor_labels(newdata, factor.columns)
            out[:, k] = match_groups(factor.labels, labels.rename(factor.name))
    return out


def model_arrays(design: Design, newdata: pd.DataFrame | None = None) -> ModelArrays:
    """The model's arrays on ``newdata`` (the fitted data, in the fit's row order, if None).

    Raises
    ------
    ValueError
        For a column the formulas need that ``newdata`` lacks, a missing value in one, a
        factor level the fit did not see, or an offset given as an array (new data then need
        an offset column).
    """
    n_groups = design.n_groups
    if newdata is None:
        index = np.repeat(np.arange(n_groups), np.diff(design.starts))
        offset = (
            design.offset if design.offset is not None else np.zeros((design.nobs, design.n_eta))
        )
        return ModelArrays(
            X=design.X,
            X_zi=design.X_zi,
            Z=design.Z_by_predictor(),
            offset=offset,
            groups=np.asarray(design.groups)[index],
            known=np.ones(design.nobs, dtype=bool),
            index=index,
            y=unit_row_weights(design.family, design.response_data()),
            rows=pd.Index(design.rows),
            aux={
                n: design.aux[:, k]
                for k, n in enumerate(design.family.aux_names)
                if n != "row_weight"
            },
            units=design.levels if design.nested else None,
        )
    if not isinstance(newdata, pd.DataFrame):
        raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    if len(newdata) == 0:
        raise ValueError("newdata has no rows")
    newdata = plain_text(newdata)
    specs, N = design.specs, len(newdata)
    X = _matrix_from_spec(specs["fixed"], newdata, "fixed-effects")
    if design.family is not None and design.family.intercept_free:
        X = X[:, 1:]  # the intercept comes first in a formula with one
    if design.nested:
        Zm = np.column_stack(
            [
                _matrix_from_spec(f.spec, newdata, f"random-effects ({f.name})")
                for f in design.factors
            ]
        )
    else:
        Zm = _matrix_from_spec(specs["random"], newdata, "random-effects")
    X_zi = (
        _matrix_from_spec(specs["zi_fixed"], newdata, "zero-part fixed-effects")
        if "zi_fixed" in specs
        else None
    )
    Z = np.zeros((N, design.n_eta, design.q))
    Z[:, 0, : design.q_main] = Zm
    if "zi_random" in specs:
        zi_random = specs["zi_random"]
        Z[:, 1, design.q_main :] = _matrix_from_spec(zi_random, newdata, "zero-part random-effects")
    offsets = specs.get("offsets", {"fixed": [], "zi": [], "column": None})
    offset = np.zeros((N, design.n_eta))
    fixed_off = offset_values(offsets["fixed"], newdata, "fixed")
    if fixed_off is not None:
        offset[:, 0] += fixed_off
    column = offsets["column"]
    if column == "":
        raise ValueError(
            "the model's offset was given as an array; for new data give the offset as a "
            "column: fit with offset='column' or an offset(...) term"
        )
    if column is not None:
        if column not in newdata.columns:
            raise ValueError(f"newdata needs the offset column {column!r}")
        offset[:, 0] += newdata[column].to_numpy(dtype=float)
    if design.n_eta == 2:
        zi_off = offset_values(offsets["zi"], newdata, "zi_fixed")
        if zi_off is not None:
            offset[:, 1] += zi_off
    group, units, labels = design.group_name, None, None
    if design.nested:
        units, labels = unit_index(design, newdata), np.full((N, len(design.factors)), None)
        for k, f in enumerate(design.factors):
            if all(c in newdata.columns for c in f.columns):
                labels[:, k] = factor_labels(newdata, f.columns).to_numpy()
        index, groups = units[:, 0], labels[:, 0]
    elif group in newdata.columns:
        groups = newdata[group].to_numpy()
        index = match_groups(design.groups, newdata[group])
    else:
        groups, index = None, np.full(N, -1)
    # the dispersion sub-model's columns, for the response's density and for response means
    disp = dispersion_columns(design, newdata, (_matrix_from_spec, formula_columns))
    return ModelArrays(
        X=X,
        X_zi=X_zi,
        Z=Z,
        offset=offset,
        groups=groups,
        known=index >= 0,
        index=index,
        y=_response(design, newdata, disp),
        rows=newdata.index,
        units=units,
        labels=labels if design.nested else None,
        **_aux(design, newdata, disp),
    )


def response_columns(design: Design, arrays: ModelArrays) -> str:
    """The columns the log density of new data's responses reads, for messages: the response,
    the trials or censoring indicator and the dispersion sub-model's columns.

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> fm1 = gp.mixed_model("y ~ time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> response_columns(fm1.design, model_arrays(fm1.design))
    "the column(s) 'y'"
    """
    response, aux_columns = design.specs.get("response", (design.response_name, {}))
    needed = [response] + [column for column, _ in aux_columns.values()]
    needed += [c for n, cols in arrays.missing.items() if n.startswith("disp:") for c in cols]
    return f"the column(s) {', '.join(map(repr, dict.fromkeys(needed)))}"


def _aux(design: Design, newdata: pd.DataFrame, disp: tuple) -> dict:
    """The per-row data ``newdata`` has (``aux``), and the columns it lacks for the others
    (``missing``): a response mean needs the trials but not the response. ``disp``: the
    dispersion sub-model's columns and the data columns they lack (``dispersion_columns``)."""
    response, aux_columns = design.specs.get("response", (design.response_name, {}))

    aux, missing = {}, {}
    for name, (column, form) in aux_columns.items():
        needed = [response, column] if form == "cbind" else [column]
        absent = [c for c in needed if c not in newdata.columns or newdata[c].isna().any()]
        if absent:
            missing[name] = absent
        else:
            aux.update(aux_values(design.family, {name: (column, form)}, newdata, response))
    columns, absent = disp
    aux.update(columns)
    missing.update({f"disp:{n}": absent for n in design.family.disp_names if absent})
    return {"aux": aux, "missing": missing}


def _response(design: Design, newdata: pd.DataFrame, disp: tuple) -> np.ndarray | None:
    """``(N, 1 + n_aux)`` response and per-row data of ``newdata``, or None without them."""
    response, aux_columns = design.specs.get("response", (design.response_name, {}))
    needed = [response] + [c for c, _ in aux_columns.values()]
    if any(c not in newdata.columns for c in needed) or newdata[needed].isna().any().any():
        return None

    aux = aux_values(design.family, aux_columns, newdata, response)
    y = design.family.check_response(newdata[response], response, **aux)
    columns, absent = disp
    if absent:  # the response without the dispersion sub-model's columns: no log density
        return None
    aux.update(columns)
    aux.setdefault("row_weight", np.ones(len(y)))  # read only by a row-weighted family
    return np.column_stack([y] + [aux[n] for n in design.family.aux_names])
