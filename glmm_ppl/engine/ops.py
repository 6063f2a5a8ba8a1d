"""The custom PyTensor Op that returns the AGQ marginal log-likelihood and its gradients.

``AGQLogLik()(η⁰, D, φ)`` (``η⁰``: the fixed part of the linear predictor, a vector, or an
``(N, 2)`` matrix for families with a zero part) returns
``(log L, ∂log L/∂η⁰, ∂log L/∂D, ∂log L/∂φ)`` computed in one pass by
:class:`glmm_ppl.engine.agq.AGQ`; ``L_op`` reuses the gradient outputs, so ``pytensor.grad`` of
anything built on ``log L`` applies the chain rule through ``η⁰ = Xβ``, the log-Cholesky map
to ``D`` and the log scale of ``φ``. The Op re-centres the quadrature at every call (the modes
move with the parameters) unless the engine's ``recenter`` flag is off; the gradient is that
of the rule with its nodes held where they are.
"""

from __future__ import annotations

import itertools
import threading
from contextlib import contextmanager

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from .agq import AGQ

__all__ = ["AGQLogLik", "COMPILE_LOCK", "NUMPY_MODE"]

# The graphs around the Op are a few small operations: run them with NumPy (the "py" linker)
# rather than compile C for each (20-30 s on an empty cache, for ~60 µs saved per call). The
# in-place and BLAS rewrites serve C code only; without them a process's first compilation
# takes 0.5 s less (the BLAS rewrites look for the BLAS libraries).
NUMPY_MODE = pytensor.compile.mode.Mode(linker="py", optimizer="fast_run").excluding(
    "inplace", "BlasOpt"
)
_keys = itertools.count()

#: PyTensor's compilation and a compiled function's ``copy()`` change global settings while
#: they run: every compilation of the package holds this lock (re-entrant: a compilation may
#: start another).
COMPILE_LOCK = threading.RLock()


class AGQLogLik(Op):
    """PyTensor Op: AGQ marginal log-likelihood of the data held by ``engine``.

    Parameters
    ----------
    engine : AGQ or None
        The quadrature engine (data, family, rule and current modes). It is not part of the
        Op's identity: a compiled graph serves several data sets, each evaluation running
        with the engine bound by :meth:`bound` in its thread (else this one), so fits in
        several threads can share the compiled graph.

    Examples
    --------
    >>> import pytensor, pytensor.tensor as pt
    >>> from glmm_ppl.engine.agq import AGQ
    >>> from glmm_ppl.families import poisson
    >>> engine = AGQ(np.array([1.0, 3.0]), np.ones((2, 1)), np.array([0, 2]), poisson(), 5)
    >>> eta0, D, phis = pt.vector(), pt.matrix(), pt.vector()
    >>> ll = AGQLogLik(engine)(eta0, D, phis)[0]
    >>> f = pytensor.function([eta0, D, phis], pytensor.grad(ll, eta0))
    >>> f(np.zeros(2), np.eye(1), np.zeros(0)).shape
    (2,)
    """

    __props__ = ("key",)

    def __init__(self, engine: AGQ | None = None):
        self.default_engine = engine
        self.key = next(_keys)  # two Ops must never be merged as "equal" by graph rewrites
        self._bound = threading.local()

    @property
    def engine(self) -> AGQ | None:
        """The engine of this thread's evaluations: the one bound here, else the default."""
        bound = getattr(self._bound, "engine", None)
        return self.default_engine if bound is None else bound

    @contextmanager
    def bound(self, engine: AGQ):
        """Evaluate with ``engine`` in this thread while the block runs (blocks may nest)."""
        previous = getattr(self._bound, "engine", None)
        self._bound.engine = engine
        try:
            yield self
        finally:
            self._bound.engine = previous

    def __getstate__(self) -> dict:  # thread-local bindings are not copied or pickled
        return {k: v for k, v in self.__dict__.items() if k != "_bound"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._bound = threading.local()

    def make_node(self, eta0, D, phis):
        eta0 = pt.as_tensor_variable(eta0, dtype="float64")
        D = pt.as_tensor_variable(D, dtype="float64")
        phis = pt.as_tensor_variable(phis, dtype="float64")
        outputs = [pt.dscalar(), eta0.type(), pt.dmatrix(), pt.dvector()]
        return Apply(self, [eta0, D, phis], outputs)

    def perform(self, node, inputs, output_storage):
        eta0, D, phis = inputs
        res = self.engine.evaluate(eta0, D, phis, grad=True)
        output_storage[0][0] = np.asarray(res.loglik)
        output_storage[1][0] = res.grad_eta
        output_storage[2][0] = res.grad_D
        output_storage[3][0] = res.grad_phis

    def infer_shape(self, fgraph, node, input_shapes):
        return [(), input_shapes[0], input_shapes[1], input_shapes[2]]

    def L_op(self, inputs, outputs, output_grads):
        g_ll = output_grads[0]
        for g in output_grads[1:]:
            if not isinstance(g.type, DisconnectedType):
                return [grad_not_implemented(self, i, x) for i, x in enumerate(inputs)]
        if isinstance(g_ll.type, DisconnectedType):
            return [pt.zeros_like(x) for x in inputs]
        return [g_ll * outputs[1], g_ll * outputs[2], g_ll * outputs[3]]
