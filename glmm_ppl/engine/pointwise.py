"""A family's log density and its derivatives as one jitted scalar function.

For observation ``j`` with linear predictor(s) ``η`` (and ``η_zi`` for a zero part) the AGQ
engine needs ``ℓ = log p(y_j | η, φ)``, its first and second derivatives in the linear
predictors and ``∂ℓ/∂φ_m``; the row's data (trials, censoring) are inputs too. They come from
PyTensor's automatic differentiation of :meth:`Family.logp` on scalars; the rewritten graph
(stabilised: ``log1p``, ``softplus``…) is wrapped as one PyTensor scalar ``Composite`` and
compiled by PyTensor's numba backend, so the engine's own numba loops call it per observation
and node. Nothing is written by hand per family; a family whose density is not elementwise is
refused with a clear error.
"""

from __future__ import annotations

from functools import lru_cache
from hashlib import sha256

import numba
import numpy as np
import pytensor
import pytensor.scalar as ps
import pytensor.tensor as pt
from pytensor.graph.basic import Constant

try:
    from pytensor.graph.traversal import io_toposort
except ImportError:  # PyTensor before 2.32
    from pytensor.graph.basic import io_toposort
from pytensor.graph.rewriting.utils import rewrite_graph
from pytensor.link.numba.cache import compile_numba_function_src
from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
from pytensor.scalar.basic import Composite
from pytensor.scalar.math import Sigmoid, Softplus
from pytensor.tensor.elemwise import DimShuffle, Elemwise

from ..families import Family
from . import numba_scalars  # noqa: F401  (registers numba versions of scalar functions)
from .point_key import point_cache_key

__all__ = [
    "POINT_SIGNATURE",
    "PointwiseDerivatives",
    "laplace_derivatives",
    "output_layout",
    "pointwise_derivatives",
]


