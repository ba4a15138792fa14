"""Writes for people and events: ingestion, identity resolution, merges and bad events.

Every door (Snowplow collector, events API, identify, widget) ends in these functions, so an
event is treated the same whichever way it came in: people resolved, the event stored once
(dedup by Snowplow `eid` / API `message_id`), per-day counters bumped in the same transaction,
and listeners told after commit.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from engage.models import App
from segments.models import (
    AnonymousId,
    BadEvent,
    Event,
    EventDailyCount,
    EventSource,
    Person,
    Segment,
)

logger = logging.getLogger(__name__)

MAX_NAME_LENGTH = 255
MAX_ID_LENGTH = 255
# Client clocks are wrong: an event more than this far in the future is stamped with the time
# it was received (the raw payload keeps the original).
MAX_CLOCK_SKEW = timedelta(minutes=10)


@dataclass(frozen=True)
class EventInput:
    """One event as a door understood it, before it is tied to a person."""

    name: str
    user_id: str | None = None
    anonymous_id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    contexts: list[Any] = field(default_factory=list)
    timestamp: datetime | None = None
    dedup_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] | None = None


@dataclass(frozen=True)
class StoredEvent:
    id: int
    person_id: int
    name: str
    properties: dict[str, Any]
    timestamp: datetime


@dataclass(frozen=True)
class IngestResult:
    """`stored` are new rows; `duplicates` were already stored (same dedup id)."""

    stored: list[StoredEvent]
    duplicates: int


# Called after commit with (app, stored events): the targeting engine registers here to push
# event-triggered campaigns (segments never imports it).
EventsListener = Callable[[App, list[StoredEvent]], object]
_events_listeners: list[EventsListener] = []


def events_listener_register(listener: EventsListener) -> None:
    if listener not in _events_listeners:
        _events_listeners.append(listener)


def _notify(app: App, stored: list[StoredEvent]) -> None:
    for listener in list(_events_listeners):
        try:
            listener(app, stored)
        except Exception:  # a listener's failure must never lose the events already stored
            logger.exception("events listener %r failed", listener)


def _nul_free(value: Any) -> Any:
    """The value with NUL characters replaced: PostgreSQL's text and jsonb refuse them."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {_nul_free(k): _nul_free(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nul_free(v) for v in value]
    return value


def _clean_id(value: Any) -> str | None:
    if value is None:
        return None
    text = _nul_free(str(value)).strip()
    return text[:MAX_ID_LENGTH] or None


# --- people -----------------------------------------------------------------------------------


class _People:
    """Resolves (user id, anonymous id) pairs to people for one App, in bulk."""

    def __init__(self, app: App, now: datetime) -> None:
        self.app = app
        self.now = now
        self.by_user: dict[str, Person] = {}
        self.by_anon: dict[str, Person] = {}
        # id() of a person object merged away in this batch -> the person it merged into.
        self.merged_into: dict[int, Person] = {}

    def load(self, pairs: Iterable[tuple[str | None, str | None]]) -> None:
        user_ids = {u for u, _ in pairs if u}
        anon_ids = {a for _, a in pairs if a}
        if user_ids:
            for person in Person.objects.filter(app=self.app, user_id__in=user_ids):
                self.by_user[person.user_id] = person  # type: ignore[index]
        if anon_ids:
            for alias in AnonymousId.objects.filter(
                app=self.app, anonymous_id__in=anon_ids
            ).select_related("person"):
                self.by_anon[alias.anonymous_id] = alias.person

    def _create(self, user_id: str | None) -> Person:
        person = Person.objects.create(
            app=self.app, user_id=user_id, attributes={}, first_seen=self.now, last_seen=self.now
        )
        if user_id:
            self.by_user[user_id] = person
        return person

    def _alias(self, person: Person, anonymous_id: str) -> None:
        AnonymousId.objects.create(app=self.app, person=person, anonymous_id=anonymous_id)
        self.by_anon[anonymous_id] = person

    def resolve(self, user_id: str | None, anonymous_id: str | None) -> Person:
        """The person these ids name, linking and merging as identify would."""
        known = self.by_user.get(user_id) if user_id else None
        anon = self.by_anon.get(anonymous_id) if anonymous_id else None
        if user_id and anonymous_id:
            if known is None and anon is not None and anon.user_id is None:
                # The anonymous person has just identified: it becomes the known one.
                anon.user_id = user_id
                anon.save(update_fields=["user_id"])
                self.by_user[user_id] = anon
                return anon
            if known is None:
                known = self._create(user_id)
            if anon is None:
                self._alias(known, anonymous_id)
            elif anon.pk != known.pk and anon.user_id is None:
                for key, value in list(self.by_anon.items()):
                    if value is anon:
                        self.by_anon[key] = known
                person_merge(source=anon, target=known)
                self.merged_into[id(anon)] = known
            # An anonymous id already tied to another known user (a shared device) stays
            # with that user; the event belongs to the user it names.
            return known
        if user_id:
            return known or self._create(user_id)
        if anonymous_id:
            if anon is None:
                anon = self._create(None)
                self._alias(anon, anonymous_id)
            return anon
        raise ValueError("an event needs a user id or an anonymous id")

    def current(self, person: Person) -> Person:
        """The person that `person` stands for now, after any merge in this batch."""
        while id(person) in self.merged_into:
            person = self.merged_into[id(person)]
        return person


