"""Funnels against answers computed by hand on fixed events (run on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db.models import F, Value
from django.db.models.functions import Cast

from segments.insights import Cohorts, funnel_compute, funnel_groups, funnel_parse
from segments.insights.cohorts import NO_ANCHOR, label_value
from segments.insights.definitions import EventFilter
from segments.models import Person
from segments.services import segment_create
from tests.factories import EventFactory, PersonFactory

pytestmark = pytest.mark.django_db

T = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)
TODAY = date(2026, 3, 20)
FUNNEL = {
    "steps": [{"event": "signup"}, {"event": "view"}, {"event": "purchase"}],
    "window": {"value": 1, "unit": "day"},
    "date_from": "2026-03-01",
    "date_to": "2026-03-10",
}


def _person(app, user_id: str, *events: tuple[str, datetime], **attributes) -> Person:
    """A person with events inserted in the order given (ids follow that order)."""
    person = PersonFactory(app=app, user_id=user_id, attributes=attributes)
    for name, at in events:
        EventFactory(person=person, app=app, name=name, timestamp=at, received_at=T + 10 * H)
    return person


@pytest.fixture
def people(app_keys):
    app = app_keys.app
    return {
        # straight through: view after 50 min, purchase 90 min after the view
        "a": _person(
            app,
            "a",
            ("signup", T),
            ("view", T + timedelta(minutes=50)),
            ("purchase", T + 140 * 60 * timedelta(seconds=1)),
            plan="pro",
        ),
        # arrived out of order: purchase stored first, signup last
        "b": _person(
            app, "b", ("purchase", T + 5 * H), ("view", T + 2 * H), ("signup", T), plan="pro"
        ),
        # the view came before the signup: it does not count
        "c": _person(app, "c", ("view", T - H), ("signup", T), ("purchase", T + H)),
        # purchase exactly one day after the signup: inside the window (inclusive edge)
        "d": _person(app, "d", ("signup", T), ("view", T + 2 * H), ("purchase", T + 24 * H)),
        # purchase one second past the window
        "e": _person(
            app,
            "e",
            ("signup", T),
            ("view", T + timedelta(minutes=30)),
            ("purchase", T + 24 * H + timedelta(seconds=1)),
            plan="pro",
        ),
        # a first attempt stalls; the second, two days later, converts
        "f": _person(
            app,
            "f",
            ("signup", T),
            ("view", T + H),
            ("signup", T + 48 * H),
            ("view", T + 49 * H),
            ("purchase", T + 49 * H + timedelta(minutes=20)),
        ),
        # same timestamp: the signup has the smaller id, so the view counts after it
        "g1": _person(
            app, "g1", ("signup", T), ("view", T), ("purchase", T + timedelta(seconds=60))
        ),
        # same timestamp, but the view has the smaller id: it is before the signup
        "g2": _person(
            app, "g2", ("view", T), ("signup", T), ("purchase", T + timedelta(seconds=60))
        ),
        # signed up before the range: not in the funnel
        "h": _person(app, "h", ("signup", T - 48 * H), ("view", T - 47 * H)),
        # never signed up
        "i": _person(app, "i", ("view", T), ("purchase", T + H)),
    }


def _steps(result):
    return [
        (s["people"], s["median_seconds_from_previous"], s["drop_off"]) for s in result["steps"]
    ]


def test_funnel_matches_hand_computed_answer(app_keys, people) -> None:
    result = funnel_compute(app=app_keys.app, definition=funnel_parse(FUNNEL, today=TODAY))
    # step 1: a b c d e f g1 g2; step 2: a b d e f g1; step 3: a b d f g1 (e is 1 s late)
    # view deltas: g1 0, e 1800, a 3000, f 3600, b 7200, d 7200 → (3000 + 3600) / 2
    # purchase deltas: g1 60, f 1200, a 5400, b 10800, d 79200 → 5400
    assert _steps(result) == [(8, None, 0), (6, 3300.0, 2), (5, 5400.0, 1)]
    assert result["steps"][2]["conversion_rate"] == pytest.approx(5 / 8)
    assert result["steps"][1]["step_conversion_rate"] == pytest.approx(6 / 8)
    assert result["steps"][2]["drop_off_rate"] == pytest.approx(1 / 6)
    assert result["window_seconds"] == 86400
    assert "breakdown" not in result


def test_window_edge_is_inclusive_to_the_second(app_keys, people) -> None:
    narrower = {**FUNNEL, "window": {"value": 24 * 60 - 1, "unit": "minute"}}
    result = funnel_compute(app=app_keys.app, definition=funnel_parse(narrower, today=TODAY))
    # d's purchase at exactly 24 h now falls outside too
    assert [s["people"] for s in result["steps"]] == [8, 6, 4]


def test_repeated_steps_need_distinct_events(app_keys) -> None:
    app = app_keys.app
    _person(app, "r", ("view", T), ("view", T + timedelta(minutes=1)), ("buy", T + 2 * H))
    _person(app, "s", ("view", T), ("buy", T + timedelta(minutes=1)))
    _person(app, "q", ("view", T), ("view", T))  # same instant, two events
    definition = funnel_parse(
        {
            "steps": [{"event": "view"}, {"event": "view"}, {"event": "buy"}],
            "date_from": "2026-03-01",
            "date_to": "2026-03-10",
        },
        today=TODAY,
    )
    result = funnel_compute(app=app, definition=definition)
    assert [s["people"] for s in result["steps"]] == [3, 2, 1]
    # second view: r after 60 s, q after 0 s
    assert result["steps"][1]["median_seconds_from_previous"] == 30.0


def test_property_filters_on_steps(app_keys) -> None:
    app = app_keys.app
    person = PersonFactory(app=app, user_id="p")
    EventFactory(person=person, app=app, name="signup", timestamp=T)
    EventFactory(person=person, app=app, name="view", timestamp=T + H, properties={"page": "a"})
    other = PersonFactory(app=app, user_id="o")
    EventFactory(person=other, app=app, name="signup", timestamp=T)
    EventFactory(person=other, app=app, name="view", timestamp=T + H, properties={"page": "b"})
    definition = funnel_parse(
        {
            "steps": [
                {"event": "signup"},
                {"event": "view", "where": [{"property": "page", "op": "eq", "value": "a"}]},
            ],
            "date_from": "2026-03-01",
            "date_to": "2026-03-10",
        },
        today=TODAY,
    )
    result = funnel_compute(app=app, definition=definition)
    assert [s["people"] for s in result["steps"]] == [2, 1]


def test_breakdown_by_segment(app_keys, people) -> None:
    segment_create(
        app=app_keys.app,
        slug="pro",
        name="Pro",
        description="",
        condition={"attribute": "plan", "op": "eq", "value": "pro"},
    )
    definition = funnel_parse({**FUNNEL, "breakdown": {"segments": ["pro"]}}, today=TODAY)
    result = funnel_compute(app=app_keys.app, definition=definition)
    (pro,) = result["breakdown"]
    assert pro["label"] == "pro"
    assert pro["members"] == 3
    assert [s["people"] for s in pro["steps"]] == [3, 3, 2]  # a, b, e; e misses the window
    assert [s["people"] for s in result["steps"]] == [8, 6, 5]


def test_cohorts_with_anchors_count_from_the_anchor(app_keys, people) -> None:
    a, d, i = people["a"], people["d"], people["i"]

    def member(person: Person, label: str, anchor: datetime | None):
        anchor_value = Value(anchor) if anchor else NO_ANCHOR
        return (
            Person.objects.filter(pk=person.pk)
            .order_by()
            .values(
                person_id=F("id"),
                label=label_value(label),
                anchor=Cast(anchor_value, output_field=NO_ANCHOR.output_field),
            )
        )

    queryset = (
        member(a, "exposed", T + timedelta(minutes=30))  # signed up before exposure
        .union(member(d, "exposed", T - H), all=True)  # converts within the window
        .union(member(i, "holdout", T - H), all=True)  # never signed up
    )
    cohorts = Cohorts(
        queryset=queryset,
        labels=("exposed", "holdout"),
        anchored=True,
        anchor_window=timedelta(days=7),
    )
    groups = funnel_groups(
        app_id=app_keys.app.pk,
        steps=(EventFilter("signup"), EventFilter("view"), EventFilter("purchase")),
        window=timedelta(days=1),
        date_range=None,
        cohorts=cohorts,
    )
    by_label = {g.label: g for g in groups}
    assert by_label["exposed"].members == 2
    assert by_label["exposed"].reached == (1, 1, 1)
    assert by_label["holdout"].members == 1
    assert by_label["holdout"].reached == (0, 0, 0)


def test_other_apps_events_never_count(app_keys, other_app_keys, people) -> None:
    _person(other_app_keys.app, "a", ("signup", T), ("view", T + H), ("purchase", T + 2 * H))
    result = funnel_compute(app=other_app_keys.app, definition=funnel_parse(FUNNEL, today=TODAY))
    assert [s["people"] for s in result["steps"]] == [1, 1, 1]


def test_a_funnel_nobody_entered_counts_nobody(app_keys, people) -> None:
    definition = {**FUNNEL, "steps": [{"event": "signup"}, {"event": "never"}, {"event": "x"}]}
    result = funnel_compute(app=app_keys.app, definition=funnel_parse(definition, today=TODAY))
    assert _steps(result) == [(8, None, 0), (0, None, 8), (0, None, 0)]
    nobody = {**FUNNEL, "steps": [{"event": "never"}, {"event": "view"}, {"event": "purchase"}]}
    result = funnel_compute(app=app_keys.app, definition=funnel_parse(nobody, today=TODAY))
    assert _steps(result) == [(0, None, 0), (0, None, 0), (0, None, 0)]
