"""A realistic data set in PostgreSQL for the benchmarks: people, events and their counters.

`prepare(db_name, people=100_000, events=1_000_000)` (re)creates a database, migrates it,
creates one App and bulk-loads people, anonymous ids, events and per-day counters with COPY
(seconds, not minutes). Deterministic: the same seed gives the same data.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"

PLANS = ["free", "starter", "pro", "enterprise"]
COUNTRIES = ["US", "DE", "FR", "GB", "BR", "IN", "JP", "ES", "CA", "AU"]
EVENT_NAMES = [
    "page_view", "export_clicked", "report_viewed", "invite_sent", "login", "signup",
    "search", "filter_applied", "dashboard_opened", "csv_downloaded", "comment_added",
    "share_clicked", "upgrade_viewed", "settings_opened", "api_key_created", "order_completed",
    "checkout_started", "cart_viewed", "help_opened", "logout",
]  # fmt: skip
# Skewed like real products: a few events dominate.
EVENT_WEIGHTS = [30, 6, 12, 2, 10, 1, 8, 5, 7, 3, 2, 1, 1, 2, 1, 2, 2, 3, 1, 2]


def database_url(db_name: str) -> str:
    return f"{PG}/{db_name}"


def psql(sql: str, db: str = "postgres") -> None:
    subprocess.run(
        ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-c", sql],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def django_setup(db_name: str) -> None:
    os.environ["DATABASE_URL"] = database_url(db_name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "engage.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _copy(cursor: object, table: str, columns: list[str], rows: io.StringIO) -> None:
    rows.seek(0)
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
        while chunk := rows.read(1 << 20):
            copy.write(chunk)


def _tsv(value: object) -> str:
    if value is None:
        return "\\N"
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def prepare(db_name: str, *, people: int = 100_000, events: int = 1_000_000, seed: int = 7):
    """Fresh database with one App and the data set; returns (app, secret_key)."""
    started = time.perf_counter()
    psql(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
    psql(f"CREATE DATABASE {db_name}")
    django_setup(db_name)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from engage.services import app_create

    created = app_create(name="Bench", origins=["http://127.0.0.1"], snowplow_app_ids=["bench"])
    app = created.app
    rng = random.Random(seed)
    now = datetime.now(UTC)
    person_rows = io.StringIO()
    for i in range(1, people + 1):
        attributes = {
            "plan": rng.choice(PLANS),
            "country": rng.choice(COUNTRIES),
            "seats": rng.randint(1, 200),
            "beta": rng.random() < 0.2,
            "email": f"user{i}@example.{rng.choice(['com', 'org', 'io'])}",
            "signed_up": (now - timedelta(days=rng.randint(0, 720))).date().isoformat(),
        }
        first = now - timedelta(days=rng.randint(30, 720))
        person_rows.write(
            f"{i}\t{app.pk}\tu{i}\t{_tsv(attributes)}\t{first.isoformat()}\t{now.isoformat()}\n"
        )
    event_rows = io.StringIO()
    names = rng.choices(EVENT_NAMES, weights=EVENT_WEIGHTS, k=events)
    for n in range(events):
        person_id = min(people, int(rng.paretovariate(1.2) * people / 20) % people + 1)
        ts = now - timedelta(seconds=rng.randint(0, 90 * 86400))
        name = names[n]
        properties: dict[str, object] = {"url": f"https://app.example/{name}/{rng.randint(1, 50)}"}
        if name in ("export_clicked", "csv_downloaded"):
            properties["format"] = rng.choice(["csv", "xlsx", "pdf"])
        event_rows.write(
            f"{app.pk}\t{person_id}\t{name}\t{_tsv(properties)}\t[]\t{ts.isoformat()}\t"
            f"{ts.isoformat()}\tapi\t\\N\t{{}}\n"
        )
    # Monthly partitions for the months the events fall in, so that none of them lands in
    # the DEFAULT partition (which would skew every plan that reads events).
    from segments.partitions import event_partition_create

    month = (now - timedelta(days=90)).date().replace(day=1)
    while month <= now.date():
        event_partition_create(month=month)
        month = (month + timedelta(days=32)).replace(day=1)
    with connection.cursor() as cursor:
        raw = cursor.connection.cursor()
        _copy(
            raw,
            "segments_person",
            ["id", "app_id", "user_id", "attributes", "first_seen", "last_seen"],
            person_rows,
        )
        _copy(
            raw,
            "segments_event",
            [
                "app_id",
                "person_id",
                "name",
                "properties",
                "contexts",
                "timestamp",
                "received_at",
                "source",
                "dedup_id",
                "raw",
            ],
            event_rows,
        )
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('segments_person', 'id'), %s)", [people]
        )
        cursor.execute(
            """
            INSERT INTO segments_eventdailycount (person_id, name, day, count)
            SELECT person_id, name, (timestamp AT TIME ZONE 'UTC')::date, count(*)
            FROM segments_event GROUP BY 1, 2, 3
            """
        )
        cursor.execute("ANALYZE")
    print(
        f"data set: {people:,} people, {events:,} events in {db_name} "
        f"({time.perf_counter() - started:.1f} s to build)"
    )
    return app, created.secret_key


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