def person_merge(*, source: Person, target: Person) -> None:
    """Move everything of `source` (an anonymous person) to `target`, then delete `source`.

    Before: both belong to the same App. After: events, anonymous ids, counters and every
    other row that points at a Person (deliveries, responses…) point at `target`; attributes
    of `target` win over those of `source`; nothing is lost. Must run inside a transaction.
    """
    if source.app_id != target.app_id:
        raise ValueError("people of different Apps cannot be merged")
    # Counters: sum per (name, day) rather than move, since both may have the same day.
    rows = list(EventDailyCount.objects.filter(person=source).values_list("name", "day", "count"))
    if rows:
        _counts_add(target.pk, rows)
        EventDailyCount.objects.filter(person=source).delete()
    for relation in Person._meta.related_objects:
        if relation.related_model is EventDailyCount or not relation.one_to_many:
            continue
        model: Any = relation.related_model
        model._base_manager.filter(**{relation.field.name: source}).update(
            **{relation.field.name: target}
        )
    target.attributes = {**(source.attributes or {}), **(target.attributes or {})}
    target.first_seen = min(source.first_seen, target.first_seen)
    target.last_seen = max(source.last_seen, target.last_seen)
    target.save(update_fields=["attributes", "first_seen", "last_seen"])
    source.delete()


