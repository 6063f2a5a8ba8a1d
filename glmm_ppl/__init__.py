"""glmm_ppl: generalized linear mixed models by adaptive Gauss–Hermite quadrature, on PyTensor.

Examples
--------
>>> import glmm_ppl as gp
>>> fm1 = gp.mixed_model("y ~ sex * time", "~ 1 | id", gp.load_vignette("binary"), "binomial")
>>> fm1.fixef().index.tolist()
['(Intercept)', 'sexfemale', 'time', 'sexfemale:time']
"""

from __future__ import annotations

import gc as _gc
import os as _os
import warnings as _warnings
from contextlib import contextmanager as _contextmanager

# A pip install of PyTensor has no BLAS to link against; the model's products are small and
# NumPy's own BLAS does them, so the import-time warning says nothing users can act on.
_warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
# ArviZ 0.23 announces a coming refactor of its own API with a FutureWarning when it is first
# imported (PyMC imports it when a penalty, prior or sampler is used): nothing in a fit depends
# on it, and a user of this package cannot act on it.
_warnings.filterwarnings(
    "ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning
)


@_contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: importing PyTensor, numba and SciPy creates some
    200,000 long-lived objects and no garbage, which it would traverse again and again."""
    was_enabled = _gc.isenabled()
    _gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            _gc.enable()


with _gc_paused():
    # the kernels' disk cache (engine/numba_cache.py) is set up before any kernel is defined
    from . import engine  # noqa: F401, I001
    from . import bayes, families
    from .api import QuadratureWarning, SingularFitWarning, mixed_model
    from .data import load_schools, load_vignette
    from .design import cr_marg_probs, cr_setup
    from .distributed import RowsOnWorkersError, ShardLostError
    from .fitting import Control, ConvergenceWarning, OptSummary
    from .postfit import (
        BootstrapResult,
        GLMFit,
        MixedModelFit,
        anova,
        bootstrap,
        check_quadrature,
        effect_plot_data,
        glance,
        glm,
        marginal_coefs,
        plot_effects,
        plot_residuals,
        profile,
        scaled_residuals,
        scoring_rules,
        tidy,
        to_marginaleffects,
    )

# Those objects live as long as the process. Left to the collector, they are traversed at every
# full collection and again at exit: half a second of a short script's run. As the Python docs
# advise for long-lived objects, they are moved out of its reach (it also holds whatever existed
# before this import, so that much memory stays until exit if it becomes cyclic garbage).
# GLMM_PPL_GC_FREEZE=0 leaves the collector as it was.
if _os.environ.get("GLMM_PPL_GC_FREEZE", "1") != "0":
    _gc.freeze()


# The Bayesian side needs PyMC, ArviZ and nutpie (seconds to import) and a MAP fit needs none of
# them: its names are imported on first use.
def __getattr__(name: str):
    if name not in bayes.__all__:
        raise AttributeError(f"module 'glmm_ppl' has no attribute {name!r}")
    with _gc_paused():
        value = getattr(bayes, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0"

__all__ = [
    "mixed_model",
    "glm",
    "anova",
    "bootstrap",
    "families",
    "load_vignette",
    "load_schools",
    "cr_setup",
    "cr_marg_probs",
    "marginal_coefs",
    "effect_plot_data",
    "plot_effects",
    "plot_residuals",
    "scaled_residuals",
    "scoring_rules",
    "check_quadrature",
    "profile",
    "to_marginaleffects",
    "tidy",
    "glance",
    "MixedModelFit",
    "GLMFit",
    "BootstrapResult",
    "Control",
    "OptSummary",
    "ConvergenceWarning",
    "QuadratureWarning",
    "SingularFitWarning",
    "RowsOnWorkersError",
    "ShardLostError",
    "__version__",
    *bayes.__all__,  # imported on first use
]
