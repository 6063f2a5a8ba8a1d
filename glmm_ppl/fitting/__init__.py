"""From a design and a family to estimates: the parameter layout, the graph, the optimizer.

- :mod:`~glmm_ppl.fitting.parameters`: :class:`ParameterLayout`, where each block of ``θ`` sits
- :mod:`~glmm_ppl.fitting.penalty`: GLMMadaptive's Student-t penalty on the fixed effects
- :mod:`~glmm_ppl.fitting.graph`: :class:`MixedModelGraph`, the compiled PyTensor objective
- :mod:`~glmm_ppl.fitting.glm`: GLMs on arrays (starting values) and central differences
- :mod:`~glmm_ppl.fitting.optimize`: EM, Fisher scoring, L-BFGS and Newton (:func:`fit_mixed`),
  with its settings (:class:`Control`) and record (:class:`OptSummary`)
- :mod:`~glmm_ppl.fitting.identification`: data that do not identify the model, refused
  before the fit or named after it
"""

from .glm import central_differences, fit_glm_arrays
from .graph import MixedModelGraph
from .optimize import Control, ConvergenceWarning, OptSummary, fit_mixed
from .parameters import ParameterLayout
from .penalty import StudentTPenalty, make_penalty

__all__ = [
    "Control",
    "ConvergenceWarning",
    "MixedModelGraph",
    "OptSummary",
    "ParameterLayout",
    "StudentTPenalty",
    "central_differences",
    "fit_glm_arrays",
    "fit_mixed",
    "make_penalty",
]