def _counts_add(person_id: int, rows: Iterable[tuple[str, Any, int]]) -> None:
    """Add to per-day counters with one upsert (same SQL on PostgreSQL and SQLite)."""
    params: list[Any] = []
    values = []
    for name, day, count in rows:
        values.append("(%s, %s, %s, %s)")
        params.extend([person_id, name, day, count])
    if not values:
        return
    table = EventDailyCount._meta.db_table
    sql = (
        f"INSERT INTO {table} (person_id, name, day, count) VALUES {', '.join(values)} "  # noqa: S608
        f"ON CONFLICT (person_id, name, day) DO UPDATE SET count = {table}.count + excluded.count"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# --- events -----------------------------------------------------------------------------------


def _validate(event: EventInput) -> str | None:
    """Why an event cannot be used, or None."""
    if not isinstance(event.name, str) or not event.name.strip():
        return "name: an event needs a non-empty name"
    if len(event.name) > MAX_NAME_LENGTH:
        return f"name: longer than {MAX_NAME_LENGTH} characters"
    if not _clean_id(event.user_id) and not _clean_id(event.anonymous_id):
        return "user_id: an event needs a user_id or an anonymous_id"
    if not isinstance(event.properties, dict):
        return "properties: must be an object"
    return None


def _stamp(event: EventInput, received_at: datetime) -> datetime:
    ts = event.timestamp
    if ts is None or timezone.is_naive(ts) or ts > received_at + MAX_CLOCK_SKEW:
        return received_at
    return ts


def bad_event_record(
    *, app: App | None, source: str, reason: str, raw: Any, received_at: datetime | None = None
) -> BadEvent:
    """Keep an unusable request or event with the reason, so that nothing is silently dropped."""
    if not isinstance(raw, dict):
        raw = {"body": raw}
    return BadEvent.objects.create(
        app=app,
        source=source,
        reason=_nul_free(reason[:500]),
        raw=_nul_free(raw),
        received_at=received_at or timezone.now(),
    )


@transaction.atomic
def _ingest_once(
    *, app: App, events: Sequence[EventInput], source: str, received_at: datetime
) -> IngestResult:
    pairs = [(_clean_id(e.user_id), _clean_id(e.anonymous_id)) for e in events]
    dedup_ids = [e.dedup_id for e in events if e.dedup_id]
    seen: set[str] = set()
    if dedup_ids:
        existing = Event.objects.filter(app=app, dedup_id__in=dedup_ids)
        seen = {d for d in existing.values_list("dedup_id", flat=True) if d is not None}
    people = _People(app, received_at)
    people.load(pairs)
    rows: list[Event] = []
    duplicates = 0
    touched: dict[int, Person] = {}
    with_attributes: list[Person] = []
    for event, (user_id, anonymous_id) in zip(events, pairs, strict=True):
        dedup_id = event.dedup_id[:MAX_ID_LENGTH] if event.dedup_id else None
        if dedup_id and dedup_id in seen:
            duplicates += 1
            continue
        if dedup_id:
            seen.add(dedup_id)
        person = people.resolve(user_id, anonymous_id)
        if event.attributes:
            person.attributes = {**person.attributes, **_nul_free(event.attributes)}
            with_attributes.append(person)
        rows.append(
            Event(
                app=app,
                person=person,
                name=_nul_free(event.name.strip()),
                properties=_nul_free(event.properties),
                contexts=_nul_free(event.contexts),
                timestamp=_stamp(event, received_at),
                received_at=received_at,
                source=source,
                dedup_id=_nul_free(dedup_id),
                raw=_nul_free(event.raw),
            )
        )
    # A person merged away during this batch: its events go to the one it merged into.
    for row in rows:
        row.person = people.current(row.person)
        touched[row.person.pk] = row.person
    for person in with_attributes:
        current = people.current(person)
        touched[current.pk] = current
    created = Event.objects.bulk_create(rows)
    per_person: dict[int, Counter[tuple[str, Any]]] = {}
    for row in created:
        per_person.setdefault(row.person_id, Counter())[(row.name, row.timestamp.date())] += 1
    for person_id, counts in per_person.items():
        _counts_add(person_id, ((name, day, n) for (name, day), n in counts.items()))
    _people_touch(list(touched.values()), received_at)
    stored = [
        StoredEvent(
            id=row.pk,
            person_id=row.person_id,
            name=row.name,
            properties=row.properties,
            timestamp=row.timestamp,
        )
        for row in created
    ]
    return IngestResult(stored=stored, duplicates=duplicates)


def _people_touch(people: list[Person], seen_at: datetime) -> None:
    if not people:
        return
    for person in people:
        person.last_seen = max(person.last_seen, seen_at)
    Person.objects.bulk_update(people, ["last_seen", "attributes"])


def events_ingest(
    *,
    app: App,
    events: Sequence[EventInput],
    source: str = EventSource.API,
    received_at: datetime | None = None,
) -> IngestResult:
    """Store usable events once each, resolving people; keep unusable ones as bad events.

    Before: `events` belong to `app`. After: each valid event is stored unless its dedup id
    was stored before; its person exists (created, linked or merged as needed) and that
    person's per-day counter includes it; invalid ones are stored as BadEvent with the reason.
    Listeners hear of the stored events after commit. Concurrent retries of the same batch
    race on the dedup constraint; the loser runs again and finds them stored.
    """
    received_at = received_at or timezone.now()
    valid: list[EventInput] = []
    for event in events:
        reason = _validate(event)
        if reason is None:
            valid.append(event)
        else:
            bad_event_record(
                app=app, source=source, reason=reason, raw=event.raw, received_at=received_at
            )
    if not valid:
        return IngestResult(stored=[], duplicates=0)
    for attempt in range(3):
        try:
            result = _ingest_once(app=app, events=valid, source=source, received_at=received_at)
            break
        except IntegrityError:
            if attempt == 2:
                raise
    if result.stored:
        stored = result.stored
        transaction.on_commit(lambda: _notify(app, stored))
    return result


@transaction.atomic
def person_identify(
    *,
    app: App,
    user_id: str,
    anonymous_id: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Person:
    """Link an anonymous person to the known one and merge attributes.

    After: a Person with `user_id` exists; `anonymous_id` (if given) points at it, and any
    anonymous person it named before was merged into it with all its history; `attributes`
    are merged over the existing ones (a null value removes the attribute).
    """
    now = timezone.now()
    for attempt in range(3):
        try:
            with transaction.atomic():
                people = _People(app, now)
                people.load([(user_id, anonymous_id)])
                person = people.resolve(user_id, anonymous_id)
                merged = {**person.attributes}
                for key, value in (attributes or {}).items():
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[_nul_free(key)] = _nul_free(value)
                person.attributes = merged
                person.last_seen = max(person.last_seen, now)
                person.save(update_fields=["attributes", "last_seen"])
                return person
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _by_alias(app: App, anonymous_id: str) -> Person | None:
    alias = (
        AnonymousId.objects.filter(app=app, anonymous_id=anonymous_id)
        .select_related("person")
        .first()
    )
    return alias.person if alias else None


def person_resolve(
    *, app: App, user_id: str | None, anonymous_id: str | None, create: bool
) -> Person | None:
    """The person these ids name, linking them as an event would; None if unknown and not
    `create`. Creating is idempotent under concurrency (a lost race reads the winner's row)."""
    user_id, anonymous_id = _clean_id(user_id), _clean_id(anonymous_id)
    if not user_id and not anonymous_id:
        return None
    # The common cases (someone seen before) take one indexed read and no savepoint.
    if user_id and not (anonymous_id and create):
        found = Person.objects.filter(app=app, user_id=user_id).first()
        if found is not None or not create:
            return found if found is not None or not anonymous_id else _by_alias(app, anonymous_id)
    elif anonymous_id and not user_id:
        found = _by_alias(app, anonymous_id)
        if found is not None or not create:
            return found
    now = timezone.now()
    for attempt in range(3):
        try:
            with transaction.atomic():
                people = _People(app, now)
                people.load([(user_id, anonymous_id)])
                return people.resolve(user_id, anonymous_id)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# --- segments ---------------------------------------------------------------------------------

# Told after commit when a segment of an App changes (the targeting engine recompiles).
SegmentsListener = Callable[[int], None]
# Words the segments API uses in its own paths.
RESERVED_SLUGS = frozenset({"preview"})
_segments_listeners: list[SegmentsListener] = []
# Asked before a segment is deleted: (app, slug) -> descriptions of what still uses it.
SegmentUsage = Callable[[App, str], list[str]]
_segment_usages: list[SegmentUsage] = []


def segments_listener_register(listener: SegmentsListener) -> None:
    if listener not in _segments_listeners:
        _segments_listeners.append(listener)


def segment_usage_register(usage: SegmentUsage) -> None:
    if usage not in _segment_usages:
        _segment_usages.append(usage)


def _segments_changed(app_id: int) -> None:
    for listener in list(_segments_listeners):
        transaction.on_commit(partial(listener, app_id))


def _segment_condition_check(*, app: App, slug: str, condition: Any) -> None:
    """Validate a segment condition: parse it (400 with every path-named error), every
    referenced segment exists, and no chain of references leads back to `slug`."""
    from engage import errors
    from segments.conditions import condition_segments, parse_condition

    parsed = parse_condition(condition)
    graph: dict[str, set[str]] = {}
    for other in Segment.objects.filter(app=app).exclude(slug=slug):
        try:
            graph[other.slug] = condition_segments(parse_condition(other.condition))
        except errors.InvalidInput:
            graph[other.slug] = set()
    graph[slug] = condition_segments(parsed)
    missing = sorted(s for s in graph[slug] if s not in graph)
    if missing:
        raise errors.InvalidInput(
            f'condition: unknown segment "{missing[0]}"',
            code="unknown_segment",
            details={"unknown": missing},
        )
    stack: list[tuple[str, list[str]]] = [(s, [slug, s]) for s in graph[slug]]
    while stack:
        current, path = stack.pop()
        if current == slug:
            raise errors.InvalidInput(
                f"condition: segments refer to each other in a cycle ({' → '.join(path)})",
                code="segment_cycle",
            )
        for nxt in graph.get(current, ()):
            if nxt not in path[1:]:
                stack.append((nxt, [*path, nxt]))


@transaction.atomic
def segment_create(
    *, app: App, slug: str, name: str, condition: Any, description: str = ""
) -> Segment:
    """Create a segment after validating its condition and references (no cycles).

    After: the segment exists; the engine recompiles the App's campaigns after commit.
    """
    from engage import errors

    if slug in RESERVED_SLUGS:
        raise errors.InvalidInput(f'slug: "{slug}" is reserved', code="reserved_slug")
    if Segment.objects.filter(app=app, slug=slug).exists():
        raise errors.InvalidInput(f'slug: a segment "{slug}" already exists', code="duplicate")
    _segment_condition_check(app=app, slug=slug, condition=condition)
    segment = Segment(app=app, slug=slug, name=name, description=description, condition=condition)
    segment.full_clean()
    segment.save()
    _segments_changed(app.pk)
    return segment


@transaction.atomic
def segment_update(*, segment: Segment, data: dict[str, Any]) -> Segment:
    """Change name, description or condition (the slug is the segment's identity)."""
    if "condition" in data:
        _segment_condition_check(app=segment.app, slug=segment.slug, condition=data["condition"])
    for field_name in ("name", "description", "condition"):
        if field_name in data:
            setattr(segment, field_name, data[field_name])
    segment.full_clean()
    segment.save()
    _segments_changed(segment.app_id)
    return segment


@transaction.atomic
def segment_delete(*, segment: Segment) -> None:
    """Delete a segment nothing uses; 400 naming the segments or campaigns that still do."""
    from engage import errors
    from segments.conditions import condition_segments, parse_condition

    users = []
    for other in Segment.objects.filter(app_id=segment.app_id).exclude(pk=segment.pk):
        try:
            if segment.slug in condition_segments(parse_condition(other.condition)):
                users.append(f'segment "{other.slug}"')
        except errors.InvalidInput:
            continue
    for usage in _segment_usages:
        users.extend(usage(segment.app, segment.slug))
    if users:
        raise errors.InvalidInput(
            f'slug: "{segment.slug}" is still used by {", ".join(users)}',
            code="segment_in_use",
            details={"used_by": users},
        )
    app_id = segment.app_id
    segment.delete()
    _segments_changed(app_id)
