"""Facts about one person read from the database, for the in-process predicate.

Count leaves come from the person's per-day counters, loaded in one query; a rolling window
adds the boundary day's share with an indexed event query only when that day's counter is
non-zero. Leaves with `where` count matching events with an indexed query. Answers are
remembered for the life of the facts object (one decision).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from segments.conditions.predicate import (
    CountKey,
    SegmentMembership,
    SegmentResolver,
    window_start,
)
from segments.conditions.sql import event_filters_q
from segments.conditions.tree import Condition, PropertyFilter
from segments.models import Event, EventDailyCount, Person


@dataclass(eq=False)
class DatabaseFacts:
    person: Person
    now: datetime
    attributes: Mapping[str, Any]
    context: Mapping[str, str | None]
    daily: dict[str, list[tuple[date, int]]]
    segments: SegmentResolver | Mapping[str, Condition] | None = None
    # The event names whose counters `daily` holds (None: all of them).
    loaded_names: frozenset[str] | None = None
    counted: dict[CountKey, int] = field(default_factory=dict, init=False, repr=False)
    _membership: SegmentMembership | None = field(default=None, init=False, repr=False)

    def event_count(
        self, name: str, within_days: int | None, where: tuple[PropertyFilter, ...]
    ) -> int:
        key = (name, within_days, where)
        if key not in self.counted:
            self.counted[key] = self._event_count(name, within_days, where)
        return self.counted[key]

    def _event_count(
        self, name: str, within_days: int | None, where: tuple[PropertyFilter, ...]
    ) -> int:
        start = window_start(self.now, within_days)
        events = Event.objects.filter(person=self.person, name=name)
        if where:
            if start is not None:
                events = events.filter(timestamp__gte=start)
            return events.filter(event_filters_q(where, now=self.now)).count()
        if self.loaded_names is not None and name not in self.loaded_names:
            # Not among the names loaded up front: load this one's counters now.
            self.daily[name] = list(
                EventDailyCount.objects.filter(person=self.person, name=name)
                .order_by()
                .values_list("day", "count")
            )
            self.loaded_names |= {name}
        rows = self.daily.get(name, [])
        if start is None:
            return sum(count for _, count in rows)
        first_day = start.astimezone(UTC).date()
        total = sum(count for day, count in rows if day > first_day)
        if any(day == first_day and count for day, count in rows):
            next_midnight = datetime.combine(first_day + timedelta(days=1), time.min, tzinfo=UTC)
            total += events.filter(timestamp__gte=start, timestamp__lt=next_midnight).count()
        return total

    def in_segment(self, slug: str) -> bool:
        if self._membership is None:
            self._membership = SegmentMembership(self.segments)
        return self._membership.contains(slug, self)


def person_facts_load(
    person: Person,
    *,
    now: datetime,
    context: Mapping[str, str | None] | None = None,
    segment_resolver: SegmentResolver | Mapping[str, Condition] | None = None,
    event_names: Iterable[str] | None = None,
) -> DatabaseFacts:
    """Facts about `person` at `now`, with their per-day counters loaded in one query.

    `event_names` (see `condition_event_names`) limits the counters loaded up front to those
    the conditions need; another name's counters are loaded when first asked for. Reads only.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    counters = EventDailyCount.objects.filter(person=person).order_by()
    names = frozenset(event_names) if event_names is not None else None
    if names is not None:
        counters = counters.filter(name__in=names)
    daily: defaultdict[str, list[tuple[date, int]]] = defaultdict(list)
    for name, day, count in counters.values_list("name", "day", "count"):
        daily[name].append((day, count))
    attributes = person.attributes if isinstance(person.attributes, dict) else {}
    return DatabaseFacts(
        person=person,
        now=now,
        attributes=attributes,
        context=dict(context or {}),
        daily=dict(daily),
        segments=segment_resolver,
        loaded_names=names,
    )
