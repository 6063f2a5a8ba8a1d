"""The dispersion sub-model: a log-linear predictor for the family's extra parameter.

``disp_fixed="~ grp"`` (glmmTMB's ``dispformula``) gives each row its own extra parameter
(σ, size, precision or shape), ``log φ_j = x_dⱼᵀγ``. The design's columns travel with the
family's per-row data (``aux``, named ``disp:<column>``) and the family reads them
(:meth:`glmm_ppl.families.Family.with_dispersion`). :func:`dispersion_formulas` checks the
formula before the rows are chosen, :func:`bind_dispersion` builds the columns on the rows
used, and :func:`dispersion_columns` rebuilds them on new data from the kept formula spec.
An intercept-only formula (``"~ 1"``) is the model without a sub-model. The design builders
of :mod:`glmm_ppl.design.matrices` are passed in (that module calls this one).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..families import FAMILIES, Family

__all__ = [
    "bind_dispersion",
    "dispersion_columns",
    "dispersion_design",
    "dispersion_formulas",
    "other_data",
    "within_span",
]

_WHAT = "dispersion"


def _rhs(disp_fixed: str) -> str:
    """The one-sided formula ``"~ terms"`` of ``disp_fixed``, or a clear error."""
    if not isinstance(disp_fixed, str) or "~" not in disp_fixed:
        raise ValueError(
            f"disp_fixed must be a one-sided formula such as '~ grp', got {disp_fixed!r}"
        )
    lhs, rhs = disp_fixed.split("~", 1)
    if lhs.strip():
        raise ValueError(
            f"disp_fixed must be one-sided ('~ grp'): the dispersion sub-model has no response, "
            f"got {disp_fixed!r}"
        )
    if "offset" in rhs and "offset(" in rhs.replace(" ", ""):
        raise ValueError(
            f"disp_fixed={disp_fixed!r}: offsets are not available in the dispersion sub-model; "
            "give the column as a term (its coefficient is then estimated)"
        )
    if "|" in rhs:
        raise ValueError(
            f"disp_fixed={disp_fixed!r}: the dispersion sub-model has fixed effects only (no "
            "'(… | g)' terms)"
        )
    return "~ " + rhs.strip()


def dispersion_formulas(disp_fixed: str | None, family: Family) -> list[str]:
    """The formulas of the sub-model whose columns select the rows (none without one).

    Raises
    ------
    ValueError
        For a formula that is not one-sided, has offsets or random-effects terms, or a family
        without a single extra parameter.

    Examples
    --------
    >>> from glmm_ppl.families import gaussian, poisson
    >>> dispersion_formulas("~ grp", gaussian())
    ['~ grp']
    >>> dispersion_formulas("~ grp", poisson())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: disp_fixed: the poisson family has no extra parameter (dispersion, ...
    """
    if disp_fixed is None:
        return []
    rhs = _rhs(disp_fixed)
    try:  # the family's refusal, before the data's checks
        family.with_dispersion(["(Intercept)"])
    except ValueError as err:
        if family.n_phis == 1:
            raise
        with_one = ", ".join(n for n, cls in FAMILIES.items() if len(cls.phi_names) == 1)
        raise ValueError(f"{err}; families with one: {with_one}") from None
    return [rhs]


def bind_dispersion(
    disp_fixed: str | None, df: pd.DataFrame, family: Family, aux: dict, builders
) -> tuple[Family, object]:
    """The family with its sub-model on the rows ``df`` and the sub-model's formula spec.

    The design's columns join ``aux`` (as ``disp:<column>``). Without ``disp_fixed``, or with
    an intercept-only one, the family is returned as it is, with spec None. ``builders`` are
    ``(model_matrix_of, check_rank)`` of :mod:`glmm_ppl.design.matrices`.

    Raises
    ------
    ValueError
        For a formula without columns (``"~ 0"``) or a rank-deficient design.

    Examples
    --------
    >>> from glmm_ppl.design.matrices import check_rank, model_matrix_of
    >>> from glmm_ppl.families import gaussian
    >>> df, aux = pd.DataFrame({"grp": ["a", "b", "a"]}), {}
    >>> builders = (model_matrix_of, check_rank)
    >>> fam, spec = bind_dispersion("~ grp", df, gaussian(), aux, builders)
    >>> fam.phi_names, aux["disp:grpb"].tolist()
    (('disp_(Intercept)', 'disp_grpb'), [0.0, 1.0, 0.0])
    >>> bind_dispersion("~ 1", df, gaussian(), {}, builders)[0].phi_names
    ('sigma',)
    """
    if disp_fixed is None:
        return family, None
    model_matrix_of, check_rank = builders
    X, names, spec = model_matrix_of(_rhs(disp_fixed), df, f"{_WHAT} (disp_fixed)")
    if X.shape[1] == 0:
        raise ValueError(
            f"disp_fixed={disp_fixed!r} has no columns: give at least an intercept or a term "
            "('~ 1' is the model without a sub-model)"
        )
    check_rank(X, names, f"{_WHAT} (disp_fixed)")
    if names == ["(Intercept)"] and np.all(X == 1.0):
        return family, None
    family = family.with_dispersion(names)
    aux.update({f"disp:{name}": X[:, k] for k, name in enumerate(names)})
    return family, spec


def dispersion_columns(design, newdata: pd.DataFrame, builders) -> tuple[dict, list]:
    """The sub-model's columns on ``newdata`` (``{"disp:<column>": values}``) and the data
    columns it needs but ``newdata`` lacks or has missing values in (then no columns).

    ``builders`` are ``(matrix_from_spec, formula_columns)``: the builder of a design from a
    formula spec that new data use for every formula, and
    :func:`glmm_ppl.design.matrices.formula_columns`. Without a sub-model both are empty.
    """
    spec, family = design.specs.get("disp_fixed"), design.family
    if spec is None or not family.disp_names:
        return {}, []
    matrix_from_spec, formula_columns = builders
    present = {str(c) for c in newdata.columns}
    used, _ = formula_columns(str(spec.formula), spec.required_variables, present)
    absent = sorted(used - present)
    absent += sorted(c for c in used & present if newdata[c].isna().any())
    if absent:
        return {}, absent
    X = matrix_from_spec(spec, newdata, f"{_WHAT} (disp_fixed)")
    return {f"disp:{name}": X[:, k] for k, name in enumerate(family.disp_names)}, []


def dispersion_design(design) -> np.ndarray | None:
    """``(N, k)``: the columns of the rows' log extra parameter, ``log φ_j = x_dⱼᵀγ``; a
    column of ones for a family with one extra parameter and no sub-model, None for a family
    without extra parameters."""
    family = design.family
    if not family.disp_names:
        return np.ones((design.nobs, 1)) if family.n_phis else None
    return design.aux[:, [family.aux_names.index(f"disp:{n}") for n in family.disp_names]]


def other_data(design) -> np.ndarray | None:
    """The design's per-row data (``aux``) without the dispersion sub-model's columns (None
    when nothing is left)."""
    if design.aux is None:
        return None
    keep = [k for k, n in enumerate(design.family.aux_names) if not n.startswith("disp:")]
    return design.aux[:, keep] if keep else None


def within_span(small: np.ndarray, large: np.ndarray) -> bool:
    """Whether every column of ``small`` is a linear combination of the columns of ``large``
    (the rows lined up): then a model with ``small``'s sub-model is nested in ``large``'s.

    Examples
    --------
    >>> ones, grp = np.ones((4, 1)), np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    >>> within_span(ones, grp), within_span(grp, ones)
    (True, False)
    """
    coef = np.linalg.lstsq(large, small, rcond=None)[0]
    scale = max(float(np.max(np.abs(small))), 1.0)
    return bool(np.all(np.abs(small - large @ coef) <= 1e-8 * scale))
