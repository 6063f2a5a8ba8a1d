"""The response and the per-row data its family reads (trials, censoring).

``"y"``, bambi's ``"p(successes, trials)"`` or R's ``"cbind(successes, failures)"`` (the
second may be an expression of columns, ``cbind(incidence, size - incidence)``) and
``"cbind(y, indicator)"`` for censored data: :func:`parse_response` reads the left-hand side,
:func:`bind_family` binds the family to the data's trials or censoring, and
:func:`aux_values` checks and returns those columns.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..families import Family
from .terms import unquote

__all__ = ["aux_values", "bind_family", "computed_columns", "parse_response"]


_TWO_COLUMNS = re.compile(r"^(?P<fn>p|cbind)\(\s*(?P<a>[^,()]+?)\s*,\s*(?P<b>[^,()]+?)\s*\)$")


def parse_response(lhs: str) -> tuple[str, str | None, str | None]:
    """The response column and, for a two-column response, the second column and its form.

    ``"y"`` → ``("y", None, None)``; bambi's ``"p(successes, trials)"`` →
    ``("successes", "trials", "p")``; R's ``"cbind(a, b)"`` → ``("a", "b", "cbind")`` (successes
    and failures, or a value and its censoring indicator).

    Examples
    --------
    >>> parse_response("p(s, n)")
    ('s', 'n', 'p')
    """
    m = _TWO_COLUMNS.match(lhs.strip())
    if m is None:
        return unquote(lhs.strip()), None, None
    return unquote(m.group("a")), unquote(m.group("b")), m.group("fn")


def computed_columns(data: pd.DataFrame, columns: dict) -> pd.DataFrame:
    """``data`` with the response's second column computed where R writes an expression, as
    in ``cbind(incidence, size - incidence)`` (``columns``: :func:`bind_family`'s)."""
    for name, _ in columns.values():
        if name in data.columns or not re.search(r"[-+*/]", name):
            continue
        try:
            values = data.eval(name, engine="python")
        except Exception as err:  # pandas raises many kinds for a bad expression
            raise ValueError(
                f"cannot compute {name!r} of the response from the columns of data: {err}"
            ) from None
        data = data.assign(**{name: np.asarray(values)})
    return data


def bind_family(family: Family, second, form, trials, censoring):
    """The family as the data use it, and the columns of its per-row data."""
    columns = {}
    if form == "p" or (form == "cbind" and family.trials != "never"):
        if trials is not None:
            raise ValueError("give trials either in the response or as trials=, not both")
        family = family.using_trials()
        columns["trials"] = (second, form)
    elif form == "cbind" and "censoring" in family.data_names:
        if censoring is not None:
            raise ValueError("give censoring either in the response or as censoring=, not both")
        columns["censoring"] = (second, form)
    elif form == "cbind":
        raise ValueError(
            f"a two-column response cbind(...) needs a family with trials (binomial, "
            f"zi_binomial, beta_binomial) or censoring (censored_normal), not {family.name}"
        )
    if trials is not None:
        family = family.using_trials()
        columns["trials"] = (trials, None)
    if censoring is not None:
        if "censoring" not in family.data_names:
            raise ValueError(f"censoring= applies to censored_normal, not {family.name}")
        columns["censoring"] = (censoring, None)
    for name in family.aux_names:
        if name == "row_weight":  # from row_weights=, bound by the design
            continue
        if name not in ("trials", "censoring"):
            raise ValueError(
                f"the {family.name} family reads a per-row column {name!r}; mixed_model passes "
                "only trials and censoring columns to a family (put other per-row values in "
                "the formula, e.g. as an offset)"
            )
        if name not in columns:
            how = (
                "trials='column', a response p(successes, trials) or cbind(successes, failures)"
                if name == "trials"
                else "censoring='column' (0 observed, 1 left, 2 right censored) or a response "
                "cbind(y, indicator)"
            )
            raise ValueError(f"the {family.name} family needs {name}: give {how}")
    return family, columns


def aux_values(family: Family, columns: dict, df: pd.DataFrame, response: str) -> dict:
    """The family's per-row data columns (trials, censoring) as float arrays, checked."""
    out = {}
    for name, (column, form) in columns.items():
        if not pd.api.types.is_numeric_dtype(df[column]) or pd.api.types.is_bool_dtype(df[column]):
            raise ValueError(f"{name} column {column!r} must be numeric, got {df[column].dtype}")
        values = df[column].to_numpy(dtype=float)
        if name == "trials":
            bad = ~np.isfinite(values) | (values < 0) | (values != np.floor(values))
            what = "failures" if form == "cbind" else "trials"
            if bad.any():
                raise ValueError(
                    f"{what} column {column!r} must hold non-negative integers; "
                    f"{int(bad.sum())} row(s) do not (for example {values[bad][0]:g})"
                )
            if form == "cbind":  # successes and failures: the trials are their sum
                values = values + df[response].to_numpy(dtype=float)
        family.check_data(name, values, column)
        out[name] = values
    return out
