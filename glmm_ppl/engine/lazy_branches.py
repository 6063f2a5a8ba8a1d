"""A scalar graph compiled for numba with each ``switch`` evaluating only the branch it takes.

PyTensor compiles a scalar graph to straight-line code: ``switch(c, a, b)`` is a select, and
both ``a`` and ``b``, with everything only they use, are computed every time. The densities
switch between accurate forms (Stirling's series for a large argument of ``log Γ``, a series
near a hurdle's ``μ = 0``, the zero and positive counts), and their derivatives switch again,
so the branch not taken can be most of the work: the beta-binomial's point function has 776
operations, of which a point with both shapes below Stirling's threshold runs 97.

:func:`lazy_funcify` writes the function itself. Each operation is placed under the
conditions that hold wherever its value is used (a switch's ``True`` side adds its condition,
its ``False`` side the negation; the operation takes what all its uses share), and runs inside
``if`` on them; a value that several switches on one condition use on the same side (a density
and its derivatives) is computed once. A switch reads only the side it takes, and a switch
whose condition guards fewer than :data:`MIN_BRANCH_OPS` operations stays a select. Each
operation is PyTensor's own numba implementation, so the values are those of PyTensor's
compiled graph, to rounding (fast-math may contract the operations differently).
"""

from __future__ import annotations

from hashlib import sha256

import numpy as np
import pytensor.scalar as ps
from pytensor.graph.basic import Constant

try:
    from pytensor.graph.traversal import io_toposort
except ImportError:  # PyTensor before 2.32
    from pytensor.graph.basic import io_toposort
from pytensor.link.numba.cache import compile_numba_function_src
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.link.numba.dispatch.basic import numba_funcify_ensure_cache

from . import vector_math

__all__ = ["lazy_funcify"]

#: A branch is worth an ``if`` when it holds at least this many operations of its own; a
#: select of a cheap branch is faster than a jump the processor may mispredict.
MIN_BRANCH_OPS = 3


def _contexts(nodes, outputs, lazy: set) -> dict:
    """Each variable's context: the conditions under which all its uses lie, a frozenset of
    ``(condition, side)`` (empty: always computed). The switches in ``lazy`` need their
    branches only on their side of their condition, so a value that only the ``True`` sides of
    switches on one condition use (a density's value, its derivatives…) is computed once, under
    that condition."""
    where: dict = {o: frozenset() for o in outputs}

    def need(v, ctx):
        where[v] = where[v] & ctx if v in where else ctx

    for node in reversed(nodes):
        outs = [where[o] for o in node.outputs if o in where]
        if not outs:
            continue
        ctx = frozenset.intersection(*outs)
        for o in node.outputs:
            where[o] = ctx
        if node in lazy:
            cond, a, b = node.inputs
            need(cond, ctx)
            need(a, ctx | {(cond, True)})
            need(b, ctx | {(cond, False)})
        else:
            for i in node.inputs:
                need(i, ctx)
    return where


def _lazy_switches(nodes, outputs) -> set:
    """The switches that branch: those whose condition guards at least
    :data:`MIN_BRANCH_OPS` operations."""
    switches = {n for n in nodes if isinstance(n.op, ps.Switch)}
    if not switches:
        return set()
    where = _contexts(nodes, outputs, switches)
    guarded: dict = {}
    for n in nodes:
        for cond, _ in where.get(n.outputs[0], ()):
            guarded[cond] = guarded.get(cond, 0) + 1
    return {s for s in switches if guarded.get(s.inputs[0], 0) >= MIN_BRANCH_OPS}


def _order(nodes, where) -> list | None:
    """The nodes in an order where each comes after its inputs and after the conditions that
    guard it (None if there is none)."""
    owner = {o: n for n in nodes for o in n.outputs}
    index = {n: k for k, n in enumerate(nodes)}
    deps = {}
    for n in nodes:
        ins = [*n.inputs, *(c for c, _ in where.get(n.outputs[0], ()))]
        deps[n] = {owner[v] for v in ins if v in owner}
    users: dict = {n: [] for n in nodes}
    for n, d in deps.items():
        for m in d:
            users[m].append(n)
    waiting = {n: len(d) for n, d in deps.items()}
    ready = [n for n in nodes if waiting[n] == 0]
    order, last = [], frozenset()

    def rank(n):  # the same guard as the last node first, then no guard: fewer branches
        ctx = where.get(n.outputs[0], frozenset())
        return (ctx != last, bool(ctx), index[n])

    while ready:
        n = min(ready, key=rank)
        ready.remove(n)
        order.append(n)
        last = where.get(n.outputs[0], frozenset())
        for u in users[n]:
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.append(u)
    return order if len(order) == len(nodes) else None


