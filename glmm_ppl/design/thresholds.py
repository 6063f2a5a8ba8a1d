"""Fixed effects without an intercept, for families whose thresholds take its place
(:class:`~glmm_ppl.families.cumulative`).

The design is built with the intercept and then loses that column, as R's ``clmm`` and
``polr`` do: the factors keep their treatment coding, so the coefficients read the same as in
a model with an intercept.
"""

from __future__ import annotations

import numpy as np

__all__ = ["drop_intercept"]

INTERCEPT = "(Intercept)"


def drop_intercept(X: np.ndarray, names: list[str], formula: str) -> tuple[np.ndarray, list[str]]:
    """``X`` and ``names`` without the intercept column.

    Raises
    ------
    ValueError
        When the formula has no intercept (``0 +`` or ``- 1``): a factor is then coded with
        all its levels, which the thresholds make collinear.

    Examples
    --------
    >>> X = np.array([[1.0, 0.5], [1.0, 1.5]])
    >>> drop_intercept(X, ["(Intercept)", "x"], "~ x")
    (array([[0.5],
           [1.5]]), ['x'])
    """
    if INTERCEPT not in names:
        raise ValueError(
            f"the fixed-effects formula {formula!r} has no intercept; with thresholds, write it "
            "with one (the default, as in R's clmm): the thresholds take the intercept's place "
            "and the intercept column is left out"
        )
    keep = [k for k, name in enumerate(names) if name != INTERCEPT]
    return X[:, keep], [names[k] for k in keep]
