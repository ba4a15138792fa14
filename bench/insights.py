"""Insights benchmark: a 5-step funnel (7-day window) and a 90-day daily trend over
100k people / 1M events in PostgreSQL, each beside a straightforward hand-written query of the
same answer, timed in the same run; the two answers are compared.

    .venv/bin/python bench/insights.py [--people 100000] [--events 1000000] [--runs 5] [--reuse]

Needs PostgreSQL on 127.0.0.1 (trust auth, user postgres); makes database engage_bench_insights
with bench/dataset.py (COPY, about a minute); `--reuse` keeps one already loaded.
Targets: funnel < 1 s, trend < 300 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dataset import django_setup, prepare

DB = "engage_bench_insights"
# Measure, do not stop: the API's time budget (10 s by default) does not apply here.
os.environ.setdefault("ENGAGE_INSIGHT_TIMEOUT_MS", "300000")
STEPS = ["page_view", "search", "report_viewed", "export_clicked", "csv_downloaded"]

# One attempt per step-1 event; each next step is the earliest matching event after the previous
# one (by timestamp, then id) within 7 days of step 1; a person counts by their furthest attempt
# (the earliest of those). Medians of the seconds between steps over that attempt.
FUNNEL_SQL = """
WITH s AS (
    SELECT id, person_id, timestamp FROM segments_event
    WHERE app_id = %(app)s AND name = 'page_view'
      AND timestamp >= %(start)s AND timestamp < %(end)s
),
chain AS (
    SELECT s.person_id, s.id AS i0, s.timestamp AS t0,
           e1.timestamp AS t1, e2.timestamp AS t2, e3.timestamp AS t3, e4.timestamp AS t4
    FROM s
    LEFT JOIN LATERAL (
        SELECT e.id, e.timestamp FROM segments_event e
        WHERE e.person_id = s.person_id AND e.app_id = %(app)s AND e.name = 'search'
          AND (e.timestamp, e.id) > (s.timestamp, s.id)
          AND e.timestamp <= s.timestamp + interval '7 days'
        ORDER BY e.timestamp, e.id LIMIT 1) e1 ON true
    LEFT JOIN LATERAL (
        SELECT e.id, e.timestamp FROM segments_event e
        WHERE e.person_id = s.person_id AND e.app_id = %(app)s AND e.name = 'report_viewed'
          AND (e.timestamp, e.id) > (e1.timestamp, e1.id)
          AND e.timestamp <= s.timestamp + interval '7 days'
        ORDER BY e.timestamp, e.id LIMIT 1) e2 ON true
    LEFT JOIN LATERAL (
        SELECT e.id, e.timestamp FROM segments_event e
        WHERE e.person_id = s.person_id AND e.app_id = %(app)s AND e.name = 'export_clicked'
          AND (e.timestamp, e.id) > (e2.timestamp, e2.id)
          AND e.timestamp <= s.timestamp + interval '7 days'
        ORDER BY e.timestamp, e.id LIMIT 1) e3 ON true
    LEFT JOIN LATERAL (
        SELECT e.id, e.timestamp FROM segments_event e
        WHERE e.person_id = s.person_id AND e.app_id = %(app)s AND e.name = 'csv_downloaded'
          AND (e.timestamp, e.id) > (e3.timestamp, e3.id)
          AND e.timestamp <= s.timestamp + interval '7 days'
        ORDER BY e.timestamp, e.id LIMIT 1) e4 ON true
),
best AS (
    SELECT DISTINCT ON (person_id) person_id, t0, t1, t2, t3, t4,
           1 + (t1 IS NOT NULL)::int + (t2 IS NOT NULL)::int + (t3 IS NOT NULL)::int
             + (t4 IS NOT NULL)::int AS depth
    FROM chain
    ORDER BY person_id, depth DESC, t0, i0
)
SELECT count(*),
       count(*) FILTER (WHERE depth >= 2), count(*) FILTER (WHERE depth >= 3),
       count(*) FILTER (WHERE depth >= 4), count(*) FILTER (WHERE depth >= 5),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t1 - t0)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t2 - t1)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t3 - t2)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t4 - t3))
