"""A condition in words, for Parker: "plan is pro and did export_clicked at least 3 times in
the last 30 days"."""

from __future__ import annotations

import json
import re
from typing import Any

from segments.conditions.operators import Op
from segments.conditions.tree import (
    AllOf,
    AnyOf,
    AttributeCondition,
    Condition,
    ContextCondition,
    CountTest,
    EventCondition,
    Not,
    SegmentCondition,
)

_PLAIN = re.compile(r"[\w.@/:+-]+")
_CONTEXT_NAMES = {"page_url": "page URL", "locale": "locale", "device": "device"}

_PHRASES = {
    Op.EQ: "is {v}",
    Op.NEQ: "is not {v}",
    Op.IN: "is one of {v}",
    Op.NOT_IN: "is none of {v}",
    Op.CONTAINS: "contains {v}",
    Op.NOT_CONTAINS: "does not contain {v}",
    Op.STARTS_WITH: "starts with {v}",
    Op.ENDS_WITH: "ends with {v}",
    Op.REGEX: "matches /{raw}/",
    Op.GT: "is greater than {v}",
    Op.GTE: "is at least {v}",
    Op.LT: "is less than {v}",
    Op.LTE: "is at most {v}",
    Op.BETWEEN: "is between {low} and {high}",
    Op.IS_SET: "is set",
    Op.IS_NOT_SET: "is not set",
    Op.BEFORE: "is before {v}",
    Op.AFTER: "is after {v}",
    Op.WITHIN_LAST_DAYS: "is within the last {days}",
    Op.NOT_WITHIN_LAST_DAYS: "is more than {ago} ago",
}


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if _PLAIN.fullmatch(value) else json.dumps(value, ensure_ascii=False)
    return str(value)


def _days(n: int) -> str:
    return "day" if n == 1 else f"{n} days"


def _comparison(op: Op, value: Any) -> str:
    phrase = _PHRASES[op]
    if op is Op.BETWEEN:
        low, high = value
        return phrase.format(low=_scalar(low), high=_scalar(high))
    if op in (Op.IN, Op.NOT_IN):
        return phrase.format(v=", ".join(_scalar(item) for item in value))
    if op in (Op.WITHIN_LAST_DAYS, Op.NOT_WITHIN_LAST_DAYS):
        ago = "1 day" if value == 1 else f"{value} days"
        return phrase.format(days=_days(value), ago=ago)
    return phrase.format(v=_scalar(value), raw=value)


def _times(n: int) -> str:
    return {0: "0 times", 1: "once", 2: "twice"}.get(n, f"{n} times")


def _count(count: CountTest) -> str:
    op = count.op
    value: Any = count.value
    if op is Op.BETWEEN:
        low, high = value
        return f"between {low} and {high} times"
    n: int = value
    return {
        Op.EQ: f"exactly {_times(n)}",
        Op.NEQ: f"other than {_times(n)}",
        Op.GT: f"more than {_times(n)}",
        Op.GTE: f"at least {_times(n)}",
        Op.LT: f"fewer than {_times(n)}",
        Op.LTE: f"at most {_times(n)}",
    }[op]


def _event(node: EventCondition) -> str:
    op, value = node.count.op, node.count.value
    if (op, value) in ((Op.GTE, 1), (Op.GT, 0)):
        text = f"did {node.event}"
    elif (op, value) in ((Op.EQ, 0), (Op.LT, 1), (Op.LTE, 0)):
        text = f"did not do {node.event}"
    else:
        text = f"did {node.event} {_count(node.count)}"
    if node.where:
        filters = " and ".join(f"{f.property} {_comparison(f.op, f.value)}" for f in node.where)
        text += f" with {filters}"
    if node.within_days is not None:
        text += f" in the last {_days(node.within_days)}"
    return text


def _describe(condition: Condition, *, nested: bool) -> str:
    if isinstance(condition, AllOf | AnyOf):
        if not condition.children:
            return "everyone" if isinstance(condition, AllOf) else "no one"
        if len(condition.children) == 1:
            return _describe(condition.children[0], nested=nested)
        joiner = " and " if isinstance(condition, AllOf) else " or "
        text = joiner.join(_describe(child, nested=True) for child in condition.children)
        return f"({text})" if nested else text
    if isinstance(condition, Not):
        return f"not {_describe(condition.child, nested=True)}"
    if isinstance(condition, AttributeCondition):
        return f"{condition.attribute} {_comparison(condition.op, condition.value)}"
    if isinstance(condition, EventCondition):
        return _event(condition)
    if isinstance(condition, SegmentCondition):
        return f"is in segment {condition.slug}"
    if isinstance(condition, ContextCondition):
        return f"{_CONTEXT_NAMES[condition.field]} {_comparison(condition.op, condition.value)}"
    raise TypeError(condition)  # pragma: no cover


def condition_describe(condition: Condition) -> str:
    """The condition as one readable sentence fragment."""
    return _describe(condition, nested=False)
