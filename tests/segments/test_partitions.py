"""Monthly event partitions (PostgreSQL), per-App retention and dedup ids (both databases)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from engage.celery import app as celery_app
from segments import partitions
from segments.models import Event, EventDailyCount, EventDedup
from segments.services import EventInput, _People, events_ingest
from segments.tasks import events_maintain_task
from tests.factories import AppFactory, EventFactory, PersonFactory

pytestmark = pytest.mark.django_db


def _partition_of(event: Event) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM segments_event WHERE id = %s", [event.pk]
        )
        return str(cursor.fetchone()[0])


def _month(at: datetime) -> str:
    return f"segments_event_p{at:%Y_%m}"


# --- the table on PostgreSQL -------------------------------------------------------------------


@pytest.mark.postgres
def test_the_migration_partitions_events_by_month_with_id_and_timestamp_as_key(postgres):
    now = timezone.now()
    assert partitions.events_partitioned()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'segments_event'::regclass AND contype = 'p'"
        )
        assert cursor.fetchone()[0] == 'PRIMARY KEY (id, "timestamp")'
    names = [p.name for p in partitions.event_partitions()]
    first = now.date().replace(day=1)
    for n in range(settings.ENGAGE_EVENT_PARTITIONS_AHEAD + 1):
        assert f"segments_event_p{partitions._month_add(first, n):%Y_%m}" in names

    recent = EventFactory(timestamp=now)
    ancient = EventFactory(timestamp=now - timedelta(days=365 * 20))
    assert _partition_of(recent) == _month(now)
    assert _partition_of(ancient) == "segments_event_default"
    # The ORM still works with `id` alone: reads, updates, deletes.
    Event.objects.filter(pk=recent.pk).update(name="renamed")
    assert Event.objects.get(pk=recent.pk).name == "renamed"
    ancient.delete()
    assert list(Event.objects.values_list("pk", flat=True)) == [recent.pk]


@pytest.mark.postgres
def test_no_table_points_at_events_with_a_foreign_key(postgres):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' AND confrelid = 'segments_event'::regclass"
        )
        assert cursor.fetchall() == []


@pytest.mark.postgres
def test_ensure_creates_upcoming_months_and_moves_their_rows_out_of_the_default(postgres):
    later = timezone.now() + timedelta(days=370)
    stray = EventFactory(timestamp=later)  # no partition of its month yet: in the default
    assert _partition_of(stray) == "segments_event_default"

    created = partitions.event_partitions_ensure(now=later, months_ahead=1)

    assert created == [_month(later), _month(later.replace(day=1) + timedelta(days=32))]
    assert _partition_of(stray) == _month(later)
    assert Event.objects.get(pk=stray.pk).timestamp == stray.timestamp
    # Idempotent: a second run creates nothing.
    assert partitions.event_partitions_ensure(now=later, months_ahead=1) == []


@pytest.mark.postgres
def test_ensure_gives_backfilled_months_within_retention_their_own_partition(postgres):
    now = timezone.now()
    backfilled = EventFactory(timestamp=now - timedelta(days=150))  # retention 395 days
    beyond = EventFactory(timestamp=now - timedelta(days=500))
    assert _partition_of(backfilled) == "segments_event_default"

    created = partitions.event_partitions_ensure(now=now)

    assert created == [_month(backfilled.timestamp)]
    assert _partition_of(backfilled) == _month(backfilled.timestamp)
    assert _partition_of(beyond) == "segments_event_default"  # retention deletes it instead


@pytest.mark.postgres
def test_a_partition_is_dropped_only_when_older_than_every_apps_retention(postgres):
    now = datetime(2026, 11, 15, 12, tzinfo=UTC)
    short = AppFactory(event_retention_days=30)
    long = AppFactory(event_retention_days=100)
    # Monthly partitions from June to November 2026.
    partitions.event_partitions_ensure(now=datetime(2026, 6, 1, tzinfo=UTC), months_ahead=5)
    in_june = EventFactory(
        person=PersonFactory(app=long), timestamp=datetime(2026, 6, 20, tzinfo=UTC)
    )
    in_aug = EventFactory(
        person=PersonFactory(app=long), timestamp=datetime(2026, 8, 20, tzinfo=UTC)
    )

    with connection.cursor() as cursor:  # as if committed: no foreign key check pending
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    dropped = partitions.event_partitions_drop_expired(now=now)

    # The longest retention (100 days) cuts on 2026-08-07: June and July are wholly older;
    # August straddles the cut and stays (its rows older than the cut go by DELETE).
    assert dropped == ["segments_event_p2026_06", "segments_event_p2026_07"]
    names = {p.name for p in partitions.event_partitions()}
    assert "segments_event_p2026_06" not in names
    assert "segments_event_p2026_08" in names
    assert not Event.objects.filter(pk=in_june.pk).exists()
    assert Event.objects.filter(pk=in_aug.pk).exists()
    assert short.event_retention_days < long.event_retention_days


# --- retention on both databases --------------------------------------------------------------


def test_retention_deletes_only_expired_events_of_the_app_they_belong_to():
    now = timezone.now()
    short = AppFactory(event_retention_days=30)
    long = AppFactory(event_retention_days=395)
    short_person = PersonFactory(app=short)
    long_person = PersonFactory(app=long)
    expired = [
        EventFactory(person=short_person, timestamp=now - timedelta(days=40, minutes=i))
        for i in range(5)
    ]
    kept_short = EventFactory(person=short_person, timestamp=now - timedelta(days=20))
    kept_long = EventFactory(person=long_person, timestamp=now - timedelta(days=40))
    expired_long = EventFactory(person=long_person, timestamp=now - timedelta(days=400))

    deleted = partitions.events_expired_delete(app=short, now=now, batch_size=2)

    assert deleted == 5
    remaining = set(Event.objects.values_list("pk", flat=True))
    assert not remaining & {e.pk for e in expired}
    assert {kept_short.pk, kept_long.pk, expired_long.pk} <= remaining
    assert partitions.events_expired_delete(app=long, now=now) == 1
    assert not Event.objects.filter(pk=expired_long.pk).exists()
    assert Event.objects.filter(pk=kept_long.pk).exists()


def test_retention_deletes_the_counters_of_expired_days_of_that_app_only():
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    short = AppFactory(event_retention_days=30)
    long = AppFactory(event_retention_days=395)
    a, b = PersonFactory(app=short), PersonFactory(app=long)
    old_day, boundary_day, new_day = date(2026, 10, 1), date(2026, 10, 26), date(2026, 11, 20)
    for person in (a, b):
        for day in (old_day, boundary_day, new_day):
            EventDailyCount.objects.create(person=person, name="page_view", day=day, count=2)

    deleted = partitions.event_counters_expired_delete(app=short, now=now)

    assert deleted == 1
    assert set(EventDailyCount.objects.filter(person=a).values_list("day", flat=True)) == {
        boundary_day,
        new_day,
    }
    assert EventDailyCount.objects.filter(person=b).count() == 3


def test_maintenance_applies_every_apps_retention_and_prunes_old_dedup_ids(settings):
    settings.ENGAGE_EVENT_DEDUP_DAYS = 7
    now = timezone.now()
    app = AppFactory(event_retention_days=10)
    events_ingest(
        app=app,
        events=[
            EventInput(
                name="old", user_id="u1", dedup_id="e-old", timestamp=now - timedelta(days=11)
            ),
            EventInput(name="new", user_id="u1", dedup_id="e-new", timestamp=now),
        ],
        received_at=now - timedelta(days=8),
    )
    events_ingest(
        app=app,
        events=[EventInput(name="fresh", user_id="u1", dedup_id="e-fresh")],
        received_at=now,
    )

    report = partitions.events_maintain(now=now)

    assert report.events_deleted == 1
    assert report.dedup_ids_deleted == 2
    assert sorted(Event.objects.values_list("name", flat=True)) == ["fresh", "new"]
    assert list(EventDedup.objects.values_list("dedup_id", flat=True)) == ["e-fresh"]
    # A second run finds nothing more to do.
    again = partitions.events_maintain(now=now)
    assert (again.created, again.dropped, again.events_deleted, again.dedup_ids_deleted) == (
        [],
        [],
        0,
        0,
    )


def test_the_maintenance_task_runs_and_beat_schedules_it():
    app = AppFactory(event_retention_days=5)
    EventFactory(person=PersonFactory(app=app), timestamp=timezone.now() - timedelta(days=6))

    result = events_maintain_task.delay().get()

    assert result["events_deleted"] == 1
    assert Event.objects.count() == 0
    entry = settings.CELERY_BEAT_SCHEDULE["events-maintain"]
    assert entry["task"] in celery_app.tasks


# --- dedup on both databases -------------------------------------------------------------------


def test_a_retried_batch_is_stored_once_through_the_dedup_table():
    app = AppFactory()
    batch = [
        EventInput(name="signup", user_id="u1", dedup_id="eid-1"),
        EventInput(name="page_view", anonymous_id="a1", dedup_id="eid-2"),
        EventInput(name="no_id", user_id="u1"),
    ]

    first = events_ingest(app=app, events=batch)
    second = events_ingest(app=app, events=batch)

    assert (len(first.stored), first.duplicates) == (3, 0)
    assert (len(second.stored), second.duplicates) == (1, 2)  # the one without an id is new
    assert Event.objects.filter(dedup_id__isnull=False).count() == 2
    assert set(EventDedup.objects.values_list("dedup_id", flat=True)) == {"eid-1", "eid-2"}
    assert EventDailyCount.objects.get(name="signup").count == 1


def test_dedup_ids_of_one_app_do_not_hide_another_apps_events():
    one, other = AppFactory(), AppFactory()
    events_ingest(app=one, events=[EventInput(name="a", user_id="u", dedup_id="same")])

    result = events_ingest(app=other, events=[EventInput(name="a", user_id="u", dedup_id="same")])

    assert len(result.stored) == 1
    assert Event.objects.filter(app=other).count() == 1


def test_a_dedup_id_stored_concurrently_after_the_lookup_is_not_stored_twice():
    """Another request stored the id between this one's lookup and its insert: the insert
    stores nothing of it, the batch runs again and finds it stored, counters count it once."""
    app = AppFactory()
    events_ingest(app=app, events=[EventInput(name="buy", user_id="u1", dedup_id="race")])
    real = _People.load_for_events
    calls = []

    def blind_first_lookup(self, pairs, dedup_ids):  # type: ignore[no-untyped-def]
        seen = real(self, pairs, dedup_ids)
        calls.append(dedup_ids)
        return set() if len(calls) == 1 else seen

    with mock.patch.object(_People, "load_for_events", blind_first_lookup):
        result = events_ingest(
            app=app,
            events=[
                EventInput(name="buy", user_id="u1", dedup_id="race"),
                EventInput(name="view", user_id="u1", dedup_id="other"),
            ],
        )

    assert len(calls) == 2  # the batch ran again
    assert ([e.name for e in result.stored], result.duplicates) == (["view"], 1)
    assert Event.objects.filter(dedup_id="race").count() == 1
    assert EventDailyCount.objects.get(name="buy").count == 1
    assert EventDailyCount.objects.get(name="view").count == 1
