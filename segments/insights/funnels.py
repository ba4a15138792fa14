"""Funnels over stored events, in one SQL statement on PostgreSQL and on SQLite.

Semantics (those of PostHog's and Amplitude's ordered funnels):

- A person's events are ordered by timestamp, ties by event id; so events that arrived out of
  order count in the order they happened.
- An attempt starts at any event matching step 1 inside the date range. From it, each next step
  is the earliest matching event strictly after the previous step's event: one event never
  counts for two steps, so a funnel may repeat an event (view → view → buy needs two views).
- Every step of an attempt must happen at most the conversion window after the attempt's step 1
  (the edge is inclusive: exactly 7 days later still counts for a 7-day window). Later steps
  may fall after `date_to`, up to the window.
- A person counts once: by the attempt that got furthest, the earliest such attempt when
  several tie. Their times between steps come from that attempt.
- The median time between step k-1 and step k is taken over the people who reached step k.

How, on PostgreSQL (`_funnel_sql_pg`): the matching events are sorted once by (person, time,
id); n-1 window passes over that one order then carry each step's chain backwards (see there), a
grouped pass picks each person's best attempt, and no row is joined to another. Step-1 events
that match no later step (most rows of a funnel that starts at a page view) skip all passes
but the last: they are read and sorted on their own and merged back in order for it. With
cohorts, attempts are joined to the cohort rows before that pick. Over many events the same
statement runs once per range of people, all at once on their own connections, each reading
its people's events in person order from an index (`segments.insights.parallel`); their
counts add up and the medians are taken over all their times (`_median_seconds`).

How elsewhere (SQLite; `_funnel_sql`): the matching events get a global row number `g`
ordered by (person, timestamp, id), counted from the end; one window pass gives, for every row
and every step k, the `g` of the next row matching step k (a hit on another person's row means
none). Attempts that lead to the same step-2 event share the rest of their chain, so the chain
is followed once per such head, by equality joins (one per step, on that step's rows only);
window functions then pick each person's best attempt and the medians. With cohorts, attempts
are joined to the cohort rows (and start at or after the person's anchor when there is one).
Both statements give the same answers (tests/segments/test_insights_funnels_pg.py).
"""

# The statement is assembled from fixed text, generated aliases (s0, n1, t2…) and integers;
# every value from a definition travels as a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial, reduce
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Case, IntegerField, Q, Value, When
from django.utils import timezone

from engage.models import App
from segments.conditions.sql import event_filters_q
from segments.insights.budget import insight_budget
from segments.insights.cohorts import Cohorts, segment_cohorts
from segments.insights.definitions import DateRange, EventFilter, FunnelDefinition
from segments.insights.parallel import PersonRange, person_ranges, run_parts, serial_part
from segments.models import Event


@dataclass(frozen=True)
class FunnelGroup:
    """One group's funnel: how many reached each step (at least), and the median seconds
    from the previous step (None for step 1, or when nobody reached the step)."""

    label: str
    reached: tuple[int, ...]
    median_seconds: tuple[float | None, ...]
    members: int | None = None


def diff_ms_sql(start: str, end: str) -> str:
    """SQL for `end - start` in milliseconds (SQLite: to the millisecond)."""
    if connection.vendor == "postgresql":
        return f"(EXTRACT(EPOCH FROM ({end} - {start})) * 1000)"
    return f"ROUND((julianday({end}) - julianday({start})) * 86400000.0)"


def _step_q(step: EventFilter, now: datetime) -> Q:
    # Without property filters the name alone (no always-true test for the scan to evaluate).
    if not step.where:
        return Q(name=step.event)
    return Q(name=step.event) & event_filters_q(step.where, now=now)


