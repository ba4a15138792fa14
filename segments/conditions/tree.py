"""A condition parsed once into a typed tree, with every problem named by its path.

`parse_condition` is the only way in: it refuses unknown keys and operators, values of the
wrong type, conditions deeper than 10 levels or larger than 200 nodes, and regexes outside the
dialect, collecting all errors (`all[2].op: unknown operator "eqq"`). The nodes are frozen and
hashable, so compiled forms can be cached by the condition itself.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engage.errors import InvalidInput
from segments.conditions.operators import (
    ATTRIBUTE_OPS,
    CONTEXT_OPS,
    COUNT_OPS,
    Op,
    Value,
    count_value_validate,
    value_freeze,
    value_validate,
)

MAX_DEPTH = 10
MAX_NODES = 200
MAX_WHERE = 20
MAX_DAYS_WINDOW = 3650
MAX_NAME_LENGTH = 255
MAX_ERRORS = 100
CONTEXT_FIELDS = ("page_url", "locale", "device")
GROUP_KEYS = ("all", "any", "not")
LEAF_KEYS = ("attribute", "event", "segment", *CONTEXT_FIELDS)
SLUG = re.compile(r"[-a-zA-Z0-9_]{1,100}")


# ---- nodes -------------------------------------------------------------------------------


def _typed(value: Value) -> object:
    """A value with the kind of each scalar, for equality and hashing: in Python 1 == True ==
    1.0, but as conditions `eq 1`, `eq true` and `eq 1.0` must not share a compiled form."""
    if isinstance(value, tuple):
        return tuple((type(item), item) for item in value)
    return (type(value), value)


class _ValueIdentity:
    """Equality and hash of a node holding a `value`, by the kinds of its values too."""

    __slots__ = ()

    def _identity(self) -> tuple[object, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._identity() == other._identity()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._identity())


@dataclass(frozen=True, slots=True)
class AllOf:
    """True when every child is (so an empty `all` matches everyone)."""

    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """True when some child is (so an empty `any` matches no one)."""

    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Condition


@dataclass(frozen=True, slots=True, eq=False)
class AttributeCondition(_ValueIdentity):
    attribute: str
    op: Op
    value: Value = None

    def _identity(self) -> tuple[object, ...]:
        return (self.attribute, self.op, _typed(self.value))


@dataclass(frozen=True, slots=True, eq=False)
class PropertyFilter(_ValueIdentity):
    """One test on an event's properties, inside an event condition's `where`."""

    property: str
    op: Op
    value: Value = None

    def _identity(self) -> tuple[object, ...]:
        return (self.property, self.op, _typed(self.value))


@dataclass(frozen=True, slots=True)
class CountTest:
    op: Op = Op.GTE
    value: Value = 1


@dataclass(frozen=True, slots=True)
class EventCondition:
    """How many `event` events (matching every `where` filter) in the last `within_days`.

    `within_days=None` means all time; otherwise the window is [now − N×24h, …).
    """

    event: str
    count: CountTest = field(default_factory=CountTest)
    within_days: int | None = None
    where: tuple[PropertyFilter, ...] = ()


@dataclass(frozen=True, slots=True)
class SegmentCondition:
    slug: str


@dataclass(frozen=True, slots=True, eq=False)
class ContextCondition(_ValueIdentity):
    """The context of the moment (targeting only): page_url, locale or device."""

    field: str
    op: Op
    value: Value = None

    def _identity(self) -> tuple[object, ...]:
        return (self.field, self.op, _typed(self.value))


Condition = (
    AllOf | AnyOf | Not | AttributeCondition | EventCondition | SegmentCondition | ContextCondition
)


# ---- errors ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConditionError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConditionInvalid(InvalidInput):
    """A condition was refused; `errors` lists every problem with its path."""

    code = "invalid_condition"

    def __init__(self, errors: list[ConditionError]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(str(error) for error in errors),
            details=[{"path": error.path, "message": error.message} for error in errors],
        )


# ---- parsing -----------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _name_error(value: Any, what: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"{what} must be a non-empty string"
    if len(value) > MAX_NAME_LENGTH:
        return f"{what} is longer than {MAX_NAME_LENGTH} characters"
    return None


def _key_error(value: Any, what: str) -> str | None:
    """Attribute and property names: also no quotes, backslashes or control characters,
    which JSON paths in SQLite cannot name."""
    problem = _name_error(value, what)
    if problem:
        return problem
    if any(char in '"\\' or ord(char) < 32 or 0xD800 <= ord(char) <= 0xDFFF for char in value):
        return f"{what} cannot contain quotes, backslashes or control characters"
    return None


def _operator(raw: Any, allowed: frozenset[Op], what: str) -> tuple[Op | None, str | None]:
    if not isinstance(raw, str):
        return None, "must be an operator name"
    try:
        op = Op(raw)
    except ValueError:
        return None, f'unknown operator "{raw}"'
    if op not in allowed:
        return None, f'"{op}" cannot be used {what}'
    return op, None


class _Parser:
    def __init__(self, *, allow_context: bool) -> None:
        self.allow_context = allow_context
        self.errors: list[ConditionError] = []
        self.dropped = 0
        self.nodes = 0

    def error(self, path: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(ConditionError(path, message))
        else:
            self.dropped += 1

    def unknown_keys(self, data: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
        for key in data:
            if key not in allowed:
                self.error(_join(path, str(key)), f'unknown key "{key}"')

    def node(self, data: Any, path: str, depth: int) -> Condition | None:
        self.nodes += 1
        if depth > MAX_DEPTH:
            self.error(path, f"nested deeper than {MAX_DEPTH} levels")
            return None
        if not isinstance(data, dict):
            self.error(path, "must be an object")
            return None
        kinds = [key for key in (*GROUP_KEYS, *LEAF_KEYS) if key in data]
        if not kinds:
            self.error(
                path,
                "must have one of all, any, not, attribute, event, segment, page_url, locale, "
                "device",
            )
            return None
        if len(kinds) > 1:
            self.error(path, f"has both {kinds[0]} and {kinds[1]}; use one per node")
            return None
        kind = kinds[0]
        if kind in ("all", "any"):
            return self.group(data, kind, path, depth)
        if kind == "not":
            self.unknown_keys(data, ("not",), path)
            child = self.node(data["not"], _join(path, "not"), depth + 1)
            return Not(child) if child is not None else None
        if kind == "attribute":
            return self.attribute(data, path)
        if kind == "event":
            return self.event(data, path)
        if kind == "segment":
            self.unknown_keys(data, ("segment",), path)
            slug = data["segment"]
            if not isinstance(slug, str) or not SLUG.fullmatch(slug):
                self.error(_join(path, "segment"), "must be a segment slug")
                return None
            return SegmentCondition(slug)
        return self.context(data, kind, path)

    def group(self, data: Mapping[str, Any], kind: str, path: str, depth: int) -> Condition | None:
        self.unknown_keys(data, (kind,), path)
        items = data[kind]
        if not isinstance(items, list):
            self.error(_join(path, kind), "must be a list of conditions")
            return None
        if len(items) > MAX_NODES:  # refused by size anyway: do not validate every item
            self.nodes += len(items)
            return None
        children = []
        for index, item in enumerate(items):
            child = self.node(item, f"{_join(path, kind)}[{index}]", depth + 1)
            if child is not None:
                children.append(child)
        if len(children) != len(items):
            return None
        return AllOf(tuple(children)) if kind == "all" else AnyOf(tuple(children))

    def comparison(
        self, data: Mapping[str, Any], path: str, allowed: frozenset[Op], what: str, context: bool
    ) -> tuple[Op, Value] | None:
        if "op" not in data:
            self.error(_join(path, "op"), "required")
            return None
        op, problem = _operator(data["op"], allowed, what)
        if op is None:
            self.error(_join(path, "op"), problem or "")
            return None
        value = data.get("value")
        problem = value_validate(op, value, present="value" in data, context=context)
        if problem:
            self.error(_join(path, "value"), problem)
            return None
        return op, value_freeze(value)

    def attribute(self, data: Mapping[str, Any], path: str) -> Condition | None:
        self.unknown_keys(data, ("attribute", "op", "value"), path)
        name_problem = _key_error(data["attribute"], "an attribute name")
        if name_problem:
            self.error(_join(path, "attribute"), name_problem)
        parsed = self.comparison(data, path, ATTRIBUTE_OPS, "on an attribute", context=False)
        if parsed is None or name_problem:
            return None
        return AttributeCondition(data["attribute"], *parsed)

    def context(self, data: Mapping[str, Any], kind: str, path: str) -> Condition | None:
        self.unknown_keys(data, (kind,), path)
        inner_path = _join(path, kind)
        if not self.allow_context:
            self.error(
                inner_path,
                "context conditions (page_url, locale, device) are only allowed in campaign "
                "audiences",
            )
            return None
        inner = data[kind]
        if not isinstance(inner, dict):
            self.error(inner_path, 'must be an object like {"op": "contains", "value": "…"}')
            return None
        self.unknown_keys(inner, ("op", "value"), inner_path)
        parsed = self.comparison(inner, inner_path, CONTEXT_OPS, f"on {kind}", context=True)
        return ContextCondition(kind, *parsed) if parsed else None

    def event(self, data: Mapping[str, Any], path: str) -> Condition | None:
        self.unknown_keys(data, ("event", "count", "within_days", "where"), path)
        ok = True
        problem = _name_error(data["event"], "an event name")
        if problem:
            self.error(_join(path, "event"), problem)
            ok = False
        count = CountTest()
        if "count" in data:
            parsed_count = self.count(data["count"], _join(path, "count"))
            ok = ok and parsed_count is not None
            count = parsed_count or count
        within = data.get("within_days")
        if within is not None and (
            isinstance(within, bool)
            or not isinstance(within, int)
            or not 1 <= within <= MAX_DAYS_WINDOW
        ):
            self.error(
                _join(path, "within_days"), f"must be a whole number from 1 to {MAX_DAYS_WINDOW}"
            )
            ok = False
        where = self.where(data.get("where", []), _join(path, "where"))
        if not ok or where is None:
            return None
        return EventCondition(data["event"], count, within, where)

    def count(self, data: Any, path: str) -> CountTest | None:
        if not isinstance(data, dict):
            self.error(path, 'must be an object like {"op": "gte", "value": 3}')
            return None
        self.unknown_keys(data, ("op", "value"), path)
        op, problem = _operator(data.get("op"), COUNT_OPS, "on an event count")
        if op is None:
            self.error(_join(path, "op"), "required" if "op" not in data else problem or "")
            return None
        problem = count_value_validate(op, data.get("value"), present="value" in data)
        if problem:
            self.error(_join(path, "value"), problem)
            return None
        return CountTest(op, value_freeze(data["value"]))

    def where(self, items: Any, path: str) -> tuple[PropertyFilter, ...] | None:
        if not isinstance(items, list) or len(items) > MAX_WHERE:
            self.error(path, f"must be a list of at most {MAX_WHERE} property filters")
            return None
        filters = []
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            if not isinstance(item, dict):
                self.error(item_path, 'must be an object like {"property", "op", "value"}')
                continue
            self.unknown_keys(item, ("property", "op", "value"), item_path)
            if "property" not in item:
                self.error(_join(item_path, "property"), "required")
                name_problem: str | None = "required"
            else:
                name_problem = _key_error(item["property"], "a property name")
                if name_problem:
                    self.error(_join(item_path, "property"), name_problem)
            parsed = self.comparison(item, item_path, ATTRIBUTE_OPS, "on a property", False)
            if parsed is not None and not name_problem:
                filters.append(PropertyFilter(item["property"], *parsed))
        return tuple(filters) if len(filters) == len(items) else None


def parse_condition(data: Any, *, allow_context: bool = False) -> Condition:
    """The typed tree of a JSON condition.

    Raises `ConditionInvalid` with every error found (each with its path) when the condition
    breaks the language's rules; context leaves are refused unless `allow_context` (campaign
    audiences). Pure: reads nothing but `data`.
    """
    parser = _Parser(allow_context=allow_context)
    condition = parser.node(data, "", 1)
    if parser.nodes > MAX_NODES:
        parser.errors.insert(
            0, ConditionError("", f"has {parser.nodes} nodes; at most {MAX_NODES} are allowed")
        )
    if parser.dropped:
        parser.errors.append(ConditionError("", f"and {parser.dropped} more errors"))
    if parser.errors or condition is None:
        raise ConditionInvalid(parser.errors or [ConditionError("", "invalid condition")])
    return condition


# ---- back to JSON ------------------------------------------------------------------------


def _value_json(value: Value) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _comparison_json(op: Op, value: Value) -> dict[str, Any]:
    body: dict[str, Any] = {"op": str(op)}
    if value is not None:
        body["value"] = _value_json(value)
    return body


def condition_to_json(condition: Condition) -> dict[str, Any]:
    """The canonical JSON of a condition (defaults spelled out); parses back to an equal tree."""
    if isinstance(condition, AllOf):
        return {"all": [condition_to_json(child) for child in condition.children]}
    if isinstance(condition, AnyOf):
        return {"any": [condition_to_json(child) for child in condition.children]}
    if isinstance(condition, Not):
        return {"not": condition_to_json(condition.child)}
    if isinstance(condition, AttributeCondition):
        return {"attribute": condition.attribute, **_comparison_json(condition.op, condition.value)}
    if isinstance(condition, EventCondition):
        body: dict[str, Any] = {
            "event": condition.event,
            "count": {"op": str(condition.count.op), "value": _value_json(condition.count.value)},
        }
        if condition.within_days is not None:
            body["within_days"] = condition.within_days
        if condition.where:
            body["where"] = [
                {"property": item.property, **_comparison_json(item.op, item.value)}
                for item in condition.where
            ]
        return body
    if isinstance(condition, SegmentCondition):
        return {"segment": condition.slug}
    return {condition.field: _comparison_json(condition.op, condition.value)}


def condition_key(condition: Condition) -> str:
    """A stable digest of a condition's canonical JSON, to key caches and compare versions."""
    text = json.dumps(condition_to_json(condition), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def condition_walk(condition: Condition) -> list[Condition]:
    """Every node of a condition, depth first."""
    nodes: list[Condition] = [condition]
    if isinstance(condition, AllOf | AnyOf):
        for child in condition.children:
            nodes.extend(condition_walk(child))
    elif isinstance(condition, Not):
        nodes.extend(condition_walk(condition.child))
    return nodes


def condition_segments(condition: Condition) -> set[str]:
    """The slugs of the segments a condition refers to directly."""
    return {node.slug for node in condition_walk(condition) if isinstance(node, SegmentCondition)}


def condition_event_names(condition: Condition) -> set[str]:
    """The event names a condition counts directly (not through referenced segments)."""
    return {node.event for node in condition_walk(condition) if isinstance(node, EventCondition)}
