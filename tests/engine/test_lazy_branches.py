"""Scalar graphs compiled with lazy branches (glmm_ppl.engine.lazy_branches): the same values as
PyTensor's straight-line compilation of the same graph on both sides of every switch, and the
work of a branch placed under its condition, shared by all the switches on that condition."""

import numba
import numpy as np
import pytensor.scalar as ps
import pytest
from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
from pytensor.scalar.basic import Composite, identity

try:
    from pytensor.graph.traversal import io_toposort
except ImportError:  # PyTensor before 2.32
    from pytensor.graph.basic import io_toposort

from glmm_ppl.engine.lazy_branches import _contexts, _lazy_switches, lazy_funcify
from glmm_ppl.engine.pointwise import _hoist, _scalar_graph
from glmm_ppl.families import (
    beta_binomial,
    censored_normal,
    hurdle_lognormal,
    hurdle_negative_binomial,
    zi_poisson,
)


def straight(inputs, outputs):
    """PyTensor's own compilation of the graph (every branch computed)."""
    outputs = [identity(o) if o in inputs else o for o in outputs]  # as Composite needs
    composite = Composite(inputs, outputs)
    node = composite.make_node(*[ps.float64() for _ in inputs])
    return numba_funcify_and_cache_key(composite, node=node)[0]


def caller(fn, n_in):
    """A jitted function calling ``fn`` (which is only callable from compiled code)."""
    args = ", ".join(f"a{k}" for k in range(n_in))
    env = {"fn": fn}
    exec(f"def call({args}):\n    return fn({args})\n", env)
    return numba.njit(env["call"])


def test_a_branch_is_placed_under_its_condition():
    x = ps.float64("x")
    cond = ps.gt(x, 1.0)
    shared = ps.log(x) * ps.sin(x)  # used by the True sides of two switches
    value = ps.switch(cond, ps.exp(shared) + ps.cos(x), -x)
    slope = ps.switch(cond, shared * ps.tan(x) - ps.sqrt(x), ps.constant(-1.0))
    outputs = [value, slope]
    nodes = io_toposort([x], outputs)
    lazy = _lazy_switches(nodes, outputs)
    assert lazy == {value.owner, slope.owner}
    where = _contexts(nodes, outputs, lazy)
    assert where[shared] == frozenset({(cond, True)})  # once, under the condition
    assert where[cond] == frozenset() and where[value] == frozenset()
    assert where[value.owner.inputs[2]] == frozenset({(cond, False)})  # −x


def test_a_cheap_branch_stays_a_select():
    x = ps.float64("x")
    out = ps.switch(ps.gt(x, 0.0), x * 2.0, -x)  # one operation a side
    nodes = io_toposort([x], [out])
    assert _lazy_switches(nodes, [out]) == set()


def test_values_on_both_sides_of_a_switch():
    x = ps.float64("x")
    big = ps.exp(ps.log(x) * ps.constant(1.5) + ps.sin(x))
    fn, key = lazy_funcify([x], [ps.switch(ps.gt(x, 1.0), big, -x)])
    call = caller(fn, 1)
    assert call(0.5) == -0.5
    assert call(4.0) == pytest.approx(np.exp(1.5 * np.log(4.0) + np.sin(4.0)), rel=1e-15)
    assert len(key) == 64


# (family, rows (y, data…), linear predictors, extra parameters): each switch's both sides
CASES = {
    "beta_binomial": (
        beta_binomial(),  # precision above and below Stirling's threshold of 100
        [(0.0, 5.0), (3.0, 5.0), (5.0, 5.0), (40.0, 90.0)],
        [(-2.0,), (0.3,), (4.0,)],
        [[0.5], [30.0], [250.0], [1e7]],
    ),
    "hurdle_negative_binomial": (
        hurdle_negative_binomial(),  # zero and positive counts, μ near 0 (the series)
        [(0.0,), (1.0,), (7.0,)],
        [(-12.0, -1.0), (-0.5, 0.4), (2.5, 3.0)],
        [[0.3], [4.0], [1e6]],
    ),
    "censored_normal": (
        censored_normal(),  # uncensored, left and right censored, far in the tails
        [(0.5, 0.0), (-1.0, -1.0), (2.0, 1.0)],
        [(-40.0,), (0.2,), (35.0,)],
        [[0.1], [1.0], [5.0]],
    ),
    "hurdle_lognormal": (
        hurdle_lognormal(),  # an output is a value of the row alone (log y)
        [(0.0,), (2.5,)],
        [(0.1, -1.0), (1.5, 2.0)],
        [[0.7]],
    ),
    "zi_poisson": (
        zi_poisson(),
        [(0.0,), (4.0,)],
        [(-3.0, -20.0), (1.0, 0.0), (3.0, 15.0)],
        [[]],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_point_function_values_equal_pytensors(name):
    family, rows, etas, phis_list = CASES[name]
    inputs, outputs = _scalar_graph(family)
    n_data = 1 + len(family.aux_names)
    row_in, row_out, node_in, node_out = _hoist(inputs, outputs, n_data, family.n_eta)
    lazy_row, plain_row = (caller(f(row_in, row_out), len(row_in)) for f in (_lazy, straight))
    lazy_node, plain_node = (caller(f(node_in, node_out), len(node_in)) for f in (_lazy, straight))
    compared = 0
    for row in rows:
        for phis in phis_list:
            h_lazy = lazy_row(*row, *phis) if row_out else ()
            h_plain = plain_row(*row, *phis) if row_out else ()
            h_lazy = h_lazy if isinstance(h_lazy, tuple) else (h_lazy,)
            h_plain = h_plain if isinstance(h_plain, tuple) else (h_plain,)
            np.testing.assert_allclose(h_lazy, h_plain, rtol=1e-14, atol=0)
            for eta in etas:
                args = (*row, *h_plain, *eta[: family.n_eta], *phis)
                a, b = np.asarray(lazy_node(*args)), np.asarray(plain_node(*args))
                # the same operations, which fast-math may contract differently: equal to
                # rounding (absolute where a derivative is a difference of terms near 1)
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
                compared += a.size
    assert compared == len(rows) * len(phis_list) * len(etas) * len(outputs)


def _lazy(inputs, outputs):
    return lazy_funcify(inputs, outputs)[0]


def test_the_same_graph_gets_the_same_key():
    # the key names the compiled function in the disk cache: it must not depend on where the
    # graph's objects happen to sit in memory (a family outside the package is cached by it)
    keys = []
    for _ in range(2):
        inputs, outputs = _scalar_graph(beta_binomial())
        node_in, node_out = _hoist(inputs, outputs, 2, 1)[2:]
        keys.append(lazy_funcify(node_in, node_out)[1])
    assert keys[0] is not None and keys[0] == keys[1]