def _base_events_sql(
    *,
    app_id: int,
    steps: tuple[EventFilter, ...],
    window: timedelta,
    date_range: DateRange | None,
    now: datetime,
    people: PersonRange | None = None,
) -> tuple[str, list[Any]]:
    """The App's events matching any step, with one 0/1 column per step (`s0`, `s1`, …);
    with `people`, only the events of that range of person ids."""
    qs = [_step_q(step, now) for step in steps]
    first = qs[0]
    events = Event.objects.filter(app_id=app_id).filter(reduce(lambda a, b: a | b, qs))
    if people is not None:
        events = events.filter(people.q("person_id"))
    if date_range is not None:
        events = events.filter(
            timestamp__gte=date_range.start, timestamp__lt=date_range.end + window
        )
        first = first & Q(timestamp__lt=date_range.end)
    flags = {
        f"s{i}": Case(
            When(q if i else first, then=Value(1)), default=Value(0), output_field=IntegerField()
        )
        for i, q in enumerate(qs)
    }
    events = events.order_by().annotate(**flags).values("id", "person_id", "timestamp", *flags)
    sql, params = events.query.get_compiler(using=DEFAULT_DB_ALIAS).as_sql()
    return sql, list(params)


def _funnel_sql_pg(
    *,
    app_id: int,
    steps: tuple[EventFilter, ...],
    window: timedelta,
    date_range: DateRange | None,
    cohorts: Cohorts | None,
    now: datetime,
    people: PersonRange | None = None,
) -> tuple[str, list[Any]]:
    """PostgreSQL: the chains are carried backwards through the events in one sort order.

    The matching events are sorted once by (person, timestamp, id), latest first. Then, for
    k = n-1 down to 1, one window pass gives every row `u{k}` = the time of the earliest later
    event of the same person matching step k, and `u{k+1}`, … = the rest of *that* event's
    chain, which the pass for step k+1 has just put on it. A greedy chain started from a later
    event is never earlier at any step, so the nearest event's values are the smallest ones:
    each is a plain MIN of a number, all of a pass sharing one window. Each pass reads its input
    in the order the previous one wrote it, so nothing is sorted again and no row is joined to
    another: a step-1 event ends up holding its whole greedy chain. A grouped pass picks each
    person's best attempt, and one more grouped pass gives every count and median. Times are
    whole microseconds (exact), so the window's inclusive edge and the medians are those of the
    statement for other databases.
    """
    n = len(steps)
    base_sql, params = _base_events_sql(
        app_id=app_id, steps=steps, window=window, date_range=date_range, now=now, people=people
    )
    ctes: list[str] = []
    all_params: list[Any] = []
    if cohorts is not None:
        cohort_sql, cohort_params = cohorts.sql()
        if people is not None:
            in_range, range_params = people.sql("c.person_id")
            cohort_sql = f"SELECT * FROM ({cohort_sql}) c WHERE {in_range}"
            cohort_params = [*cohort_params, *range_params]
        ctes.append(f"cohort AS ({cohort_sql})")
        all_params += cohort_params
    only_cohort = " WHERE b.person_id IN (SELECT person_id FROM cohort)" if cohorts else ""
    # date_part is a double: ~2e15 µs since 1970 are exact in it, and round() restores them.
    # With three steps or more, the step-1 events that match no later step ("pure" starts,
    # typically most rows: page views) skip the passes for steps n-1…2, where they would only
    # ride along: `l` is read twice (NOT MATERIALIZED: two scans, each sorted in parallel),
    # once without them for those passes and once for them alone, merged back in order for
    # the pass of step 1. Every other step-1 event matches a later step, so it is in the first
    # read and rides along as before.
    split = n >= 3
    ctes.append(
        f"l AS {'NOT MATERIALIZED ' if split else ''}(SELECT b.person_id, b.id, "
        "round(date_part('epoch', b.timestamp) * 1000000)::bigint AS us, "
        # Each step's flag as a boolean: narrower rows to sort and carry through the passes.
        + ", ".join(f"b.s{i} = 1 AS s{i}" for i in range(n))
        + f" FROM ({base_sql}) b{only_cohort})"
    )
    all_params += params
    frame = (
        "PARTITION BY person_id ORDER BY us DESC, id DESC "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
    )
    source = "l"
    later = " OR ".join(f"s{i}" for i in range(1, n))  # a step-1 event that is not pure
    for k in range(n - 1, 0, -1):
        # u{k}: the time of the nearest later step-k event; u{j} (j > k): the rest of that
        # event's chain, which the pass for step k+1 has just put on it as u{j}. A greedy chain
        # never starts earlier from a later event, so the nearest event's values are the
        # smallest ones: each is a plain MIN, all sharing one window (one pass per step).
        mins = ", ".join(
            [f"MIN(us) FILTER (WHERE s{k}) OVER w AS u{k}"]
            + [f"MIN(u{j}) FILTER (WHERE s{k}) OVER w AS u{j}" for j in range(k + 1, n)]
        )
        keep = ", ".join(f"s{i}" for i in range(k))
        # Rows that match none of steps 0…k have served their purpose: leave them out.
        useful = " OR ".join(f"s{i}" for i in range(k + 1))
        if split and k == n - 1:
            useful = later  # the first read: no pure start
        elif split and k == 1:
            carried = ", ".join(f"u{j}" for j in range(2, n))
            nulls = ", ".join("NULL::bigint" for _ in range(2, n))
            source = (
                f"(SELECT person_id, id, us, s0, s1, {carried} FROM {source} WHERE {useful} "
                f"UNION ALL (SELECT person_id, id, us, s0, false, {nulls} FROM l "
                f"WHERE s0 AND NOT ({later}) ORDER BY person_id, us DESC, id DESC)) m"
            )
        ctes.append(
            f"l{k} AS (SELECT person_id, id, us, {keep}, {mins} "
            f"FROM {source} WHERE {useful} WINDOW w AS ({frame}))"
        )
        source = f"l{k}"
    times = ", ".join(["us AS t0", *(f"u{k} AS t{k}" for k in range(1, n))])
    window_us = int(window.total_seconds() * 1_000_000)
    depth_cases = " ".join(
        f"WHEN a.t{k} IS NULL OR a.t{k} - a.t0 > {window_us} THEN {k}" for k in range(1, n)
    )
    depth = f"CASE {depth_cases} ELSE {n} END" if n > 1 else "1"
    ctes.append(f"chain AS (SELECT person_id, id, {times} FROM {source} WHERE s0)")
    if cohorts is not None:
        anchor = ""
        if cohorts.anchored:
            anchor_us = "round(date_part('epoch', c.anchor) * 1000000)::bigint"
            anchor = f" AND a.t0 >= {anchor_us}"
            if cohorts.anchor_window is not None:
                limit_us = int(cohorts.anchor_window.total_seconds() * 1_000_000)
                anchor += f" AND a.t0 - {anchor_us} <= {limit_us}"
        attempts = f"chain a JOIN cohort c ON c.person_id = a.person_id{anchor}"
        label = "c.label"
    else:
        attempts = "chain a"
        label = "'all'"
    ts = ", ".join(f"t{k}" for k in range(n))
    # Without cohorts there is one group: no label to carry and group by (the planner keeps a
    # constant grouping key and compares it on every row).
    labelled = "label, " if cohorts is not None else ""
    scored = (
        f"SELECT {label + ' AS label, ' if labelled else ''}a.person_id, a.id, "
        + ", ".join(f"a.t{k}" for k in range(n))
        + f", {depth} AS depth FROM {attempts}"
    )
    if n > 1:
        # Per person the furthest attempt, the earliest (time, then id) among equals: the
        # largest [depth, -t0, -id] of the attempts, carrying that attempt's times along. Only
        # the times of people past step 1 are used (medians), so only those arrays are built.
        pick = f", MAX(CASE WHEN depth > 1 THEN ARRAY[depth, -t0, -id, {ts}] END) AS pick"
        times_picked = ", " + ", ".join(f"pick[{k + 4}] AS t{k}" for k in range(n))
    else:
        pick = times_picked = ""
    ctes.append(
        f"best AS (SELECT {labelled}person_id, depth{times_picked} FROM "
        f"(SELECT {labelled}person_id, MAX(depth) AS depth{pick} FROM ({scored}) x "
        f"GROUP BY {labelled}person_id) p)"
    )
    # One grouped pass over `best` gives every figure (so `best` is read once, not kept for
    # several scans); a lateral VALUES turns each group's row into (kind, label, k, value,
    # values) rows (none for a zero count or a median of nobody, as a GROUP BY per figure
    # would give).
    figures = [f"COUNT(*) FILTER (WHERE depth = {d}) AS d{d}" for d in range(1, n + 1)]
    rows = [f"('reached', {d}, NULLIF(d{d}, 0)::numeric, NULL::bigint[])" for d in range(1, n + 1)]
    if people is None:
        # Exact: µs differences (at most 90 days) and their halves are exact in a double.
        figures += [
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY (t{k} - t{k - 1})::float8) "
            f"FILTER (WHERE depth > {k}) AS m{k}"
            for k in range(1, n)
        ]
        rows += [f"('median', {k}, m{k}::numeric / 1000, NULL::bigint[])" for k in range(1, n)]
    else:
        # One range of people: their times between steps (µs), for the medians of all ranges.
        figures += [
            f"array_agg(t{k} - t{k - 1}) FILTER (WHERE depth > {k}) AS m{k}" for k in range(1, n)
        ]
        rows += [f"('times', {k}, NULL::numeric, m{k})" for k in range(1, n)]
    selects = [
        "SELECT v.kind, g.label, v.k, v.value, v.times FROM "
        + (
            f"(SELECT label, {', '.join(figures)} FROM best GROUP BY label) g "
            if labelled
            # One row even for no attempt: its zero counts and null medians are left out below.
            else f"(SELECT {label} AS label, {', '.join(figures)} FROM best) g "
        )
        + f"CROSS JOIN LATERAL (VALUES {', '.join(rows)}) v(kind, k, value, times) "
        "WHERE v.value IS NOT NULL OR v.times IS NOT NULL"
    ]
    if cohorts is not None:
        selects.append(
            "SELECT 'members', label, 0, COUNT(DISTINCT person_id), NULL FROM cohort GROUP BY label"
        )
    sql = "WITH " + ", ".join(ctes) + " " + " UNION ALL ".join(selects)
    return sql, all_params


