"""Writes for people and events: ingestion, identity resolution, merges and bad events.

Every door (Snowplow collector, events API, identify, widget) ends in these functions, so an
event is treated the same whichever way it came in: people resolved, the event stored once
(dedup by Snowplow `eid` / API `message_id`), per-day counters bumped in the same transaction,
and listeners told after commit.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.utils import timezone

from engage.models import App
from segments.models import (
    AnonymousId,
    BadEvent,
    Event,
    EventDailyCount,
    EventDedup,
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


_PREPARE_ONLY_WHEN_ASKED = 2**31 - 1


class _PreparedCursor(psycopg.Cursor[Any]):
    """Binds parameters on the server and prepares each statement once per connection."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        return super().execute(query, params, prepare=True)


def preparation_allow(raw: psycopg.Connection[Any]) -> None:
    """Let statements executed with `prepare=True` on this psycopg connection be prepared on
    the server (once per connection). Django turns psycopg's automatic preparation off, and
    psycopg then ignores `prepare=True` too; a threshold no statement reaches keeps
    preparation opt-in: only the hot paths that ask for it (Django's client-side binding
    cursors never prepare)."""
    if raw.prepare_threshold is None:
        raw.prepare_threshold = _PREPARE_ONLY_WHEN_ASKED


def _cursor() -> Any:
    """A cursor for the ingestion hot path's few, fixed statements.

    On PostgreSQL it binds parameters on the server and prepares each statement once per
    connection: with Django's default client-side binding, PostgreSQL parses and plans every
    statement anew, which cost five times the work of the people lookup itself. It is wrapped
    like Django's own cursors (errors, execute wrappers, query logging).
    """
    db = connections[DEFAULT_DB_ALIAS]  # the wrapper itself: each proxied access costs a lookup
    if db.vendor != "postgresql":
        return db.cursor()
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    raw = db.connection
    if not isinstance(raw, psycopg.Connection):
        return db.cursor()
    preparation_allow(raw)
    cursor: Any = _PreparedCursor(raw)
    return db.make_debug_cursor(cursor) if db.queries_logged else db.make_cursor(cursor)


def prepared_cursor() -> Any:
    """The cursor of `_cursor` for other hot paths with fixed statements (the targeting
    engine's history read): bound and prepared on the server, on PostgreSQL."""
    return _cursor()


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

    def load_for_events(
        self, pairs: Sequence[tuple[str | None, str | None]], dedup_ids: Sequence[str]
    ) -> set[str]:
        """`load` for the ingestion hot path: one query, which also returns the `dedup_ids`
        already stored.

        People come back with only their ids loaded; their other fields are deferred, so the
        rare paths that need them (merges, attribute updates) load them on access. Skipping
        the ORM's query building and the parsing of timestamps and attributes is most of the
        cost of a collector request.
        """
        user_ids = sorted({u for u, _ in pairs if u})
        anon_ids = sorted({a for _, a in pairs if a})
        parts: list[str] = []
        params: list[Any] = []
        if dedup_ids:
            parts.append(
                f"SELECT 0, NULL, dedup_id, NULL FROM {EventDedup._meta.db_table} "  # noqa: S608
                f"WHERE app_id = %s AND dedup_id IN ({_placeholders(dedup_ids)})"
            )
            params += [self.app.pk, *dedup_ids]
        if user_ids:
            parts.append(
                f"SELECT 1, id, user_id, user_id FROM {Person._meta.db_table} "  # noqa: S608
                f"WHERE app_id = %s AND user_id IN ({_placeholders(user_ids)})"
            )
            params += [self.app.pk, *user_ids]
        if anon_ids:
            parts.append(
                "SELECT 2, p.id, a.anonymous_id, p.user_id "  # noqa: S608
                f"FROM {AnonymousId._meta.db_table} a "
                f"JOIN {Person._meta.db_table} p ON p.id = a.person_id "
                f"WHERE a.app_id = %s AND a.anonymous_id IN ({_placeholders(anon_ids)})"
            )
            params += [self.app.pk, *anon_ids]
        if not parts:
            return set()
        with _cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts), params)
            found = cursor.fetchall()
        seen: set[str] = set()
        people: dict[int, Person] = {}
        for kind, person_id, key, user_id in found:
            if kind == 0:
                seen.add(key)
                continue
            person = people.get(person_id)
            if person is None:
                person = people[person_id] = Person.from_db(
                    connection.alias, ["id", "app_id", "user_id"], (person_id, self.app.pk, user_id)
                )
            if kind == 1:
                self.by_user[key] = person
            else:
                self.by_anon[key] = person
        return seen

    def _create(self, user_id: str | None) -> Person:
        # Plain SQL, as Person.objects.create would write it: new visitors are common on the
        # collector's hot path, and the ORM's insert costs several times the database's work.
        now = connection.ops.adapt_datetimefield_value(self.now)
        with _cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {Person._meta.db_table} "  # noqa: S608
                "(app_id, user_id, attributes, first_seen, last_seen) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                [self.app.pk, user_id, "{}", now, now],
            )
            (pk,) = cursor.fetchone()
        person = Person.from_db(
            connection.alias,
            ["id", "app_id", "user_id", "attributes", "first_seen", "last_seen"],
            (pk, self.app.pk, user_id, {}, self.now, self.now),
        )
        if user_id:
            self.by_user[user_id] = person
        return person

    def _alias(self, person: Person, anonymous_id: str) -> None:
        with _cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {AnonymousId._meta.db_table} "  # noqa: S608
                "(app_id, person_id, anonymous_id, created_at) VALUES (%s, %s, %s, %s)",
                [
                    self.app.pk,
                    person.pk,
                    anonymous_id,
                    connection.ops.adapt_datetimefield_value(self.now),
                ],
            )
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
    """Add to one person's per-day counters with one upsert."""
    _counts_add_rows((person_id, name, day, count) for name, day, count in rows)


