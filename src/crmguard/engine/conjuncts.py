"""Split a rule's SQL condition into its top-level AND terms, so that the terms many rules start
with can be tested once for all of them (see :func:`crmguard.engine.run.hits_sql`).

The conditions are the SQL crmguard's pySigma backend writes, with allow-list and look-back terms
added: string literals in single quotes (``''`` inside), identifiers in double quotes,
parentheses, ``CASE ... END`` and ``x BETWEEN a AND b``. What the splitter does not see through
stays one term, which is always correct: only the sharing is lost.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def conjuncts(sql: str) -> list[str]:
    """The terms whose AND is ``sql``: its top-level AND operands, those that are themselves a
    parenthesised AND split in turn, each without redundant outer parentheses. A condition with a
    top-level OR is one term (SQL's AND binds tighter). Returns the terms in order."""
    text = _unwrap(sql.strip())
    if len(_split(text, "OR")) > 1:
        return [text]
    terms = _split(text, "AND")
    if len(terms) == 1:
        return [text]
    return [t for term in terms for t in conjuncts(term)]


def _unwrap(text: str) -> str:
    """``text`` without the parentheses that enclose all of it."""
    while text.startswith("(") and _closing(text) == len(text) - 1:
        text = text[1:-1].strip()
    return text


def _closing(text: str) -> int:
    """Index of the parenthesis closing the one ``text`` starts with (-1 when unbalanced)."""
    depth = 0
    for i, kind, _ in _tokens(text):
        if kind == "(":
            depth += 1
        elif kind == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _split(text: str, op: str) -> list[str]:
    """``text`` cut at its top-level ``op`` keywords (AND or OR; the AND of a BETWEEN is not one).
    Returns ``[text]`` when it cannot be cut cleanly."""
    parts, depth, start, between = [], 0, 0, 0
    for i, kind, word in _tokens(text):
        if kind in ("(", "CASE"):
            depth += 1
        elif kind in (")", "END"):
            depth -= 1
        elif depth == 0 and word == "BETWEEN":
            between += 1
        elif depth == 0 and word == op:
            if op == "AND" and between:
                between -= 1
                continue
            parts.append(text[start:i].strip())
            start = i + len(op)
    parts.append(text[start:].strip())
    return parts if depth == 0 and all(parts) else [text]


def _tokens(text: str) -> Iterator[tuple[int, str, str]]:
    """Yield (index, kind, upper-cased word) for the parentheses and words of ``text`` outside
    quotes; kind is ``(``, ``)``, ``CASE``, ``END`` or ``word``."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            j = i + 1
            while j < n and not (text[j] == c and not (j + 1 < n and text[j + 1] == c)):
                j += 2 if text[j] == c else 1
            i = j + 1
        elif c in "()":
            yield i, c, c
            i += 1
        elif c.isalpha() or c == "_":
            m = _WORD.match(text, i)
            assert m is not None
            word = m.group().upper()
            if i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_."):
                yield i, word if word in ("CASE", "END") else "word", word
            i = m.end()
        else:
            i += 1