def _funnel_sql(
    *,
    app_id: int,
    steps: tuple[EventFilter, ...],
    window: timedelta,
    date_range: DateRange | None,
    cohorts: Cohorts | None,
    now: datetime,
) -> tuple[str, list[Any]]:
    n = len(steps)
    base_sql, params = _base_events_sql(
        app_id=app_id, steps=steps, window=window, date_range=date_range, now=now
    )
    ctes: list[str] = []
    all_params: list[Any] = []
    if cohorts is not None:
        cohort_sql, cohort_params = cohorts.sql()
        ctes.append(f"cohort AS ({cohort_sql})")
        all_params += cohort_params
    flags = ", ".join(f"b.s{i}" for i in range(n))
    only_cohort = " WHERE b.person_id IN (SELECT person_id FROM cohort)" if cohorts else ""
    ctes.append(
        f"ev AS (SELECT b.person_id, b.timestamp AS ts, {flags}, "
        "ROW_NUMBER() OVER (ORDER BY b.person_id DESC, b.timestamp DESC, b.id DESC) AS g "
        f"FROM ({base_sql}) b{only_cohort})"
    )
    all_params += params
    # `g` counts from each person's latest event backwards, so the rows before a row (in `g`
    # order, which is how they come out of the numbering: no second sort) are the later events,
    # and the nearest of them matching step k has the largest `g`.
    nexts = "".join(f", MAX(CASE WHEN s{k} = 1 THEN g END) OVER w AS n{k}" for k in range(1, n))
    ctes.append(
        f"nx AS (SELECT g, person_id, ts, {', '.join(f's{k}' for k in range(n))}{nexts} FROM ev "
        "WINDOW w AS (ORDER BY g ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))"
    )
    window_ms = int(window.total_seconds() * 1000)
    if cohorts is not None:
        label = "c.label"
        anchor = ""
        if cohorts.anchored:
            anchor = " AND a0.ts >= c.anchor"
        if cohorts.anchored and cohorts.anchor_window is not None:
            anchor_ms = int(cohorts.anchor_window.total_seconds() * 1000)
            anchor += f" AND {diff_ms_sql('c.anchor', 'a0.ts')} <= {anchor_ms}"
        source = f"nx a0 JOIN cohort c ON c.person_id = a0.person_id{anchor}"
    else:
        label = "'all'"
        source = "nx a0"
    first_next = ", a0.n1 AS n1" if n > 1 else ""
    ctes.append(
        f"starts AS (SELECT {label} AS label, a0.person_id AS person_id, a0.g AS g0, "
        f"a0.ts AS t0{first_next} FROM {source} WHERE a0.s0 = 1)"
    )
    if n > 1:
        # Attempts whose next step-2 event is the same share the rest of their chain: follow
        # it once per such head (by equality joins on each step's rows only), not per attempt.
        later = ", ".join(f"a{k}.ts AS t{k}" for k in range(1, n))
        joins = "".join(
            f" LEFT JOIN (SELECT * FROM nx WHERE s{k} = 1) a{k}"
            f" ON a{k}.g = a{k - 1}.n{k} AND a{k}.person_id = h.person_id"
            for k in range(2, n)
        )
        ctes.append("heads AS (SELECT DISTINCT person_id, n1 FROM starts WHERE n1 IS NOT NULL)")
        ctes.append(
            f"tails AS (SELECT h.person_id, h.n1, {later} FROM heads h "
            "JOIN (SELECT * FROM nx WHERE s1 = 1) a1 ON a1.g = h.n1 AND a1.person_id = h.person_id"
            f"{joins})"
        )
        ctes.append(
            "chain AS (SELECT s.label, s.person_id, s.g0, s.t0, "
            + ", ".join(f"x.t{k}" for k in range(1, n))
            + " FROM starts s LEFT JOIN tails x ON x.person_id = s.person_id AND x.n1 = s.n1)"
        )
    else:
        ctes.append("chain AS (SELECT label, person_id, g0, t0 FROM starts)")
    depth_cases = " ".join(
        f"WHEN t{k} IS NULL OR {diff_ms_sql('t0', f't{k}')} > {window_ms} THEN {k}"
        for k in range(1, n)
    )
    depth = f"CASE {depth_cases} ELSE {n} END" if n > 1 else "1"
    ctes.append(
        "scored AS (SELECT label, person_id, g0, "
        + ", ".join(f"t{k}" for k in range(n))
        + f", {depth} AS depth FROM chain)"
    )
    ctes.append(
        "best AS (SELECT * FROM (SELECT scored.*, ROW_NUMBER() OVER "
        "(PARTITION BY label, person_id ORDER BY depth DESC, g0 DESC) AS pick FROM scored) r "
        "WHERE pick = 1)"
    )
    selects = [
        "SELECT 'reached' AS kind, label, depth AS k, COUNT(*) AS value FROM best "
        "GROUP BY label, depth"
    ]
    if n > 1:
        deltas = " UNION ALL ".join(
            f"SELECT label, {k} AS step, {diff_ms_sql(f't{k - 1}', f't{k}')} AS d "
            f"FROM best WHERE depth > {k}"
            for k in range(1, n)
        )
        ctes.append(f"deltas AS ({deltas})")
        ctes.append(
            "ranked AS (SELECT label, step, d, "
            "ROW_NUMBER() OVER (PARTITION BY label, step ORDER BY d) AS rn, "
            "COUNT(*) OVER (PARTITION BY label, step) AS c FROM deltas)"
        )
        selects.append(
            "SELECT 'median', label, step, AVG(d) FROM ranked "
            "WHERE rn IN ((c + 1) / 2, (c + 2) / 2) GROUP BY label, step"
        )
    if cohorts is not None:
        selects.append(
            "SELECT 'members', label, 0, COUNT(DISTINCT person_id) FROM cohort GROUP BY label"
        )
    sql = "WITH " + ", ".join(ctes) + " " + " UNION ALL ".join(selects)
    return sql, all_params


