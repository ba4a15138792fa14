"""Event trends: how many events and how many distinct people per UTC day or week.

Weeks start on Monday (ISO). Buckets are zero-filled over the whole range; the first and last
week only count events inside the range. A property breakdown keeps the `limit` values with the
most events over the range and sums the rest in "other" (events without the property in
"(none)"); a segment breakdown gives one series per segment (its members now).
All grouping happens in the database through the ORM, so it is the same on both vendors.
Without property filters or a property breakdown, over whole UTC days, the per-person daily
counters give the same answer from far fewer rows (one per person and day).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import (
    Case,
    CharField,
    Count,
    F,
    Q,
    QuerySet,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncDay, TruncWeek
from django.utils import timezone

from engage.models import App
from segments.conditions.sql import event_filters_q
from segments.insights.budget import insight_budget
from segments.insights.cohorts import segments_resolve
from segments.insights.definitions import NONE_VALUE, OTHER, TrendDefinition
from segments.models import Event, EventDailyCount
from segments.selectors import segment_members


@dataclass(frozen=True)
class TrendSeries:
    label: str
    buckets: tuple[tuple[date, int, int], ...]  # (start, events, people)
    count: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "count": self.count,
            "buckets": [
                {"start": start.isoformat(), "count": count, "people": people}
                for start, count, people in self.buckets
            ],
        }


def bucket_starts(start: datetime, end: datetime, interval: str) -> Iterator[date]:
    """Every bucket start (a day, or a Monday) from the one holding `start` to before `end`."""
    day = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    if interval == "week":
        day -= timedelta(days=day.weekday())
        step = timedelta(days=7)
    else:
        step = timedelta(days=1)
    while day <= last:
        yield day
        day += step


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _events(app: App, definition: TrendDefinition, now: datetime) -> QuerySet[Event]:
    event = definition.event
    return (
        Event.objects.filter(
            app=app,
            name=event.event,
            timestamp__gte=definition.range.start,
            timestamp__lt=definition.range.end,
        )
        .filter(event_filters_q(event.where, now=now))
        .order_by()
    )


def _grouped(
    events: QuerySet[Event], interval: str, label: Any
) -> list[tuple[str, date, int, int]]:
    trunc = TruncWeek if interval == "week" else TruncDay
    rows = (
        events.annotate(bucket=trunc("timestamp", tzinfo=UTC), series=label)
        .values("series", "bucket")
        .annotate(count=Count("id"), people=Count("person_id", distinct=True))
        .values_list("series", "bucket", "count", "people")
    )
    return [(str(s), _as_date(b), int(c), int(p)) for s, b, c, p in rows]


def _whole_days(definition: TrendDefinition) -> bool:
    return all(
        moment.astimezone(UTC).time() == datetime.min.time()
        for moment in (definition.range.start, definition.range.end)
    )


def counters_usable(definition: TrendDefinition) -> bool:
    """Whether the per-day counters give this trend's answer: no property filter or property
    breakdown, and a range of whole UTC days."""
    breakdown = definition.breakdown
    return (
        not definition.event.where
        and (breakdown is None or not breakdown.property)
        and _whole_days(definition)
    )


def _counters(app: App, definition: TrendDefinition) -> QuerySet[EventDailyCount]:
    return EventDailyCount.objects.filter(
        person__app=app,
        name=definition.event.event,
        day__gte=definition.range.start.astimezone(UTC).date(),
        day__lt=definition.range.end.astimezone(UTC).date(),
    ).order_by()


def _counter_rows(
    counters: QuerySet[EventDailyCount], interval: str, label: str
) -> list[tuple[str, date, int, int]]:
    """Buckets from the counters: a row is one person on one day, so a day's people are its
    rows; a week's are its distinct people."""
    if interval == "week":
        grouped = counters.annotate(bucket=TruncWeek("day")).values("bucket")
        people: Any = Count("person_id", distinct=True)
    else:
        grouped = counters.annotate(bucket=F("day")).values("bucket")
        people = Count("id")
    return [
        (label, _as_date(b), int(c), int(p))
        for b, c, p in grouped.annotate(n=Sum("count"), p=people).values_list("bucket", "n", "p")
    ]


