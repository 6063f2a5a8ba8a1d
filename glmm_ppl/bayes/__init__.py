"""The Bayesian side: PyMC priors and models, NUTS, ArviZ output, comparisons.

Its names are imported on first use (``import glmm_ppl`` does not load PyMC, ArviZ or nutpie).

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

from importlib import import_module as _import_module

#: the public names and the modules that define them, imported on first use (PyMC, ArviZ and
#: nutpie take seconds to import)
_WHERE = {
    "compare_map_mcmc": "compare",
    "compare_with_bambi": "bambi_bridge",
    "plot_compare": "compare",
    "plot_prior_sensitivity": "sensitivity",
    "prior_sensitivity": "sensitivity",
    "psens": "sensitivity",
    "sample": "sampling",
    "sample_random_effects": "random_effects",
    "to_inference_data": "sampling",
    "to_pymc": "pymc_model",
}
__all__ = sorted(_WHERE)


def __dir__() -> list[str]:
    return sorted(set(__all__) | {k for k in globals() if not k.startswith("_")})


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
