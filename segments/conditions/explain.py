"""Why a condition matched a person or not, node by node.

`condition_explain(condition, facts)` walks the typed tree and decides every node with the
compiled predicate of that node over the same facts the audience check uses, so a node's
`passed` is by construction what the predicate says; the walker only adds words and the
person's actual values:

    all[1]: export_clicked count 2, needs gte 3 within 30 days
    all[0]: plan is "free", needs eq "pro"

Paths use the condition's own JSON shape (`all[2]`, `any[0].not`, …). Reads facts only; an
event count it reports may run the same indexed count query the predicate would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from segments.conditions.predicate import PersonFacts, compile_predicate
from segments.conditions.tree import (
    AllOf,
    AnyOf,
    AttributeCondition,
    Condition,
    ContextCondition,
    EventCondition,
    Not,
    PropertyFilter,
    SegmentCondition,
)

# Nested segment explanations stop here (segments may refer to segments).
MAX_SEGMENT_EXPLAIN_DEPTH = 3


@dataclass(frozen=True)
class NodeExplanation:
    """One node: where it is, whether it held for the person, and what was compared."""

    path: str
    passed: bool
    text: str
    actual: Any = None
    children: tuple[NodeExplanation, ...] = ()
    kind: str = "leaf"

    def failures(self) -> list[NodeExplanation]:
        """The nodes that made this one fail, deepest first-hand reasons (empty when passed)."""
        if self.passed:
            return []
        if self.kind in ("all", "any"):
            found: list[NodeExplanation] = []
            for child in self.children:
                found += child.failures()
            return found or [self]
        return [self]

    def message(self) -> str:
        return f"{self.path}: {self.text}" if self.path else self.text

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"path": self.path, "passed": self.passed, "text": self.text}
        if self.kind == "leaf" and self.actual is not None:
            body["actual"] = self.actual
        if self.children:
            body["children"] = [child.as_dict() for child in self.children]
        return body


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _needs(op: Any, value: Any) -> str:
    if str(op) in ("is_set", "is_not_set"):
        return f"needs {op}"
    if str(op) == "between" and isinstance(value, tuple | list) and len(value) == 2:
        return f"needs between {_show(value[0])} and {_show(value[1])}"
    return f"needs {op} {_show(value)}"


def _where(where: tuple[PropertyFilter, ...]) -> str:
    if not where:
        return ""
    return " with " + " and ".join(f"{f.property} {_needs(f.op, f.value)[6:]}" for f in where)


def _is(value: Any) -> str:
    return "is not set" if value is None else f"is {_show(value)}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Walker:
    def __init__(self, facts: PersonFacts, resolver: Any, depth: int) -> None:
        self.facts = facts
        self.resolver = resolver
        self.depth = depth

    def node(self, condition: Condition, path: str) -> NodeExplanation:
        passed = compile_predicate(condition)(self.facts)
        if isinstance(condition, AllOf | AnyOf):
            key = "all" if isinstance(condition, AllOf) else "any"
            children = tuple(
                self.node(child, _join(path, f"{key}[{i}]"))
                for i, child in enumerate(condition.children)
            )
            if not children:
                text = "empty all: everyone" if key == "all" else "empty any: no one"
            else:
                held = sum(child.passed for child in children)
                text = f"{held} of {len(children)} held, needs " + (
                    "all" if key == "all" else "at least one"
                )
            return NodeExplanation(path, passed, text, children=children, kind=key)
        if isinstance(condition, Not):
            inner = self.node(condition.child, _join(path, "not"))
            verb = "matched" if inner.passed else "did not match"
            text = f"the negated condition {verb} ({inner.text}), needs it not to"
            return NodeExplanation(path, passed, text, children=(inner,), kind="not")
        if isinstance(condition, AttributeCondition):
            actual = self.facts.attributes.get(condition.attribute)
            text = f"{condition.attribute} {_is(actual)}, {_needs(condition.op, condition.value)}"
            return NodeExplanation(path, passed, text, actual=actual)
        if isinstance(condition, EventCondition):
            return self.event(condition, path, passed)
        if isinstance(condition, SegmentCondition):
            return self.segment(condition, path, passed)
        assert isinstance(condition, ContextCondition)  # noqa: S101 - the last node type
        actual = self.facts.context.get(condition.field)
        text = f"{condition.field} {_is(actual)}, {_needs(condition.op, condition.value)}"
        return NodeExplanation(path, passed, text, actual=actual)

    def event(self, condition: EventCondition, path: str, passed: bool) -> NodeExplanation:
        key = (condition.event, condition.within_days, condition.where)
        known = self.facts.counted.get(key)
        count = (
            known
            if known is not None
            else self.facts.event_count(condition.event, condition.within_days, condition.where)
        )
        window = (
            f" within {condition.within_days} days"
            if condition.within_days is not None
            else " of all time"
        )
        text = (
            f"{condition.event} count {count}{_where(condition.where)}, "
            f"{_needs(condition.count.op, condition.count.value)}{window}"
        )
        return NodeExplanation(path, passed, text, actual=count)

    def segment(self, condition: SegmentCondition, path: str, passed: bool) -> NodeExplanation:
        slug = condition.slug
        text = f'{"in" if passed else "not in"} segment "{slug}"'
        children: tuple[NodeExplanation, ...] = ()
        inner = self._segment_condition(slug)
        if inner is None:
            text += " (no such segment, or its condition is invalid)"
        elif self.depth < MAX_SEGMENT_EXPLAIN_DEPTH:
            walker = _Walker(self.facts, self.resolver, self.depth + 1)
            children = (walker.node(inner, _join(path, f"segment[{slug}]")),)
        return NodeExplanation(path, passed, text, actual=passed, children=children)

    def _segment_condition(self, slug: str) -> Condition | None:
        if self.resolver is None:
            return None
        if isinstance(self.resolver, Mapping):
            found: Condition | None = self.resolver.get(slug)
            return found
        result: Condition | None = self.resolver(slug)
        return result


def condition_explain(
    condition: Condition, facts: PersonFacts, *, path: str = ""
) -> NodeExplanation:
    """Explain `condition` for the person `facts` describe.

    After: the root's `passed` equals `compile_predicate(condition)(facts)` (every node is
    decided by its own compiled predicate); `failures()` lists the nodes to blame. Segment
    references are expanded (a few levels deep) with the facts' segment resolver.
    """
    resolver = getattr(facts, "segments", None)
    return _Walker(facts, resolver, 0).node(condition, path)
