"""Extended correlation conditions: a boolean expression over a correlation's base rules
(Sigma's ``condition: rule_a and not rule_b`` for temporal correlations).

An expression is a nested tuple, hashable so compiled rules stay frozen: ``("rule", name)``,
``("not", e)``, ``("and", e1, e2, ...)`` or ``("or", e1, e2, ...)``. It is read over the set of
rules *present* in a window (with at least one match in it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sigma.correlations import (
    CorrelationConditionAND,
    CorrelationConditionNOT,
    CorrelationConditionOR,
    SigmaRuleReference,
)

Expr = tuple[Any, ...]


def from_sigma(node: object, names: Mapping[str, str]) -> Expr:
    """Convert pySigma's parsed extended condition ``node`` to an expression, naming each rule by
    ``names`` (reference → rule name; a reference not in it keeps its text)."""
    if isinstance(node, SigmaRuleReference):
        return ("rule", names.get(node.reference, node.reference))
    kinds = {CorrelationConditionAND: "and", CorrelationConditionOR: "or", CorrelationConditionNOT: "not"}
    for cls, kind in kinds.items():
        if isinstance(node, cls):
            return (kind, *(from_sigma(a, names) for a in node.args))
    raise ValueError(f"unexpected node in an extended correlation condition: {node!r}")


def rules_of(expr: Expr) -> list[str]:
    """The rule names ``expr`` reads, in order of first mention."""
    if expr[0] == "rule":
        return [expr[1]]
    out: list[str] = []
    for arg in expr[1:]:
        out += [r for r in rules_of(arg) if r not in out]
    return out


def holds(expr: Expr, present: set[str]) -> bool:
    """Whether ``expr`` is true when exactly the rules in ``present`` have a match."""
    kind = expr[0]
    if kind == "rule":
        return expr[1] in present
    if kind == "not":
        return not holds(expr[1], present)
    results = (holds(a, present) for a in expr[1:])
    return all(results) if kind == "and" else any(results)


def to_sql(expr: Expr, flag: Callable[[str], str]) -> str:
    """SQL for ``expr``, where ``flag(rule)`` is a boolean SQL expression: the rule is present."""
    kind = expr[0]
    if kind == "rule":
        return flag(expr[1])
    if kind == "not":
        return f"(NOT {to_sql(expr[1], flag)})"
    return "(" + f" {kind.upper()} ".join(to_sql(a, flag) for a in expr[1:]) + ")"


def to_text(expr: Expr, nested: bool = False) -> str:
    """``expr`` as a Sigma user writes it (parenthesised when ``nested`` in another)."""
    kind = expr[0]
    if kind == "rule":
        return str(expr[1])
    if kind == "not":
        return f"not {to_text(expr[1], True)}"
    text = f" {kind} ".join(to_text(a, True) for a in expr[1:])
    return f"({text})" if nested else text


def monotone(expr: Expr) -> bool:
    """Whether more present rules can only make ``expr`` true (no ``not``)."""
    return expr[0] == "rule" or (expr[0] != "not" and all(monotone(a) for a in expr[1:]))


def conjunction(expr: Expr) -> list[str] | None:
    """The rules of ``expr`` when it is only rules joined by ``and`` (in the order written), else None."""
    if expr[0] == "rule":
        return [expr[1]]
    if expr[0] != "and":
        return None
    out: list[str] = []
    for arg in expr[1:]:
        part = conjunction(arg)
        if part is None:
            return None
        out += part
    return out
