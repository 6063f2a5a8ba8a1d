"""A family's log density and its derivatives as one jitted scalar function.

For observation ``j`` with linear predictor(s) ``η`` (and ``η_zi`` for a zero part) the AGQ
engine needs ``ℓ = log p(y_j | η, φ)``, its first and second derivatives in the linear
predictors, ``∂ℓ/∂φ_m`` and the second derivatives in ``φ`` (with ``η`` and with ``φ``: the
exact Hessian in the extra parameters); the row's data (trials, censoring) are inputs too.
They come from PyTensor's automatic differentiation of :meth:`Family.logp` on scalars; the
rewritten graph (stabilised: ``log1p``, ``softplus``…) is compiled to one numba function, each
switch evaluating only the side it takes (:mod:`~glmm_ppl.engine.lazy_branches`), so the
engine's own numba loops call it per observation and node. Nothing is written by hand per
family; a family whose density is not elementwise is refused with a clear error.

What does not depend on the linear predictors (``log Γ(y + φ)``, ``ψ(φ)``, ``log y``…) is
computed once per row rather than once per row and node: the graph is split (:func:`_hoist`)
into a row function, whose values are appended to the row's data
(:meth:`PointwiseDerivatives.rows`), and the point function, which reads them there.
"""

from __future__ import annotations

import ctypes
import os
from functools import cached_property, lru_cache
from hashlib import sha256
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np
import pytensor
import pytensor.scalar as ps
import pytensor.tensor as pt
from pytensor.graph.basic import Constant
from pytensor.graph.replace import clone_replace

try:
    from pytensor.graph.traversal import io_toposort
except ImportError:  # PyTensor before 2.32
    from pytensor.graph.basic import io_toposort
from pytensor.graph.rewriting.utils import rewrite_graph
from pytensor.link.numba.cache import NUMBA_CACHE_PATH, compile_numba_function_src
from pytensor.scalar.math import Sigmoid, Softplus
from pytensor.tensor.elemwise import DimShuffle, Elemwise

from ..families import Family
from . import numba_scalars  # noqa: F401  (registers numba versions of scalar functions)
from .lazy_branches import lazy_funcify
from .point_key import point_cache_key

__all__ = [
    "POINT_SIGNATURE",
    "POINTS_SIGNATURE",
    "OutputLayout",
    "PREP_SIGNATURE",
    "PointwiseDerivatives",
    "RowCache",
    "extend_rows",
    "laplace_derivatives",
    "output_layout",
    "pointwise_derivatives",
]


class OutputLayout(NamedTuple):
    """Where the outputs of a point function sit, for ``E`` linear predictors and ``M`` extra
    parameters: ``ℓ`` at 0, then the ``∂ℓ/∂η_e`` from ``d1``, the ``∂²ℓ/∂η_e∂η_f`` (``e ≤ f``,
    the upper triangle row by row: ``(0,0), (0,1), (1,1)`` for two) from ``d2``, the
    ``∂ℓ/∂φ_m`` from ``phi``, the ``∂²ℓ/∂η_e∂φ_m`` (``e`` major) from ``eta_phi`` and the
    ``∂²ℓ/∂φ_m∂φ_l`` (``m ≤ l``) from ``phi_phi``; ``total`` outputs in all."""

    d1: int
    d2: int
    phi: int
    eta_phi: int
    phi_phi: int
    total: int


