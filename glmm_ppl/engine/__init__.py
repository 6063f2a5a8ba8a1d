"""The numerical core: quadrature rules, compiled kernels, the AGQ engine and the PyTensor Op.

Its modules import neither pandas nor PyMC: arrays in, arrays out.

- :mod:`~glmm_ppl.engine.quadrature`: Gauss–Hermite rules and their products
- :mod:`~glmm_ppl.engine.covariance`: ``D`` from its log-Cholesky parameters ``θ_D`` and back
- :mod:`~glmm_ppl.engine.pointwise`: a family's log density and its derivatives, compiled
- :mod:`~glmm_ppl.engine.kernels`: the numba loops over groups (modes, nodes, sums)
- :mod:`~glmm_ppl.engine.agq`: :class:`AGQ`, the marginal log-likelihood of one data set
- :mod:`~glmm_ppl.engine.multilevel`: ``MultilevelAGQ``, the same with nested grouping factors
  (its kernels in :mod:`~glmm_ppl.engine.multilevel_kernels`; imported when first needed)
- :mod:`~glmm_ppl.engine.ops`: :class:`AGQLogLik`, the engine as a PyTensor Op
- :mod:`~glmm_ppl.engine.log_density`: :class:`LogDensity`, the density of ``θ`` for samplers
- :mod:`~glmm_ppl.engine.numba_cache`: the kernels' disk cache, renewed by any change to the
  package (imported first, before any kernel is defined)
"""

from . import numba_cache  # noqa: F401, I001  (before any kernel is defined)
from .agq import AGQ, AGQResult
from .covariance import D_to_theta, n_theta, theta_names, theta_to_D, theta_to_L
from .log_density import LogDensity
from .ops import AGQLogLik
from .pointwise import PointwiseDerivatives, pointwise_derivatives
from .quadrature import gauss_hermite, product_rule

__all__ = [
    "AGQ",
    "AGQLogLik",
    "AGQResult",
    "D_to_theta",
    "LogDensity",
    "PointwiseDerivatives",
    "gauss_hermite",
    "n_theta",
    "pointwise_derivatives",
    "product_rule",
    "theta_names",
    "theta_to_D",
    "theta_to_L",
]