def _literal(value) -> str:
    """Python source of a constant, typed as PyTensor typed it."""
    value = np.asarray(value)
    v = value.item()
    if value.dtype == np.bool_:
        return repr(bool(v))
    if value.dtype.kind == "f":
        text = repr(float(v)).replace("inf", "np.inf").replace("nan", "np.nan")
        return text if value.dtype == np.float64 else f"np.{value.dtype.name}({text})"
    return f"np.{value.dtype.name}({int(v)})"


#: The operations that ``vectorizable`` replaces by those of :mod:`.vector_math`.
_VECTOR_MATH = {ps.Exp: vector_math.vexp, ps.Log: vector_math.vlog, ps.Log1p: vector_math.vlog1p}


def _implementation(node, vectorizable: bool):
    """The numba function of ``node``'s operation and its cache key (None: not cacheable)."""
    own = _VECTOR_MATH.get(type(node.op)) if vectorizable else None
    if own is not None and all(v.type.dtype == "float64" for v in (*node.inputs, *node.outputs)):
        return own, f"{vector_math.__name__}.{own.__name__} {vector_math.SOURCE_KEY}"
    return numba_funcify_ensure_cache(node.op, node=node)


def lazy_funcify(inputs, outputs, name: str = "lazy_scalar_graph", vectorizable: bool = False):
    """The numba function of the scalar graph ``inputs → outputs`` with lazy branches (a tuple
    of the outputs, or the single output), and a cache key of it (None when an operation
    cannot be cached). With ``vectorizable``, ``exp``, ``log`` and ``log1p`` are those of
    :mod:`.vector_math`, so that a loop of the function can run on vector units.

    Examples
    --------
    >>> x = ps.float64("x")
    >>> big = ps.exp(ps.log(x) * ps.constant(1.5) + ps.sin(x))  # only computed when x > 1
    >>> fn, key = lazy_funcify([x], [ps.switch(ps.gt(x, 1.0), big, -x)])
    >>> import numba
    >>> call = numba.njit(lambda v: fn(v))  # fn itself is called from compiled code only
    >>> float(call(0.5)), round(float(call(4.0)), 6)
    (-0.5, 3.753313)
    """
    nodes = io_toposort(inputs, outputs)
    lazy = _lazy_switches(nodes, outputs)
    where = _contexts(nodes, outputs, lazy)
    order = _order(nodes, where)
    if order is None:  # not seen: the guards and the data disagree on an order
        lazy, where, order = set(), {}, nodes
    names: dict = {v: f"x{k}" for k, v in enumerate(inputs)}
    env: dict = {"np": np}
    keys: list = []
    functions: dict = {}  # (cache key, types) → name in env
    cacheable = True

    def ref(v) -> str:
        if isinstance(v, Constant):
            return _literal(v.data)
        return names[v]

    def guard(ctx) -> str:
        terms = sorted((names[c], side) for c, side in ctx)
        return " and ".join(c if side else f"not {c}" for c, side in terms)

    for k, n in enumerate(order):
        if len(n.outputs) != 1:
            raise TypeError(f"{n.op} has {len(n.outputs)} outputs")
        names[n.outputs[0]] = f"v{k}"
    # a switch is a select of two values, of which only the side it takes was computed: the
    # other holds a placeholder, so the function has no more branches than its guards
    guarded = {v for n in lazy for v in n.inputs[1:] if v.owner is not None and where.get(v)}
    body = [  # in the order of the nodes: the same source, so the same cache key, every time
        f"    {names[v]} = {_literal(np.zeros((), v.type.dtype))}"
        for v in sorted(guarded, key=lambda v: int(names[v][1:]))
    ]
    open_ctx = frozenset()
    for k, n in enumerate(order):
        ctx = where.get(n.outputs[0], frozenset())
        if ctx != open_ctx and ctx:
            body.append(f"    if {guard(ctx)}:")
        open_ctx = ctx
        fn, key = _implementation(n, vectorizable)
        keys.append(key)
        cacheable = cacheable and key is not None
        # one function per kind of operation: numba compiles each once, not once per use
        kind = (key, *(v.type for v in (*n.inputs, *n.outputs)))
        f = functions.setdefault(kind, f"f{k}") if key is not None else f"f{k}"
        env.setdefault(f, fn)
        indent = "        " if ctx else "    "
        body.append(f"{indent}v{k} = {f}({', '.join(ref(i) for i in n.inputs)})")
    results = [ref(o) for o in outputs]
    returned = results[0] if len(results) == 1 else f"({', '.join(results)},)"
    args = ", ".join(names[v] for v in inputs)
    src = f"def {name}({args}):\n" + "\n".join(body) + f"\n    return {returned}\n"
    key = sha256(f"{__name__}\n{src}\n{keys}".encode()).hexdigest() if cacheable else None
    py_func = compile_numba_function_src(src, name, global_env=env)
    # inlined into its caller: called, a function with branches was twice as slow (measured
    # on the hurdle log-normal's point function), though its code is the same
    return numba_basic.numba_njit(py_func, inline="always"), key