def _counts_add_rows(rows: Iterable[tuple[int, str, Any, int]]) -> None:
    """Add to per-day counters of any people with one upsert (same SQL on PostgreSQL and SQLite).

    Each (person, name, day) appears once (an upsert cannot touch a row twice); rows are
    written in key order, so that concurrent ingests lock counters in the same order.
    """
    params: list[Any] = []
    values = []
    for person_id, name, day, count in sorted(rows):
        values.append("(%s, %s, %s, %s)")
        params.extend([person_id, name, day, count])
    if not values:
        return
    table = EventDailyCount._meta.db_table
    sql = (
        f"INSERT INTO {table} (person_id, name, day, count) VALUES {', '.join(values)} "  # noqa: S608
        f"ON CONFLICT (person_id, name, day) DO UPDATE SET count = {table}.count + excluded.count"
    )
    with _cursor() as cursor:
        cursor.execute(sql, params)


def _placeholders(values: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(values))


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


_EVENT_COLUMNS = (
    "app_id, person_id, name, properties, contexts, timestamp, received_at, source, dedup_id, raw"
)


@transaction.atomic
def _ingest_once(
    *, app: App, events: Sequence[EventInput], source: str, received_at: datetime
) -> IngestResult:
    # Every door ends here, the collector's hot path included: plain SQL in few round trips
    # (stored dedup ids and known people in one query, then one insert, one counter upsert
    # and one touch), since building ORM queries cost several times the database's own work.
    pairs = [(_clean_id(e.user_id), _clean_id(e.anonymous_id)) for e in events]
    dedup_ids = sorted({e.dedup_id[:MAX_ID_LENGTH] for e in events if e.dedup_id})
    people = _People(app, received_at)
    seen = people.load_for_events(pairs, dedup_ids)
    kept: list[tuple[EventInput, Person, str | None, datetime]] = []
    duplicates = 0
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
        kept.append((event, person, dedup_id, _stamp(event, received_at)))
    if not kept:
        return IngestResult(stored=[], duplicates=duplicates)
    rows = [
        # A person merged away during this batch: its events go to the one it merged into.
        _EventRow(
            person_id=people.current(person).pk,
            name=event.name.strip(),
            properties=event.properties,
            contexts=event.contexts,
            timestamp=timestamp,
            dedup_id=dedup_id,
            raw=event.raw,
        )
        for event, person, dedup_id, timestamp in kept
    ]
    rows, ids = _events_write(app=app, source=source, received_at=received_at, rows=rows)
    stored = [
        StoredEvent(
            id=pk,
            person_id=row.person_id,
            name=row.name,
            properties=row.properties,
            timestamp=row.timestamp,
        )
        for row, pk in zip(rows, ids, strict=True)
    ]
    for person in with_attributes:
        current = people.current(person)
        current.save(update_fields=["attributes"])
    return IngestResult(stored=stored, duplicates=duplicates)


