"""The data sets bundled with the package (GLMMadaptive's basics vignette)."""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load_vignette"]

_FILES = {"binary": "vignette_binary.csv", "poisson": "vignette_poisson.csv"}


def load_vignette(kind: str = "binary") -> pd.DataFrame:
    """The simulated longitudinal data of GLMMadaptive's basics vignette.

    100 subjects with 8 visits each: ``id``, ``time`` (0 to 15), ``sex`` (categorical, levels
    ``male``, ``female``; male is the reference) and ``y`` (binary or a count).

    Parameters
    ----------
    kind : {"binary", "poisson"}

    Examples
    --------
    >>> df = load_vignette("binary")
    >>> df.shape, list(df.sex.cat.categories)
    ((800, 4), ['male', 'female'])
    """
    if kind not in _FILES:
        raise ValueError(f"unknown vignette data {kind!r}; valid: {', '.join(map(repr, _FILES))}")
    with resources.files("glmm_ppl.data").joinpath(_FILES[kind]).open() as fh:
        df = pd.read_csv(fh)
    df["sex"] = pd.Categorical(df["sex"], categories=["male", "female"])
    return df
