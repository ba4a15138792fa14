"""Reads for people, events and data debugging."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from engage import errors
from engage.models import App
from segments.models import BadEvent, Event, Person, Segment

RECENT_EVENTS = 50

# Other apps add sections to the people API (deliveries from the engine, segments from the
# segments engine) without segments importing them: name -> function(person) -> list.
PersonSection = Callable[[Person], list[Any]]
person_sections: dict[str, PersonSection] = {}


def person_section_register(name: str, section: PersonSection) -> None:
    person_sections[name] = section


def person_get_for_app(*, app: App, user_id: str) -> Person:
    """The App's person with this user id; NotFound for any other App's or an unknown one."""
    person = (
        Person.objects.filter(app=app, user_id=user_id).prefetch_related("anonymous_ids").first()
    )
    if person is None:
        raise errors.NotFound(f'No person with user_id "{user_id}" in this App.')
    return person


def person_profile(*, person: Person) -> dict[str, Any]:
    """What the people API shows of a person: ids, attributes, recent events and sections."""
    events = Event.objects.filter(person=person).order_by("-timestamp", "-id")[:RECENT_EVENTS]
    profile: dict[str, Any] = {
        "user_id": person.user_id,
        "anonymous_ids": [a.anonymous_id for a in person.anonymous_ids.all()],
        "attributes": person.attributes,
        "first_seen": person.first_seen,
        "last_seen": person.last_seen,
        "events": [
            {
                "name": e.name,
                "properties": e.properties,
                "contexts": e.contexts,
                "timestamp": e.timestamp,
                "source": e.source,
            }
            for e in events
        ],
        "segments": [],
        "deliveries": [],
    }
    for name, section in person_sections.items():
        profile[name] = section(person)
    return profile


@dataclass(frozen=True)
class DebugEvent:
    status: str
    source: str
    received_at: datetime
    raw: Any
    event: dict[str, Any] | None
    reason: str | None
    sort_key: tuple[datetime, int, int]
    app_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status,
            "source": self.source,
            "received_at": self.received_at,
            "raw": self.raw,
        }
        if self.status == "good":
            body["event"] = self.event
        else:
            body["reason"] = self.reason
        return body


# Good and bad events are listed as one stream ordered by (received_at, rank, id), newest
# first; a cursor is the sort key of the last row shown.
_RANK = {"good": 1, "bad": 0}


def _after_cursor(rank: int, cursor: tuple[datetime, int, int] | None) -> Q:
    if cursor is None:
        return Q()
    at, cursor_rank, cursor_id = cursor
    same_time = Q(received_at=at)
    if rank < cursor_rank:
        tail = same_time
    elif rank == cursor_rank:
        tail = same_time & Q(id__lt=cursor_id)
    else:
        tail = Q(pk__in=[])
    return Q(received_at__lt=at) | tail


def debug_cursor_encode(key: tuple[datetime, int, int]) -> str:
    return f"{key[0].isoformat()}|{key[1]}|{key[2]}"


def debug_cursor_decode(text: str) -> tuple[datetime, int, int]:
    """Raises InvalidInput naming the `cursor` parameter when it is not one of ours."""
    try:
        at, rank, pk = text.split("|")
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, int(rank), int(pk)
    except ValueError as exc:
        raise errors.InvalidInput("cursor: not a valid cursor", code="invalid_cursor") from exc


def debug_events_list(
    *,
    app_id: int | None,
    status: str | None,
    limit: int,
    cursor: tuple[datetime, int, int] | None,
    source: str | None = None,
    reason: str | None = None,
    no_app: bool = False,
) -> list[DebugEvent]:
    """The newest events as received, good and/or bad, newest first (Snowplow Micro style).

    `app_id` None lists every App's events (staff only); `no_app` keeps only the bad events
    that could not be tied to any App (an unknown `aid` or key). A `reason` (a substring of
    the rejection reason) keeps only bad events: good ones have none. Two queries at most;
    each good row's person and every row's App come with it.
    """
    rows: list[DebugEvent] = []
    if status in (None, "good") and not reason and not no_app:
        good = Event.objects.filter(_after_cursor(_RANK["good"], cursor))
        if app_id is not None:
            good = good.filter(app_id=app_id)
        if source:
            good = good.filter(source=source)
        for e in good.select_related("person", "app").order_by("-received_at", "-id")[:limit]:
            rows.append(
                DebugEvent(
                    status="good",
                    source=e.source,
                    received_at=e.received_at,
                    raw=e.raw,
                    event={
                        "name": e.name,
                        "user_id": e.person.user_id,
                        "person_id": e.person_id,
                        "properties": e.properties,
                        "contexts": e.contexts,
                        "timestamp": e.timestamp,
                        "dedup_id": e.dedup_id,
                    },
                    reason=None,
                    sort_key=(e.received_at, _RANK["good"], e.pk),
                    app_name=e.app.name,
                )
            )
    if status in (None, "bad"):
        bad = BadEvent.objects.filter(_after_cursor(_RANK["bad"], cursor))
        if no_app:
            bad = bad.filter(app__isnull=True)
        elif app_id is not None:
            bad = bad.filter(app_id=app_id)
        if source:
            bad = bad.filter(source=source)
        if reason:
            bad = bad.filter(reason__icontains=reason)
        for b in bad.select_related("app").order_by("-received_at", "-id")[:limit]:
            rows.append(
                DebugEvent(
                    status="bad",
                    source=b.source,
                    received_at=b.received_at,
                    raw=b.raw,
                    event=None,
                    reason=b.reason,
                    sort_key=(b.received_at, _RANK["bad"], b.pk),
                    app_name=b.app.name if b.app else None,
                )
            )
    rows.sort(key=lambda r: r.sort_key, reverse=True)
    return rows[:limit]


# --- segments ---------------------------------------------------------------------------------


def segment_get_for_app(*, app: App, slug: str) -> Segment:
    segment = Segment.objects.filter(app=app, slug=slug).first()
    if segment is None:
        raise errors.NotFound(f'No segment "{slug}" in this App.')
    return segment


def segment_resolver_for_app(app: App) -> Callable[[str], Any]:
    """slug → parsed condition of the App's segments, loaded once (for both compilers)."""
    from segments.conditions import parse_condition

    conditions: dict[str, Any] = {}
    for slug, condition in Segment.objects.filter(app=app).values_list("slug", "condition"):
        try:
            conditions[slug] = parse_condition(condition)
        except errors.InvalidInput:
            continue
    return conditions.get


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[Person]
    took_ms: float


