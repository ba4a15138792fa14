"""Insights over many events as several statements at once, each over a range of people.

PostgreSQL runs the window passes of a funnel in one process: parallel workers share only the
reading and sorting of the events. A person's funnel depends on that person's events alone,
so the people can be cut into ranges of ids holding about as many events each, and each
range's statement run on its own connection at the same time; the parts' counts add up and
their times between steps are merged for the medians. Every part reads the same snapshot (the
first part's, exported), so the answer is the one a single statement would give.

Used on PostgreSQL for insights outside any transaction (a caller's uncommitted rows are not
visible to other connections), when ENGAGE_INSIGHT_PARALLEL is 2 or more and the App has at
least ENGAGE_INSIGHT_PARALLEL_MIN_EVENTS events in the range (estimated from a sample).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Q

from engage.db import local_settings

DEFAULT_PARTS = 2
DEFAULT_MIN_EVENTS = 100_000
SAMPLE_ROWS = 20_000  # events sampled to place the cuts (about 1% error on a part's share)
_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")

T = TypeVar("T")


@dataclass(frozen=True)
class PersonRange:
    """Person ids from `start` (inclusive) to `end` (exclusive); None: unbounded."""

    start: int | None
    end: int | None

    def q(self, field: str) -> Q:
        q = Q()
        if self.start is not None:
            q &= Q(**{f"{field}__gte": self.start})
        if self.end is not None:
            q &= Q(**{f"{field}__lt": self.end})
        return q

    def sql(self, column: str) -> tuple[str, list[int]]:
        parts, params = ["TRUE"], []
        if self.start is not None:
            parts.append(f"{column} >= %s")
            params.append(self.start)
        if self.end is not None:
            parts.append(f"{column} < %s")
            params.append(self.end)
        return " AND ".join(parts), params


def parts_setting() -> int:
    return max(1, int(getattr(settings, "ENGAGE_INSIGHT_PARALLEL", DEFAULT_PARTS)))


def min_events_setting() -> int:
    return int(getattr(settings, "ENGAGE_INSIGHT_PARALLEL_MIN_EVENTS", DEFAULT_MIN_EVENTS))


def person_ranges(
    *, app_id: int, start: datetime | None, end: datetime | None
) -> list[PersonRange] | None:
    """Cuts of the App's people holding about as many of its events in [start, end) each, or
    None when one statement will do (one part wanted, not PostgreSQL, inside a transaction, or
    fewer events than the threshold).

    The cuts are quantiles of the person ids of a page sample of the events (TABLESAMPLE
    SYSTEM, sized from the planner's row estimate): a few milliseconds, whatever the table.
    """
    parts = parts_setting()
    if parts < 2 or connection.vendor != "postgresql" or connection.in_atomic_block:
        return None
    where = ["app_id = %s"]
    params: list[Any] = [app_id]
    if start is not None:
        where.append("timestamp >= %s")
        params.append(start)
    if end is not None:
        where.append("timestamp < %s")
        params.append(end)
    with connection.cursor() as cursor:
        # reltuples of the partitions (-1 or 0 before the first ANALYZE: sample everything).
        cursor.execute(
            "SELECT COALESCE(SUM(GREATEST(c.reltuples, 0)), 0) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'segments_event'::regclass"
        )
        estimated = float(cursor.fetchone()[0]) or float(SAMPLE_ROWS)
        percent = min(100.0, 100.0 * SAMPLE_ROWS / estimated)
        cuts = [(i + 1) / parts for i in range(parts - 1)]
        sample = (
            "SELECT COUNT(*), percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY person_id) "
            "FROM segments_event TABLESAMPLE SYSTEM (%s) WHERE " + " AND ".join(where)
        )  # fixed text; every value is bound
        cursor.execute(sample, [cuts, percent, *params])
        sampled, quantiles = cursor.fetchone()
    if sampled * 100.0 / percent < min_events_setting() or not quantiles:
        return None
    bounds = sorted({int(q) for q in quantiles if q is not None})
    edges: list[int | None] = [None, *bounds, None]
    return [PersonRange(a, b) for a, b in itertools.pairwise(edges)]


def run_parts(
    jobs: Sequence[Callable[[], T]], *, budget: Callable[[], AbstractContextManager[Any]]
) -> list[T]:
    """Run each job on its own connection at once, all reading one snapshot; their results in
    order. `budget()` gives the context (time budget, settings) each job runs inside.

    The first job runs here, in a REPEATABLE READ transaction whose snapshot is exported;
    the others run in threads whose transactions import it. An error in any job is raised
    here once every job has ended.
    """
    if len(jobs) == 1:
        with budget():
            return [jobs[0]()]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = str(cursor.fetchone()[0])
        if not _SNAPSHOT_ID.match(snapshot):  # it is written into SET TRANSACTION SNAPSHOT
            raise RuntimeError(f"unexpected snapshot id {snapshot!r}")

        def imported(job: Callable[[], T]) -> T:
            try:
                with transaction.atomic():
                    with connection.cursor() as cursor:
                        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                        cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                    with budget():
                        return job()
            finally:
                connections.close_all()  # this thread's connections (back to the pool)

        with ThreadPoolExecutor(max_workers=len(jobs) - 1) as pool:
            futures = [pool.submit(imported, job) for job in jobs[1:]]
            try:
                with budget():
                    results = [jobs[0]()]
            finally:
                wait(futures)  # the snapshot's transaction stays open until every part is done
        return [*results, *(future.result() for future in futures)]


def serial_part() -> AbstractContextManager[None]:
    """The settings of one part: no parallel workers of its own (the parts are the
    parallelism; workers would only compete with them for the same cores)."""
    return local_settings(max_parallel_workers_per_gather="0")
