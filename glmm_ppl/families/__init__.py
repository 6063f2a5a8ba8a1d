"""Families: the distribution of the response given the random effects.

Use a family object (``binomial(link="probit")``) or its name (``"binomial"``) wherever a
family is asked for; :func:`get_family` turns names into objects.
"""

from __future__ import annotations

from .base import Family
from .binomial import binomial
from .links import Link
from .poisson import poisson

__all__ = ["Family", "Link", "binomial", "poisson", "get_family", "FAMILIES"]

FAMILIES: dict[str, type[Family]] = {"binomial": binomial, "poisson": poisson}


def get_family(family: str | Family) -> Family:
    """A family object from a family or its name.

    Raises
    ------
    ValueError
        Listing the valid names when ``family`` is an unknown name.

    Examples
    --------
    >>> get_family("poisson")
    poisson(link='log')
    """
    if isinstance(family, Family):
        return family
    if isinstance(family, type) and issubclass(family, Family):
        return family()
    if isinstance(family, str) and family in FAMILIES:
        return FAMILIES[family]()
    raise ValueError(
        f"unknown family {family!r}; valid names: {', '.join(sorted(FAMILIES))} "
        "(or pass a glmm_ppl.families.Family object)"
    )
