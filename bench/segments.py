"""Segment preview benchmark: audience count over 100k people / 1M events in PostgreSQL.

Prints the time of `segment_preview` (count + sample, the SQL compiler) for behavioural and
attribute conditions, and beside it, in the same run, a straightforward hand-written SQL count of
the same answer, so the compiler's overhead is visible.

    .venv/bin/python bench/segments.py [--people 100000] [--events 1000000] [--runs 7] [--reuse]

Needs PostgreSQL on 127.0.0.1 (trust auth, user postgres); makes database engage_bench_segments
(about a minute); `--reuse` keeps one already loaded with the same numbers of people and events
(migrating it, so new indexes are built, and analysing it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dataset import django_setup, prepare

DB = "engage_bench_segments"

CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "two behavioural leaves (count within days)",
        {
            "all": [
                {"event": "export_clicked", "count": {"op": "gte", "value": 2}, "within_days": 30},
                {"event": "report_viewed", "within_days": 7},
            ]
        },
        """
        SELECT count(*) FROM segments_person p WHERE p.app_id = %(app)s
          AND (SELECT count(*) FROM segments_event e WHERE e.person_id = p.id
               AND e.name = 'export_clicked' AND e.timestamp >= now() - interval '30 days') >= 2
          AND EXISTS (SELECT 1 FROM segments_event e WHERE e.person_id = p.id
               AND e.name = 'report_viewed' AND e.timestamp >= now() - interval '7 days')
        """,
    ),
    (
        "behavioural leaf with a property filter",
        {
            "event": "export_clicked",
            "where": [{"property": "format", "op": "eq", "value": "csv"}],
            "within_days": 30,
        },
        """
        SELECT count(*) FROM segments_person p WHERE p.app_id = %(app)s
          AND EXISTS (SELECT 1 FROM segments_event e WHERE e.person_id = p.id
               AND e.name = 'export_clicked' AND e.timestamp >= now() - interval '30 days'
               AND e.properties->>'format' = 'csv')
        """,
    ),
    (
        "attributes: plan in [...] and seats >= 50",
        {
            "all": [
                {"attribute": "plan", "op": "in", "value": ["pro", "enterprise"]},
                {"attribute": "seats", "op": "gte", "value": 50},
            ]
        },
        """
        SELECT count(*) FROM segments_person p WHERE p.app_id = %(app)s
          AND p.attributes->>'plan' IN ('pro', 'enterprise')
          AND jsonb_typeof(p.attributes->'seats') = 'number'
          AND (p.attributes->>'seats')::numeric >= 50
        """,
    ),
]


def _loaded(people: int, events: int) -> bool:
    """Whether the bench database exists and holds exactly this data set."""
    import subprocess

    query = (
        "SELECT (SELECT count(*) FROM segments_person) || ' ' || "
        "(SELECT count(*) FROM segments_event)"
    )
    result = subprocess.run(
        ["psql", "-qtA", "-h", "127.0.0.1", "-U", "postgres", "-d", DB, "-c", query],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == f"{people} {events}"


def reuse(people: int, events: int) -> Any:
    """The App of an already loaded bench database, migrated and analysed; None if absent."""
    if not _loaded(people, events):
        return None
    django_setup(DB)
    from django.core.management import call_command
    from django.db import connection

    from engage.models import App

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"reusing {DB}: {people:,} people, {events:,} events")
    return App.objects.get()


def timed(fn: Any, runs: int) -> tuple[float, Any]:
    fn()  # warm caches and plans
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="keep an already loaded database")
    args = parser.parse_args()
    app = reuse(args.people, args.events) if args.reuse else None
    if app is None:
        app, _ = prepare(DB, people=args.people, events=args.events)
    from django.db import connection

    from segments.selectors import segment_preview

    print(
        f"\nSegment preview, {args.people:,} people / {args.events:,} events (median of {args.runs})"
    )
    print(f"{'condition':<44} {'preview':>10} {'hand SQL':>10}  count")
    for label, condition, sql in CASES:
        ours, preview = timed(lambda c=condition: segment_preview(app=app, condition=c), args.runs)

        def reference(sql: str = sql) -> int:
            with connection.cursor() as cursor:
                cursor.execute(sql, {"app": app.pk})
                return int(cursor.fetchone()[0])

        theirs, expected = timed(reference, args.runs)
        agree = "" if preview.count == expected else f"  (hand SQL counts {expected})"
        print(f"{label:<44} {ours:8.1f} ms {theirs:8.1f} ms  {preview.count:,}{agree}")
    print("target: < 500 ms for the two-leaf behavioural condition")


if __name__ == "__main__":
    main()
