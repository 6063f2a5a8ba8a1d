"""The Bayesian side: PyMC priors and models, NUTS, ArviZ output, comparisons.

Imported on first use (``import glmm_ppl`` does not load PyMC, ArviZ or nutpie).

- :mod:`~glmm_ppl.bayes.priors`: priors as PyMC distributions, checked against the model
- :mod:`~glmm_ppl.bayes.variables`: the posterior's variables and coordinates
- :mod:`~glmm_ppl.bayes.pymc_model`: :func:`to_pymc`, the marginal (or latent) PyMC model
- :mod:`~glmm_ppl.bayes.nuts`, :mod:`~glmm_ppl.bayes.sampling`: NUTS by nutpie or PyMC
  (:func:`sample`), a MAP fit as ``InferenceData`` (:func:`to_inference_data`)
- :mod:`~glmm_ppl.bayes.random_effects`: draws of the random effects given ``θ``
- :mod:`~glmm_ppl.bayes.compare`, :mod:`~glmm_ppl.bayes.bambi_bridge`: MAP against MCMC,
  against bambi
- :mod:`~glmm_ppl.bayes.sensitivity`: prior sensitivity (MAP refits, power scaling)
"""

from .bambi_bridge import compare_with_bambi
from .compare import compare_map_mcmc, plot_compare
from .pymc_model import to_pymc
from .random_effects import sample_random_effects
from .sampling import sample, to_inference_data
from .sensitivity import plot_prior_sensitivity, prior_sensitivity, psens

__all__ = [
    "compare_map_mcmc",
    "compare_with_bambi",
    "plot_compare",
    "plot_prior_sensitivity",
    "prior_sensitivity",
    "psens",
    "sample",
    "sample_random_effects",
    "to_inference_data",
    "to_pymc",
]
