"""PostgreSQL's funnel statement (chains carried through window passes) against the portable one.

The portable statement (the one SQLite runs) is checked against hand-computed answers in
test_insights_funnels.py; here both run on the same PostgreSQL data, built at random with many
equal timestamps, ids out of time order, repeated steps and events on the window's edge, and
must give the same people per step, medians and cohort members.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Cast
from django.test import override_settings

from segments.conditions.operators import Op
from segments.conditions.tree import PropertyFilter
from segments.insights import Cohorts, DateRange, funnel_groups, insight_budget
from segments.insights import funnels as funnels_module
from segments.insights.cohorts import label_value
from segments.insights.definitions import EventFilter
from segments.models import Event, EventSource, Person
from tests.factories import PersonFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

T = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
NAMES = ("a", "b", "c", "x")


def _dataset(app, seed: int, people: int = 30) -> list[Person]:
    rng = random.Random(seed)
    persons = [PersonFactory(app=app, user_id=f"u{seed}-{i}") for i in range(people)]
    rows = []
    for person in persons:
        for _ in range(rng.randint(0, 14)):
            # Whole 10-minute steps: many events share a timestamp, and some land exactly on
            # a 60-minute window's edge.
            at = T + timedelta(minutes=10 * rng.randint(-3, 30))
            if rng.random() < 0.1:
                at += timedelta(microseconds=rng.randint(1, 999))
            rows.append(
                Event(
                    app=app,
                    person=person,
                    name=rng.choice(NAMES),
                    properties={"n": rng.randint(1, 3)},
                    timestamp=at,
                    received_at=T,
                    source=EventSource.API,
                )
            )
    rng.shuffle(rows)  # ids in arrival order, not in time order
    Event.objects.bulk_create(rows)
    return persons


def _both(monkeypatch, **kwargs):
    carried = funnel_groups(**kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(funnels_module, "_funnel_sql_pg", funnels_module._funnel_sql)
        portable = funnel_groups(**kwargs)
    return carried, portable


def _cohorts(persons: list[Person], seed: int, anchored: bool) -> Cohorts:
    rng = random.Random(seed)
    parts = []
    for person in persons:
        for label in ("exposed", "holdout"):
            if rng.random() < 0.5:
                continue
            anchor = T + timedelta(minutes=10 * rng.randint(-2, 20)) if anchored else None
            parts.append(
                Person.objects.filter(pk=person.pk)
                .order_by()
                .values(
                    person_id=F("id"),
                    label=label_value(label),
                    anchor=Cast(Value(anchor), output_field=DateTimeField()),
                )
            )
    queryset = parts[0]
    for part in parts[1:]:
        queryset = queryset.union(part, all=True)
    return Cohorts(
        queryset=queryset,
        labels=("exposed", "holdout"),
        anchored=anchored,
        anchor_window=timedelta(minutes=90) if anchored else None,
    )


STEP_SETS = [
    (EventFilter("a"), EventFilter("b"), EventFilter("c")),
    (EventFilter("a"), EventFilter("a"), EventFilter("b"), EventFilter("a"), EventFilter("c")),
    (EventFilter("a"), EventFilter("b")),
    (EventFilter("x"),),
    tuple(EventFilter(name) for name in "abaxcbaxca"),  # ten steps, the most allowed
    (
        EventFilter("a", where=(PropertyFilter(property="n", op=Op.GTE, value=2),)),
        EventFilter("b"),
        EventFilter("a"),
    ),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("steps", STEP_SETS, ids=lambda s: "-".join(f.event for f in s))
def test_carried_chains_match_the_portable_statement(
    postgres, app_keys, monkeypatch, seed, steps
) -> None:
    _dataset(app_keys.app, seed)
    for window, date_range in [
        (timedelta(minutes=60), DateRange(start=T, end=T + timedelta(hours=3))),
        (timedelta(days=1), None),
    ]:
        carried, portable = _both(
            monkeypatch, app_id=app_keys.app.pk, steps=steps, window=window, date_range=date_range
        )
        assert carried == portable
    assert carried[0].reached[0] > 0  # the data exercises the funnel


@pytest.mark.parametrize("seed", [4, 5])
@pytest.mark.parametrize("anchored", [True, False])
def test_carried_chains_match_with_cohorts(postgres, app_keys, monkeypatch, seed, anchored) -> None:
    persons = _dataset(app_keys.app, seed, people=40)
    carried, portable = _both(
        monkeypatch,
        app_id=app_keys.app.pk,
        steps=STEP_SETS[1],
        window=timedelta(minutes=60),
        date_range=DateRange(start=T - timedelta(hours=1), end=T + timedelta(hours=4)),
        cohorts=_cohorts(persons, seed, anchored),
    )
    assert carried == portable
    assert {g.label for g in carried} == {"exposed", "holdout"}
    assert all(g.members for g in carried)


def _show(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {name}")
        return str(cursor.fetchone()[0])


def test_budget_sets_work_mem_and_jit_for_its_block_only(postgres, db) -> None:
    before = (_show("work_mem"), _show("jit"))
    with override_settings(ENGAGE_INSIGHT_WORK_MEM="96MB"), insight_budget(ms=5000):
        assert _show("work_mem") == "96MB"
        assert _show("jit") == "off"
    assert (_show("work_mem"), _show("jit")) == before
    with override_settings(ENGAGE_INSIGHT_WORK_MEM=""), insight_budget(ms=5000):
        assert _show("work_mem") == before[0]


def test_a_bad_work_mem_setting_is_named(postgres, db) -> None:
    from django.core.exceptions import ImproperlyConfigured

    with (
        override_settings(ENGAGE_INSIGHT_WORK_MEM="lots; DROP TABLE x"),
        pytest.raises(ImproperlyConfigured, match="ENGAGE_INSIGHT_WORK_MEM"),
        insight_budget(ms=5000),
    ):
        pass
