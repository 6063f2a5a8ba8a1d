"""One formula with the random effects in it, as bambi and lme4 write them.

``"y ~ sex * time + (time | id)"`` holds the fixed effects and, in parentheses, the random
effects of a grouping column: ``(1 | g)`` (random intercepts), ``(x | g)`` (correlated
intercepts and slopes) or ``(x || g)`` (independent ones), and of nested groupings,
``(1 | school/class)`` or ``(1 | school) + (1 | class)``. :func:`split_bambi_formula` takes the
random-effects terms out, leaving the fixed-effects formula and the ``random`` formula that
:func:`glmm_ppl.mixed_model` reads (:mod:`glmm_ppl.design.terms`). Several terms for the same
group (``(1 | id) + (0 + time | id)``) are refused with an error that says what to write.
"""

from __future__ import annotations

import re

from .terms import has_bar, random_terms, top_level_groups

__all__ = ["split_bambi_formula"]


def split_bambi_formula(formula: str) -> tuple[str, str | None]:
    """Split ``"y ~ terms + (re_terms | g)"`` into the fixed-effects formula and ``random``.

    Returns ``(fixed, random)``; ``random`` is ``"~ re_terms | g"`` (``||`` kept), or None
    when the formula has no random-effects term (``fixed`` is then ``formula`` unchanged).
    Spacing inside the parentheses does not matter (``(1|id)``, ``( time || id )``). A
    parenthesised group right after a name is a function call (``I(a | b)``), not a term.

    Raises
    ------
    ValueError
        For several random-effects terms (for one grouping column or for several), a term
        without terms or without a grouping column, a grouping expression that is not a
        column name (``a:b``, ``a/b``), or a term that is not added to the others
        (``y ~ x * (1 | g)``).

    Examples
    --------
    >>> split_bambi_formula("y ~ sex * time + (time | id)")
    ('y ~ sex * time', '~ time | id')
    >>> split_bambi_formula("y ~ (1|id)")
    ('y ~ 1', '~ 1 | id')
    >>> split_bambi_formula("y ~ x")
    ('y ~ x', None)
    """
    if not isinstance(formula, str) or formula.count("~") != 1:
        return formula, None  # the fixed-effects parser says what is wrong with it
    lhs, rhs = formula.split("~")
    terms = [
        (a, b)
        for a, b in top_level_groups(rhs)
        if has_bar(rhs[a + 1 : b - 1]) and not re.search(r"[\w.)\]]\s*$", rhs[:a])
    ]
    if not terms:
        return formula, None
    texts = []
    for a, b in terms:
        text = " ".join(rhs[a:b].split())
        before, after = rhs[:a].rstrip(), rhs[b:].lstrip()
        if (before and not before.endswith("+")) or after[:1] not in ("", "+"):
            raise ValueError(
                f"the random-effects term {text} must be added to the fixed-effects terms, as "
                f"in 'y ~ x + {text}'; got {formula.strip()!r}"
            )
        texts.append(text)
    random = " + ".join(texts)
    parsed = random_terms(random)  # the terms' own errors
    rest, end = [], 0
    for a, b in terms:
        rest.append(rhs[end:a])
        end = b
    rest = re.sub(r"(\+\s*)+\+", "+", "".join(rest) + rhs[end:])
    rest = re.sub(r"^\s*\+|\+\s*$", "", rest.strip()).strip() or "1"
    if len(parsed) == 1:  # one factor: written as GLMMadaptive writes it
        term = parsed[0]
        inner = _grouping_of(texts[0])
        random = f"{term.terms} {'||' if term.diagonal else '|'} {inner}"
    return f"{lhs.strip()} ~ {rest}", random


def _grouping_of(text: str) -> str:
    """The grouping of one parenthesised term as written (``"(x | g)"`` → ``"g"``)."""
    return text[1:-1].rsplit("|", 1)[1].strip()
