"""One formula with the random effects in it, as bambi and lme4 write them.

``"y ~ sex * time + (time | id)"`` holds the fixed effects and, in parentheses, the random
effects of one grouping column: ``(1 | g)`` (random intercepts), ``(x | g)`` (correlated
intercepts and slopes) or ``(x || g)`` (independent ones). :func:`split_bambi_formula` takes
the random-effects term out, leaving the fixed-effects formula and the ``random`` formula
that :func:`glmm_ppl.mixed_model` reads (``"~ x | g"``).

Supported: one random-effects term, for one grouping column. Several terms for the same
group (``(1 | id) + (0 + time | id)``) or terms for several groups are refused with an error
that says what to write instead.
"""

from __future__ import annotations

import re

__all__ = ["split_bambi_formula"]

_TERM = re.compile(r"^(?P<terms>[^|]*?)\s*(?P<bar>\|\|?)\s*(?P<group>[^|]*?)$", re.DOTALL)
_GROUP = re.compile(r"^(?:[A-Za-z_.][\w.]*|`[^`]+`)$")
_SUPPORTED = "'(1 | g)', '(x | g)' (correlated) or '(x || g)' (independent)"


def _top_level_groups(rhs: str) -> list[tuple[int, int]]:
    """``(start, end)`` of the parenthesised groups at depth 0 of ``rhs`` (``end`` is one past
    the closing parenthesis)."""
    out, depth, start = [], 0, 0
    for k, char in enumerate(rhs):
        if char == "(":
            if depth == 0:
                start = k
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced parentheses in {rhs.strip()!r}")
            if depth == 0:
                out.append((start, k + 1))
    if depth:
        raise ValueError(f"unbalanced parentheses in {rhs.strip()!r}")
    return out


def _has_bar(inner: str) -> bool:
    """Whether ``inner`` has a ``|`` outside any parentheses of its own."""
    depth = 0
    for char in inner:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "|" and depth == 0:
            return True
    return False


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
        for a, b in _top_level_groups(rhs)
        if _has_bar(rhs[a + 1 : b - 1]) and not re.search(r"[\w.)\]]\s*$", rhs[:a])
    ]
    if not terms:
        return formula, None
    parsed = []
    for a, b in terms:
        text = " ".join(rhs[a:b].split())
        before, after = rhs[:a].rstrip(), rhs[b:].lstrip()
        if (before and not before.endswith("+")) or after[:1] not in ("", "+"):
            raise ValueError(
                f"the random-effects term {text} must be added to the fixed-effects terms, as "
                f"in 'y ~ x + {text}'; got {formula.strip()!r}"
            )
        m = _TERM.match(rhs[a + 1 : b - 1].strip())
        re_terms = " ".join(m.group("terms").split()) if m else ""
        group = m.group("group").strip() if m else ""
        if m is None or not re_terms or not group:
            raise ValueError(
                f"the random-effects term {text} needs terms and a grouping column: "
                f"write {_SUPPORTED}"
            )
        if not _GROUP.match(group):
            raise ValueError(
                f"the grouping of {text} must be one column of data, got {group!r} (nested or "
                f"crossed groupings are not supported); write {_SUPPORTED}"
            )
        parsed.append((text, re_terms, m.group("bar"), group))
    if len(parsed) > 1:
        groups = list(dict.fromkeys(p[3] for p in parsed))
        listed = ", ".join(p[0] for p in parsed)
        if len(groups) > 1:
            raise ValueError(
                f"random effects for several grouping columns ({', '.join(groups)}) in "
                f"{listed}: mixed_model fits one grouping column, with one term {_SUPPORTED}"
            )
        g = groups[0]
        raise ValueError(
            f"several random-effects terms for {g}: {listed}; mixed_model takes one term, "
            f"'(x | {g})' (correlated random effects) or '(x || {g})' (independent: "
            f"'(1 | {g}) + (0 + x | {g})' is '(x || {g})')"
        )
    _, re_terms, bar, group = parsed[0]
    a, b = terms[0]
    rest = rhs[:a].rstrip().removesuffix("+").rstrip() + " " + rhs[b:].lstrip()
    rest = re.sub(r"^\s*\+", "", rest.strip()).strip() or "1"
    return f"{lhs.strip()} ~ {rest}", f"~ {re_terms} {bar} {group}"