def output_layout(n_eta: int, n_phis: int) -> tuple[int, int, int]:
    """Where the outputs of a point function sit: ``(first ∂ℓ/∂η, first ∂²ℓ, first ∂ℓ/∂φ)``;
    the total is ``1 + E + E(E+1)/2 + n_phis`` for ``E`` linear predictors. Second derivatives
    are stored as the upper triangle, row by row (``(0,0), (0,1), (1,1)`` for two)."""
    return 1, 1 + n_eta, 1 + n_eta + n_eta * (n_eta + 1) // 2


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
    """Scalar graph ``(y, data…, η…, φ…) → (ℓ, ∂ℓ/∂η_e, ∂²ℓ/∂η_e∂η_f (e ≤ f), ∂ℓ/∂φ_m)``;
    with ``third`` (one linear predictor) also ``∂³ℓ/∂η³``, the ``∂²ℓ/∂η∂φ_m`` and the
    ``∂³ℓ/∂η²∂φ_m``, which the gradient of the Laplace approximation needs."""
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
    d1 = [pytensor.grad(lp, e, disconnected_inputs="ignore") for e in etas]
    d2 = [
        pytensor.grad(d1[e], etas[f], disconnected_inputs="ignore")
        for e in range(len(etas))
        for f in range(e, len(etas))
    ]
    dphi = [pytensor.grad(lp, p, disconnected_inputs="ignore") for p in phis]
    extra = []
    if third:
        extra = [pytensor.grad(d2[0], etas[0], disconnected_inputs="ignore")]
        extra += [pytensor.grad(d1[0], p, disconnected_inputs="ignore") for p in phis]
        extra += [pytensor.grad(d2[0], p, disconnected_inputs="ignore") for p in phis]
    outputs = rewrite_graph(
        [lp, *d1, *d2, *dphi, *extra], include=("canonicalize", "stabilize", "specialize")
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


#: Signature of a family's compiled point function: ``point(y*, η*, φ*, out*)`` reads the row's
#: response and data (``y*``: ``y`` then the family's ``aux_names``), its linear predictors
#: (``η*``: ``η`` then ``η_zi``) and writes the outputs in the order of :func:`output_layout` into
#: ``out``. The kernels take it as a first-class function of this type, so they are compiled
#: (and cached on disk) once for every family.
POINT_SIGNATURE = numba.types.void(
    numba.types.CPointer(numba.types.float64),
    numba.types.CPointer(numba.types.float64),
    numba.types.CPointer(numba.types.float64),
    numba.types.CPointer(numba.types.float64),
)


def _n_outputs(family: Family, third: bool) -> int:
    """The number of outputs of the point function (:func:`output_layout`; with ``third``, the
    ``1 + 2 n_phis`` of :func:`laplace_derivatives` after them)."""
    n = output_layout(family.n_eta, family.n_phis)[2] + family.n_phis
    return n + 1 + 2 * family.n_phis if third else n


def _wrapper_source(family: Family, n_out: int) -> str:
    """The source of ``point(yr, er, phis, out)``, which calls the compiled scalar graph ``fn``
    on the row's values (its arity depends on the family's data and extra parameters)."""
    args = (
        [f"yr[{k}]" for k in range(1 + len(family.aux_names))]
        + [f"er[{k}]" for k in range(family.n_eta)]
        + [f"phis[{m}]" for m in range(family.n_phis)]
    )
    return f"def point(yr, er, phis, out):\n    r = fn({', '.join(args)})\n" + "".join(
        f"    out[{k}] = r[{k}]\n" for k in range(n_out)
    )


def _point_cfunc(src: str, fn, key: str | None):
    """``point`` of ``src`` calling ``fn``, as a cfunc cached on disk under ``key`` (in
    PyTensor's numba cache; not cached without a key)."""
    # the module's name too: the cached function's environment is rebuilt by importing it
    env = {"__name__": __name__, "fn": fn}
    point = compile_numba_function_src(src, "point", global_env=env, cache_key=key)
    return numba.cfunc(POINT_SIGNATURE, cache=key is not None)(point)


def _load_point(src: str, key: str):
    """The point function cached on disk under ``key``, or None when it is not there: the
    compiled function needs no ``fn`` to be loaded, and without one a function that is not
    there fails at once to compile."""
    try:
        return _point_cfunc(src, None, key)
    except numba.core.errors.TypingError:
        return None


def _compile_point(family: Family, third: bool = False):
    """The point function and its number of outputs (with ``third``, those of
    :func:`laplace_derivatives` too).

    It is cached on disk (in PyTensor's numba cache). A family of the package is cached under
    its identity (:func:`~glmm_ppl.engine.point_key.point_cache_key`), so a new process loads
    it without building the family's graph; another family under PyTensor's key of the scalar
    graph and the wrapper's source, so a new process builds the graph (up to seconds) but does not
    compile it again."""
    n_out = _n_outputs(family, third)
    src = _wrapper_source(family, n_out)
    cache = pytensor.config.numba__cache
    key = point_cache_key(family, third, src) if cache else None
    if key is not None:
        point = _load_point(src, key)
        if point is not None:
            return point, n_out
    # no stack traces on the graph's nodes: recording them is a quarter of building it
    with pytensor.config.change_flags(traceback__limit=0):
        inputs, outputs = _scalar_graph(family, third)
    if len(outputs) != n_out:
        raise AssertionError(f"{family.name}: {len(outputs)} outputs, {n_out} expected")
    composite = Composite(inputs, outputs)
    node = composite.make_node(*[ps.float64() for _ in inputs])
    fn, graph_key = numba_funcify_and_cache_key(composite, node=node)
    if graph_key is None or not cache:  # it calls a function that cannot be cached
        key = None
    elif key is None:
        key = sha256(f"{__name__} point function\n{graph_key}\n{src}".encode()).hexdigest()
    return _point_cfunc(src, fn, key), n_out


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
    """Jitted ``(y, η, φ) ↦ (ℓ, ∂ℓ/∂η, ∂²ℓ/∂η², ∂ℓ/∂φ_1, …)`` of a family.

    With a zero part there are two linear predictors ``(η, η_zi)``: the outputs are then ``ℓ``,
    both first derivatives, the three second derivatives ``(ηη, ηη_zi, η_ziη_zi)`` and the
    ``∂ℓ/∂φ`` (see :func:`output_layout`).

    Attributes
    ----------
    point : numba cfunc
        ``point(y, eta, phis, out)`` (:data:`POINT_SIGNATURE`) writes the outputs for one
        observation into ``out``; the AGQ engine's kernels call it.
    n_out : int
        Number of outputs.

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
        self.point, self.n_out = _compile_point(family, third)

    def __call__(self, Y: np.ndarray, eta: np.ndarray, phis: np.ndarray) -> list[np.ndarray]:
        Y = np.asarray(Y, dtype=np.float64)
        Y = np.ascontiguousarray(Y.reshape(len(Y), -1))
        E = self.family.n_eta
        eta = np.asarray(eta, dtype=np.float64)
        eta = np.ascontiguousarray(eta.reshape(len(Y), -1, E))
        phis = np.ascontiguousarray(phis, dtype=np.float64)
        return list(_evaluate_points(self.point, self.n_out, Y, eta, phis))


@lru_cache(maxsize=32)
def pointwise_derivatives(family: Family) -> PointwiseDerivatives:
    """The jitted derivatives of ``family`` (cached per family and link)."""
    return PointwiseDerivatives(family)


@lru_cache(maxsize=32)
def laplace_derivatives(family: Family) -> PointwiseDerivatives:
    """The jitted derivatives of ``family`` that the joint Laplace approximation's gradient
    needs: the outputs of :func:`pointwise_derivatives` (one linear predictor), then
    ``∂³ℓ/∂η³``, the ``∂²ℓ/∂η∂φ_m`` and the ``∂³ℓ/∂η²∂φ_m``.

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
