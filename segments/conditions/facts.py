"""Facts about one person read from the database, for the in-process predicate.

Count leaves come from the person's per-day counters, loaded in one query; a rolling window
adds the boundary day's share with an indexed event query only when that day's counter is
non-zero. Leaves with `where` count matching events with an indexed query. A caller that read
some of these in its own query hands them over (`counted`, `boundary`), and no query is made
for them. Answers are remembered for the life of the facts object (one decision).
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


def boundary_span(now: datetime, within_days: int) -> tuple[datetime, datetime]:
    """The part of a rolling window's first (UTC) day that the window includes: [start, the
    next midnight). Daily counters count the days after it; events count this part."""
    start = now - timedelta(days=within_days)
    first_day = start.astimezone(UTC).date()
    return start, datetime.combine(first_day + timedelta(days=1), time.min, tzinfo=UTC)


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
    # Events of the rolling windows' boundary days read up front: by (name, within_days), how
    # many fall inside the window on its first day, for every name of `boundary_names` and
    # every window of `boundary_windows` (see `person_facts_from_counters`).
    boundary: Mapping[tuple[str, int], int] = field(default_factory=dict)
    boundary_names: frozenset[str] = frozenset()
    boundary_windows: frozenset[int] = frozenset()
    counted: dict[CountKey, int] = field(default_factory=dict, repr=False)
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
        if where:
            events = Event.objects.filter(person_id=self.person.pk, name=name)
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
        if start is None or within_days is None:
            return sum(count for _, count in rows)
        first_day = start.astimezone(UTC).date()
        total = sum(count for day, count in rows if day > first_day)
        if not any(day == first_day and count for day, count in rows):
            return total
        if within_days in self.boundary_windows and name in self.boundary_names:
            total += self.boundary.get((name, within_days), 0)
        else:
            start, next_midnight = boundary_span(self.now, within_days)
            # Only here is an event query worth building: the ORM costs more than the counting.
            total += Event.objects.filter(
                person_id=self.person.pk,
                name=name,
                timestamp__gte=start,
                timestamp__lt=next_midnight,
            ).count()
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
    counters = EventDailyCount.objects.filter(person=person).order_by()
    names = frozenset(event_names) if event_names is not None else None
    if names is not None:
        counters = counters.filter(name__in=names)
    return person_facts_from_counters(
        person,
        now=now,
        context=context,
        segment_resolver=segment_resolver,
        event_names=names,
        counters=counters.values_list("name", "day", "count"),
    )


def person_facts_from_counters(
    person: Person,
    *,
    now: datetime,
    counters: Iterable[tuple[str, date, int]],
    context: Mapping[str, str | None] | None = None,
    segment_resolver: SegmentResolver | Mapping[str, Condition] | None = None,
    event_names: frozenset[str] | None = None,
    counted: Mapping[CountKey, int] | None = None,
    boundary: Mapping[tuple[str, int], int] | None = None,
    boundary_names: frozenset[str] = frozenset(),
    boundary_windows: frozenset[int] = frozenset(),
) -> DatabaseFacts:
    """Facts about `person` from counter rows (name, day, count) the caller already read.

    For callers that read the counters together with other rows in one round trip; the rows
    must be all of the person's counters of `event_names` (of every name when None).
    `counted` holds counts the caller already made, by (name, within_days, where), exactly as
    `event_count` would answer them. `boundary` holds, for every name of `boundary_names` and
    every window of `boundary_windows`, how many of the person's events of that name fall in
    the window's first day span (`boundary_span` at `now`); absent keys count zero.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    daily: defaultdict[str, list[tuple[date, int]]] = defaultdict(list)
    for name, day, count in counters:
        daily[name].append((day, count))
    attributes = person.attributes if isinstance(person.attributes, dict) else {}
    return DatabaseFacts(
        person=person,
        now=now,
        attributes=attributes,
        context=dict(context or {}),
        daily=dict(daily),
        segments=segment_resolver,
        loaded_names=event_names,
        boundary=boundary or {},
        boundary_names=boundary_names,
        boundary_windows=boundary_windows,
        counted=dict(counted) if counted else {},
    )
