"""The data sets bundled with the package: GLMMadaptive's basics vignette, and pupils in
classes in schools for nested random effects."""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load_schools", "load_vignette"]

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


def load_schools() -> pd.DataFrame:
    """Simulated binary outcomes of 1,920 pupils: 8 pupils in each of 4 classes in each of 60
    schools, for models with nested random effects (``(1 | school/class)``).

    Columns ``pupil`` (1 to 8 within a class), ``class`` (labels such as ``"1.1"``, unique
    across schools), ``school`` (1 to 60), a pupil-level covariate ``x``, a school-level
    covariate ``ses`` and the binary response ``y``. The test suite holds lme4's, glmmTMB's and
    the exact maximum-likelihood fits of ``y ~ x + ses + (1 | school/class)`` on it.

    Examples
    --------
    >>> df = load_schools()
    >>> df.shape, df["school"].nunique(), df["class"].nunique()
    ((1920, 6), 60, 240)
    """
    with resources.files("glmm_ppl.data").joinpath("schools.csv").open() as fh:
        return pd.read_csv(fh, dtype={"class": str})
