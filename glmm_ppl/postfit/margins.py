"""Predictions, comparisons and slopes of a fit with the marginaleffects package.

:func:`to_marginaleffects` wraps a fit as a marginaleffects model (a subclass of
``marginaleffects.classes.ModelAbstract``, built on first use so that marginaleffects and
polars are imported only then). Its coefficients are all the parameters ``fit.theta``; a
prediction at any ``θ`` is glmm_ppl's own
(:func:`glmm_ppl.postfit.predict.prediction_function`), so marginaleffects' delta method,
which perturbs the coefficients one at a time, covers ``β``, ``D`` and the extra
parameters. marginaleffects passes prediction data around as polars frames where other
models have design matrices: here they stay frames (sliced by rows), turned into the model's
arrays once, on first use.

The fit keeps its design matrices, not its data frame: the data marginaleffects needs are
the rows of ``data=`` with the fit's index labels, or are read back from the design matrices
(a variable's values from the columns of its own term); either way they are checked to give
the fitted design matrices again.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ..design.dispersion import dispersion_design
from ..design.newdata import match_groups, model_arrays, unit_index
from .predict import prediction_function
from .results import MixedModelFit

__all__ = ["to_marginaleffects"]

_TYPES = (
    "marginal",
    "mean_subject",
    "subject_specific",
    "zero_part",
    "zero_part_subject_specific",
)
_SCALES = ("response", "link")
_NEED_DATA = "; pass data=, the data frame the model was fitted to"


def to_marginaleffects(fit, type: str = "marginal", scale: str = "response", data=None):
    """The fit as a model of the marginaleffects package.

    Parameters
    ----------
    fit : MixedModelFit
        A fit of :func:`glmm_ppl.mixed_model`.
    type : str
        What a prediction is (see the notes): by default the population-averaged mean.
    scale : {"response", "link"}
        The response scale, or the linear predictor's (for ``"marginal"``,
        ``g(E_b g⁻¹(η))`` of the main part).
    data : pandas.DataFrame, optional
        The data frame the model was fitted to. Without it the fitted data are read back
        from the fit's design matrices, which needs each variable of the formulas as a term
        of its own (``time``, ``sex``; not only inside ``log(time)`` or an interaction) and
        no offset.

    Returns
    -------
    marginaleffects.classes.ModelAbstract
        For marginaleffects' ``predictions``, ``comparisons``, ``slopes`` (and their
        ``avg_`` forms), ``datagrid`` and ``hypotheses``. Its coefficients are ``fit.theta``
        (named ``fit.names``); ``vcov=True``, the default of those functions, is
        ``fit.vcov("all")``, ``vcov="sandwich"`` the robust covariance.

    Raises
    ------
    ValueError
        For an object other than a mixed-model fit, an unknown ``type`` or ``scale``,
        ``"zero_part"`` without a zero part, or data that do not give the fitted design
        matrices.
    ImportError
        Without marginaleffects (``pip install "glmm_ppl[marginaleffects]"``), or with a
        polars that marginaleffects 0.6 does not work with (2.0 and later).

    Notes
    -----
    A prediction of a row is one of :meth:`glmm_ppl.MixedModelFit.predict`'s:

    - ``"marginal"``: the population-averaged mean ``E_b h(η⁰ + zᵀb)``, integrated over the
      random effects by quadrature; comparisons and slopes are then population-averaged
      effects.
    - ``"mean_subject"``: ``h(η⁰)``, the subject whose random effects are 0.
    - ``"subject_specific"``: ``h(η⁰ + zᵀb̂)`` with the empirical Bayes modes ``b̂`` of the
      fitted groups. A row of a group the fit did not see is an error: its random effects
      would be estimated from its rows of the prediction data, which marginaleffects fills
      with counterfactual copies (``fit.predict(newdata, type="subject_specific")`` estimates
      them from the responses of new groups). With crossed grouping factors a level the fit
      did not see gets 0 for its factor, as in ``predict``.
    - ``"zero_part"``: the zero part's probability at ``b = 0`` (zero-inflated and hurdle
      families); ``"zero_part_subject_specific"`` with the modes of the fitted groups.

    Standard errors are the delta method over all the parameters (marginaleffects' forward
    differences of the predictions); for ``"subject_specific"`` the modes are recomputed at
    each perturbed ``θ``, so the standard errors carry the uncertainty of ``θ``, through the
    modes too, but not the spread of the random effects around their modes (which
    ``fit.predict(..., se_fit=True)`` simulates).

    The model data are the fitted rows in the fit's order (that of ``fit.predict()``); text
    columns of the formulas become categorical with the fitted levels in their order (the
    first is the reference of comparisons).

    Examples
    --------
    >>> import glmm_ppl as gp
    >>> import marginaleffects as me
    >>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
    >>> m = to_marginaleffects(fm1)
    >>> ac = me.avg_comparisons(m, variables="sex")
    >>> ac["contrast"].to_list()
    ['female - male']
    >>> print(f"{ac['estimate'][0]:.3f} (SE {ac['std_error'][0]:.4f})")
    -0.120 (SE 0.0559)
    >>> me.avg_predictions(m, by="sex")["estimate"].round(3).to_list()
    [0.398, 0.3]
    """
    if not isinstance(fit, MixedModelFit):
        raise ValueError(
            "to_marginaleffects needs a fit of glmm_ppl.mixed_model (a MixedModelFit), got "
            f"{fit.__class__.__name__}"
        )
    for name, value, valid in (("type", type, _TYPES), ("scale", scale, _SCALES)):
        if value not in valid:
            raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(map(repr, valid))}")
    try:
        import polars as pl
        from marginaleffects.classes import ModelVault
    except ImportError as err:
        raise ImportError(
            "to_marginaleffects needs the marginaleffects package: "
            'pip install "glmm_ppl[marginaleffects]"'
        ) from err
    if int(pl.__version__.split(".")[0]) >= 2:
        raise ImportError(
            f"marginaleffects 0.6 does not work with polars {pl.__version__} (it uses polars "
            'APIs removed in 2.0): pip install "polars<2"'
        )
    if fit.family.categories:
        raise ValueError(
            f"to_marginaleffects: a {fit.family.name} fit predicts a probability per category, "
            "and marginaleffects takes one prediction per row; predict(newdata, "
            "type_pred='response', se_fit=True) gives the category probabilities"
        )
    d = fit.design
    frame = _fitted_frame(d, data, groups=type.endswith("subject_specific"))
    levels = _text_levels(d, frame)
    response = d.specs["response"][0]
    groups = [c for f in d.factors for c in f.columns] if d.nested else [d.group_name]
    predictors = sorted({v for spec in _specs(d) for v in spec.required_variables} - {response})
    predictors = [v for v in predictors if v not in groups]
    formula = f"{_quoted(response)} ~ {' + '.join(map(_quoted, predictors)) or '1'}"
    modeldata = pl.from_pandas(frame).with_columns(
        [pl.col(v).cast(pl.String).cast(pl.Enum([str(x) for x in lv])) for v, lv in levels.items()]
    )
    _predictor(fit, type, scale, levels, modeldata.head(1))  # its errors now, not at first use
    vault = ModelVault(
        coef=np.array(fit.theta, dtype=float),
        coefnames=np.array(fit.names),
        formula=formula,
        modeldata=modeldata,
        package="glmm_ppl",
        variable_names=[response, *predictors],
    )
    return _model_class()(fit, vault, functools.partial(_predictor, fit, type, scale, levels))


def _quoted(name: str) -> str:
    return name if name.isidentifier() else f"`{name}`"


def _specs(d) -> list:
    """The formulaic model specs of the design's matrices (fixed, random, zero part,
    dispersion sub-model)."""
    out = [d.specs["fixed"]]
    out += [f.spec for f in d.factors] if d.nested else [d.specs["random"]]
    return out + [d.specs[k] for k in ("zi_fixed", "zi_random", "disp_fixed") if k in d.specs]


def _text_levels(d, frame: pd.DataFrame) -> dict:
    """The fitted levels of the model's categorical columns that are not numbers or booleans
    (marginaleffects needs those as categorical)."""
    out = {}
    for spec in _specs(d):
        for v, (_, state) in spec.encoder_state.items():
            if "categories" in state and v in frame.columns and v not in out:
                col = frame[v]
                if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
                    out[v] = list(state["categories"])
    return out


def _pandas(frame, levels: dict) -> pd.DataFrame:
    """A polars frame of marginaleffects as pandas, the categorical columns with the fitted
    levels (whatever their type)."""
    out = frame.to_pandas()
    for v, lv in levels.items():
        if v in out.columns:
            text = np.asarray(out[v], dtype=str)
            codes = pd.Categorical(text, categories=[str(x) for x in lv]).codes
            out[v] = pd.Categorical.from_codes(codes, categories=lv)
    return out


def _predictor(fit, type, scale, levels, frame):
    """The predictions for the rows of a polars frame as a function of ``θ``."""
    newdata = _pandas(frame, levels)
    d = fit.design
    response, aux = d.specs["response"]
    if all(form != "cbind" for _, form in aux.values()):  # not read (datagrid averages it)
        newdata = newdata.drop(columns=response, errors="ignore")
    if type.endswith("subject_specific") and not d.crossed:
        if d.nested:
            index = unit_index(d, newdata)[:, 0]
        elif d.group_name in newdata.columns:
            index = match_groups(d.groups, newdata[d.group_name])
        else:
            index = np.zeros(0)  # predict says the grouping column is missing
        if (index < 0).any():
            raise ValueError(
                f"newdata has {int((index < 0).sum())} row(s) of groups the fit did not see: "
                f"type={type!r} predicts with the modes of the fitted groups; use "
                "type='marginal' or 'mean_subject' for new groups (or set the grouping "
                "column to fitted groups, e.g. in datagrid)"
            )
    return prediction_function(fit, newdata, type_pred=scale, type=type)


class _Rows:
    """Rows of prediction data as marginaleffects passes design matrices around (sliced by
    rows); their predictions as a function of ``θ``, the arrays built on first use."""

    def __init__(self, frame, make):
        self.frame, self.make, self.f = frame, make, None

    def __getitem__(self, rows):
        return _Rows(self.frame[rows], self.make)

    @property
    def shape(self):
        return self.frame.shape

    def __call__(self, theta) -> np.ndarray:
        if self.f is None:
            self.f = self.make(self.frame)
        return self.f(theta)


@functools.cache
def _model_class():
    """The adapter class (built on first use: marginaleffects is imported only then)."""
    import polars as pl
    from marginaleffects.classes import ModelAbstract

    class GlmmPplModel(ModelAbstract):
        """A glmm_ppl fit as a marginaleffects model (see :func:`to_marginaleffects`)."""

        def __init__(self, fit, vault, make):
            self.make = make
            super().__init__(fit, vault)

        def get_vcov(self, vcov=True):
            if vcov is False or vcov is None:
                return None
            if vcov is True or vcov == "sandwich":
                return self.model.vcov("all", sandwich=vcov == "sandwich").to_numpy()
            raise ValueError(f"vcov must be True, False or 'sandwich' (or an array), got {vcov!r}")

        def get_exog(self, newdata):
            return _Rows(newdata, self.make)

        def get_predict(self, params, newdata):
            rows = newdata if isinstance(newdata, _Rows) else _Rows(newdata, self.make)
            estimate = np.asarray(rows(params), dtype=float)
            return pl.DataFrame(
                {
                    "rowid": pl.Series(range(len(estimate)), dtype=pl.Int32),
                    "estimate": estimate,
                }
            )

    return GlmmPplModel


def _fitted_frame(d, data, groups: bool) -> pd.DataFrame:
    """The fitted rows (in the fit's order) with the columns the model reads, from ``data`` or
    read back from the design matrices; checked against the fitted design matrices."""
    if data is None:
        frame, source = _rebuild(d), "the data read back from the fit's design matrices"
    elif not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {data.__class__.__name__}")
    else:
        if not data.index.is_unique or not pd.Index(d.rows).isin(data.index).all():
            raise ValueError(
                "data must hold the fitted rows under the index labels they had in the fit "
                "(a unique index)"
            )
        frame, source = data.loc[d.rows].reset_index(drop=True), "data"
    response, aux = d.specs["response"]
    offsets = d.specs["offsets"]
    columns = [response, *(c for c, _ in aux.values()), offsets["column"]]
    columns += [v for spec in _specs(d) for v in spec.required_variables]
    columns += [c for f in d.factors for c in f.columns] if d.nested else [d.group_name]
    if offsets["fixed"] or offsets["zi"]:
        from formulaic import Formula

        for e in offsets["fixed"] + offsets["zi"]:
            columns += sorted(Formula(f"~ {e}").required_variables)
    frame = frame[[c for c in dict.fromkeys(columns) if c in frame.columns]]
    problem = _mismatch(d, frame, groups)
    if problem:
        fix = _NEED_DATA if data is None else " (data must be the data the model was fitted to)"
        raise ValueError(f"{source} do not give the fitted model: {problem}{fix}")
    return frame


def _mismatch(d, frame: pd.DataFrame, groups: bool) -> str:
    """What of the fitted design the frame does not give again ("" when it gives all)."""
    ours = model_arrays(d)
    try:
        theirs = model_arrays(d, frame)
    except ValueError as err:
        return str(err)
    pairs = {
        "fixed-effects design matrix": (ours.X, theirs.X),
        "random-effects design matrix": (ours.Z, theirs.Z),
        "offset": (ours.offset, theirs.offset),
        "response": (ours.y, theirs.y),
        "zero-part design matrix": (ours.X_zi, theirs.X_zi),
        **{f"{name} column": (ours.aux[name], theirs.aux.get(name)) for name in ours.aux},
    }
    if groups:
        pairs["grouping of the rows"] = (
            (ours.units, theirs.units) if d.nested else (ours.index, theirs.index)
        )
    for what, (a, b) in pairs.items():
        if a is None and b is None:
            continue
        if a is None or b is None or np.shape(a) != np.shape(b) or not np.allclose(a, b):
            return f"its {what} does not match the fit's"
    return ""


def _rebuild(d) -> pd.DataFrame:
    """The fitted data (the model's columns) read back from the design matrices."""
    if d.offset is not None:
        raise ValueError(f"an offset cannot be read back from the fit{_NEED_DATA}")
    matrices = [d.X]
    if d.nested:
        bounds = np.cumsum([0] + [f.q for f in d.factors])
        matrices += [d.Z[:, a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    else:
        matrices.append(d.Z)
    matrices += [m for k, m in (("zi_fixed", d.X_zi), ("zi_random", d.Z_zi)) if k in d.specs]
    if "disp_fixed" in d.specs:
        matrices.append(dispersion_design(d))
    columns = {}
    for spec, M in zip(_specs(d), matrices, strict=True):
        for v in sorted(spec.required_variables):
            if v not in columns:
                columns[v] = _read_back(spec, M, v)
    response, aux = d.specs["response"]
    columns[response] = d.y
    for name, (column, form) in aux.items():
        values = d.aux[:, d.family.aux_names.index(name)]
        columns[column] = values - d.y if (name, form) == ("trials", "cbind") else values
    if d.nested:
        columns.update(
            {f.columns[0]: np.asarray(f.labels)[f.index] for f in d.factors if len(f.columns) == 1}
        )
    else:
        columns[d.group_name] = np.asarray(d.groups)[
            np.repeat(np.arange(d.n_groups), np.diff(d.starts))
        ]
    return pd.DataFrame(columns)


def _read_back(spec, M: np.ndarray, v: str):
    """Variable ``v``'s values from the columns of its own term in the matrix ``M``."""
    terms = [t for t in spec.structure if str(t.term) == v]
    if not terms:
        raise ValueError(
            f"the column {v!r} enters the model (~ {spec.formula}) only through transforms or "
            f"interactions, so it cannot be read back from the fit's design matrices{_NEED_DATA}"
        )
    block = M[:, spec.term_slices[terms[0].term]]
    state = spec.encoder_state.get(v, (None, {}))[1]
    if "categories" not in state:
        return block[:, 0]
    levels = list(state["categories"])
    named = {f"{v}[{prefix}{x}]": k for k, x in enumerate(levels) for prefix in ("T.", "")}
    at = [named.get(c, -1) for c in terms[0].columns]
    rest = [k for k in range(len(levels)) if k not in at]
    codes = np.full(len(block), rest[0] if len(rest) == 1 else -1)
    on = block.max(axis=1) > 0.5
    codes[on] = np.asarray(at)[block.argmax(axis=1)[on]]
    return pd.Categorical.from_codes(codes, categories=levels)
