"""Trends against hand-computed answers; definitions refused with the field named; budget."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.db.models.functions import TruncDate

from engage.errors import InvalidInput
from segments.insights import (
    QueryTooExpensive,
    event_names_check,
    funnel_parse,
    insight_budget,
    trend_compute,
    trend_parse,
)
from segments.insights.trends import counters_usable
from segments.models import Event, EventDailyCount
from segments.services import segment_create
from tests.factories import EventFactory, PersonFactory

pytestmark = pytest.mark.django_db

TODAY = date(2026, 3, 20)
MON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
D = timedelta(days=1)


@pytest.fixture
def events(app_keys):
    app = app_keys.app
    ann = PersonFactory(app=app, user_id="ann", attributes={"plan": "pro"})
    bob = PersonFactory(app=app, user_id="bob")
    for person, at, props in [
        (ann, MON, {"page": "home"}),
        (ann, MON + timedelta(hours=1), {"page": "home"}),
        (bob, MON, {"page": "pricing"}),
        (bob, MON + D, {"page": "docs"}),
        (ann, MON + 6 * D + timedelta(hours=11, minutes=59), {}),  # Sunday 23:59
        (bob, MON + 7 * D - timedelta(hours=12), {"page": "home"}),  # next Monday 00:00
        (bob, MON + 20 * D, {"page": "home"}),  # outside the range
    ]:
        EventFactory(person=person, app=app, name="view", timestamp=at, properties=props)
    EventFactory(person=ann, app=app, name="other", timestamp=MON)
    _counters_rebuild(app)
    return app


def _counters_rebuild(app) -> None:
    """The per-day counters ingestion keeps, for events the factory stored directly."""
    rows = (
        Event.objects.filter(app=app)
        .annotate(day=TruncDate("timestamp", tzinfo=UTC))
        .values("person_id", "name", "day")
        .annotate(n=Count("id"))
        .order_by()
    )
    EventDailyCount.objects.bulk_create(
        EventDailyCount(person_id=r["person_id"], name=r["name"], day=r["day"], count=r["n"])
        for r in rows
    )


def _definition(**extra):
    return trend_parse(
        {"event": "view", "date_from": "2026-03-02", "date_to": "2026-03-10", **extra},
        today=TODAY,
    )


SOURCES = pytest.mark.parametrize("source", ["events", "counters"])


def test_plain_trends_read_the_counters() -> None:
    assert counters_usable(_plain())
    assert not counters_usable(_plain(where=[{"property": "page", "op": "is_set"}]))
    assert not counters_usable(_plain(breakdown={"property": "page"}))
    assert counters_usable(_plain(breakdown={"segments": ["pro"]}))
    assert not counters_usable(
        _plain(date_from="2026-03-02T10:00:00Z", date_to="2026-03-03T10:00:00Z")
    )


def _plain(**extra):
    return trend_parse({"event": "view", **extra}, today=TODAY)


@SOURCES
def test_daily_trend_is_zero_filled(events, source) -> None:
    result = trend_compute(app=events, definition=_definition(), source=source)
    (series,) = result["series"]
    cells = [(b["start"], b["count"], b["people"]) for b in series["buckets"]]
    assert len(cells) == 9
    assert cells[0] == ("2026-03-02", 3, 2)
    assert cells[1] == ("2026-03-03", 1, 1)
    assert cells[2] == ("2026-03-04", 0, 0)
    assert cells[7] == ("2026-03-09", 1, 1)
    assert cells[6] == ("2026-03-08", 1, 1)
    assert series["count"] == 6


@SOURCES
def test_weekly_trend_starts_on_monday(events, source) -> None:
    result = trend_compute(
        source=source,
        app=events,
        definition=trend_parse(
            {
                "event": "view",
                "interval": "week",
                "date_from": "2026-03-04",
                "date_to": "2026-03-10",
            },
            today=TODAY,
        ),
    )
    (series,) = result["series"]
    # the week of Mon 2 March only counts Wednesday on: Sunday's view; then the week of the 9th
    assert [(b["start"], b["count"]) for b in series["buckets"]] == [
        ("2026-03-02", 1),
        ("2026-03-09", 1),
    ]


def test_property_filter(events) -> None:
    result = trend_compute(
        app=events,
        definition=_definition(where=[{"property": "page", "op": "eq", "value": "home"}]),
    )
    assert result["series"][0]["count"] == 3


def test_property_breakdown_keeps_top_values_and_sums_the_rest(events) -> None:
    result = trend_compute(
        app=events, definition=_definition(breakdown={"property": "page", "limit": 1})
    )
    totals = {s["label"]: s["count"] for s in result["series"]}
    assert totals == {"home": 3, "other": 2, "(none)": 1}
    assert [s["label"] for s in result["series"]] == ["home", "other", "(none)"]
    home = result["series"][0]["buckets"]
    assert (home[0]["count"], home[0]["people"]) == (2, 1)


@SOURCES
def test_segment_breakdown(events, source) -> None:
    segment_create(
        app=events,
        slug="pro",
        name="Pro",
        description="",
        condition={"attribute": "plan", "op": "eq", "value": "pro"},
    )
    result = trend_compute(
        app=events, definition=_definition(breakdown={"segments": ["pro"]}), source=source
    )
    (pro,) = result["series"]
    assert (pro["label"], pro["count"]) == ("pro", 3)
    assert [b["people"] for b in pro["buckets"]][:2] == [1, 0]


def test_unknown_segment_is_named(events) -> None:
    with pytest.raises(InvalidInput, match=r"breakdown.segments\[0\]: no segment"):
        trend_compute(app=events, definition=_definition(breakdown={"segments": ["nope"]}))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"steps": []}, "steps: give 2 to 10 steps"),
        ({"steps": [{"event": "a"}]}, "steps: a funnel has 2 to 10 steps, not 1"),
        ({"steps": [{"event": "a"}] * 11}, "not 11"),
        ({"steps": [{"event": "a"}, {}]}, "steps[1].event: give the event name"),
        (
            {"steps": [{"event": "a"}, {"event": "b"}], "window": {"value": 91, "unit": "day"}},
            "window: the conversion window must be between 1 minute and 90 days",
        ),
        (
            {"steps": [{"event": "a"}, {"event": "b"}], "window": {"value": 30, "unit": "second"}},
            "window.unit: must be one of",
        ),
        (
            {
                "steps": [
                    {"event": "a", "where": [{"property": "x", "op": "eqq", "value": 1}]},
                    {"event": "b"},
                ]
            },
            "steps[0].where[0].op",
        ),
        (
            {"steps": [{"event": "a"}, {"event": "b"}], "breakdown": {"property": "x"}},
            "breakdown.property",
        ),
        ({"steps": [{"event": "a"}, {"event": "b"}], "date_from": "yesterday"}, "date_from:"),
    ],
)
def test_bad_funnels_name_the_field(body, message) -> None:
    with pytest.raises(InvalidInput) as caught:
        funnel_parse(body, today=TODAY)
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"event": "view", "interval": "month"}, "interval: must be one of day, week"),
        ({"event": "view", "breakdown": {"property": "p", "limit": 26}}, "breakdown.limit"),
        ({"event": "view", "breakdown": {"segments": [f"s{i}" for i in range(11)]}}, "at most 10"),
        ({"event": ""}, "trend.event"),
        ({"event": "view", "date_from": "2026-03-05", "date_to": "2026-03-01"}, "date_from"),
    ],
)
def test_bad_trends_name_the_field(body, message) -> None:
    with pytest.raises(InvalidInput) as caught:
        trend_parse(body, today=TODAY)
    assert message in caught.value.message


def test_unknown_event_names_are_refused(events, other_app_keys) -> None:
    event_names_check(app_id=events.pk, names={"event": "view"})
    with pytest.raises(InvalidInput, match=r'steps\[1\].event: no event "viewz"'):
        event_names_check(
            app_id=events.pk, names={"steps[0].event": "view", "steps[1].event": "viewz"}
        )
    with pytest.raises(InvalidInput):  # another App's events do not count
        event_names_check(app_id=other_app_keys.app.pk, names={"event": "view"})


def test_budget_stops_a_runaway_query(db) -> None:
    slow = (
        "SELECT pg_sleep(2)"
        if connection.vendor == "postgresql"
        else "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) "
        "SELECT COUNT(*) FROM n"
    )
    with (
        pytest.raises(QueryTooExpensive) as caught,
        insight_budget(ms=50),
        connection.cursor() as cursor,
    ):
        cursor.execute(slow)
    assert caught.value.status == 422
    assert "50 ms" in caught.value.message
    with insight_budget(ms=5000), connection.cursor() as cursor:  # the connection still works
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_budget_does_not_outlive_its_block(postgres, db) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        before = cursor.fetchone()[0]
    with insight_budget(ms=1234), connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "1234ms"
    with connection.cursor() as cursor:  # the test's transaction is still open here
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == before