def output_layout(n_eta: int, n_phis: int) -> OutputLayout:
    """The :class:`OutputLayout` of a point function.

    Examples
    --------
    >>> output_layout(1, 1)
    OutputLayout(d1=1, d2=2, phi=3, eta_phi=4, phi_phi=5, total=6)
    """
    d2 = 1 + n_eta
    phi = d2 + n_eta * (n_eta + 1) // 2
    eta_phi = phi + n_phis
    phi_phi = eta_phi + n_eta * n_phis
    return OutputLayout(1, d2, phi, eta_phi, phi_phi, phi_phi + n_phis * (n_phis + 1) // 2)


def _softplus_or_sigmoid(op, x, shared_exp: dict):
    """``softplus(x) = max(x, 0) + log1p(e)`` or ``sigmoid(x) = (1 or e) / (1 + e)`` with
    ``e = exp(−|x|)``, one ``e`` per ``x`` (accurate for every ``x``). The logit link's
    density and its derivatives need both: one exponential instead of three."""
    e = shared_exp.get(x)
    if e is None:
        e = shared_exp[x] = ps.exp(ps.neg(ps.abs(x)))
    zero, one = ps.constant(0.0, dtype="float64"), ps.constant(1.0, dtype="float64")
    if isinstance(op, Softplus):
        return ps.add(ps.maximum(x, zero), ps.log1p(e))
    return ps.true_div(ps.switch(ps.ge(x, zero), one, e), ps.add(one, e))


def _scalar_graph(family: Family, third: bool = False):
    """Scalar graph ``(y, data…, η…, φ…) →`` the outputs of :class:`OutputLayout`; with
    ``third`` (one linear predictor) also ``∂³ℓ/∂η³`` and the ``∂³ℓ/∂η²∂φ_m``, which the
    gradient of the Laplace approximation needs."""
    y = pt.dscalar("y")
    aux = [pt.dscalar(name) for name in family.aux_names]
    etas = [pt.dscalar("eta"), pt.dscalar("eta_zi")][: family.n_eta]
    phis = [pt.dscalar(f"phi{m}") for m in range(family.n_phis)]
    data = dict(zip(family.aux_names, aux, strict=True))
    if family.zero_part:
        data["eta_zi"] = etas[1]
    lp = pt.as_tensor_variable(family.row_logp(y, etas[0], phis, **data), dtype="float64")
    if lp.ndim != 0:
        raise TypeError(
            f"{family.name}.logp must be elementwise: it returned {lp.ndim} dimension(s) "
            "for scalar inputs"
        )

    def grad(v, wrt):
        return pytensor.grad(v, wrt, disconnected_inputs="ignore")

    n = len(etas)
    d1 = [grad(lp, e) for e in etas]
    d2 = [grad(d1[e], etas[f]) for e in range(n) for f in range(e, n)]
    dphi = [grad(lp, p) for p in phis]
    d_eta_phi = [grad(d1[e], p) for e in range(n) for p in phis]
    d_phi_phi = [grad(dphi[m], phis[k]) for m in range(len(phis)) for k in range(m, len(phis))]
    extra = []
    if third:
        extra = [grad(d2[0], etas[0])] + [grad(d2[0], p) for p in phis]
    outputs = rewrite_graph(
        [lp, *d1, *d2, *dphi, *d_eta_phi, *d_phi_phi, *extra],
        include=("canonicalize", "stabilize", "specialize"),
    )
    inputs = [y, *aux, *etas, *phis]
    mapping, scalar_inputs = {}, []
    for v in inputs:
        s = ps.float64(v.name)
        mapping[v] = s
        scalar_inputs.append(s)

    def get(v):
        if v in mapping:
            return mapping[v]
        if isinstance(v, Constant):
            value = np.asarray(v.data)
            # integer constants stay integers (the order of a polygamma)
            dtype = str(value.dtype) if value.dtype.kind in "iu" else "float64"
            return ps.constant(value.item(), dtype=dtype)
        raise TypeError(
            f"{family.name}.logp uses a value that is not one of its inputs (y, eta, phis, "
            f"{', '.join(data) or 'no data'}): {v}"
        )

    shared_exp: dict = {}
    for node in io_toposort(inputs, outputs):
        if isinstance(node.op, Elemwise):
            args = [get(i) for i in node.inputs]
            op = node.op.scalar_op
            if isinstance(op, Softplus | Sigmoid):
                outs = [_softplus_or_sigmoid(op, args[0], shared_exp)]
            else:
                outs = op.make_node(*args).outputs
        elif isinstance(node.op, DimShuffle):
            outs = [get(node.inputs[0])]
        else:
            raise TypeError(
                f"{family.name}.logp must be built from elementwise operations; it uses {node.op}"
            )
        mapping.update(zip(node.outputs, outs, strict=True))
    scalar_outputs = [ps.cast(get(o), "float64") for o in outputs]
    return scalar_inputs, scalar_outputs


def _hoist(inputs, outputs, n_data: int, n_eta: int):
    """Split the scalar graph at the values that do not depend on the linear predictors.

    ``inputs`` are ``(y, data…, η…, φ…)`` with ``n_data`` columns of data. Returns the row
    function's inputs ``(y, data…, φ…)`` and outputs (the η-free values that an η-dependent
    value or an output uses: the largest η-free subexpressions, constants and inputs aside; a
    condition, which is not a float, stays per node and its float operands are taken instead),
    and the point function's inputs ``(y, data…, h…, η…, φ…)`` and outputs, with ``h_i``
    standing for the row function's ``i``-th output.
    """
    data, etas, phis = inputs[:n_data], inputs[n_data : n_data + n_eta], inputs[n_data + n_eta :]
    varying = set(etas)
    nodes = io_toposort(inputs, outputs)
    for node in nodes:
        if any(i in varying for i in node.inputs):
            varying.update(node.outputs)
    hoisted: list = []

    def consider(v):
        if v in varying or v in inputs or isinstance(v, Constant) or v in hoisted:
            return
        if v.type.dtype != "float64":  # a row holds floats: a condition is taken per node
            for i in v.owner.inputs:
                consider(i)
            return
        hoisted.append(v)

    for node in nodes:
        if node.outputs[0] in varying:
            for i in node.inputs:
                consider(i)
    for o in outputs:
        consider(o)
    if len(hoisted) > MAX_HOISTED:  # not seen: keep the whole graph per node
        hoisted = []
    h = [ps.float64(f"h{i}") for i in range(len(hoisted))]
    replaced = clone_replace(outputs, replace=dict(zip(hoisted, h, strict=True)))
    return [*data, *phis], hoisted, [*data, *h, *etas, *phis], replaced


#: Signature of a family's compiled point function: ``point(y*, η*, φ*, out*)`` reads the row's
#: response, data and row values (``y*``: ``y``, the family's ``aux_names``, then what the row
#: function wrote), its linear predictors (``η*``: ``η`` then ``η_zi``) and writes the outputs
#: in the order of :func:`output_layout` into ``out``. The kernels take it as a first-class
#: function of this type, so they are compiled (and cached on disk) once for every family.
POINT_SIGNATURE = numba.types.void(
    numba.types.CPointer(numba.types.float64),
    numba.types.CPointer(numba.types.float64),
    numba.types.CPointer(numba.types.float64),
    numba.types.CPointer(numba.types.float64),
)

#: Signature of a family's row function: ``prep(y*, φ*)`` writes the η-free values after the
#: row's data in ``y*`` and returns how many it wrote.
PREP_SIGNATURE = numba.types.int64(
    numba.types.CPointer(numba.types.float64),
    numba.types.CPointer(numba.types.float64),
)

#: Signature of a family's block function: ``points(y*, η*, φ*, out*, n)`` evaluates ``ℓ`` and
#: its first and second derivatives in the linear predictors at ``n`` points, the arrays laid
#: out by column (``y*``: ``n`` responses, then ``n`` of each further row value; ``η*``: ``n``
#: of each linear predictor; ``out*``: ``n`` of each output, in :func:`output_layout`'s order).
POINTS_SIGNATURE = numba.types.void(
    numba.types.CPointer(numba.types.float64),
    numba.types.CPointer(numba.types.float64),
    numba.types.CPointer(numba.types.float64),
    numba.types.CPointer(numba.types.float64),
    numba.types.intp,
)

#: At most this many η-free values per row (the families of the package have up to ~40).
MAX_HOISTED = 256


def _n_outputs(family: Family, third: bool) -> int:
    """The number of outputs of the point function (:func:`output_layout`; with ``third``, the
    ``1 + n_phis`` of :func:`laplace_derivatives` after them)."""
    n = output_layout(family.n_eta, family.n_phis).total
    return n + 1 + family.n_phis if third else n


def _call(fn: str, args: list[str], n: int, indent: str = "    ") -> str:
    """``r = fn(args)``: a tuple of ``n`` values, or one value when ``n`` is 1."""
    return f"{indent}r = {fn}({', '.join(args)})\n" + (f"{indent}r = (r,)\n" if n == 1 else "")


def _point_source(family: Family, n_out: int, n_hoisted: int) -> str:
    """The source of ``point(yr, er, phis, out)``, which calls the compiled scalar graph ``fn``
    on the row's values (its arity depends on the family's data, row values and extra
    parameters)."""
    args = (
        [f"yr[{k}]" for k in range(1 + len(family.aux_names) + n_hoisted)]
        + [f"er[{k}]" for k in range(family.n_eta)]
        + [f"phis[{m}]" for m in range(family.n_phis)]
    )
    return (
        "def point(yr, er, phis, out):\n"
        + _call("fn", args, n_out)
        + "".join(f"    out[{k}] = r[{k}]\n" for k in range(n_out))
    )


def _points_source(family: Family, n_hoisted: int) -> str:
    """The source of ``points(Y, H, phis, out, n)`` (:data:`POINTS_SIGNATURE`): a loop of the
    scalar graph ``fn`` of ``ℓ`` and its derivatives in ``η``, which LLVM vectorises."""
    n_y, E = 1 + len(family.aux_names) + n_hoisted, family.n_eta
    n_out = output_layout(E, 0).phi
    args = (
        [f"Y[{k} * n + i]" for k in range(n_y)]
        + [f"H[{e} * n + i]" for e in range(E)]
        + [f"phis[{m}]" for m in range(family.n_phis)]
    )
    return (
        "def points(Y, H, phis, out, n):\n"
        "    for i in range(n):\n"
        + _call("fn", args, n_out, indent="        ")
        + "".join(f"        out[{k} * n + i] = r[{k}]\n" for k in range(n_out))
    )


def _prep_source(family: Family, n_hoisted: int) -> str:
    """The source of ``prep(yr, phis)``, which writes the row function's values after the
    row's data and returns their number."""
    n_data = 1 + len(family.aux_names)
    if n_hoisted == 0:
        return "def prep(yr, phis):\n    return 0\n"
    args = [f"yr[{k}]" for k in range(n_data)] + [f"phis[{m}]" for m in range(family.n_phis)]
    return (
        "def prep(yr, phis):\n"
        + _call("fn", args, n_hoisted)
        + "".join(f"    yr[{n_data + k}] = r[{k}]\n" for k in range(n_hoisted))
        + f"    return {n_hoisted}\n"
    )


def _cfunc(src: str, name: str, signature, fn, key: str | None, **options):
    """The function ``name`` of ``src`` calling ``fn``, as a cfunc of ``signature`` cached on
    disk under ``key`` (in PyTensor's numba cache; not cached without a key); ``options`` go
    to numba."""
    # the module's name too: the cached function's environment is rebuilt by importing it
    env = {"__name__": __name__, "fn": fn}
    func = compile_numba_function_src(src, name, global_env=env, cache_key=key)
    return numba.cfunc(signature, cache=key is not None, **options)(func)


def _load(src: str, name: str, signature, key: str, **options):
    """The cfunc ``name`` of ``src`` cached on disk under ``key``, or None when it is not
    there: the compiled function needs no ``fn`` to be loaded (numba knows it by its key and
    its bytecode), and without one a function that is not there fails at once to compile."""
    try:
        return _cfunc(src, name, signature, None, key, **options)
    except numba.core.errors.TypingError:
        return None


def _count_file(key: str) -> Path:
    """Where the number of row values of the functions cached under ``key`` is kept: their
    sources depend on it, and numba finds a cached function by its source's bytecode too."""
    return Path(NUMBA_CACHE_PATH) / f"{key}.row_values"


def _load_cached(family: Family, n_out: int, keys: list[str]):
    """The point and row functions and the number of row values, loaded from disk, or None
    when they are not all there."""
    try:
        m = int(_count_file(keys[0]).read_text())
    except (OSError, ValueError):
        return None
    point = _load(_point_source(family, n_out, m), "point", POINT_SIGNATURE, keys[0])
    prep = _load(_prep_source(family, m), "prep", PREP_SIGNATURE, keys[1])
    if point is None or prep is None or _n_hoisted(prep, family) != m:
        return None
    return point, prep, n_out, m


def _save_count(key: str, m: int) -> None:
    """Keep ``m`` for :func:`_load_cached` (written whole or not at all)."""
    path = _count_file(key)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(str(m))
        os.replace(tmp, path)
    except OSError:  # a read-only cache: the next process builds the graph again
        tmp.unlink(missing_ok=True)


def _n_hoisted(prep, family: Family) -> int:
    """The number of values ``prep`` writes (it says so when called on any row)."""
    row = np.ones(1 + len(family.aux_names) + MAX_HOISTED)
    phis = np.ones(max(family.n_phis, 1))
    as_ptr = ctypes.POINTER(ctypes.c_double)
    return int(prep.ctypes(row.ctypes.data_as(as_ptr), phis.ctypes.data_as(as_ptr)))


def _disk_key(key: str | None, graph_key: str | None, src: str) -> str | None:
    """The disk-cache key of a compiled function whose wrapper is ``src``: ``key`` (a family of
    the package, by its identity), else one from the scalar graph's ``graph_key``; None when
    the graph calls a function that cannot be cached or caching is off."""
    if graph_key is None or not pytensor.config.numba__cache:
        return None
    return key or sha256(f"{__name__} {src}\n{graph_key}".encode()).hexdigest()


def _compile_point(family: Family, third: bool = False):
    """The point function, the row function, the number of outputs (with ``third``, those of
    :func:`laplace_derivatives` too) and the number of row values.

    They are cached on disk (in PyTensor's numba cache). A family of the package is cached
    under its identity (:func:`~glmm_ppl.engine.point_key.point_cache_key`), so a new process
    loads them without building the family's graph; another family under PyTensor's keys of
    the scalar graphs and the wrappers' sources, so a new process builds the graph (up to
    seconds) but does not compile it again."""
    n_out = _n_outputs(family, third)
    cache = pytensor.config.numba__cache
    keys = [
        point_cache_key(family, third, f"{name}, row values apart") if cache else None
        for name in ("point", "prep")
    ]
    if keys[0] is not None:
        loaded = _load_cached(family, n_out, keys)
        if loaded is not None:
            return loaded
    builtin = keys[0] is not None
    # no stack traces on the graph's nodes: recording them is a quarter of building it
    with pytensor.config.change_flags(traceback__limit=0):
        inputs, outputs = _scalar_graph(family, third)
    if len(outputs) != n_out:
        raise AssertionError(f"{family.name}: {len(outputs)} outputs, {n_out} expected")
    row_in, row_out, node_in, node_out = _hoist(
        inputs, outputs, 1 + len(family.aux_names), family.n_eta
    )
    m = len(row_out)
    sources = [_point_source(family, n_out, m), _prep_source(family, m)]
    fns = [lazy_funcify(node_in, node_out), lazy_funcify(row_in, row_out) if m else (None, "none")]
    for k, ((_, graph_key), src) in enumerate(zip(fns, sources, strict=True)):
        keys[k] = _disk_key(keys[k], graph_key, src)
    point = _cfunc(sources[0], "point", POINT_SIGNATURE, fns[0][0], keys[0])
    prep = _cfunc(sources[1], "prep", PREP_SIGNATURE, fns[1][0], keys[1])
    if builtin and keys[0] is not None and keys[1] is not None:
        _save_count(keys[0], m)
    return point, prep, n_out, m


#: The block function's compiler options: division without Python's zero check and contracted
#: multiply-adds, so that its loop vectorises.
_POINTS_OPTIONS = {"error_model": "numpy", "fastmath": {"contract"}}


def _compile_points(family: Family, n_hoisted: int):
    """The block function of ``family`` (:data:`POINTS_SIGNATURE`) for rows with ``n_hoisted``
    row values, cached on disk as the point function is."""
    src = _points_source(family, n_hoisted)
    cache = pytensor.config.numba__cache
    key = point_cache_key(family, False, f"points {n_hoisted}\n{src}") if cache else None
    if key is not None:
        loaded = _load(src, "points", POINTS_SIGNATURE, key, **_POINTS_OPTIONS)
        if loaded is not None:
            return loaded
    with pytensor.config.change_flags(traceback__limit=0):
        inputs, outputs = _scalar_graph(family)
    _, _, node_in, node_out = _hoist(inputs, outputs, 1 + len(family.aux_names), family.n_eta)
    if len(node_in) != 1 + len(family.aux_names) + n_hoisted + family.n_eta + family.n_phis:
        raise AssertionError(f"{family.name}: the row values differ from the point function's")
    n_out = output_layout(family.n_eta, 0).phi
    fn, graph_key = lazy_funcify(node_in, node_out[:n_out], vectorizable=True)
    key = _disk_key(key, graph_key, src)
    return _cfunc(src, "points", POINTS_SIGNATURE, fn, key, **_POINTS_OPTIONS)


@lru_cache(maxsize=1)
def _no_points():
    """A block function that does nothing: what the kernels get for a family that has none."""

    def points(Y, H, phis, out, n):
        pass

    return numba.cfunc(POINTS_SIGNATURE, cache=True)(points)


@numba.njit(cache=True, nogil=True)
def extend_rows(prep, Y, phis, n_hoisted):
    """``Y`` with the ``n_hoisted`` η-free values that ``prep`` computes at ``phis`` appended
    to each row."""
    N, c = Y.shape
    out = np.empty((N, c + n_hoisted))
    row = np.empty(c + n_hoisted)
    row_p, phis_p = row.ctypes, phis.ctypes
    for j in range(N):
        for k in range(c):
            row[k] = Y[j, k]
        prep(row_p, phis_p)
        for k in range(c + n_hoisted):
            out[j, k] = row[k]
    return out


@numba.njit(cache=True, nogil=True)
def _evaluate_points(point, n_out, Y, eta, phis):
    N, K, E = eta.shape
    out = np.empty((n_out, N, K))
    buf = np.empty(n_out)
    yb = np.empty(Y.shape[1])
    eb = np.empty(E)
    phis_p, buf_p, yb_p, eb_p = phis.ctypes, buf.ctypes, yb.ctypes, eb.ctypes
    for j in range(N):
        for c in range(Y.shape[1]):
            yb[c] = Y[j, c]
        for k in range(K):
            for e in range(E):
                eb[e] = eta[j, k, e]
            point(yb_p, eb_p, phis_p, buf_p)
            for o in range(n_out):
                out[o, j, k] = buf[o]
    return out


class PointwiseDerivatives:
    """Jitted ``(y, η, φ) ↦ (ℓ, ∂ℓ/∂η, ∂²ℓ/∂η², ∂ℓ/∂φ_m, ∂²ℓ/∂η∂φ_m, ∂²ℓ/∂φ_m∂φ_l)`` of a
    family.

    With a zero part there are two linear predictors ``(η, η_zi)``: the outputs are then ``ℓ``,
    both first derivatives, the three second derivatives ``(ηη, ηη_zi, η_ziη_zi)`` and those
    in ``φ`` (see :class:`OutputLayout`).

    Attributes
    ----------
    point : numba cfunc
        ``point(y, eta, phis, out)`` (:data:`POINT_SIGNATURE`) writes the outputs for one
        observation into ``out``; the AGQ engine's kernels call it. It reads the row as
        :meth:`rows` returns it.
    prep : numba cfunc
        ``prep(y, phis)`` (:data:`PREP_SIGNATURE`) appends the row's η-free values.
    n_out : int
        Number of outputs.
    n_hoisted : int
        Number of η-free values per row.

    Calling the object evaluates on arrays: ``Y`` of shape ``(N,)`` or ``(N, 1 + n_aux)``
    (response, then the family's ``aux_names`` columns) and ``η`` of shape ``(N, K)`` (one
    linear predictor) or ``(N, K, E)``; every output has shape ``(N, K)``.

    Examples
    --------
    >>> from glmm_ppl.families import poisson
    >>> k = pointwise_derivatives(poisson())
    >>> lp, d1, d2 = k(np.array([[2.0]]), np.array([[0.0]]), np.array([]))
    >>> float(d1[0, 0]), float(d2[0, 0])  # y - exp(eta), -exp(eta)
    (1.0, -1.0)
    """

    def __init__(self, family: Family, third: bool = False):
        self.family = family
        self.point, self.prep, self.n_out, self.n_hoisted = _compile_point(family, third)

    @property
    def blocks(self) -> bool:
        """Whether the family has a block function: one linear predictor, no extra
        parameter."""
        return self.family.n_eta == 1 and self.family.n_phis == 0

    @cached_property
    def points(self):
        """The block function (:data:`POINTS_SIGNATURE`) when :attr:`blocks`, compiled on
        first use; otherwise one that does nothing (the kernels call the point function)."""
        return _compile_points(self.family, self.n_hoisted) if self.blocks else _no_points()

    def rows(self, Y: np.ndarray, phis: np.ndarray) -> np.ndarray:
        """The rows ``Y`` (``(N, 1 + n_aux)``) as :attr:`point` reads them at ``phis``: with
        their η-free values appended (``Y`` itself when there are none).

        Examples
        --------
        >>> from glmm_ppl.families import negative_binomial
        >>> k = pointwise_derivatives(negative_binomial())
        >>> k.rows(np.array([[3.0]]), np.array([0.0])).shape[1] == 1 + k.n_hoisted
        True
        """
        if self.n_hoisted == 0:
            return Y
        phis = np.ascontiguousarray(phis, dtype=np.float64)
        return extend_rows(self.prep, Y, phis, self.n_hoisted)

    def __call__(self, Y: np.ndarray, eta: np.ndarray, phis: np.ndarray) -> list[np.ndarray]:
        Y = np.asarray(Y, dtype=np.float64)
        Y = np.ascontiguousarray(Y.reshape(len(Y), -1))
        E = self.family.n_eta
        eta = np.asarray(eta, dtype=np.float64)
        eta = np.ascontiguousarray(eta.reshape(len(Y), -1, E))
        phis = np.ascontiguousarray(phis, dtype=np.float64)
        return self.at_rows(self.rows(Y, phis), eta, phis)

    def at_rows(self, rows: np.ndarray, eta: np.ndarray, phis: np.ndarray) -> list[np.ndarray]:
        """The outputs at rows already as :attr:`point` reads them (:meth:`rows`, or a
        :class:`RowCache`'s, which a caller evaluating at one ``φ`` again and again keeps),
        ``η`` of shape ``(N, K, E)``; as calling the object.

        Examples
        --------
        >>> from glmm_ppl.families import negative_binomial
        >>> k = pointwise_derivatives(negative_binomial())
        >>> Y, eta, phis = np.array([[3.0]]), np.zeros((1, 1, 1)), np.array([2.0])
        >>> k.at_rows(k.rows(Y, phis), eta, phis)[0] == k(Y, eta, phis)[0]
        array([[ True]])
        """
        eta = np.ascontiguousarray(eta, dtype=np.float64)
        phis = np.ascontiguousarray(phis, dtype=np.float64)
        return list(_evaluate_points(self.point, self.n_out, rows, eta, phis))


class RowCache:
    """A data set's rows as a point function reads them (:meth:`PointwiseDerivatives.rows`),
    kept for the last ``φ`` asked (every kernel of one evaluation reads the same).

    Examples
    --------
    >>> from glmm_ppl.families import negative_binomial
    >>> rows = RowCache(pointwise_derivatives(negative_binomial()), np.array([[3.0], [0.0]]))
    >>> rows.at(np.array([2.0])) is rows.at(np.array([2.0]))  # computed once per φ
    True
    """

    def __init__(self, pw: PointwiseDerivatives, Y: np.ndarray):
        self.pw, self.Y = pw, Y
        self._last: tuple[bytes, np.ndarray] | None = None

    def at(self, phis: np.ndarray) -> np.ndarray:
        """The rows at ``phis``."""
        if self.pw.n_hoisted == 0:
            return self.Y
        key = np.asarray(phis, dtype=np.float64).tobytes()
        last = self._last
        if last is None or last[0] != key:
            last = self._last = (key, self.pw.rows(self.Y, phis))
        return last[1]


@lru_cache(maxsize=32)
def pointwise_derivatives(family: Family) -> PointwiseDerivatives:
    """The jitted derivatives of ``family`` (cached per family and link)."""
    return PointwiseDerivatives(family)


@lru_cache(maxsize=32)
def laplace_derivatives(family: Family) -> PointwiseDerivatives:
    """The jitted derivatives of ``family`` that the joint Laplace approximation's gradient
    needs: the outputs of :func:`pointwise_derivatives` (one linear predictor), then
    ``∂³ℓ/∂η³`` and the ``∂³ℓ/∂η²∂φ_m``.

    Examples
    --------
    >>> from glmm_ppl.families import poisson
    >>> k = laplace_derivatives(poisson())
    >>> [float(o[0, 0]) for o in k(np.array([[2.0]]), np.array([[0.0]]), np.array([]))][1:]
    [1.0, -1.0, -1.0]
    """
    if family.n_eta != 1:
        raise ValueError("third derivatives are available for one linear predictor only")
    return PointwiseDerivatives(family, third=True)
