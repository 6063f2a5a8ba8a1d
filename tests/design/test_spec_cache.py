"""Designs built again from kept formula specs (glmm_ppl.design.spec_cache) are formulaic's.

A spec is kept per formula and column signature (numeric dtype, or categories in order). A
second build of the same formula on data of the same signature fills the matrix in with NumPy:
it must be formulaic's matrix bit for bit (names, values, memory layout), and data whose columns
changed type or categories since must get their own spec, never the stale one. Rows with
missing values are found column by column (glmm_ppl.design.rows): the same rows, counts and
messages as pandas' ``isna``.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from formulaic import model_matrix

import glmm_ppl as gp
from glmm_ppl.design import spec_cache
from glmm_ppl.design.matrices import build_design, complete_rows, model_matrix_of
from glmm_ppl.families import binomial, poisson


@pytest.fixture(autouse=True)
def fresh_cache():
    spec_cache.clear()
    yield
    spec_cache.clear()


def _data(n=12, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    levels = ["lo", "mid", "hi"]
    return pd.DataFrame(
        {
            "x": rng.normal(size=n) * np.where(np.arange(n) % 4 == 0, 0.0, 1.0),
            "k": rng.integers(-3, 4, n),
            "u": rng.integers(0, 5, n).astype(np.uint8),
            "i": rng.integers(-2, 3, n).astype(np.int32),
            "c": pd.Categorical(rng.choice(levels, n), categories=levels + ["unused"]),
            "s": pd.Series(rng.choice(["b", "a", "c"], n), dtype=object),
            "my x": -rng.normal(size=n),
            "x.1": rng.normal(size=n),
            "g": pd.Series(rng.choice([1, 2, 3], n), dtype=object),
        }
    )


def _formulaic(formula: str, data: pd.DataFrame):
    mm = model_matrix(formula, data, na_action="raise")
    return np.asarray(mm, dtype=float), list(mm.columns)


def _assert_same(X, Y):
    assert X.shape == Y.shape and X.dtype == Y.dtype == np.float64
    assert X.flags.c_contiguous == Y.flags.c_contiguous
    assert X.flags.f_contiguous == Y.flags.f_contiguous
    assert X.flags.writeable == Y.flags.writeable
    assert np.array_equal(X.view(np.int64), Y.view(np.int64))  # bit for bit, signed zeros too


FORMULAS = [
    "~ 1",
    "~ 0",
    "~ x",
    "~ 0 + x",
    "~ c",
    "~ 0 + c",
    "~ s * x",
    "~ c:s",
    "~ c * s * x",
    "~ x:k",
    "~ k * i",
    "~ u + x:u",
    "~ c - 1 + x",
    "~ x + c:x",
    "~ s:x - 1",
    "~ `my x` + x.1",
    "~ g * k",
    "~ c:s:x + u:i",
]


@pytest.mark.parametrize("formula", FORMULAS)
def test_second_build_is_formulaics_matrix(formula):
    data = _data()
    X1, names1, spec1 = model_matrix_of(formula, data, "fixed-effects")
    X2, names2, spec2 = model_matrix_of(formula, data, "fixed-effects")
    assert spec2 is spec1  # built again from the kept spec
    assert spec_cache.size() == 1
    expected, columns = _formulaic(formula, data)
    _assert_same(X1, expected)
    _assert_same(X2, expected)
    assert names1 == names2
    assert list(spec2.column_names) == columns
    # other values of the same signature: still formulaic's matrix
    other = _data(seed=1)
    other["c"] = other["c"].cat.set_categories(data["c"].cat.categories)
    other["s"] = pd.Series(np.resize(["a", "b", "c"], len(other)), dtype=object)
    other["g"] = pd.Series(np.resize([1, 2, 3], len(other)), dtype=object)
    X3, names3, spec3 = model_matrix_of(formula, other, "fixed-effects")
    assert spec3 is spec1
    _assert_same(X3, _formulaic(formula, other)[0])


def test_new_categories_get_their_own_spec():
    data = _data()
    model_matrix_of("~ s * x", data, "fixed-effects")
    renamed = data.assign(s=data["s"].map({"a": "p", "b": "q", "c": "r"}))
    X, names, _ = model_matrix_of("~ s * x", renamed, "fixed-effects")
    assert names == ["(Intercept)", "sq", "sr", "x", "sq:x", "sr:x"]
    _assert_same(X, _formulaic("~ s * x", renamed)[0])
    fewer = data.assign(s=np.where(data["s"] == "c", "a", data["s"]).astype(object))
    X, names, _ = model_matrix_of("~ s * x", fewer, "fixed-effects")
    assert names == ["(Intercept)", "sb", "x", "sb:x"]
    _assert_same(X, _formulaic("~ s * x", fewer)[0])


def test_reordered_categories_change_the_reference_level():
    data = _data()
    model_matrix_of("~ c", data, "fixed-effects")
    reordered = data.assign(c=data["c"].cat.reorder_categories(["hi", "unused", "lo", "mid"]))
    X, names, _ = model_matrix_of("~ c", reordered, "fixed-effects")
    assert names == ["(Intercept)", "cunused", "clo", "cmid"]
    _assert_same(X, _formulaic("~ c", reordered)[0])


def test_a_numeric_column_turned_categorical_and_back():
    data = _data()
    X, names, _ = model_matrix_of("~ x * k", data, "fixed-effects")
    assert names == ["(Intercept)", "x", "k", "x:k"]
    text = data.assign(k=data["k"].map(lambda v: f"k{v + 3}").astype(object))
    X, names, _ = model_matrix_of("~ x * k", text, "fixed-effects")
    levels = sorted(text["k"].unique())
    assert names == ["(Intercept)", "x", *[f"k{v}" for v in levels[1:]]] + [
        f"x:k{v}" for v in levels[1:]
    ]
    _assert_same(X, _formulaic("~ x * k", text)[0])
    X, names, _ = model_matrix_of("~ x * k", data, "fixed-effects")
    assert names == ["(Intercept)", "x", "k", "x:k"]
    _assert_same(X, _formulaic("~ x * k", data)[0])


def test_labels_of_other_types_are_other_levels():
    data = _data()
    ints = data.assign(g=pd.Series(np.resize([1, 2, 3], len(data)), dtype=object))
    texts = ints.assign(g=ints["g"].astype(str).astype(object))
    floats = ints.assign(g=pd.Categorical(ints["g"].astype(float)))
    seen = []
    for frame in (ints, texts, floats, ints):
        X, names, _ = model_matrix_of("~ g", frame, "fixed-effects")
        _assert_same(X, _formulaic("~ g", frame)[0])
        seen.append(names)
    assert seen[0] == seen[1] == seen[3] == ["(Intercept)", "g2", "g3"]
    assert seen[2] == ["(Intercept)", "g2.0", "g3.0"]
    assert spec_cache.size() == 3


def test_integer_and_float_columns_of_the_same_values():
    data = _data()
    for k in (data["k"], data["k"].astype(float), data["k"].astype(np.int8), data["k"]):
        frame = data.assign(k=k)
        X, names, _ = model_matrix_of("~ k * x", frame, "fixed-effects")
        _assert_same(X, _formulaic("~ k * x", frame)[0])
        assert names == ["(Intercept)", "k", "x", "k:x"]


def test_non_finite_values_are_refused_the_same_way_twice():
    data = _data().assign(x=lambda d: np.where(d.index == 3, np.inf, d["x"]))
    message = "the fixed-effects column 'x' has 1 value(s) that are not finite (for example inf)"
    for _ in range(2):
        with pytest.raises(ValueError, match=re.escape(message)):
            model_matrix_of("~ x", data, "fixed-effects")


def test_missing_values_go_to_formulaic():
    data = _data().assign(x=lambda d: np.where(d.index == 3, np.nan, d["x"]))
    model_matrix_of("~ k", data, "fixed-effects")
    for _ in range(2):
        with pytest.raises(ValueError, match="contains null values"):
            model_matrix_of("~ x", data, "fixed-effects")


def test_the_cache_is_bounded():
    data = _data()
    for k in range(spec_cache.CACHE_SIZE + 10):
        model_matrix_of("~" + " " * k + "x", data, "fixed-effects")
    assert spec_cache.size() == spec_cache.CACHE_SIZE


def test_formulas_with_transforms_are_built_by_formulaic_every_time():
    data = _data().assign(x=lambda d: d["x"].abs() + 1)
    X1, _, spec1 = model_matrix_of("~ log(x) + center(k)", data, "fixed-effects")
    shifted = data.assign(k=data["k"] + 10)
    X2, _, spec2 = model_matrix_of("~ log(x) + center(k)", shifted, "fixed-effects")
    assert spec2 is not spec1  # centring depends on the values: never a kept spec
    np.testing.assert_array_equal(X1, X2)
    assert spec_cache.size() == 0


# ---- whole designs ---------------------------------------------------------------------------
def _arrays(design):
    return (
        design.y,
        design.X,
        design.Z,
        design.starts,
        design.rows,
        design.groups.to_numpy(),
        design.fixed_names,
        design.random_names,
    )


def _same_design(a, b):
    for left, right in zip(_arrays(a), _arrays(b), strict=True):
        if isinstance(left, np.ndarray):
            assert left.dtype == right.dtype
            np.testing.assert_array_equal(left, right)
        else:
            assert left == right


def test_refits_of_recoded_data_get_their_designs():
    binary = gp.load_vignette("binary")
    first = build_design("y ~ sex * time", "~ time | id", binary, binomial())
    assert first.fixed_names == ["(Intercept)", "sexfemale", "time", "sexfemale:time"]
    again = build_design("y ~ sex * time", "~ time | id", binary, binomial())
    _same_design(first, again)
    assert again.specs["fixed"] is first.specs["fixed"]
    recoded = binary.assign(sex=binary["sex"].cat.reorder_categories(["female", "male"]))
    design = build_design("y ~ sex * time", "~ time | id", recoded, binomial())
    assert design.fixed_names == ["(Intercept)", "sexmale", "time", "sexmale:time"]
    spec_cache.clear()
    _same_design(design, build_design("y ~ sex * time", "~ time | id", recoded, binomial()))
    numeric = binary.assign(sex=(binary["sex"] == "female").astype(float))
    design = build_design("y ~ sex * time", "~ time | id", numeric, binomial())
    assert design.fixed_names == ["(Intercept)", "sex", "time", "sex:time"]
    np.testing.assert_array_equal(design.X[:, 1], first.X[:, 1])


def test_dropped_rows_drop_unused_levels_from_the_kept_spec():
    binary = gp.load_vignette("binary")
    build_design("y ~ sex + time", "~ 1 | id", binary, binomial())
    data = binary.assign(time=np.where(binary["sex"] == "female", np.nan, binary["time"]))
    with pytest.warns(UserWarning, match="dropped 400 of 800 rows"):
        design = build_design("y ~ sex + time", "~ 1 | id", data, binomial())
    assert design.fixed_names == ["(Intercept)", "time"]


def test_predictions_use_the_fits_levels():
    binary = gp.load_vignette("binary")
    fit = gp.mixed_model("y ~ sex * time", "~ 1 | id", binary, "binomial")
    again = gp.mixed_model("y ~ sex * time", "~ 1 | id", binary, "binomial")
    new = binary.head(6)
    np.testing.assert_array_equal(fit.predict(new), again.predict(new))
    with pytest.raises(ValueError, match="level"):
        again.predict(new.assign(sex=pd.Categorical(["other"] * 6)))


def test_unsorted_rows_and_labels_of_every_kind():
    rng = np.random.default_rng(3)
    n = 60
    base = pd.DataFrame(
        {
            "y": rng.poisson(2.0, n),
            "x": rng.normal(size=n),
            "g": rng.permutation(np.repeat(np.arange(6), 10)),
        },
        index=rng.permutation(n) + 100,
    )
    labels = {
        "int": base["g"],
        "sorted": base["g"].sort_values().to_numpy(),
        "text": base["g"].map(lambda v: f"s{v}").astype(object),
        "float": base["g"].astype(float),
        "category": pd.Categorical(base["g"].map(lambda v: f"s{v}")),
    }
    for label, g in labels.items():
        data = base.assign(g=g)
        design = build_design("y ~ x", "~ x | g", data, poisson())
        spec_cache.clear()
        _same_design(design, build_design("y ~ x", "~ x | g", data, poisson()))
        codes, groups = pd.factorize(data["g"], sort=True)
        order = np.argsort(codes, kind="stable")
        np.testing.assert_array_equal(design.rows, data.index.to_numpy()[order], err_msg=label)
        assert design.groups.equals(pd.Index(groups, name="g"))


# ---- rows with missing values ------------------------------------------------------------------
def test_missing_values_of_every_dtype_drop_their_rows():
    n = 8
    data = pd.DataFrame(
        {
            "y": [1.0, np.nan, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
            "x": np.arange(n, dtype=float),
            "s": pd.Series(["a", None, "b", "a", np.nan, "b", "a", "b"], dtype=object),
            "c": pd.Categorical(["u", "v", None, "u", "v", "u", "v", "u"]),
            "t": pd.array(["p", "q", "p", pd.NA, "q", "p", "q", "p"], dtype="string"),
            "m": pd.array([1, 2, 3, 4, 5, None, 7, 8], dtype="Int64"),
            "w": pd.to_datetime(["2024-01-01"] * 6 + [None, "2024-01-02"]),
            "unused": [np.nan] * n,
        }
    )
    expected = data.drop(columns="unused")
    keep = ~expected.isna().any(axis=1)
    message = (
        "dropped 6 of 8 rows with missing values ('y': 1, 's': 2, 'c': 1, 't': 1, 'm': 1, 'w': 1)"
    )
    with pytest.warns(UserWarning, match=re.escape(message)):
        df, n_dropped = complete_rows(data, ["~ x + s + c + t + m"], ["y", "w"])
    assert n_dropped == 6
    assert df.columns.tolist() == ["y", "x", "s", "c", "t", "m", "w"]
    assert df.index.tolist() == expected.index[keep].tolist()
    assert df["t"].dtype == object  # text columns as formulaic's categories
    assert df["c"].cat.categories.tolist() == ["u"]  # levels left without rows are dropped


def test_complete_data_are_kept_whole():
    data = _data().assign(y=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df, n_dropped = complete_rows(data, ["~ x + c"], ["y"])
    assert n_dropped == 0
    assert df.columns.tolist() == ["x", "c", "y"]
    pd.testing.assert_frame_equal(df, data[["x", "c", "y"]])
    assert df["c"].cat.categories.tolist() == ["lo", "mid", "hi", "unused"]
