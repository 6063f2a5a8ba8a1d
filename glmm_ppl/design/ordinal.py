"""Continuation-ratio models for ordinal responses (GLMMadaptive's ``cr_setup`` and
``cr_marg_probs``).

An ordinal response with ``K`` ordered levels (coded ``0 … K-1``) is modelled through the
``K - 1`` conditional probabilities of the *cohorts*

* ``direction="forward"``: ``π_j = P(Y = j | Y >= j)`` for ``j = 0 … K-2``;
* ``direction="backward"``: ``π_j = P(Y = K-1-j | Y <= K-1-j)`` for ``j = 0 … K-2``, the
  forward model of the reversed levels.

Each conditional probability is a binary outcome, so the model is a mixed-effects logistic
regression on an expanded data set: :func:`cr_setup` turns every observation into its binary
pseudo-observations (one per cohort it belongs to), the cohort enters the fixed effects as a
factor (one intercept per cohort), and :func:`cr_marg_probs` turns the cohorts' linear
predictors back into the ``K`` category probabilities.

Examples
--------
>>> import pandas as pd
>>> data = pd.DataFrame({"id": [1, 1, 2, 2], "x": [0.1, 0.5, -0.3, 0.2],
...                      "grade": pd.Categorical(["low", "high", "mid", "low"],
...                                              categories=["low", "mid", "high"])})
>>> cr = cr_setup(data["grade"])
>>> long = data.iloc[cr["row"]].reset_index(drop=True).assign(y=cr["y"], cohort=cr["cohort"])
>>> long[["id", "x", "grade", "cohort", "y"]]
   id    x grade      cohort    y
0   1  0.1   low         all  1.0
1   1  0.5  high         all  0.0
2   1  0.5  high  grade>=mid  0.0
3   2 -0.3   mid         all  0.0
4   2 -0.3   mid  grade>=mid  1.0
5   2  0.2   low         all  1.0
>>> fit = mixed_model("y ~ cohort + x", "~ 1 | id", long, "binomial")  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["cr_setup", "cr_marg_probs"]

_DIRECTIONS = ("forward", "backward")


def _check_direction(direction) -> None:
    if direction not in _DIRECTIONS:
        raise ValueError(
            f"unknown direction {direction!r}; valid: {', '.join(map(repr, _DIRECTIONS))}"
        )


def cr_setup(y, direction: str = "forward") -> pd.DataFrame:
    """Expand an ordinal response into the binary pseudo-observations of a continuation-ratio
    model.

    With the ``K`` levels of ``y`` coded ``0 … K-1`` and ``c = K - 1`` cohorts, the forward
    model has cohorts ``j = 0 … c-1`` with ``π_j = P(Y = j | Y >= j)``. An observation in
    category ``k`` belongs to the cohorts ``j = 0 … min(k, c-1)`` (it has survived the first
    ``k`` stages) and contributes one row per cohort, with binary response
    ``y_bin = 1`` if ``k == j`` else ``0``; its likelihood is

    ``P(Y = k) = Π_{j ≤ min(k, c-1)} π_j^{y_bin} (1 - π_j)^{1 - y_bin}``.

    The backward model is the forward model of the reversed levels (code ``K-1-k``): cohort
    ``j`` has ``π_j = P(Y = K-1-j | Y <= K-1-j)``, and an observation in category ``k`` belongs
    to the cohorts ``j = 0 … min(K-1-k, c-1)``.

    Parameters
    ----------
    y : pandas.Series or array-like, one-dimensional
        The ordinal response. A categorical keeps its category order (unused categories
        included); any other values are ordered by sorting their unique values. At least three
        levels; no missing values.
    direction : {"forward", "backward"}

    Returns
    -------
    pandas.DataFrame
        One row per pseudo-observation, grouped by observation in the original order:

        ``y``
            The binary response (``0.0``/``1.0``).
        ``cohort``
            A categorical with categories in cohort order: ``"all"`` for cohort 0, then
            ``"{name}>={level_j}"`` (forward) or ``"{name}<={level_{K-1-j}}"`` (backward), where
            ``name`` is the series name (``"y"`` if it has none).
        ``row``
            The position of the original observation, so
            ``data.iloc[out["row"]].reset_index(drop=True).assign(y=out["y"],
            cohort=out["cohort"])`` is the long data set; fit it with, for example,
            ``mixed_model("y ~ cohort + x", "~ 1 | id", long, "binomial")``.

    Raises
    ------
    ValueError
        If ``y`` is not one-dimensional, has missing values or fewer than three levels, or
        ``direction`` is not valid.

    See Also
    --------
    cr_marg_probs : the category probabilities from the cohorts' linear predictors.

    Examples
    --------
    >>> import pandas as pd
    >>> stage = pd.Series([0, 3, 1, 2], name="stage")
    >>> cr_setup(stage)
         y    cohort  row
    0  1.0       all    0
    1  0.0       all    1
    2  0.0  stage>=1    1
    3  0.0  stage>=2    1
    4  0.0       all    2
    5  1.0  stage>=1    2
    6  0.0       all    3
    7  0.0  stage>=1    3
    8  1.0  stage>=2    3
    >>> cr_setup(stage, direction="backward")
         y    cohort  row
    0  0.0       all    0
    1  0.0  stage<=2    0
    2  0.0  stage<=1    0
    3  1.0       all    1
    4  0.0       all    2
    5  0.0  stage<=2    2
    6  1.0  stage<=1    2
    7  0.0       all    3
    8  1.0  stage<=2    3
    >>> list(cr_setup(["a", "c", "b"])["cohort"].cat.categories)
    ['all', 'y>=b']
    """
    _check_direction(direction)
    if np.ndim(y) != 1:
        raise ValueError(f"y must be one-dimensional, got {np.ndim(y)} dimension(s)")
    name = getattr(y, "name", None)
    name = "y" if name is None else str(name)
    s = y.reset_index(drop=True) if isinstance(y, pd.Series) else pd.Series(y)
    n_missing = int(s.isna().sum())
    if n_missing:
        raise ValueError(
            f"{name} has {n_missing} missing value(s); drop those rows before cr_setup"
        )
    if isinstance(s.dtype, pd.CategoricalDtype):
        levels = list(s.cat.categories)
        codes = s.cat.codes.to_numpy(dtype=np.int64)
    else:
        codes, uniques = pd.factorize(s, sort=True)
        levels = list(uniques)
        codes = np.asarray(codes, dtype=np.int64)
    K = len(levels)
    if K < 3:
        shown = ", ".join(map(repr, levels))
        raise ValueError(
            f"{name} has {K} level(s) ({shown}); a continuation-ratio model needs at least 3 "
            f"ordered levels — for a binary response use a binomial model"
        )
    c = K - 1
    if direction == "backward":
        codes, levels, sign = K - 1 - codes, levels[::-1], "<="
    else:
        sign = ">="
    reps = np.minimum(codes + 1, c)
    row = np.repeat(np.arange(len(codes), dtype=np.int64), reps)
    first = np.repeat(np.cumsum(reps) - reps, reps)
    cohort = np.arange(len(row), dtype=np.int64) - first
    y_bin = (np.repeat(codes, reps) == cohort).astype(float)
    labels = ["all"] + [f"{name}{sign}{levels[j]}" for j in range(1, c)]
    return pd.DataFrame(
        {
            "y": y_bin,
            "cohort": pd.Categorical.from_codes(cohort, categories=labels),
            "row": row,
        }
    )


def cr_marg_probs(eta, direction: str = "forward") -> np.ndarray:
    """Category probabilities of a continuation-ratio model from the cohorts' linear predictors.

    With ``π_j = logistic(η_j)`` the conditional probability of cohort ``j`` (``j = 0 … K-2``,
    in the order of the categories of :func:`cr_setup`'s ``cohort``), the forward model gives

    * ``P(Y = 0) = π_0``,
    * ``P(Y = j) = π_j Π_{l<j} (1 - π_l)`` for ``0 < j < K-1``,
    * ``P(Y = K-1) = Π_{l<K-1} (1 - π_l)``,

    and the backward model the same probabilities of the reversed levels,
    ``P(Y = k) = P_forward(Y = K-1-k)``. The products are summed on the log scale
    (``log π = -log(1 + e^{-η})``, ``log(1 - π) = -log(1 + e^{η})``), so the probabilities stay
    positive and sum to one for large ``|η|``.

    Parameters
    ----------
    eta : array-like (n, K-1)
        Linear predictors (logit scale) of the ``K - 1`` cohorts for ``n`` subjects; column
        ``j`` is cohort ``j`` (``"all"`` first). At least two columns (``K ≥ 3``).
    direction : {"forward", "backward"}
        The direction used in :func:`cr_setup`.

    Returns
    -------
    ndarray (n, K)
        Column ``k`` is ``P(Y = k)``, the levels in their original order.

    Raises
    ------
    ValueError
        If ``eta`` is not two-dimensional with at least two columns, or ``direction`` is not
        valid.

    Examples
    --------
    >>> import numpy as np
    >>> cr_marg_probs(np.zeros((1, 2)))
    array([[0.5 , 0.25, 0.25]])
    >>> cr_marg_probs(np.zeros((1, 2)), direction="backward")
    array([[0.25, 0.25, 0.5 ]])
    >>> p = cr_marg_probs([[50.0, -50.0, 0.0], [-2.0, 1.0, 3.0]])
    >>> p.shape, bool(np.allclose(p.sum(axis=1), 1.0)), bool((p > 0).all())
    ((2, 4), True, True)
    """
    _check_direction(direction)
    eta = np.asarray(eta, dtype=float)
    if eta.ndim != 2 or eta.shape[1] < 2:
        raise ValueError(
            f"eta must be a 2-D array (n subjects, K - 1 cohorts) with at least 2 columns, "
            f"got shape {eta.shape}"
        )
    n, c = eta.shape
    log_pi = -np.logaddexp(0.0, -eta)
    log_survive = np.cumsum(-np.logaddexp(0.0, eta), axis=1)
    log_p = np.empty((n, c + 1))
    log_p[:, 0] = log_pi[:, 0]
    log_p[:, 1:c] = log_pi[:, 1:] + log_survive[:, :-1]
    log_p[:, c] = log_survive[:, -1]
    p = np.exp(log_p)
    return p if direction == "forward" else np.ascontiguousarray(p[:, ::-1])
