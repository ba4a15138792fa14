"""Funnels over many events run as several statements at once, one per range of people.

The parts must give exactly the answer of the single statement (people per step, medians,
cohort members), read one snapshot, and keep the time budget; inside a transaction (where
other connections cannot see the caller's rows) the single statement runs.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import override_settings

from segments.insights import DateRange, QueryTooExpensive, funnel_groups
from segments.insights import funnels as funnels_module
from segments.insights.parallel import PersonRange, person_ranges, run_parts
from segments.models import Person
from tests.segments.test_insights_funnels_pg import STEP_SETS, T, _cohorts, _dataset

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

SPLIT = {"ENGAGE_INSIGHT_PARALLEL": 3, "ENGAGE_INSIGHT_PARALLEL_MIN_EVENTS": 0}


def _single_and_parts(monkeypatch, **kwargs):
    with override_settings(ENGAGE_INSIGHT_PARALLEL=1):
        single = funnel_groups(**kwargs)
    statements: list[PersonRange | None] = []
    build = funnels_module._funnel_sql_pg

    def spy(**build_kwargs):
        statements.append(build_kwargs.get("people"))
        return build(**build_kwargs)

    with override_settings(**SPLIT), monkeypatch.context() as patch:
        patch.setattr(funnels_module, "_funnel_sql_pg", spy)
        parts = funnel_groups(**kwargs)
    return single, parts, statements


@pytest.mark.parametrize("steps", STEP_SETS[:3], ids=lambda s: "-".join(f.event for f in s))
def test_the_parts_give_the_single_statements_answer(postgres, app_keys, monkeypatch, steps):
    _dataset(app_keys.app, seed=7, people=60)
    for window, date_range in [
        (timedelta(minutes=60), DateRange(start=T, end=T + timedelta(hours=3))),
        (timedelta(days=1), None),
    ]:
        single, parts, statements = _single_and_parts(
            monkeypatch, app_id=app_keys.app.pk, steps=steps, window=window, date_range=date_range
        )
        assert len(statements) == 3
        assert all(statements)
        assert parts == single
        assert single[0].reached[0] > 0
        assert single[0].median_seconds[1] is not None


@pytest.mark.parametrize("anchored", [True, False])
def test_the_parts_give_the_single_statements_answer_by_cohort(
    postgres, app_keys, monkeypatch, anchored
):
    persons = _dataset(app_keys.app, seed=8, people=60)
    single, parts, statements = _single_and_parts(
        monkeypatch,
        app_id=app_keys.app.pk,
        steps=STEP_SETS[1],
        window=timedelta(minutes=60),
        date_range=DateRange(start=T - timedelta(hours=1), end=T + timedelta(hours=4)),
        cohorts=_cohorts(persons, seed=8, anchored=anchored),
    )
    assert len(statements) == 3
    assert parts == single
    assert all(g.members for g in parts)  # members counted once, across the ranges


def test_the_ranges_cover_every_person_once(postgres, app_keys):
    _dataset(app_keys.app, seed=9, people=60)
    with override_settings(**SPLIT):
        ranges = person_ranges(app_id=app_keys.app.pk, start=None, end=None)
    assert ranges is not None
    assert len(ranges) == 3
    assert ranges[0].start is None
    assert ranges[-1].end is None
    assert all(a.end == b.start for a, b in itertools.pairwise(ranges))
    ids = list(Person.objects.filter(app=app_keys.app).values_list("pk", flat=True))
    covered = [
        sum(1 for pk in ids if (r.start is None or pk >= r.start) and (r.end is None or pk < r.end))
        for r in ranges
    ]
    assert sum(covered) == len(ids)
    assert min(covered) > 0


def test_one_statement_inside_a_transaction_or_below_the_threshold(postgres, app_keys):
    _dataset(app_keys.app, seed=10, people=20)
    with override_settings(**SPLIT), transaction.atomic():
        assert person_ranges(app_id=app_keys.app.pk, start=None, end=None) is None
    with override_settings(ENGAGE_INSIGHT_PARALLEL=3, ENGAGE_INSIGHT_PARALLEL_MIN_EVENTS=10**9):
        assert person_ranges(app_id=app_keys.app.pk, start=None, end=None) is None
    with override_settings(ENGAGE_INSIGHT_PARALLEL=1, ENGAGE_INSIGHT_PARALLEL_MIN_EVENTS=0):
        assert person_ranges(app_id=app_keys.app.pk, start=None, end=None) is None


def _snapshot() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_snapshot()::text, pg_backend_pid()")
        snapshot, pid = cursor.fetchone()
    return f"{snapshot} {pid}"


def test_every_part_reads_the_first_parts_snapshot_on_its_own_connection(postgres, db):
    seen = run_parts([_snapshot] * 3, budget=transaction.atomic)
    snapshots = {s.split(" ")[0] for s in seen}
    backends = {s.split(" ")[1] for s in seen}
    assert len(snapshots) == 1
    assert len(backends) == 3


def test_a_part_past_the_budget_stops_the_funnel_with_a_422(postgres, app_keys, monkeypatch):
    _dataset(app_keys.app, seed=11, people=30)

    def slow(sql, params):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(1)")
        return []

    monkeypatch.setattr(funnels_module, "_fetch", slow)
    with override_settings(**SPLIT), pytest.raises(QueryTooExpensive) as caught:
        funnel_groups(
            app_id=app_keys.app.pk,
            steps=STEP_SETS[0],
            window=timedelta(hours=1),
            date_range=None,
            budget_ms=100,
        )
    assert caught.value.status == 422
