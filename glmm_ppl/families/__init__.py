"""Families: the distribution of the response given the random effects.

Use a family object (``binomial(link="probit")``) or its name (``"binomial"``) wherever a
family is asked for; :func:`get_family` turns names into objects. Users write their own by
subclassing :class:`Family` or with :func:`custom_family`.

=========================  =================================  ==================================
family                     response                           extra parameters (log scale)
=========================  =================================  ==================================
binomial                   0/1, or successes out of trials    —
poisson                    counts                             —
negative_binomial          counts (NB2)                       size
zi_poisson                 counts, zero-inflated              —
zi_negative_binomial       counts, zero-inflated              size
zi_binomial                binomial, zero-inflated            —
hurdle_poisson             counts, hurdle                     —
hurdle_negative_binomial   counts, hurdle                     size
hurdle_lognormal           y ≥ 0 (zeros + log-normal)         sigma
hurdle_beta                0 ≤ y < 1 (zeros + beta)           precision
gaussian                   real                               sigma
students_t                 real (df fixed)                    sigma
gamma                      y > 0                              shape
beta                       0 < y < 1                          precision
beta_binomial              successes out of trials            precision
censored_normal            real, left/right censored          sigma
cumulative                 ordered categories                 thresholds
=========================  =================================  ==================================
"""

from __future__ import annotations

from .base import Family
from .beta_binomial import beta_binomial
from .binomial import binomial
from .continuous import beta, censored_normal, gamma, gaussian, students_t
from .cumulative import cumulative
from .custom import custom_family
from .hurdle import hurdle_beta, hurdle_lognormal, hurdle_negative_binomial, hurdle_poisson
from .links import Link
from .negative_binomial import negative_binomial
from .poisson import poisson
from .zero_inflated import zi_binomial, zi_negative_binomial, zi_poisson

FAMILIES: dict[str, type[Family]] = {
    cls.name: cls
    for cls in (
        binomial,
        poisson,
        negative_binomial,
        zi_poisson,
        zi_negative_binomial,
        zi_binomial,
        hurdle_poisson,
        hurdle_negative_binomial,
        hurdle_lognormal,
        hurdle_beta,
        gaussian,
        students_t,
        gamma,
        beta,
        beta_binomial,
        censored_normal,
        cumulative,
    )
}
"""The built-in families by name: the names that ``family=`` accepts, mapped to their classes.

Examples
--------
>>> from glmm_ppl.families import FAMILIES
>>> FAMILIES["negative_binomial"]()
negative_binomial(link='log')
>>> len(FAMILIES)
17
"""

__all__ = ["Family", "Link", "custom_family", "get_family", "FAMILIES", *FAMILIES]


def get_family(family: str | Family) -> Family:
    """A family object from a family or its name.

    Names follow the classes (``"negative_binomial"``); bambi's ``"bernoulli"`` and
    ``"negativebinomial"`` and R's ``"Gamma"`` are accepted too.

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
    aliases = {
        "bernoulli": "binomial",
        "negativebinomial": "negative_binomial",
        "Gamma": "gamma",
        "ordinal": "cumulative",
    }
    if isinstance(family, str) and aliases.get(family, family) in FAMILIES:
        return FAMILIES[aliases.get(family, family)]()
    raise ValueError(
        f"unknown family {family!r}; valid names: {', '.join(sorted(FAMILIES))} "
        "(or pass a glmm_ppl.families.Family object)"
    )
