"""Random-effects terms and their grouping factors, nested ones included.

``random`` is written as GLMMadaptive and nlme write it, ``"~ x | g"`` (``||``: independent
effects), with nesting ``"~ 1 | school/class"``; or as lme4 writes it, one or more
parenthesised terms ``"(x | school) + (1 | class)"``, ``"(1 | school/class)"``. A grouping
``a/b`` is the factors ``a`` and ``a:b`` (the pairs of ``a`` and ``b`` labels, so ``b``'s labels
may repeat across levels of ``a``), each with the term's effects, as lme4 expands it; ``a:b``
alone is the factor of the pairs.

:func:`random_terms` gives one :class:`Term` per grouping factor. Whether the factors are
nested in each other is a property of the data (:mod:`glmm_ppl.design.nested`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Term", "random_terms", "top_level_groups", "has_bar", "unquote"]

_BAR = re.compile(r"^(?P<terms>[^|]*?)\s*(?P<bar>\|\|?)\s*(?P<group>[^|]*?)$", re.DOTALL)
_NAME = r"(?:[A-Za-z_.][\w.]*|`[^`]+`)"
_GROUPING = re.compile(rf"^{_NAME}(?:\s*[/:]\s*{_NAME})*$")
_SUPPORTED = (
    "'~ x | g' (correlated), '~ x || g' (independent), '~ 1 | school/class' (nested) or "
    "lme4's '(x | school) + (1 | class)'"
)


def unquote(name: str) -> str:
    """A column name without the backquotes a formula may put around it (``"`my y`"``).

    Examples
    --------
    >>> unquote("`my y`"), unquote("y")
    ('my y', 'y')
    """
    name = name.strip()
    return name[1:-1] if len(name) > 1 and name[0] == name[-1] == "`" else name


@dataclass(frozen=True)
class Term:
    """The random effects of one grouping factor.

    Attributes
    ----------
    terms : str
        The effects as a one-sided formula (``"~ x"``; ``"~ 1"`` for intercepts).
    columns : tuple of str
        The grouping columns whose label combinations are the factor's levels (``("school",
        "class")`` for ``school:class``).
    diagonal : bool
        Independent effects (``||``).
    """

    terms: str
    columns: tuple[str, ...]
    diagonal: bool

    @property
    def name(self) -> str:
        """The factor's name, ``"school"`` or ``"school:class"``."""
        return ":".join(self.columns)


def top_level_groups(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of the parenthesised groups at depth 0 of ``text`` (``end`` is one past
    the closing parenthesis).

    Examples
    --------
    >>> top_level_groups("x + (1 | g) + I(a)")
    [(4, 11), (15, 18)]
    """
    out, depth, start = [], 0, 0
    for k, char in enumerate(text):
        if char == "(":
            if depth == 0:
                start = k
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced parentheses in {text.strip()!r}")
            if depth == 0:
                out.append((start, k + 1))
    if depth:
        raise ValueError(f"unbalanced parentheses in {text.strip()!r}")
    return out


def has_bar(inner: str) -> bool:
    """Whether ``inner`` has a ``|`` outside any parentheses of its own.

    Examples
    --------
    >>> has_bar("1 | g"), has_bar("I(a | b)")
    (True, False)
    """
    depth = 0
    for char in inner:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "|" and depth == 0:
            return True
    return False


def _one_term(text: str, shown: str) -> list[Term]:
    """The terms of ``"x | a/b"``: one per factor of the grouping."""
    m = _BAR.match(text.strip())
    effects = " ".join(m.group("terms").split()) if m else ""
    grouping = m.group("group").strip() if m else ""
    if m is None or not grouping or not effects:
        raise ValueError(
            f"the random-effects term {shown!r} needs effects and a grouping column: write "
            f"{_SUPPORTED}"
        )
    if re.search(r"\boffset\s*\(", effects):
        raise ValueError(f"offset(...) belongs in the fixed-effects formula, not in {shown!r}")
    if not _GROUPING.match(grouping):
        raise ValueError(
            f"the grouping of {shown!r} must be a column of data, or columns joined by '/' "
            f"(nested) or ':' (their combinations), got {grouping!r}"
        )
    diagonal = m.group("bar") == "||"
    effects = "~ " + effects
    out, columns = [], []
    for part in re.split(r"\s*/\s*", grouping):
        columns = columns + [unquote(c) for c in re.split(r"\s*:\s*", part)]
        out.append(Term(effects, tuple(columns), diagonal))
    return out


def random_terms(random: str) -> list[Term]:
    """The random-effects terms of ``random``, one per grouping factor, outermost grouping
    first as written.

    Raises
    ------
    ValueError
        For a term without a grouping, a grouping that is not columns joined by ``/`` or
        ``:``, text between lme4-style terms that is not ``+``, or two terms for one factor.

    Examples
    --------
    >>> [(t.terms, t.name, t.diagonal) for t in random_terms("~ time || id")]
    [('~ time', 'id', True)]
    >>> [(t.terms, t.name) for t in random_terms("~ 1 | school/class")]
    [('~ 1', 'school'), ('~ 1', 'school:class')]
    >>> [(t.terms, t.name) for t in random_terms("(x | school) + (1 | class)")]
    [('~ x', 'school'), ('~ 1', 'class')]
    """
    if not isinstance(random, str) or not random.strip():
        raise ValueError(f"random must look like {_SUPPORTED}, got {random!r}")
    text = random.strip().removeprefix("~").strip()
    groups = [(a, b) for a, b in top_level_groups(text) if has_bar(text[a + 1 : b - 1])]
    if not groups:
        if not has_bar(text):
            raise ValueError(f"random must look like {_SUPPORTED}, got {random!r}")
        terms = _one_term(text, random.strip())
    else:
        terms, end = [], 0
        for a, b in groups:
            between = text[end:a].strip()
            if between not in (("",) if end == 0 else ("+",)):
                raise ValueError(
                    f"random-effects terms must be added, as in '(1 | a) + (1 | b)'; got "
                    f"{random.strip()!r}"
                )
            terms += _one_term(text[a + 1 : b - 1], " ".join(text[a:b].split()))
            end = b
        if text[end:].strip():
            raise ValueError(
                f"random-effects terms must be added, as in '(1 | a) + (1 | b)'; got "
                f"{random.strip()!r}"
            )
    seen: dict[frozenset, Term] = {}
    for term in terms:
        key = frozenset(term.columns)
        if key in seen:
            g = term.name
            raise ValueError(
                f"several random-effects terms for {g}: write them as one, '(x | {g})' "
                f"(correlated random effects) or '(x || {g})' (independent: "
                f"'(1 | {g}) + (0 + x | {g})' is '(x || {g})')"
            )
        seen[key] = term
    return terms
