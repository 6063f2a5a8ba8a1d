"""The engine's compiled point function of a family (glmm_ppl.engine.pointwise and
glmm_ppl.engine.numba_scalars): softplus and sigmoid sharing exp(−|η|) far in the tails, ψ₁ in
nopython mode, and the compiled function loaded from numba's on-disk cache by a new process."""

import subprocess
import sys

import numpy as np
import pytensor.tensor as pt
from scipy import special

from glmm_ppl.engine.pointwise import pointwise_derivatives
from glmm_ppl.families import binomial


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