@dataclass(frozen=True, slots=True)
class _EventRow:
    person_id: int
    name: str
    properties: dict[str, Any]
    contexts: list[Any]
    timestamp: datetime
    dedup_id: str | None
    raw: dict[str, Any]


def _events_write(
    *, app: App, source: str, received_at: datetime, rows: list[_EventRow]
) -> tuple[list[_EventRow], list[int]]:
    """Record the rows' dedup ids, insert the rows, add them to their people's per-day
    counters and move those people's `last_seen` forward: one statement on PostgreSQL, four
    elsewhere.

    Returns the rows as stored (without NUL characters, which PostgreSQL refuses in text and
    jsonb) and their ids, in the order given. Raises IntegrityError when another transaction
    stored one of the dedup ids since they were looked up (the caller runs the batch again).
    """
    table = Event._meta.db_table
    if connection.vendor != "postgresql":
        rows = [_event_row_nul_free(row) for row in rows]
        _dedup_ids_insert(app=app, received_at=received_at, rows=rows)
        ids = _events_insert_values(app=app, source=source, received_at=received_at, rows=rows)
        _counts_add_rows(_day_counts(rows))
        _people_touch(sorted({row.person_id for row in rows}), received_at)
        return rows, ids
    # Events travel as one JSON parameter rather than ten per row (psycopg parses a statement
    # of more than 50 parameters anew on every call, which cost more than the insert itself),
    # and the three writes share one round trip.
    document = json.dumps([_event_row_json(i, row) for i, row in enumerate(rows)])
    if "\\u0000" in document:
        rows = [_event_row_nul_free(row) for row in rows]
        document = json.dumps([_event_row_json(i, row) for i, row in enumerate(rows)])
    counts = json.dumps([[p, name, day.isoformat(), n] for p, name, day, n in _day_counts(rows)])
    counters, people = EventDailyCount._meta.db_table, Person._meta.db_table
    # The events table is partitioned on PostgreSQL and cannot hold a unique (app, dedup id)
    # index: the dedup ids go into their own table first, and only the rows whose id was new
    # (or that have none) are inserted.
    sql = (
        "WITH x AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS x(i int, p bigint, n text, "  # noqa: S608
        "pr jsonb, c jsonb, t timestamptz, d text, r jsonb)), "
        f"fresh AS (INSERT INTO {EventDedup._meta.db_table} (app_id, dedup_id, received_at) "
        "SELECT %s, x.d, %s FROM x WHERE x.d IS NOT NULL "
        "ON CONFLICT (app_id, dedup_id) DO NOTHING RETURNING dedup_id), "
        f"new_events AS (INSERT INTO {table} ({_EVENT_COLUMNS}) "
        "SELECT %s, x.p, x.n, x.pr, x.c, x.t, %s, %s, x.d, x.r FROM x "
        "WHERE x.d IS NULL OR x.d IN (SELECT dedup_id FROM fresh) ORDER BY x.i RETURNING id), "
        f"counted AS (INSERT INTO {counters} (person_id, name, day, count) "
        "SELECT (c->>0)::bigint, c->>1, (c->>2)::date, (c->>3)::int "
        "FROM jsonb_array_elements(%s::jsonb) AS c "
        "ON CONFLICT (person_id, name, day) "
        f"DO UPDATE SET count = {counters}.count + excluded.count), "
        f"touched AS (UPDATE {people} SET last_seen = %s "
        "WHERE id = ANY(%s) AND last_seen < %s) "
        "SELECT id FROM new_events"
    )
    touched = sorted({row.person_id for row in rows})
    params = [
        document,
        app.pk,
        received_at,
        app.pk,
        received_at,
        source,
        counts,
        received_at,
        touched,
        received_at,
    ]
    with _cursor() as cursor:
        cursor.execute(sql, params)
        # Ids are drawn in insertion order, so sorted ids match the rows as given.
        ids = sorted(r[0] for r in cursor.fetchall())
    if len(ids) != len(rows):
        # A concurrent request stored some of these dedup ids after they were looked up; the
        # counters above counted them. Roll back and run the batch again (events_ingest).
        raise IntegrityError("a dedup id of this batch was stored concurrently")
    return rows, ids


