"""The engine's compiled point function of a family (glmm_ppl.engine.pointwise and
glmm_ppl.engine.numba_scalars): softplus and sigmoid sharing exp(−|η|) far in the tails, ψ₁ in
nopython mode, the compiled function loaded from numba's on-disk cache by a new process, and
the split of the graph into what is computed once per row and what once per row and node."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytensor.tensor as pt
import pytest
from scipy import special

from glmm_ppl.engine.pointwise import pointwise_derivatives
from glmm_ppl.families import binomial

REFERENCE = Path(__file__).resolve().parents[1] / "reference"


def kernel(family, y, eta):
    """(ℓ, ∂ℓ/∂η, ∂²ℓ/∂η²) from the package's compiled pointwise derivatives, shape of eta."""
    y = np.asarray(y, float)
    eta = np.broadcast_to(np.asarray(eta, float), (len(y), np.shape(eta)[-1])).copy()
    out = pointwise_derivatives(family)(y[:, None], eta, np.array([]))
    return out[0], out[1], out[2]


def test_logit_kernel_accurate_far_in_tails():
    # the compiled softplus and sigmoid share exp(−|η|): value and derivatives against closed
    # forms out to where exp underflows
    eta = np.concatenate([-np.logspace(3, -3, 40), [0.0], np.logspace(-3, 3, 40)])
    y = np.array([0.0, 1.0])
    lp, d1, d2 = kernel(binomial(), y, eta[None, :].repeat(2, axis=0))
    p, log_p, log_q = special.expit(eta), special.log_expit(eta), special.log_expit(-eta)
    eps = np.finfo(float).eps
    # y·η − softplus(η) cancels for y = 1, η ≫ 0: an absolute error of a few ε·|η| there
    lp_atol = 4 * eps * np.abs(eta)
    assert np.all(np.abs(lp[0] - log_q) <= 1e-14 * np.abs(log_q) + lp_atol)
    assert np.all(np.abs(lp[1] - log_p) <= 1e-14 * np.abs(log_p) + lp_atol)
    # y − sigmoid(η) and 1 − sigmoid(η) cancel the same way: an absolute error of an ε
    np.testing.assert_allclose(d1, [-p, special.expit(-eta)], rtol=1e-14, atol=2 * eps)
    np.testing.assert_allclose(d2[0], -p * special.expit(-eta), rtol=1e-13, atol=2 * eps)


def test_point_function_is_loaded_from_disk_by_a_new_process():
    code = (
        "from glmm_ppl.families import binomial; "
        "from glmm_ppl.engine.pointwise import _compile_point; "
        "print(_compile_point(binomial())[0].cache_hits)"
    )
    hits = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        for _ in range(2)
    ]
    assert hits[1] == "1"  # the first process compiled it (or found it), the second loaded it


def test_trigamma_in_compiled_kernels_matches_scipy():
    """ψ₁ runs in nopython mode in the family kernels (PyTensor's numba backend lacks it);
    checked through ∂²/∂x² of log Γ compiled the way the kernels are."""
    from glmm_ppl.families import custom_family

    fam = custom_family("lgamma", lambda y, eta, phis: pt.gammaln(eta))
    x = np.array([1e-3, 0.1, 0.5, 1.0, 2.5, 9.99, 10.0, 10.5, 50.0, 1e3, 1e6])
    out = pointwise_derivatives(fam)(np.zeros(len(x)), x[:, None], np.array([]))
    np.testing.assert_allclose(out[2][:, 0], special.polygamma(1, x), rtol=1e-13)


# ---- the row function: what does not depend on η, once per row --------------------------
SPLIT_CASES = {  # family: the columns after y that it reads (compiling a whole graph takes
    "negative_binomial": [],  # seconds: one family per kind of input)
    "hurdle_negative_binomial": [],
    "censored_normal": ["c"],
    "zi_binomial": ["n"],
}


def _family_rows(name):
    """A family's rows from its reference data (y, then its data columns), a few η per row."""
    import pandas as pd

    from glmm_ppl.families import FAMILIES

    df = pd.read_csv(REFERENCE / "families" / f"{name}.csv")
    family = FAMILIES[name]()
    Y = np.column_stack(
        [df["y"].to_numpy(float)] + [df[c].to_numpy(float) for c in SPLIT_CASES[name]]
    )
    eta = np.random.default_rng(1).normal(0.0, 0.8, (len(Y), 3, family.n_eta))
    return family, Y, eta, np.full(family.n_phis, 1.7)


@pytest.mark.parametrize("name", list(SPLIT_CASES))
def test_split_point_function_equals_the_whole_graph(name):
    """The row values and the point function that reads them give what the family's whole
    graph, compiled as one function per row and node, gives (to rounding)."""
    from glmm_ppl.engine import pointwise as pw
    from glmm_ppl.engine.lazy_branches import lazy_funcify

    family, Y, eta, phis = _family_rows(name)
    inputs, outputs = pw._scalar_graph(family)
    n_out = len(outputs)
    whole = pw._cfunc(
        pw._point_source(family, n_out, 0), "point", pw.POINT_SIGNATURE,
        lazy_funcify(inputs, outputs)[0], None,
    )  # fmt: skip
    expected = pw._evaluate_points(whole, n_out, np.ascontiguousarray(Y), eta, phis)
    split = pointwise_derivatives(family)
    assert split.n_hoisted > 0
    got = split(Y, eta, phis)
    for k in range(n_out):
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-13, atol=1e-13, err_msg=str(k))


@pytest.mark.parametrize("name", ["negative_binomial", "beta", "censored_normal", "gamma"])
def test_point_function_computes_only_what_depends_on_eta(name):
    """After the split every value the point function computes depends on η (conditions
    aside, which are cheaper per node than a row value), and log Γ(y + φ), log Γ(φ) of the
    negative binomial are in the row function."""
    from pytensor.graph.traversal import io_toposort
    from pytensor.scalar.math import GammaLn

    from glmm_ppl.engine import pointwise as pw
    from glmm_ppl.families import FAMILIES

    family = FAMILIES[name]()
    inputs, outputs = pw._scalar_graph(family)
    row_in, row_out, node_in, node_out = pw._hoist(
        inputs, outputs, len(inputs) - 1 - family.n_phis, 1
    )
    etas = set(node_in[len(node_in) - 1 - family.n_phis : len(node_in) - family.n_phis])
    varying = set(etas)
    constant_work = []
    for node in io_toposort(node_in, node_out):
        if any(i in varying for i in node.inputs):
            varying.update(node.outputs)
        elif node.outputs[0].type.dtype == "float64" and node.outputs[0] not in node_out:
            constant_work.append(node)
    assert constant_work == []
    assert len(row_out) == pointwise_derivatives(family).n_hoisted
    if name == "negative_binomial":
        row_ops = [
            n.op.scalar_op if hasattr(n.op, "scalar_op") else n.op
            for n in io_toposort(row_in, row_out)
        ]
        node_ops = [n.op for n in io_toposort(node_in, node_out)]
        assert sum(isinstance(op, GammaLn) for op in row_ops) == 3
        assert not any(isinstance(op, GammaLn) for op in node_ops)
