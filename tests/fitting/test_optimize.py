"""The optimizer (glmm_ppl.fitting.optimize): at a numerically singular D the engine reports a
log-likelihood of −∞ and Fisher scoring hands over to L-BFGS instead of reading zero scores as
convergence."""

import numpy as np

import glmm_ppl as gp
from glmm_ppl.families import binomial


def test_scoring_hands_over_at_a_numerically_singular_D():
    # a correlation within 1e-12 of 1 makes the rule meaningless: the engine reports -inf with a
    # complete result, and scoring hands over instead of reading zero scores as convergence
    from glmm_ppl.design.matrices import build_design
    from glmm_ppl.fitting.graph import MixedModelGraph
    from glmm_ppl.fitting.optimize import Control, _scoring

    fam = binomial()
    design = build_design("y ~ time", "~ time | id", gp.load_vignette("binary"), fam)
    graph = MixedModelGraph(design, fam, 11, None)
    r = 1.0 - 1e-12
    theta = graph.pack(np.zeros(2), np.array([[1.0, r], [r, 1.0]]), np.zeros(0))
    res = graph.engine.evaluate(design.X @ np.zeros(2), graph.unpack(theta)[1], np.zeros(0))
    assert res.loglik == -np.inf and res.second_moment_groups.shape == (100, 2, 2)
    assert _scoring(graph, theta, Control())[3] is False
