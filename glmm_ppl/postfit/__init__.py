"""After the fit: the fit object and what is computed from it.

- :mod:`~glmm_ppl.postfit.results`: :class:`MixedModelFit`, the immutable fit;
  :mod:`~glmm_ppl.postfit.uncertainty`: its covariance and Wald intervals
- :mod:`~glmm_ppl.postfit.summary`, :mod:`~glmm_ppl.postfit.tidy`: its summary and tables
- :mod:`~glmm_ppl.postfit.predict`, :mod:`~glmm_ppl.postfit.marginal`,
  :mod:`~glmm_ppl.postfit.effects`: predictions, marginal coefficients, effect plots
- :mod:`~glmm_ppl.postfit.simulate`, :mod:`~glmm_ppl.postfit.residual_plot`,
  :mod:`~glmm_ppl.postfit.scoring_rules`: simulation, simulated residuals and their plot,
  scoring rules
- :mod:`~glmm_ppl.postfit.anova`, :mod:`~glmm_ppl.postfit.wald`,
  :mod:`~glmm_ppl.postfit.sandwich`: likelihood-ratio and Wald tests, robust covariance
- :mod:`~glmm_ppl.postfit.profile`, :mod:`~glmm_ppl.postfit.bootstrap`: profile-likelihood
  intervals, the parametric bootstrap
- :mod:`~glmm_ppl.postfit.margins`: the adapter for the ``marginaleffects`` package
- :mod:`~glmm_ppl.postfit.quadcheck`: the log-likelihood under finer rules
- :mod:`~glmm_ppl.postfit.glm`: the GLM without random effects (:func:`glm`)
"""

from .anova import anova
from .bootstrap import BootstrapResult, bootstrap
from .effects import effect_plot_data, plot_effects
from .glm import GLMFit, glm
from .marginal import marginal_coefs
from .margins import to_marginaleffects
from .profile import profile
from .quadcheck import check_quadrature
from .residual_plot import plot_residuals
from .results import MixedModelFit
from .scoring_rules import scoring_rules
from .simulate import scaled_residuals
from .tidy import glance, tidy

__all__ = [
    "BootstrapResult",
    "GLMFit",
    "MixedModelFit",
    "anova",
    "bootstrap",
    "check_quadrature",
    "effect_plot_data",
    "glance",
    "glm",
    "marginal_coefs",
    "plot_effects",
    "plot_residuals",
    "profile",
    "scaled_residuals",
    "scoring_rules",
    "tidy",
    "to_marginaleffects",
]
