"""Growth of the events table: monthly partitions on PostgreSQL and per-App retention.

On PostgreSQL `segments_event` is partitioned by RANGE on `timestamp` (when the event happened,
by the client's clock), one partition per UTC month named `segments_event_pYYYY_MM`, plus a
DEFAULT partition for events outside every monthly one (a client clock years off). Why
`timestamp` and not `received_at`: the queries that read many events (event leaves of
conditions with `within_days`, the boundary day of the counters, their `where` filters) bound
`timestamp`, so PostgreSQL reads only the partitions of the window; the queries bounded by
`received_at` (the debug list) read the newest rows of one App through an index on each
partition and stop at their limit. Retention is by `timestamp` too: "events that happened
more than N days ago".

`events_maintain` (Celery beat, hourly) keeps it so:
- the partitions of the current month and the next ENGAGE_EVENT_PARTITIONS_AHEAD months exist
  (rows that had fallen into the DEFAULT partition move into a new partition of their month);
- one partition holds every App's events, so a partition is dropped only once all of it is
  older than the longest retention of any App;
- each App's events older than its own `event_retention_days` are deleted in bounded batches
  (every App, so that the cut is exact to the hour even in a partition not yet dropped), with
  its per-day counters of those days, so that all-time counts agree with the stored events;
- dedup ids older than ENGAGE_EVENT_DEDUP_DAYS are deleted in bounded batches.

On SQLite (development) there are no partitions; retention deletes rows the same way.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from engage.models import App
from segments.models import Event, EventDailyCount, EventDedup, Person

logger = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 395
_PARTITION = re.compile(r"^segments_event_p(\d{4})_(\d{2})$")


@dataclass(frozen=True)
class EventPartition:
    name: str
    start: datetime  # inclusive
    end: datetime  # exclusive


@dataclass(frozen=True)
class MaintenanceReport:
    created: list[str]
    dropped: list[str]
    events_deleted: int
    counters_deleted: int
    dedup_ids_deleted: int


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _month_add(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def _at(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def _partition_for(month: date) -> EventPartition:
    return EventPartition(
        name=f"{Event._meta.db_table}_p{month:%Y_%m}",
        start=_at(month),
        end=_at(_month_add(month, 1)),
    )


def events_partitioned() -> bool:
    """Whether the events table is partitioned (PostgreSQL, migrated)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_partitioned_table WHERE partrelid = %s::regclass",
            [Event._meta.db_table],
        )
        return cursor.fetchone() is not None


def event_partitions() -> list[EventPartition]:
    """The monthly partitions of the events table, oldest first (not the DEFAULT one)."""
    if not events_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [Event._meta.db_table],
        )
        names = [row[0] for row in cursor.fetchall()]
    found = []
    for name in names:
        match = _PARTITION.match(name)
        if match:
            found.append(_partition_for(date(int(match[1]), int(match[2]), 1)))
    return sorted(found, key=lambda p: p.start)


def event_partition_create(*, month: date) -> str | None:
    """Create the partition of `month` (any day of it) unless it exists; its name if created.

    Events of that month that were in the DEFAULT partition move into it. The partition is
    filled and then attached, which locks the parent table less than `CREATE TABLE …
    PARTITION OF` (inserts go on).
    """
    if not events_partitioned():
        return None
    partition = _partition_for(_month_start(month))
    if partition.name in {p.name for p in event_partitions()}:
        return None
    table = Event._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {partition.name} (LIKE {table} INCLUDING DEFAULTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {table}_default "  # noqa: S608 - names from _meta
            "WHERE timestamp >= %s AND timestamp < %s RETURNING *) "
            f"INSERT INTO {partition.name} SELECT * FROM moved",
            [partition.start, partition.end],
        )
        cursor.execute(
            f"ALTER TABLE {table} ATTACH PARTITION {partition.name} FOR VALUES FROM (%s) TO (%s)",
            [partition.start, partition.end],
        )
    logger.info("created events partition %s", partition.name)
    return partition.name


def event_partitions_ensure(*, now: datetime, months_ahead: int | None = None) -> list[str]:
    """Create the monthly partitions of the current month and the next `months_ahead`, and
    those of past months (within the longest retention) that have events in the DEFAULT
    partition (a backfill, or clocks that were off when the partition was missing).

    After: each exists, holding its month's events. Returns the names created.
    """
    if not events_partitioned():
        return []
    ahead = settings.ENGAGE_EVENT_PARTITIONS_AHEAD if months_ahead is None else months_ahead
    first = _month_start(now.astimezone(UTC).date())
    months = [_month_add(first, n) for n in range(ahead + 1)]
    oldest = now - timedelta(days=retention_longest_days())
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT date_trunc('month', timestamp AT TIME ZONE 'UTC')::date "  # noqa: S608
            f"FROM {Event._meta.db_table}_default WHERE timestamp >= %s AND timestamp < %s",
            [oldest, _at(first)],
        )
        months += sorted(row[0] for row in cursor.fetchall())
    return [name for month in months if (name := event_partition_create(month=month))]


def retention_longest_days() -> int:
    """The longest event retention of any App (the default when there is no App)."""
    longest = App.objects.aggregate(days=Max("event_retention_days"))["days"]
    return int(longest or DEFAULT_RETENTION_DAYS)


