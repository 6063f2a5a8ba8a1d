"""A family's log density and its derivatives as one jitted scalar function.

For observation ``j`` and linear predictor ``η`` the AGQ engine needs ``ℓ = log p(y_j | η, φ)``,
``∂ℓ/∂η``, ``∂²ℓ/∂η²`` and ``∂ℓ/∂φ_m``. They come from PyTensor's automatic differentiation of
:meth:`Family.logp` on scalars; the rewritten graph (stabilised: ``log1p``, ``softplus``…) is
wrapped as one PyTensor scalar ``Composite`` and compiled by PyTensor's numba backend, so the
engine's own numba loops call it per observation and node. Nothing is written by hand per
family; a family whose density is not elementwise is refused with a clear error.
"""

from __future__ import annotations

from functools import lru_cache

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
from pytensor.link.numba.dispatch import numba_funcify
from pytensor.scalar.basic import Composite
from pytensor.tensor.elemwise import DimShuffle, Elemwise

from .families import Family

__all__ = ["PointwiseDerivatives", "pointwise_derivatives", "POINT_SIGNATURE"]


def _scalar_graph(family: Family):
    """Scalar PyTensor graph ``(y, η, φ_1…) → (ℓ, ∂ℓ/∂η, ∂²ℓ/∂η², ∂ℓ/∂φ_1…)``."""
    y, eta = pt.dscalar("y"), pt.dscalar("eta")
    phis = [pt.dscalar(f"phi{m}") for m in range(family.n_phis)]
    lp = pt.as_tensor_variable(family.logp(y, eta, phis), dtype="float64")
    if lp.ndim != 0:
        raise TypeError(
            f"{family.name}.logp must be elementwise: it returned {lp.ndim} dimension(s) "
            "for scalar inputs"
        )
    d1 = pytensor.grad(lp, eta, disconnected_inputs="ignore")
    d2 = pytensor.grad(d1, eta, disconnected_inputs="ignore")
    dphi = [pytensor.grad(lp, p, disconnected_inputs="ignore") for p in phis]
    outputs = rewrite_graph(
        [lp, d1, d2, *dphi], include=("canonicalize", "stabilize", "specialize")
    )
    inputs = [y, eta, *phis]
    mapping, scalar_inputs = {}, []
    for v in inputs:
        s = ps.float64(v.name)
        mapping[v] = s
        scalar_inputs.append(s)

    def get(v):
        if v in mapping:
            return mapping[v]
        if isinstance(v, Constant):
            return ps.constant(np.asarray(v.data).item(), dtype="float64")
        raise TypeError(f"{family.name}.logp uses a value that is not one of y, eta or phis: {v}")

    for node in io_toposort(inputs, outputs):
        if isinstance(node.op, Elemwise):
            outs = node.op.scalar_op.make_node(*[get(i) for i in node.inputs]).outputs
        elif isinstance(node.op, DimShuffle):
            outs = [get(node.inputs[0])]
        else:
            raise TypeError(
                f"{family.name}.logp must be built from elementwise operations; it uses {node.op}"
            )
        mapping.update(zip(node.outputs, outs, strict=False))
    scalar_outputs = [ps.cast(get(o), "float64") for o in outputs]
    return scalar_inputs, scalar_outputs


#: Signature of a family's compiled point function: ``point(y, η, φ*, out*)`` writes
#: ``(ℓ, ∂ℓ/∂η, ∂²ℓ/∂η², ∂ℓ/∂φ_1, …)`` into ``out``. The kernels take it as a first-class
#: function of this type, so they are compiled (and cached on disk) once for every family.
POINT_SIGNATURE = numba.types.void(
    numba.types.float64,
    numba.types.float64,
    numba.types.CPointer(numba.types.float64),
    numba.types.CPointer(numba.types.float64),
)


def _compile_point(family: Family):
    inputs, outputs = _scalar_graph(family)
    composite = Composite(inputs, outputs)
    fn = numba_funcify(composite, node=composite.make_node(*[ps.float64() for _ in inputs]))
    n_out = len(outputs)
    phi_args = "".join(f", phis[{m}]" for m in range(family.n_phis))
    src = f"def point(y, eta, phis, out):\n    r = fn(y, eta{phi_args})\n" + "".join(
        f"    out[{k}] = r[{k}]\n" for k in range(n_out)
    )
    namespace = {"fn": fn}
    exec(src, namespace)  # the arity depends on the family's number of extra parameters
    return numba.cfunc(POINT_SIGNATURE)(namespace["point"]), n_out


@numba.njit(cache=True, nogil=True)
def _evaluate_points(point, n_out, y, eta, phis):
    N, K = eta.shape
    out = np.empty((n_out, N, K))
    buf = np.empty(n_out)
    phis_p, buf_p = phis.ctypes, buf.ctypes
    for j in range(N):
        for k in range(K):
            point(y[j], eta[j, k], phis_p, buf_p)
            for o in range(n_out):
                out[o, j, k] = buf[o]
    return out


class PointwiseDerivatives:
    """Jitted ``(y, η, φ) ↦ (ℓ, ∂ℓ/∂η, ∂²ℓ/∂η², ∂ℓ/∂φ_1, …)`` of a family.

    Attributes
    ----------
    point : numba cfunc
        ``point(y, eta, phis, out)`` (:data:`POINT_SIGNATURE`) writes the outputs for one
        observation into ``out``; the AGQ engine's kernels call it.
    n_out : int
        ``3 + family.n_phis``.

    Calling the object evaluates on arrays: ``y`` of shape ``(N,)`` or ``(N, 1)`` and ``η`` of
    shape ``(N, K)``; every output has the shape of ``η``.

    Examples
    --------
    >>> from glmm_ppl.families import poisson
    >>> k = pointwise_derivatives(poisson())
    >>> lp, d1, d2 = k(np.array([[2.0]]), np.array([[0.0]]), np.array([]))
    >>> float(d1[0, 0]), float(d2[0, 0])  # y - exp(eta), -exp(eta)
    (1.0, -1.0)
    """

    def __init__(self, family: Family):
        self.family = family
        self.point, self.n_out = _compile_point(family)

    def __call__(self, y: np.ndarray, eta: np.ndarray, phis: np.ndarray) -> list[np.ndarray]:
        y = np.ascontiguousarray(np.asarray(y, dtype=np.float64).reshape(-1))
        eta = np.ascontiguousarray(np.asarray(eta, dtype=np.float64).reshape(len(y), -1))
        phis = np.ascontiguousarray(phis, dtype=np.float64)
        return list(_evaluate_points(self.point, self.n_out, y, eta, phis))


@lru_cache(maxsize=32)
def pointwise_derivatives(family: Family) -> PointwiseDerivatives:
    """The jitted derivatives of ``family`` (cached per family and link)."""
    return PointwiseDerivatives(family)
