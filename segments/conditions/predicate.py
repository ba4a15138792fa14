"""The in-process compiler: a condition becomes nested closures that decide for one person.

A predicate reads what it needs from `PersonFacts` (attributes, event counts, segment
membership, the context of the moment), so the same compiled condition runs over in-memory
facts (tests, the benchmark, a person being evaluated right after an event) and over facts
loaded from the database (`segments.conditions.facts.person_facts_load`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from segments.conditions.operators import (
    Op,
    count_test,
    iso_instant,
    kind_of,
    regex_search,
    value_test,
)
from segments.conditions.tree import (
    AllOf,
    AnyOf,
    AttributeCondition,
    Condition,
    EventCondition,
    Not,
    PropertyFilter,
    SegmentCondition,
)

# Segments may refer to segments; deeper chains than this count as not matching (in both
# compilers), which also bounds the SQL that inlining them writes.
MAX_SEGMENT_DEPTH = 8

SegmentResolver = Callable[[str], Condition | None]
CountKey = tuple[str, int | None, tuple[PropertyFilter, ...]]


class PersonFacts(Protocol):
    """What a predicate may know about one person at one moment."""

    @property
    def attributes(self) -> Mapping[str, Any]: ...

    @property
    def now(self) -> datetime: ...

    @property
    def context(self) -> Mapping[str, str | None]: ...

    @property
    def counted(self) -> Mapping[CountKey, int]:
        """Counts already known, by (name, within_days, where); may be empty. A predicate
        reads these first and asks `event_count` for the others."""
        ...

    def event_count(
        self, name: str, within_days: int | None, where: tuple[PropertyFilter, ...]
    ) -> int:
        """How many `name` events with timestamp ≥ now − within_days×24h (all time when None)
        whose properties pass every filter of `where`."""
        ...

    def in_segment(self, slug: str) -> bool: ...


Predicate = Callable[[PersonFacts], bool]
PropertiesTest = Callable[[Any, datetime], bool]


def window_start(now: datetime, within_days: int | None) -> datetime | None:
    """The first instant an event-count window includes (None: all time)."""
    return None if within_days is None else now - timedelta(days=within_days)


# ---- compiling ---------------------------------------------------------------------------


def _all(children: list[Predicate]) -> Predicate:
    if not children:
        return lambda _facts: True
    if len(children) == 1:
        return children[0]
    if len(children) == 2:
        first, second = children
        return lambda facts: first(facts) and second(facts)
    if len(children) == 3:
        first, second, third = children
        return lambda facts: first(facts) and second(facts) and third(facts)
    if len(children) == 4:
        first, second, third, fourth = children
        return lambda facts: first(facts) and second(facts) and third(facts) and fourth(facts)

    def all_of(facts: PersonFacts) -> bool:
        # A plain loop: all() over a generator costs a frame per condition on the hot path.
        for child in children:  # noqa: SIM110
            if not child(facts):
                return False
        return True

    return all_of


def _any(children: list[Predicate]) -> Predicate:
    if not children:
        return lambda _facts: False
    if len(children) == 1:
        return children[0]
    if len(children) == 2:
        first, second = children
        return lambda facts: first(facts) or second(facts)
    if len(children) == 3:
        first, second, third = children
        return lambda facts: first(facts) or second(facts) or third(facts)
    if len(children) == 4:
        first, second, third, fourth = children
        return lambda facts: first(facts) or second(facts) or third(facts) or fourth(facts)

    def any_of(facts: PersonFacts) -> bool:
        for child in children:  # noqa: SIM110
            if child(facts):
                return True
        return False

    return any_of


def _compile(condition: Condition) -> Predicate:
    if isinstance(condition, AllOf):
        return _all([_compile(child) for child in condition.children])
    if isinstance(condition, AnyOf):
        return _any([_compile(child) for child in condition.children])
    if isinstance(condition, Not):
        child = _compile(condition.child)
        return lambda facts: not child(facts)
    if isinstance(condition, AttributeCondition):
        return _attribute(condition.attribute, condition.op, condition.value)
    if isinstance(condition, EventCondition):
        return _event(condition)
    if isinstance(condition, SegmentCondition):
        slug = condition.slug
        return lambda facts: facts.in_segment(slug)
    test = value_test(condition.op, condition.value)
    context_field = condition.field
    return lambda facts: test(facts.context.get(context_field), facts.now)


def _attribute(key: str, op: Op, value: Any) -> Predicate:
    """An attribute leaf. The common tests read and test the value in one closure (a second
    call per leaf would double the cost); they follow `operators.value_test`, which handles
    the rest, and the operator tests hold both to the same expected answers."""
    fused = _fused(key, op, value)
    if fused is not None:
        return fused
    test = value_test(op, value)
    return lambda facts: test(facts.attributes.get(key), facts.now)


def _fused(key: str, op: Op, value: Any) -> Predicate | None:
    kind = kind_of(value)
    if op is Op.IS_SET:
        return lambda f: f.attributes.get(key) is not None
    if op is Op.IS_NOT_SET:
        return lambda f: f.attributes.get(key) is None
    if kind == "boolean" and op in (Op.EQ, Op.NEQ):
        wanted = value if op is Op.EQ else not value
        return lambda f: f.attributes.get(key) is wanted
    if kind == "string":
        return _fused_string(key, op, value)
    if kind == "number":
        return _fused_number(key, op, value)
    if op in (Op.IN, Op.NOT_IN) and all(type(item) is str for item in value):
        pool = frozenset(value)
        if op is Op.IN:
            return lambda f: type(v := f.attributes.get(key)) is str and v in pool
        return lambda f: type(v := f.attributes.get(key)) is str and v not in pool
    if op is Op.BETWEEN:
        low, high = value
        if type(low) is str:
            return lambda f: type(v := f.attributes.get(key)) is str and low <= v <= high
        return lambda f: (
            ((k := type(v := f.attributes.get(key))) is int or k is float) and low <= v <= high
        )
    return None


def _fused_string(key: str, op: Op, value: str) -> Predicate | None:
    if op is Op.EQ:
        return lambda f: type(v := f.attributes.get(key)) is str and v == value
    if op is Op.NEQ:
        return lambda f: type(v := f.attributes.get(key)) is str and v != value
    if op in (Op.CONTAINS, Op.NOT_CONTAINS):
        # In a string: a substring. In an array: an element; only a str equals a str, so
        # list membership is exact here.
        negate = op is Op.NOT_CONTAINS

        def contains(f: PersonFacts) -> bool:
            v: Any = f.attributes.get(key)
            k = type(v)
            if k is str or k is list or k is tuple:
                return (value not in v) if negate else (value in v)
            return False

        return contains
    if op is Op.STARTS_WITH:
        return lambda f: type(v := f.attributes.get(key)) is str and v.startswith(value)
    if op is Op.ENDS_WITH:
        return lambda f: type(v := f.attributes.get(key)) is str and v.endswith(value)
    if op is Op.REGEX:
        search = regex_search(value)

        def regex(f: PersonFacts) -> bool:
            v = f.attributes.get(key)
            if type(v) is not str:
                return False
            try:
                return search(v)
            except UnicodeEncodeError:  # unpaired surrogates: not text
                return False

        return regex
    if op in (Op.BEFORE, Op.AFTER):
        bound = iso_instant(value)
        if bound is None:  # pragma: no cover - refused by validation
            raise ValueError(f"not an ISO date: {value!r}")
        if op is Op.BEFORE:
            return lambda f: (
                type(v := f.attributes.get(key)) is str
                and (instant := iso_instant(v)) is not None
                and instant < bound
            )
        return lambda f: (
            type(v := f.attributes.get(key)) is str
            and (instant := iso_instant(v)) is not None
            and instant > bound
        )
    if op is Op.GT:
        return lambda f: type(v := f.attributes.get(key)) is str and v > value
    if op is Op.GTE:
        return lambda f: type(v := f.attributes.get(key)) is str and v >= value
    if op is Op.LT:
        return lambda f: type(v := f.attributes.get(key)) is str and v < value
    if op is Op.LTE:
        return lambda f: type(v := f.attributes.get(key)) is str and v <= value
    return None


def _fused_number(key: str, op: Op, value: float) -> Predicate | None:
    compare = _NUMBER_COMPARE.get(op)
    if compare is None:
        return None

    def number(f: PersonFacts) -> bool:
        v: Any = f.attributes.get(key)
        kind = type(v)
        return (kind is int or kind is float) and compare(v, value)

    return number


_NUMBER_COMPARE: dict[Op, Callable[[Any, Any], bool]] = {
    Op.EQ: operator.eq,
    Op.NEQ: operator.ne,
    Op.GT: operator.gt,
    Op.GTE: operator.ge,
    Op.LT: operator.lt,
    Op.LTE: operator.le,
}


def _event(condition: EventCondition) -> Predicate:
    name, within, where = condition.event, condition.within_days, condition.where
    key: CountKey = (name, within, where)
    op = condition.count.op
    value: Any = condition.count.value

    def count(f: PersonFacts) -> int:
        known = f.counted.get(key)
        return known if known is not None else f.event_count(name, within, where)

    if op is Op.BETWEEN:
        low, high = value
        return lambda f: low <= count(f) <= high
    n: int = value
    if op is Op.GTE:
        return lambda f: (
            (c if (c := f.counted.get(key)) is not None else f.event_count(name, within, where))
            >= n
        )
    if op is Op.LT:
        return lambda f: (
            (c if (c := f.counted.get(key)) is not None else f.event_count(name, within, where)) < n
        )
    compare = count_test(op, value)
    return lambda f: compare(count(f))


@lru_cache(maxsize=2048)
def compile_predicate(condition: Condition) -> Predicate:
    """The predicate of a parsed condition, compiled once per distinct condition (cached by
    value, so an edited condition compiles anew). Pure; hold the result in hot loops."""
    return _compile(condition)


@lru_cache(maxsize=4096)
def where_test(where: tuple[PropertyFilter, ...]) -> PropertiesTest:
    """A test of an event's properties against every filter of an event condition's `where`."""
    tests = [(item.property, value_test(item.op, item.value)) for item in where]

    def matches(properties: Any, now: datetime) -> bool:
        if not isinstance(properties, Mapping):
            properties = {}
        return all(test(properties.get(key), now) for key, test in tests)

    return matches


# ---- segments ----------------------------------------------------------------------------


class SegmentMembership:
    """Decides `in_segment` for one person's facts, with cycle and depth protection.

    A reference back to a segment already being decided is false, and so is a reference more
    than MAX_SEGMENT_DEPTH segments deep: the SQL compiler inlines references with the same
    rules, so both agree even on data that slipped past the cycle check on save. A result that
    did not depend on those rules is remembered for the life of the facts, with the depth its
    references need, and reused wherever that depth still fits.
    """

    def __init__(self, resolver: SegmentResolver | Mapping[str, Condition] | None) -> None:
        if isinstance(resolver, Mapping):
            self.resolver: SegmentResolver | None = resolver.get
        else:
            self.resolver = resolver
        self.active: list[str] = []
        self.heights: list[int] = []
        self.memo: dict[str, tuple[bool, int]] = {}
        self.truncations = 0

    def _reached(self, height: int) -> None:
        if self.heights:
            self.heights[-1] = max(self.heights[-1], height)

    def contains(self, slug: str, facts: PersonFacts) -> bool:
        depth = len(self.active)
        remembered = self.memo.get(slug)
        if remembered is not None and depth + remembered[1] <= MAX_SEGMENT_DEPTH:
            self._reached(remembered[1])
            return remembered[0]
        if slug in self.active or depth >= MAX_SEGMENT_DEPTH:
            self.truncations += 1
            return False
        if self.resolver is None:
            raise ValueError(f'condition refers to segment "{slug}" but no resolver was given')
        condition = self.resolver(slug)
        before = self.truncations
        self.active.append(slug)
        self.heights.append(0)
        try:
            result = condition is not None and compile_predicate(condition)(facts)
        finally:
            self.active.pop()
            height = self.heights.pop() + 1
        self._reached(height)
        if self.truncations == before:
            self.memo[slug] = (result, height)
        return result


# ---- in-memory facts ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventRecord:
    name: str
    timestamp: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class InMemoryFacts:
    """Facts held in memory: attributes, a list of events and/or precomputed counters.

    `counts` maps (event name, within_days) to a count and answers count leaves without a
    `where`; other leaves count `events`. `segments` resolves segment slugs.
    """

    attributes: Mapping[str, Any] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    events: Sequence[EventRecord] = ()
    counts: Mapping[tuple[str, int | None], int] = field(default_factory=dict)
    context: Mapping[str, str | None] = field(default_factory=dict)
    segments: SegmentResolver | Mapping[str, Condition] | None = None
    counted: dict[CountKey, int] = field(default_factory=dict, init=False, repr=False)
    _membership: SegmentMembership | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.counted = {(name, within, ()): n for (name, within), n in self.counts.items()}

    def event_count(
        self, name: str, within_days: int | None, where: tuple[PropertyFilter, ...]
    ) -> int:
        start = window_start(self.now, within_days)
        match = where_test(where) if where else None
        total = 0
        for event in self.events:
            if event.name != name or (start is not None and event.timestamp < start):
                continue
            if match is None or match(event.properties, self.now):
                total += 1
        self.counted[(name, within_days, where)] = total
        return total

    def in_segment(self, slug: str) -> bool:
        if self._membership is None:
            self._membership = SegmentMembership(self.segments)
        return self._membership.contains(slug, self)