def event_partitions_drop_expired(*, now: datetime) -> list[str]:
    """Drop the monthly partitions whose every event is older than the longest retention.

    Before: none of their rows is kept by any App. After: they are gone (with their indexes);
    the partition that straddles the cut stays. Returns the names dropped.
    """
    cutoff = now - timedelta(days=retention_longest_days())
    dropped = []
    for partition in event_partitions():
        if partition.end > cutoff:
            break
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {partition.name}")
        dropped.append(partition.name)
        logger.info("dropped expired events partition %s", partition.name)
    return dropped


_BATCH = object()  # stands for the batch size among a bounded DELETE's parameters


def _delete_batches(sql: str, params: list[Any], *, batch_size: int) -> int:
    """Run a bounded DELETE (`_BATCH` in `params` is its LIMIT) until it deletes fewer rows
    than a batch, each batch in its own transaction, so that no lock is held for long."""
    bound = [batch_size if p is _BATCH else p for p in params]
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, bound)
            deleted = cursor.rowcount
        total += deleted
        if deleted < batch_size:
            return total


def events_expired_delete(*, app: App, now: datetime, batch_size: int | None = None) -> int:
    """Delete the events of `app` that happened longer ago than its retention.

    After: no event of `app` has a timestamp before `now - event_retention_days`; other Apps'
    events are untouched. Deletes in batches of `batch_size` (ENGAGE_RETENTION_BATCH). Returns
    how many were deleted.
    """
    size = batch_size or settings.ENGAGE_RETENTION_BATCH
    cutoff = now - timedelta(days=app.event_retention_days)
    at = connection.ops.adapt_datetimefield_value(cutoff)
    table = Event._meta.db_table
    if connection.vendor == "postgresql":
        # Joined on the whole primary key (id, timestamp), with the bound on timestamp, so
        # that PostgreSQL looks only into the expired partitions, by index.
        return _delete_batches(
            f"DELETE FROM {table} e USING (SELECT id, timestamp FROM {table} "  # noqa: S608
            "WHERE app_id = %s AND timestamp < %s LIMIT %s) x "
            "WHERE e.timestamp < %s AND e.id = x.id AND e.timestamp = x.timestamp",
            [app.pk, at, _BATCH, at],
            batch_size=size,
        )
    return _delete_batches(
        f"DELETE FROM {table} WHERE id IN "  # noqa: S608 - names from _meta
        f"(SELECT id FROM {table} WHERE app_id = %s AND timestamp < %s LIMIT %s)",
        [app.pk, at, _BATCH],
        batch_size=size,
    )


def event_counters_expired_delete(*, app: App, now: datetime, batch_size: int | None = None) -> int:
    """Delete the per-day counters of `app`'s people for the UTC days wholly before its cut.

    The day that straddles the cut keeps its counter (conditions count that day from events).
    """
    size = batch_size or settings.ENGAGE_RETENTION_BATCH
    last_day = (now - timedelta(days=app.event_retention_days)).astimezone(UTC).date()
    counters, people = EventDailyCount._meta.db_table, Person._meta.db_table
    day = connection.ops.adapt_datefield_value(last_day)
    return _delete_batches(
        f"DELETE FROM {counters} WHERE id IN (SELECT d.id FROM {counters} d "  # noqa: S608
        f"JOIN {people} p ON p.id = d.person_id WHERE p.app_id = %s AND d.day < %s LIMIT %s)",
        [app.pk, day, _BATCH],
        batch_size=size,
    )


def dedup_ids_expired_delete(*, now: datetime, batch_size: int | None = None) -> int:
    """Delete the dedup ids received more than ENGAGE_EVENT_DEDUP_DAYS ago (a retry later
    than that is stored again)."""
    size = batch_size or settings.ENGAGE_RETENTION_BATCH
    cutoff = now - timedelta(days=settings.ENGAGE_EVENT_DEDUP_DAYS)
    table = EventDedup._meta.db_table
    return _delete_batches(
        f"DELETE FROM {table} WHERE (app_id, dedup_id) IN "  # noqa: S608 - names from _meta
        f"(SELECT app_id, dedup_id FROM {table} WHERE received_at < %s LIMIT %s)",
        [connection.ops.adapt_datetimefield_value(cutoff), _BATCH],
        batch_size=size,
    )


def events_maintain(*, now: datetime | None = None) -> MaintenanceReport:
    """Create upcoming partitions, drop expired ones and apply every App's retention.

    Idempotent: a second run at the same `now` creates, drops and deletes nothing. Runs
    outside any transaction (each step commits on its own, so no lock is held for long).
    """
    now = now or timezone.now()
    created = event_partitions_ensure(now=now)
    dropped = event_partitions_drop_expired(now=now)
    events_deleted = counters_deleted = 0
    for app in App.objects.order_by("pk").only("pk", "event_retention_days"):
        events_deleted += events_expired_delete(app=app, now=now)
        counters_deleted += event_counters_expired_delete(app=app, now=now)
    dedup_deleted = dedup_ids_expired_delete(now=now)
    return MaintenanceReport(
        created=created,
        dropped=dropped,
        events_deleted=events_deleted,
        counters_deleted=counters_deleted,
        dedup_ids_deleted=dedup_deleted,
    )
