"""Rules of one to three points per dimension (``n_agq=1`` is the Laplace approximation): the
estimate maximises the rule's own log-likelihood."""

import warnings

import numpy as np
import pytest

import glmm_ppl as gp
from glmm_ppl.fitting.glm import central_differences
from glmm_ppl.fitting.graph import MixedModelGraph

FIXED = "y ~ sex * time"


@pytest.mark.parametrize("n_agq", [1, 2, 3])
def test_small_rule_estimate_maximises_its_log_likelihood(binary, fm1, n_agq):
    """The fixed-node equations put fm1's one-point estimate at D → 0 (logLik −455.55, the
    GLM's); now the reported log-likelihood is maximal: its Newton decrement vanishes and it
    beats the same rule at the 11-point estimates."""
    fit = gp.mixed_model(FIXED, "~ 1 | id", binary, "binomial", n_agq=n_agq)
    assert fit.opt_summary.converged
    graph = MixedModelGraph(fit.design, fit.family, n_agq, None)
    grad = central_differences(lambda t: graph(t)[1], fit.theta, 1e-6)
    decrement = 0.5 * grad @ np.linalg.solve(-fit.hessian, grad)  # log-lik units still to gain
    assert decrement < 1e-4
    assert fit.loglik >= graph(fm1.theta)[1]
    assert fit.loglik == pytest.approx(graph(fit.theta)[1], abs=1e-9)
    assert 0.5 * fm1.D.iloc[0, 0] < fit.D.iloc[0, 0] < 2 * fm1.D.iloc[0, 0]


def test_laplace_matches_lme4(binary, ref):
    """fm3 (``~ time | id``) with one point against lme4's Laplace fit (glmer, nAGQ = 1): the
    log-likelihood may be higher (both runs end on the correlation's boundary, where the
    likelihood is flat; lme4 stops earlier), never lower by more than 1e-3."""
    ref = ref["lme4_fm3_laplace"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # on the boundary: SingularFit / Convergence warnings
        fit = gp.mixed_model(FIXED, "~ time | id", binary, "binomial", n_agq=1)
    assert fit.loglik > ref["logLik"] - 1e-3
    assert fit.loglik - ref["logLik"] < 0.02
    np.testing.assert_allclose(fit.fixef().to_numpy(), list(ref["fixef"].values()), atol=0.03)