def funnel_groups(
    *,
    app_id: int,
    steps: tuple[EventFilter, ...],
    window: timedelta,
    date_range: DateRange | None,
    cohorts: Cohorts | None = None,
    now: datetime | None = None,
    budget_ms: int | None = None,
) -> list[FunnelGroup]:
    """The funnel per group: one group "all" without cohorts, else one per cohort label.

    Read-only; one statement inside the insight time budget (QueryTooExpensive past it), or
    on PostgreSQL over many events one per range of people at once, each inside the budget
    (`segments.insights.parallel`).
    """
    now = now or timezone.now()
    ranges = person_ranges(  # None: one statement (SQLite among others)
        app_id=app_id,
        start=date_range.start if date_range else None,
        end=date_range.end + window if date_range else None,
    )
    definition: dict[str, Any] = {
        "app_id": app_id,
        "steps": steps,
        "window": window,
        "date_range": date_range,
        "cohorts": cohorts,
        "now": now,
    }
    if ranges is None:
        build = _funnel_sql_pg if connection.vendor == "postgresql" else _funnel_sql
        sql, params = build(**definition)
        with insight_budget(ms=budget_ms):
            rows = _fetch(sql, params)
    else:
        statements = [_funnel_sql_pg(**definition, people=people) for people in ranges]

        @contextmanager
        def budget() -> Iterator[None]:
            with insight_budget(ms=budget_ms), serial_part():
                yield

        jobs = [partial(_fetch, sql, params) for sql, params in statements]
        parts = run_parts(jobs, budget=budget)
        rows = [row for part in parts for row in part]
    n = len(steps)
    labels = cohorts.labels if cohorts is not None else ("all",)
    by_depth: dict[str, list[int]] = {label: [0] * (n + 1) for label in labels}
    medians: dict[str, list[float | None]] = {label: [None] * n for label in labels}
    times: dict[tuple[str, int], list[int]] = {}
    members: dict[str, int] = {}
    for kind, label, k, value, *rest in rows:
        if label not in by_depth:
            by_depth[label] = [0] * (n + 1)
            medians[label] = [None] * n
        if kind == "reached":
            by_depth[label][int(k)] += int(value)
        elif kind == "median":
            medians[label][int(k)] = float(value) / 1000
        elif kind == "times":
            times.setdefault((label, int(k)), []).extend(rest[0])
        else:
            members[label] = members.get(label, 0) + int(value)
    for (label, k), values in times.items():
        medians[label][k] = _median_seconds(values)
    groups = []
    for label, depths in by_depth.items():
        reached = tuple(sum(depths[d] for d in range(k + 1, n + 1)) for k in range(n))
        groups.append(
            FunnelGroup(
                label=label,
                reached=reached,
                median_seconds=tuple(medians[label]),
                members=members.get(label, 0) if cohorts is not None else None,
            )
        )
    return groups