def trend_compute(
    *,
    app: App,
    definition: TrendDefinition,
    now: datetime | None = None,
    budget_ms: int | None = None,
    source: str = "auto",
) -> dict[str, Any]:
    """Counts and distinct people per bucket, per series (one "all" series, or one per
    breakdown value / segment), and each series' total count. One grouped statement per series
    source (two for a property breakdown: its top values, then the buckets). Read-only; runs
    inside the insight time budget.

    `source`: "counters" reads the per-person daily counters (far fewer rows than events,
    kept in the same transaction as the events); "events" reads the events; "auto" uses the
    counters whenever they hold the answer (see `counters_usable`).
    """
    now = now or timezone.now()
    events = _events(app, definition, now)
    breakdown = definition.breakdown
    use_counters = source == "counters" or (source == "auto" and counters_usable(definition))
    labels: list[str]
    with insight_budget(ms=budget_ms):
        if use_counters:
            counters = _counters(app, definition)
            if breakdown is not None and breakdown.segments:
                rows = []
                for segment in segments_resolve(
                    app=app, slugs=breakdown.segments, field="breakdown.segments"
                ):
                    members = segment_members(segment=segment).order_by().values("id")
                    rows += _counter_rows(
                        counters.filter(person_id__in=members), definition.interval, segment.slug
                    )
                labels = list(breakdown.segments)
            else:
                rows = _counter_rows(counters, definition.interval, "all")
                labels = ["all"]
        elif breakdown is not None and breakdown.property is not None:
            value = Cast(
                KeyTextTransform(breakdown.property, "properties"), output_field=TextField()
            )
            top = [
                v
                for v, _ in events.annotate(v=value)
                .filter(v__isnull=False)
                .values("v")
                .annotate(c=Count("id"))
                .order_by("-c", "v")
                .values_list("v", "c")[: breakdown.limit]
            ]
            label: Any = Case(
                When(Q(v__in=top), then=F("v")) if top else When(pk__isnull=True, then=None),
                When(v__isnull=True, then=Value(NONE_VALUE)),
                default=Value(OTHER),
                output_field=CharField(),
            )
            events = events.annotate(v=value)
            rows = _grouped(events, definition.interval, label)
            labels = [str(v) for v in top]
            present = {series for series, *_ in rows}
            for extra in (OTHER, NONE_VALUE):
                if extra in present and extra not in labels:
                    labels.append(extra)
        elif breakdown is not None and breakdown.segments:
            rows = []
            for segment in segments_resolve(
                app=app, slugs=breakdown.segments, field="breakdown.segments"
            ):
                members = segment_members(segment=segment).order_by().values("id")
                in_segment = events.filter(person_id__in=members)
                series_label = Value(segment.slug, output_field=CharField())
                rows += _grouped(in_segment, definition.interval, series_label)
            labels = list(breakdown.segments)
        else:
            all_label = Value("all", output_field=CharField())
            rows = _grouped(events, definition.interval, all_label)
            labels = ["all"]
    starts = list(bucket_starts(definition.range.start, definition.range.end, definition.interval))
    cells: dict[tuple[str, date], tuple[int, int]] = {(s, b): (c, p) for s, b, c, p in rows}
    series = []
    for label_name in labels:
        buckets = tuple((start, *cells.get((label_name, start), (0, 0))) for start in starts)
        series.append(
            TrendSeries(label=label_name, buckets=buckets, count=sum(b[1] for b in buckets))
        )
    return {
        "event": definition.event.event,
        "interval": definition.interval,
        **definition.range.as_dict(),
        "series": [s.as_dict() for s in series],
    }