def segment_preview(
    *, app: App, condition: Any, sample_size: int = 10, now: datetime | None = None
) -> Preview:
    """How many people of the App match a condition now, and a few of them (newest seen).

    Validates the condition first (400 with every path-named error). Two queries: a count
    and a sample; `took_ms` covers both.
    """
    import time

    from django.utils import timezone

    from segments.conditions import condition_people, parse_condition

    parsed = parse_condition(condition)
    started = time.perf_counter()
    people = condition_people(
        parsed,
        app=app,
        now=now or timezone.now(),
        segment_resolver=segment_resolver_for_app(app),
    )
    count = people.count()
    sample = list(people.order_by("-last_seen", "-id")[:sample_size]) if count else []
    return Preview(count=count, sample=sample, took_ms=(time.perf_counter() - started) * 1000)


def segment_members(*, segment: Segment, now: datetime | None = None) -> QuerySet[Person]:
    """The people in a segment now, as a lazy queryset (for pagination)."""
    from django.utils import timezone

    from segments.conditions import condition_people, parse_condition

    return condition_people(
        parse_condition(segment.condition),
        app=segment.app,
        now=now or timezone.now(),
        segment_resolver=segment_resolver_for_app(segment.app),
    )


def person_segments(person: Person) -> list[str]:
    """Slugs of the App's segments this person is in now (the people API's `segments`)."""
    from django.utils import timezone

    from segments.conditions import compile_predicate, person_facts_load

    resolver = segment_resolver_for_app(person.app)
    facts = person_facts_load(person, now=timezone.now(), segment_resolver=resolver)
    slugs = []
    for slug in Segment.objects.filter(app_id=person.app_id).values_list("slug", flat=True):
        condition = resolver(slug)
        if condition is not None and compile_predicate(condition)(facts):
            slugs.append(slug)
    return sorted(slugs)
