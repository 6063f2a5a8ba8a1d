"""From formulas and a data frame to arrays: the design of a model, kept for new data.

- :mod:`~glmm_ppl.design.formula`: the one-formula (lme4) form split into fixed and random parts
- :mod:`~glmm_ppl.design.terms`: the random-effects terms and their grouping factors
- :mod:`~glmm_ppl.design.nested`: several grouping factors (nested or crossed): their order and
  the rows sorted by them
- :mod:`~glmm_ppl.design.factor_checks`: random effects of several factors that the data cannot
  identify, refused
- :mod:`~glmm_ppl.design.response`: the response and the family's data columns (trials, censoring)
- :mod:`~glmm_ppl.design.matrices`: the response, ``X``, ``Z``, groups, offsets and weights of a
  fit (:class:`Design`)
- :mod:`~glmm_ppl.design.rows`: the columns a model uses, checked, and its rows without missing
  values
- :mod:`~glmm_ppl.design.parsed`: what formulaic reads in a formula string, parsed once per
  string
- :mod:`~glmm_ppl.design.spec_cache`: model specs kept per formula and column types, and the
  matrices built again from them
- :mod:`~glmm_ppl.design.newdata`: the same columns built for new data
- :mod:`~glmm_ppl.design.ordinal`: the continuation-ratio layout of an ordinal response
"""

from .formula import split_bambi_formula
from .matrices import Design, build_design, complete_rows, split_fixed
from .newdata import ModelArrays, model_arrays
from .ordinal import cr_marg_probs, cr_setup
from .response import parse_response

__all__ = [
    "Design",
    "ModelArrays",
    "build_design",
    "complete_rows",
    "cr_marg_probs",
    "cr_setup",
    "model_arrays",
    "parse_response",
    "split_bambi_formula",
    "split_fixed",
]