def _dedup_ids_insert(*, app: App, received_at: datetime, rows: list[_EventRow]) -> None:
    """Record the rows' dedup ids; IntegrityError when one is stored already."""
    dedup_ids = [row.dedup_id for row in rows if row.dedup_id]
    if not dedup_ids:
        return
    received = connection.ops.adapt_datetimefield_value(received_at)
    params: list[Any] = []
    for dedup_id in dedup_ids:
        params += [app.pk, dedup_id, received]
    with _cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {EventDedup._meta.db_table} (app_id, dedup_id, received_at) "  # noqa: S608
            f"VALUES {', '.join(['(%s, %s, %s)'] * len(dedup_ids))}",
            params,
        )


def _events_insert_values(
    *, app: App, source: str, received_at: datetime, rows: list[_EventRow]
) -> list[int]:
    """Insert event rows with a plain multi-row VALUES; their ids, in the order given."""
    adapt_datetime = connection.ops.adapt_datetimefield_value
    received = adapt_datetime(received_at)
    params: list[Any] = []
    for row in rows:
        params += [
            app.pk,
            row.person_id,
            row.name,
            json.dumps(row.properties),
            json.dumps(row.contexts),
            adapt_datetime(row.timestamp),
            received,
            source,
            row.dedup_id,
            json.dumps(row.raw),
        ]
    placeholders = "(" + ", ".join(["%s"] * 10) + ")"
    with _cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Event._meta.db_table} ({_EVENT_COLUMNS}) "  # noqa: S608
            f"VALUES {', '.join([placeholders] * len(rows))} RETURNING id",
            params,
        )
        return sorted(r[0] for r in cursor.fetchall())


def _day_counts(rows: list[_EventRow]) -> list[tuple[int, str, date, int]]:
    """(person, name, UTC day, events): counters count UTC days, whatever offset the
    client's timestamp had. Sorted, so that concurrent ingests lock counters in one order."""
    counts = Counter(
        (row.person_id, row.name, row.timestamp.astimezone(UTC).date()) for row in rows
    )
    return sorted((p, name, day, n) for (p, name, day), n in counts.items())


def _event_row_json(index: int, row: _EventRow) -> dict[str, Any]:
    return {
        "i": index,
        "p": row.person_id,
        "n": row.name,
        "pr": row.properties,
        "c": row.contexts,
        "t": row.timestamp.isoformat(),
        "d": row.dedup_id,
        "r": row.raw,
    }


def _event_row_nul_free(row: _EventRow) -> _EventRow:
    return _EventRow(
        person_id=row.person_id,
        name=_nul_free(row.name),
        properties=_nul_free(row.properties),
        contexts=_nul_free(row.contexts),
        timestamp=row.timestamp,
        dedup_id=_nul_free(row.dedup_id),
        raw=_nul_free(row.raw),
    )


def _people_touch(person_ids: list[int], seen_at: datetime) -> None:
    """Move `last_seen` of these people forward to `seen_at`, never back."""
    seen = connection.ops.adapt_datetimefield_value(seen_at)
    with _cursor() as cursor:
        cursor.execute(
            f"UPDATE {Person._meta.db_table} SET last_seen = %s "  # noqa: S608
            f"WHERE id IN ({_placeholders(person_ids)}) AND last_seen < %s",
            [seen, *person_ids, seen],
        )


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
