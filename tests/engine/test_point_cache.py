"""A new process finds a family's compiled point function on disk without building its graph
(glmm_ppl.engine.point_key), and every scalar function the built-in families use can be
cached on disk, ψ included (glmm_ppl.engine.numba_scalars)."""

import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
from pytensor.scalar.basic import Composite
from scipy import special

from glmm_ppl.engine import pointwise
from glmm_ppl.engine.point_key import point_cache_key
from glmm_ppl.families import (
    binomial,
    custom_family,
    gamma,
    negative_binomial,
    poisson,
    students_t,
)

# the error bound of the numba ψ for x > 0 (relative, absolute where |ψ| < 1), and SciPy's own
# error (below 4e-16 on these points against 40-digit values)
PSI_BOUND = 2e-15 + 4e-16


def test_psi_matches_scipy():
    x = pt.dvector("x")
    psi = pytensor.function([x], pt.psi(x), mode="NUMBA")
    root = 1.4616321449683622  # ψ's positive zero, where the recurrence's terms cancel
    points = np.concatenate(
        [
            np.logspace(-300, 300, 1201),
            np.linspace(1e-6, 20.0, 4001),
            root + np.linspace(-1e-3, 1e-3, 201),
        ]
    )
    expected = special.psi(points)
    err = np.abs(psi(points) - expected) / np.maximum(1.0, np.abs(expected))
    assert err.max() <= PSI_BOUND
    # x < 0 by reflection, away from the poles at the negative integers
    neg = -np.linspace(0.01, 50.0, 2000)
    neg = neg[np.abs(neg - np.round(neg)) > 1e-3]
    expected = special.psi(neg)
    err = np.abs(psi(neg) - expected) / np.maximum(1.0, np.abs(expected))
    assert err.max() <= 1e-12
    special_points = np.array([0.0, -1.0, -3.0, np.inf, -np.inf, np.nan])
    np.testing.assert_array_equal(psi(special_points), special.psi(special_points))


def test_psi_in_compiled_kernels_matches_scipy():
    """ψ as the first derivative of log Γ in a point function, the way the kernels run it."""
    fam = custom_family("lgamma", lambda y, eta, phis: pt.gammaln(eta))
    x = np.array([1e-3, 0.1, 0.5, 1.0, 1.4616321449683622, 2.5, 9.99, 10.0, 50.0, 1e3, 1e6])
    out = pointwise.pointwise_derivatives(fam)(np.zeros(len(x)), x[:, None], np.array([]))
    expected = special.psi(x)
    assert np.all(np.abs(out[1][:, 0] - expected) <= PSI_BOUND * np.maximum(1.0, abs(expected)))


@pytest.mark.parametrize(
    "expression",
    [pt.psi, pt.tri_gamma, lambda x: pt.polygamma(2, x), pt.erfcx, pt.log1mexp, pt.gammaln],
    ids=["psi", "tri_gamma", "polygamma", "erfcx", "log1mexp", "gammaln"],
)
def test_special_functions_can_be_cached_on_disk(expression):
    # a function PyTensor cannot cache (None) would make every new process compile again each
    # point function that calls it
    x = pt.dscalar("x")
    node = expression(x).owner
    _, key = numba_funcify_and_cache_key(node.op.scalar_op, node=node)
    assert key is not None


@pytest.mark.parametrize(
    "family, third",
    [(gamma(), False), (gamma(), True), (binomial(link="cloglog"), False)],
    ids=["gamma", "gamma-third", "binomial-cloglog"],
)
def test_families_point_graph_can_be_cached_on_disk(family, third):
    inputs, outputs = pointwise._scalar_graph(family, third)
    composite = Composite(inputs, outputs)
    _, key = numba_funcify_and_cache_key(composite, node=composite.make_node(*inputs))
    assert key is not None
    assert len(outputs) == pointwise._n_outputs(family, third)


def test_cache_key_names_the_family_and_its_settings():
    def key(family, third=False):
        return point_cache_key(family, third, "source")

    assert key(negative_binomial()) == key(negative_binomial())
    assert key(binomial()) != key(binomial(link="probit"))
    assert key(students_t(df=4.0)) != key(students_t(df=5.0))
    assert key(gamma()) != key(gamma(), third=True)
    assert key(gamma()) != point_cache_key(gamma(), False, "other source")
    assert key(binomial()) != key(binomial().using_trials())
    # a density written outside the package may change without the package changing
    assert key(custom_family("mine", lambda y, eta, phis: -eta * eta)) is None

    class local(gamma):
        pass

    assert key(local()) is None


def test_a_point_function_not_on_disk_is_not_loaded():
    src = pointwise._point_source(gamma(), pointwise._n_outputs(gamma(), False), 3)
    assert pointwise._load(src, "point", pointwise.POINT_SIGNATURE, uuid.uuid4().hex) is None
    keys = [uuid.uuid4().hex, uuid.uuid4().hex]
    assert pointwise._load_cached(gamma(), pointwise._n_outputs(gamma(), False), keys) is None


def test_new_process_loads_point_functions_without_building_their_graphs():
    """A second process finds the point functions on disk (the first one compiled them or found
    them there): no graph is built (building one fails there) and numba loads each function
    instead of compiling it, with the number of row values it reads. The negative binomial's
    calls ψ."""
    code = textwrap.dedent(
        """
        import sys
        from glmm_ppl.engine import pointwise
        from glmm_ppl.families import negative_binomial, poisson
        if sys.argv[1] == "loaded":
            def no_graph(*args, **kwargs):
                raise AssertionError("the graph was built")
            pointwise._scalar_graph = no_graph
        for family in (poisson(), negative_binomial()):
            point, prep, _, m = pointwise._compile_point(family)
            print(point.cache_hits, prep.cache_hits, m)
        """
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, mode], capture_output=True, text=True, check=True
        ).stdout.split()[-6:]
        for mode in ("filled", "loaded")
    ]
    counts = [
        str(pointwise.pointwise_derivatives(f).n_hoisted) for f in (poisson(), negative_binomial())
    ]
    assert runs[1] == ["1", "1", counts[0], "1", "1", counts[1]]
    assert runs[0][2::3] == counts