def _fetch(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _median_seconds(values: list[int]) -> float:
    """The median of µs differences in seconds, exactly as the statement's percentile_cont
    gives it (the mean of the middle two for an even count, exact in a double for µs below
    2**52; µs / 1000 as a decimal, then /1000)."""
    return float(Decimal(statistics.median(values)) / 1000) / 1000


def funnel_steps_dict(steps: tuple[EventFilter, ...], group: FunnelGroup) -> list[dict[str, Any]]:
    """Per step: people, conversion from step 1 and from the previous step, drop-off, median."""
    out = []
    first = group.reached[0] if group.reached else 0
    for i, step in enumerate(steps):
        people = group.reached[i]
        previous = group.reached[i - 1] if i else people
        out.append(
            {
                "index": i,
                "event": step.event,
                "label": step.label or step.event,
                "people": people,
                "conversion_rate": people / first if first else None,
                "step_conversion_rate": people / previous if previous else None,
                "drop_off": previous - people,
                "drop_off_rate": (previous - people) / previous if previous else None,
                "median_seconds_from_previous": group.median_seconds[i] if i else None,
            }
        )
    return out


def funnel_compute(
    *,
    app: App,
    definition: FunnelDefinition,
    cohorts: Cohorts | None = None,
    now: datetime | None = None,
    budget_ms: int | None = None,
) -> dict[str, Any]:
    """A funnel definition's answer: the steps for everyone, and per group of the breakdown
    (the definition's segments, or `cohorts` handed in by the caller, e.g. campaign exposure).
    Read-only; each statement runs inside the insight time budget."""
    now = now or timezone.now()
    run = partial(
        funnel_groups,
        app_id=app.pk,
        steps=definition.steps,
        window=definition.window,
        date_range=definition.range,
        now=now,
        budget_ms=budget_ms,
    )
    (overall,) = run()
    result: dict[str, Any] = {
        "window_seconds": int(definition.window.total_seconds()),
        **definition.range.as_dict(),
        "steps": funnel_steps_dict(definition.steps, overall),
    }
    if cohorts is None and definition.breakdown is not None and definition.breakdown.segments:
        cohorts = segment_cohorts(
            app=app, slugs=definition.breakdown.segments, field="breakdown.segments"
        )
    if cohorts is not None:
        result["breakdown"] = [
            {
                "label": group.label,
                "members": group.members,
                "steps": funnel_steps_dict(definition.steps, group),
            }
            for group in run(cohorts=cohorts)
        ]
    return result
