"""Growth: the queries of earlier issues at 1x and 10x the events, on monthly partitions.

    .venv/bin/python bench/growth.py [--base 1000000] [--factor 10] [--repeat 15]
    .venv/bin/python bench/growth.py --measure-only   # again on the data left, after a change

What it does, bounded (about 5 to 10 minutes on 2 shared cores at the defaults):
1. (Re)creates the PostgreSQL database `engage_growth` on 127.0.0.1:5432, migrates it (the
   events table partitioned by month) and creates one App with 50,000 people.
2. Loads `--base` events: 25,000 a day, the newest now, so 1x is 40 days of history. Measures
   the queries below (median and p95 of `--repeat` runs, warm cache).
3. Adds events until there are `--base × --factor`, at the same daily rate further back in
   time (10x is 400 days: a year of history, as a growing App accumulates it), creating the
   monthly partitions first, then measures again.

Queries, through the product's own code:
- people profile: `segments.selectors.person_profile` (newest 50 events of a person);
- debug list: `segments.selectors.debug_events_list` (newest 50 good events of the App);
- `where` leaf: `{"event": "export_clicked", "within_days": 30, "where": [{"property":
  "format", "op": "eq", "value": "csv"}]}` counted over the App's people (segment preview);
- counter leaf: `{"event": "page_view", "count": {"op": "gte", "value": 2}, "within_days": 7}`.
It also prints how many partitions each query's plan reads (pruning). Figures of 1x are the
baseline, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "engage_growth"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
PEOPLE = 50_000
PER_DAY = 25_000
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qtA"]


def log(text: str) -> None:
    print(text, flush=True)


def psql(sql: str, database: str = "postgres") -> str:
    done = subprocess.run(
        [*PSQL, "-d", database, "-c", sql],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"psql failed ({sql[:80]!r}): {done.stderr.strip()}")
    return done.stdout.strip()


def database_create() -> None:
    psql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    psql(f"CREATE DATABASE {DB_NAME}")
    env = {**os.environ, "DATABASE_URL": DATABASE_URL, "REDIS_URL": "", "CELERY_BROKER_URL": ""}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )


def django_setup() -> None:
    os.environ.update(
        {
            "DATABASE_URL": DATABASE_URL,
            "DJANGO_SETTINGS_MODULE": "engage.settings",
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "",
            "DB_POOL": "0",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def load(app_id: int, first: int, last: int) -> float:
    """Insert events number `first` to `last` - 1 (event n happened n / PER_DAY days ago), with
    their per-day counters; returns the seconds it took."""
    from django.db import connection
    from django.utils import timezone

    from segments.partitions import event_partition_create

    started = time.perf_counter()
    now = timezone.now()
    oldest = now - timedelta(days=last / PER_DAY)
    month = oldest.date().replace(day=1)
    while month <= now.date():
        event_partition_create(month=month)
        month = (month + timedelta(days=32)).replace(day=1)
    step = 2_000_000
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id) FROM segments_person WHERE app_id = %s", [app_id])
        (first_person,) = cursor.fetchone()
        for start in range(first, last, step):
            end = min(last, start + step)
            # Names and properties cycle with co-prime periods, people spread by a multiplier.
            cursor.execute(
                """
                INSERT INTO segments_event (app_id, person_id, name, properties, contexts,
                    timestamp, received_at, source, dedup_id, raw)
                SELECT %(app)s, %(person)s + (n::bigint * 7919) %% %(people)s,
                       (ARRAY['page_view', 'page_view', 'export_clicked', 'filter_changed',
                              'survey_answered', 'page_ping', 'signup'])[n %% 7 + 1],
                       jsonb_build_object('format', (ARRAY['csv', 'xlsx', 'pdf'])[n %% 3 + 1],
                                          'url', 'https://app.example/reports/' || n %% 50),
                       '[]', %(now)s - n * interval '1 day' / %(per_day)s,
                       %(now)s - n * interval '1 day' / %(per_day)s + interval '1 second',
                       'collector', NULL, '{}'
                FROM generate_series(%(start)s, %(end)s - 1) n
                """,
                {
                    "app": app_id,
                    "person": first_person,
                    "people": PEOPLE,
                    "now": now,
                    "per_day": PER_DAY,
                    "start": start,
                    "end": end,
                },
            )
        cursor.execute(
            """
            INSERT INTO segments_eventdailycount (person_id, name, day, count)
            SELECT person_id, name, (timestamp AT TIME ZONE 'UTC')::date, count(*)
            FROM segments_event WHERE timestamp < %s AND timestamp >= %s GROUP BY 1, 2, 3
            ON CONFLICT (person_id, name, day)
            DO UPDATE SET count = segments_eventdailycount.count + excluded.count
            """,
            [now - timedelta(days=first / PER_DAY), oldest - timedelta(seconds=1)],
        )
    psql("VACUUM ANALYZE", DB_NAME)
    return time.perf_counter() - started


def timed(run: Callable[[], Any], repeat: int) -> tuple[float, float]:
    run()  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def partitions_read(sql: str, params: Any) -> int:
    """How many partitions of the events table the plan of a query reads."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return len(set(re.findall(r"segments_event_(?:p\d{4}_\d{2}|default)(?!\w)", plan)))