FROM best
"""

TREND_SQL = """
SELECT (timestamp AT TIME ZONE 'UTC')::date AS day, count(*), count(DISTINCT person_id)
FROM segments_event
WHERE app_id = %(app)s AND name = 'page_view' AND timestamp >= %(start)s AND timestamp < %(end)s
GROUP BY 1 ORDER BY 1
"""


def timed(fn: Any, runs: int) -> tuple[float, Any]:
    fn()  # warm caches and plans
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def _loaded(people: int, events: int) -> bool:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="keep an already loaded database")
    args = parser.parse_args()
    if args.reuse and _loaded(args.people, args.events):
        django_setup(DB)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from engage.models import App

        app = App.objects.get()
        print(f"reusing {DB}: {args.people:,} people, {args.events:,} events")
    else:
        app, _ = prepare(DB, people=args.people, events=args.events)
    from django.db import connection

    from segments.insights import funnel_compute, funnel_parse, trend_compute, trend_parse

    today = datetime.now(UTC).date()
    end = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    start = end - timedelta(days=90)
    params = {"app": app.pk, "start": start, "end": end}

    def reference(sql: str) -> list[tuple[Any, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    funnel = funnel_parse(
        {
            "steps": [{"event": name} for name in STEPS],
            "window": {"value": 7, "unit": "day"},
            "last_days": 90,
        },
        today=today,
    )
    ours_ms, ours = timed(lambda: funnel_compute(app=app, definition=funnel), args.runs)
    from django.test import override_settings

    from segments.insights import funnels as funnels_module
    from segments.insights.parallel import parts_setting

    parts = parts_setting()
    # The same statement for all the people at once (ENGAGE_INSIGHT_PARALLEL=1), and the
    # portable statement (what SQLite runs) on the same PostgreSQL data, for comparison.
    with override_settings(ENGAGE_INSIGHT_PARALLEL=1):
        single_ms, single = timed(lambda: funnel_compute(app=app, definition=funnel), args.runs)
        carried = funnels_module._funnel_sql_pg
        funnels_module._funnel_sql_pg = funnels_module._funnel_sql  # type: ignore[assignment]
        try:
            portable_ms, portable = timed(
                lambda: funnel_compute(app=app, definition=funnel), args.runs
            )
        finally:
            funnels_module._funnel_sql_pg = carried  # type: ignore[assignment]
    ref_ms, ref = timed(lambda: reference(FUNNEL_SQL), args.runs)
    people = [s["people"] for s in ours["steps"]]
    medians = [s["median_seconds_from_previous"] for s in ours["steps"][1:]]
    ref_people, ref_medians = (
        list(ref[0][:5]),
        [float(m) if m is not None else None for m in ref[0][5:]],
    )
    same_funnel = people == ref_people and all(
        (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-3)
        for a, b in zip(medians, ref_medians, strict=True)
    )

    trend = trend_parse({"event": "page_view", "interval": "day", "last_days": 90}, today=today)
    trend_ms, trend_result = timed(lambda: trend_compute(app=app, definition=trend), args.runs)
    tref_ms, tref = timed(lambda: reference(TREND_SQL), args.runs)
    ours_days = {
        b["start"]: (b["count"], b["people"])
        for b in trend_result["series"][0]["buckets"]
        if b["count"]
    }
    ref_days = {day.isoformat(): (count, distinct) for day, count, distinct in tref}
    same_trend = ours_days == ref_days

    print(f"\nInsights, {args.people:,} people / {args.events:,} events (median of {args.runs})")
    print(f"{'query':<40} {'insights':>10} {'hand SQL':>10}  same answer")
    print(
        f"{f'5-step funnel, 7-day window ({parts} parts)':<40} {ours_ms:8.1f} ms {ref_ms:8.1f} ms  "
        f"{'yes' if same_funnel else 'NO'}"
    )
    print(
        f"{'  the same, one statement':<40} {single_ms:8.1f} ms {'':>11}  "
        f"{'yes' if single['steps'] == ours['steps'] else 'NO'}"
    )
    print(
        f"{'  the same, portable statement':<40} {portable_ms:8.1f} ms {'':>11}  "
        f"{'yes' if portable['steps'] == ours['steps'] else 'NO'}"
    )
    print(
        f"{'90-day daily trend (page_view)':<40} {trend_ms:8.1f} ms {tref_ms:8.1f} ms  "
        f"{'yes' if same_trend else 'NO'}"
    )
    print(
        f"funnel people per step: {people}; medians (s): "
        f"{[round(m) if m is not None else None for m in medians]}"
    )
    if not same_funnel:
        print(f"hand SQL people per step: {ref_people}; medians: {ref_medians}")
    print(f"trend: {sum(c for c, _ in ours_days.values()):,} events over {len(ours_days)} days")
    from segments.insights.budget import work_mem

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"insight work_mem {work_mem() or 'server default'}; load average {load}")
    print("targets: funnel < 1000 ms, trend < 300 ms")


if __name__ == "__main__":
    main()
