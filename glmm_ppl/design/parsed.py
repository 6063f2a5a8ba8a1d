"""Formulas parsed once: what formulaic reads in a formula string, kept per string.

A fit parses the same formula strings again and again (the fixed and random effects of every
refit, bootstrap or profile). Parsing does not depend on the data, so the results are kept in
bounded caches keyed by the string: :func:`required_names`, the variables formulaic needs;
:func:`lookup_factors`, the factors when every one of them is a column looked up by name.
Errors are not kept: a formula that formulaic refuses raises its error at every call.
"""

from __future__ import annotations

from functools import lru_cache

from formulaic import Formula
from formulaic.formula import SimpleFormula
from formulaic.parser.types import Factor

__all__ = ["required_names", "lookup_factors"]

_LITERAL = Factor.EvalMethod.LITERAL

#: How many formula strings the caches keep (least recently used ones are dropped).
CACHE_SIZE = 512


@lru_cache(maxsize=CACHE_SIZE)
def required_names(formula: str) -> tuple[str, ...]:
    """The names of the variables formulaic needs to build ``formula`` (its
    ``required_variables``), sorted.

    Raises
    ------
    formulaic.errors.FormulaicError
        For a formula formulaic cannot parse.

    Examples
    --------
    >>> required_names("~ sex * log(time)")
    ('sex', 'time')
    """
    return tuple(sorted(str(v) for v in Formula(formula).required_variables))


@lru_cache(maxsize=CACHE_SIZE)
def lookup_factors(formula: str) -> frozenset[str] | None:
    """The factors of ``formula`` when each is a data column looked up by name (no function
    call, transform or literal), else None (also for a formula formulaic cannot parse).

    Examples
    --------
    >>> sorted(lookup_factors("~ sex * time"))
    ['sex', 'time']
    >>> lookup_factors("~ log(time)") is None
    True
    """
    try:
        parsed = Formula(formula)
    except Exception:  # any refusal: the caller goes through formulaic, which reports it
        return None
    if not isinstance(parsed, SimpleFormula):
        return None
    factors = {factor for term in parsed for factor in term.factors}
    factors -= {f for f in factors if f.eval_method is _LITERAL and f.expr == "1"}  # intercept
    if any(f.eval_method is not Factor.EvalMethod.LOOKUP for f in factors):
        return None
    return frozenset(f.expr for f in factors)