WHERE_LEAF = {
    "event": "export_clicked",
    "within_days": 30,
    "where": [{"property": "format", "op": "eq", "value": "csv"}],
}
COUNT_LEAF = {"event": "page_view", "count": {"op": "gte", "value": 2}, "within_days": 7}


def measure(app: Any, repeat: int) -> dict[str, tuple[float, float, int, int]]:
    """name -> (median ms, p95 ms, partitions read, rows answered)."""
    from django.utils import timezone

    from segments.conditions import parse_condition
    from segments.conditions.sql import condition_to_q
    from segments.models import Event, Person
    from segments.selectors import debug_events_list, person_profile

    person = Person.objects.filter(app=app).order_by("id")[PEOPLE // 2]
    now = timezone.now()
    results: dict[str, tuple[float, float, int, int]] = {}

    profile = Event.objects.filter(person=person).order_by("-timestamp", "-id")[:50]
    sql, params = profile.query.sql_with_params()
    median, p95 = timed(lambda: person_profile(person=person), repeat)
    results["people profile (50 newest)"] = (median, p95, partitions_read(sql, params), 50)
    median, p95 = timed(lambda: list(profile.all()), repeat)
    results["  its events query alone"] = (median, p95, partitions_read(sql, params), 50)

    debug = Event.objects.filter(app=app).order_by("-received_at", "-id")[:50]
    sql, params = debug.query.sql_with_params()
    median, p95 = timed(
        lambda: debug_events_list(app_id=app.pk, status="good", limit=50, cursor=None), repeat
    )
    results["debug list (50 newest)"] = (median, p95, partitions_read(sql, params), 50)

    for label, condition in (
        ("where leaf, 30 days", WHERE_LEAF),
        ("count leaf, 7 days", COUNT_LEAF),
    ):
        q = condition_to_q(parse_condition(condition), app=app, now=now)
        people = Person.objects.filter(app=app).filter(q)
        sql, params = people.values("id").query.sql_with_params()
        count = people.count()
        median, p95 = timed(lambda people=people: people.count(), repeat)
        results[label] = (median, p95, partitions_read(sql, params), count)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=int, default=1_000_000)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument(
        "--measure-only",
        action="store_true",
        help="measure the database a previous run left (after a schema change), no loading",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    log(f"engage growth benchmark: load average {os.getloadavg()[0]:.1f} before starting")
    if args.measure_only:
        django_setup()
        from engage.models import App

        size = int(psql("SELECT count(*) FROM segments_event", DB_NAME))
        for name, (median, p95, parts, count) in measure(
            App.objects.get(name="Growth"), args.repeat
        ).items():
            log(f"{name:<28}{size:>12,}{median:>11.2f}{p95:>9.2f}{parts:>12}{count:>8,}")
        return 0
    database_create()
    django_setup()
    from django.db import connection

    from engage.services import app_create

    app = app_create(name="Growth", origins=["https://app.example"], snowplow_app_ids=[]).app
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO segments_person (app_id, user_id, attributes, first_seen, last_seen) "
            "SELECT %s, 'user-' || n, '{}', now(), now() FROM generate_series(1, %s) n",
            [app.pk, PEOPLE],
        )
    rows = []
    total = 0
    for size in (args.base, args.base * args.factor):
        took = load(app.pk, total, size)
        total = size
        parts = psql(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'segments_event'::regclass",
            DB_NAME,
        )
        days = size / PER_DAY
        log(f"{size:,} events ({days:.0f} days, {parts} partitions) loaded in {took:.0f} s")
        rows.append((size, measure(app, args.repeat)))

    log(f"\n{'query':<28}{'events':>12}{'median ms':>11}{'p95 ms':>9}{'partitions':>12}{'rows':>8}")
    for size, results in rows:
        for name, (median, p95, parts, count) in results.items():
            log(f"{name:<28}{size:>12,}{median:>11.2f}{p95:>9.2f}{parts:>12}{count:>8,}")
    base, grown = rows[0][1], rows[-1][1]
    log("")
    for name in base:
        log(f"{name}: {grown[name][0] / base[name][0]:.2f}× the time at {args.factor}× the events")
    log(f"total time {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
