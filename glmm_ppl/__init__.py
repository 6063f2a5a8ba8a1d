"""glmm_ppl: generalized linear mixed models by adaptive Gauss–Hermite quadrature, on PyTensor.

Examples
--------
>>> import glmm_ppl as gp
>>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
>>> fm1.fixef().index.tolist()
['(Intercept)', 'sexfemale', 'time', 'sexfemale:time']
"""

from __future__ import annotations

import warnings as _warnings

# A pip install of PyTensor has no BLAS to link against; the model's products are small and
# NumPy's own BLAS does them, so the import-time warning says nothing users can act on.
_warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")

# before any kernel is defined: the kernels' disk cache follows every module of the package
from . import numba_cache  # noqa: E402, F401, I001
from . import families  # noqa: E402
from .api import SingularFitWarning, mixed_model  # noqa: E402
from .bayes import (  # noqa: E402
    compare_map_mcmc,
    compare_with_bambi,
    plot_compare,
    sample,
    to_inference_data,
    to_pymc,
)
from .datasets import load_vignette  # noqa: E402
from .effects import effect_plot_data, plot_effects  # noqa: E402
from .fit import Control, ConvergenceWarning, OptSummary  # noqa: E402
from .glm import GLMFit, glm  # noqa: E402
from .inference import anova  # noqa: E402
from .marginal import marginal_coefs  # noqa: E402
from .ordinal import cr_marg_probs, cr_setup  # noqa: E402
from .quadcheck import check_quadrature  # noqa: E402
from .random_effects import sample_random_effects  # noqa: E402
from .results import MixedModelFit  # noqa: E402
from .scoring import scoring_rules  # noqa: E402
from .sensitivity import plot_prior_sensitivity, prior_sensitivity, psens  # noqa: E402
from .simulate import scaled_residuals  # noqa: E402
from .tidy import glance, tidy  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "mixed_model",
    "glm",
    "anova",
    "families",
    "load_vignette",
    "cr_setup",
    "cr_marg_probs",
    "marginal_coefs",
    "effect_plot_data",
    "plot_effects",
    "scaled_residuals",
    "scoring_rules",
    "check_quadrature",
    "tidy",
    "glance",
    "to_pymc",
    "sample",
    "to_inference_data",
    "compare_map_mcmc",
    "compare_with_bambi",
    "plot_compare",
    "prior_sensitivity",
    "plot_prior_sensitivity",
    "psens",
    "sample_random_effects",
    "MixedModelFit",
    "GLMFit",
    "Control",
    "OptSummary",
    "ConvergenceWarning",
    "SingularFitWarning",
    "__version__",
]
