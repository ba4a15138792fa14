"""Event-history, segment and context leaves on every evaluator: the SQL query, the predicate over
in-memory events, and the predicate over facts loaded from the database (counters + indexed
queries). Events go in through `events_ingest`, as every door does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone as django_timezone

from engage.models import App
from segments.conditions import (
    Condition,
    ConditionInvalid,
    EventRecord,
    InMemoryFacts,
    compile_predicate,
    condition_to_q,
    parse_condition,
    person_facts_load,
)
from segments.models import Event, EventSource, Person
from segments.services import EventInput, events_ingest
from tests.factories import AppFactory, PersonFactory

NOW = datetime(2024, 3, 10, 0, 30, tzinfo=UTC)  # just after midnight UTC


def ingest(
    app: App, user_id: str, *events: tuple[str, datetime, dict[str, Any]], now: datetime = NOW
) -> Person:
    events_ingest(
        app=app,
        events=[
            EventInput(name=name, user_id=user_id, properties=properties, timestamp=timestamp)
            for name, timestamp, properties in events
        ],
        source=EventSource.API,
        received_at=now,
    )
    return Person.objects.get(app=app, user_id=user_id)


def decide(
    app: App,
    data: dict[str, Any],
    people: Iterable[Person],
    *,
    now: datetime = NOW,
    segments: Mapping[str, Condition] | None = None,
) -> set[str]:
    """The user ids `data` matches, after checking that all three evaluators agree."""
    condition = parse_condition(data)
    predicate = compile_predicate(condition)
    resolver = segments.get if segments is not None else None
    query = Person.objects.filter(
        condition_to_q(condition, app=app, now=now, segment_resolver=resolver)
    )
    in_sql = set(query.values_list("user_id", flat=True))
    in_memory, in_database = set(), set()
    for person in people:
        events = [
            EventRecord(e.name, e.timestamp, e.properties)
            for e in Event.objects.filter(person=person)
        ]
        facts = InMemoryFacts(
            attributes=person.attributes, now=now, events=events, segments=segments
        )
        if predicate(facts):
            in_memory.add(person.user_id)
        if predicate(person_facts_load(person, now=now, segment_resolver=segments)):
            in_database.add(person.user_id)
    assert in_sql == in_memory == in_database, (data, in_sql, in_memory, in_database)
    return in_sql


@pytest.fixture
def app(db: None) -> App:
    return AppFactory()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        ({"op": "eq", "value": 3}, True),
        ({"op": "eq", "value": 4}, False),
        ({"op": "gte", "value": 3}, True),
        ({"op": "gt", "value": 3}, False),
        ({"op": "lt", "value": 3}, False),
        ({"op": "lte", "value": 3}, True),
        ({"op": "neq", "value": 2}, True),
        ({"op": "between", "value": [3, 5]}, True),
        ({"op": "between", "value": [4, 5]}, False),
        ({"op": "eq", "value": 0}, False),
        ({"op": "gte", "value": 1}, True),
    ],
)
def test_within_days_is_a_rolling_window_across_midnight(
    app: App, count: dict[str, Any], expected: bool
) -> None:
    # The window of 1 day ends now (00:30) and starts yesterday at 00:30 UTC: the boundary
    # day's bucket holds events on both sides of the boundary.
    person = ingest(
        app,
        "u1",
        ("export_clicked", at("2024-03-08T12:00:00+00:00"), {}),
        ("export_clicked", at("2024-03-09T00:29:59+00:00"), {}),
        ("export_clicked", at("2024-03-09T00:30:00+00:00"), {}),
        ("export_clicked", at("2024-03-09T23:59:59+00:00"), {}),
        ("export_clicked", at("2024-03-10T00:00:00+00:00"), {}),
        ("page_view", at("2024-03-10T00:10:00+00:00"), {}),
    )
    data = {"event": "export_clicked", "within_days": 1, "count": count}
    assert decide(app, data, [person]) == ({"u1"} if expected else set())


def test_all_time_and_longer_windows(app: App) -> None:
    person = ingest(
        app,
        "u1",
        ("export_clicked", at("2020-01-01T00:00:00+00:00"), {}),
        ("export_clicked", at("2024-02-10T00:30:00+00:00"), {}),  # exactly 29 days ago
        ("export_clicked", at("2024-02-09T00:29:00+00:00"), {}),  # 30 days and a minute ago
    )
    people = [person]
    for data, expected in [
        ({"event": "export_clicked", "count": {"op": "eq", "value": 3}}, True),
        ({"event": "export_clicked", "within_days": 29, "count": {"op": "eq", "value": 1}}, True),
        ({"event": "export_clicked", "within_days": 30, "count": {"op": "eq", "value": 1}}, True),
        ({"event": "export_clicked", "within_days": 31, "count": {"op": "eq", "value": 2}}, True),
        ({"event": "export_clicked", "within_days": 28}, False),
        ({"event": "never_happened"}, False),
        ({"event": "never_happened", "count": {"op": "eq", "value": 0}}, True),
        ({"not": {"event": "export_clicked", "within_days": 28}}, True),
    ]:
        assert decide(app, data, people) == ({"u1"} if expected else set()), data


def test_window_boundary_uses_utc_days_whatever_the_timestamps_offset(app: App) -> None:
    # 01:00 at +02:00 on the 9th is 23:00 UTC on the 8th: before a window that starts on the
    # 8th at 23:30 UTC, although its local date is the 9th.
    now = datetime(2024, 3, 10, 23, 30, tzinfo=UTC)
    plus_two = timezone(timedelta(hours=2))
    person = ingest(
        app,
        "u1",
        ("export_clicked", datetime(2024, 3, 9, 1, 0, tzinfo=plus_two), {}),
        ("export_clicked", datetime(2024, 3, 10, 1, 0, tzinfo=plus_two), {}),
        now=now,
    )
    data = {"event": "export_clicked", "within_days": 2, "count": {"op": "eq", "value": 1}}
    assert decide(app, data, [person], now=now) == {"u1"}


def test_where_filters_properties_with_the_same_operators(app: App) -> None:
    people = [
        ingest(
            app,
            "u1",
            ("export_clicked", at("2024-03-09T10:00:00+00:00"), {"format": "csv", "rows": 10}),
            ("export_clicked", at("2024-03-09T11:00:00+00:00"), {"format": "csv", "rows": 5000}),
            ("export_clicked", at("2024-01-01T11:00:00+00:00"), {"format": "csv"}),
        ),
        ingest(
            app,
            "u2",
            ("export_clicked", at("2024-03-09T10:00:00+00:00"), {"format": "CSV"}),
            ("export_clicked", at("2024-03-09T10:00:00+00:00"), {"format": "日本語"}),
            ("export_clicked", at("2024-03-09T10:00:00+00:00"), {"format": 7}),
        ),
        ingest(app, "u3", ("export_clicked", at("2024-03-09T10:00:00+00:00"), {})),
    ]
    csv = {"property": "format", "op": "eq", "value": "csv"}
    cases = [
        ({"event": "export_clicked", "where": [csv]}, {"u1"}),
        ({"event": "export_clicked", "where": [csv], "count": {"op": "eq", "value": 3}}, {"u1"}),
        (
            {
                "event": "export_clicked",
                "within_days": 7,
                "where": [csv],
                "count": {"op": "eq", "value": 2},
            },
            {"u1"},
        ),
        (
            {
                "event": "export_clicked",
                "where": [csv, {"property": "rows", "op": "gt", "value": 100}],
            },
            {"u1"},
        ),
        (
            {
                "event": "export_clicked",
                "where": [{"property": "format", "op": "starts_with", "value": "日本"}],
            },
            {"u2"},
        ),
        (
            {
                "event": "export_clicked",
                "where": [{"property": "format", "op": "neq", "value": "csv"}],
            },
            {"u2"},
        ),
        (
            {"event": "export_clicked", "where": [{"property": "format", "op": "is_not_set"}]},
            {"u3"},
        ),
        (
            {"event": "export_clicked", "where": [{"property": "format", "op": "gt", "value": 5}]},
            {"u2"},
        ),
        (
            {"event": "export_clicked", "where": [csv], "count": {"op": "eq", "value": 0}},
            {"u2", "u3"},
        ),
    ]
    for data, expected in cases:
        assert decide(app, data, people) == expected, data


def test_facts_load_counters_in_one_query_and_scan_events_only_for_the_boundary_day(
    app: App, django_assert_num_queries: Any
) -> None:
    person = ingest(
        app,
        "u1",
        ("export_clicked", at("2024-03-09T12:00:00+00:00"), {"format": "csv"}),
        ("export_clicked", at("2024-03-05T00:10:00+00:00"), {"format": "csv"}),
    )
    with django_assert_num_queries(1):
        facts = person_facts_load(person, now=NOW)
    with django_assert_num_queries(0):
        # Boundary day (the 3rd, for 7 days from 00:30 on the 10th) has no events.
        assert facts.event_count("export_clicked", 7, ()) == 2
        assert facts.event_count("export_clicked", None, ()) == 2
        assert facts.event_count("page_view", 30, ()) == 0
    with django_assert_num_queries(1):
        # The boundary day (the 5th) has one event: the indexed query decides which side.
        assert facts.event_count("export_clicked", 5, ()) == 1
    with django_assert_num_queries(1):
        where = parse_condition(
            {"event": "e", "where": [{"property": "format", "op": "eq", "value": "csv"}]}
        ).where  # type: ignore[union-attr]
        assert facts.event_count("export_clicked", 30, where) == 2
    with django_assert_num_queries(0):
        assert facts.event_count("export_clicked", 30, where) == 2  # remembered


def test_facts_loaded_for_some_event_names_load_others_when_asked(
    app: App, django_assert_num_queries: Any
) -> None:
    person = ingest(
        app,
        "u1",
        ("export_clicked", at("2024-03-09T12:00:00+00:00"), {}),
        ("page_view", at("2024-03-09T12:00:00+00:00"), {}),
    )
    with django_assert_num_queries(1):
        facts = person_facts_load(person, now=NOW, event_names=["export_clicked"])
        assert facts.event_count("export_clicked", 7, ()) == 1
    with django_assert_num_queries(1):
        assert facts.event_count("page_view", 7, ()) == 1
        assert facts.event_count("page_view", None, ()) == 1


def test_an_accepted_event_is_seen_by_the_very_next_decision(app: App) -> None:
    condition = parse_condition({"event": "export_clicked", "within_days": 1})
    predicate = compile_predicate(condition)
    person = ingest(app, "u1", ("page_view", NOW - timedelta(hours=1), {}))
    assert not predicate(person_facts_load(person, now=NOW))
    ingest(app, "u1", ("export_clicked", NOW - timedelta(minutes=1), {}))
    assert predicate(person_facts_load(person, now=NOW))
    assert Person.objects.filter(condition_to_q(condition, app=app, now=NOW)).get() == person


def test_an_event_through_the_collector_changes_the_next_decision(app_keys: Any) -> None:
    app = app_keys.app
    condition = parse_condition({"event": "export_clicked", "within_days": 1})
    predicate = compile_predicate(condition)
    PersonFactory(app=app, user_id="u42")
    person = Person.objects.get(app=app, user_id="u42")
    assert not predicate(person_facts_load(person, now=django_timezone.now()))
    response = Client().get(
        "/i",
        {
            "e": "se",
            "se_ca": "reports",
            "se_ac": "export_clicked",
            "aid": "acme-web",
            "uid": "u42",
            "eid": "00000000-0000-4000-8000-000000000042",
            "p": "web",
            "tv": "js-3.0.0",
        },
    )
    assert response.status_code == 200
    now = django_timezone.now()
    assert predicate(person_facts_load(person, now=now))
    assert list(Person.objects.filter(condition_to_q(condition, app=app, now=now))) == [person]


def test_segment_references_resolve_on_every_evaluator(app: App) -> None:
    people = [
        PersonFactory(app=app, user_id="pro-big", attributes={"plan": "pro", "seats": 40}),
        PersonFactory(app=app, user_id="pro-small", attributes={"plan": "pro", "seats": 2}),
        PersonFactory(app=app, user_id="free", attributes={"plan": "free", "seats": 90}),
    ]
    segments = {
        "pro": parse_condition({"attribute": "plan", "op": "eq", "value": "pro"}),
        "big-pro": parse_condition(
            {"all": [{"segment": "pro"}, {"attribute": "seats", "op": "gt", "value": 10}]}
        ),
        # A cycle that slipped past the save-time check: the reference back is false.
        "loop-a": parse_condition(
            {"any": [{"segment": "loop-b"}, {"attribute": "seats", "op": "lt", "value": 5}]}
        ),
        "loop-b": parse_condition(
            {"any": [{"segment": "loop-a"}, {"attribute": "plan", "op": "eq", "value": "free"}]}
        ),
    }
    assert decide(app, {"segment": "pro"}, people, segments=segments) == {"pro-big", "pro-small"}
    assert decide(app, {"segment": "big-pro"}, people, segments=segments) == {"pro-big"}
    assert decide(app, {"not": {"segment": "big-pro"}}, people, segments=segments) == {
        "pro-small",
        "free",
    }
    assert decide(app, {"segment": "missing"}, people, segments=segments) == set()
    assert decide(app, {"segment": "loop-a"}, people, segments=segments) == {"pro-small", "free"}
    assert decide(
        app, {"all": [{"segment": "loop-b"}, {"segment": "loop-a"}]}, people, segments=segments
    ) == {"pro-small", "free"}


def test_segment_reference_without_a_resolver_is_an_error(app: App) -> None:
    condition = parse_condition({"segment": "pro"})
    with pytest.raises(ValueError, match="no resolver"):
        compile_predicate(condition)(InMemoryFacts())
    with pytest.raises(ValueError, match="no resolver"):
        condition_to_q(condition, app=app, now=NOW)


def test_context_leaves_decide_in_process_and_bound_the_sql_count(app: App) -> None:
    PersonFactory(app=app, attributes={"plan": "pro"})
    PersonFactory(app=app, attributes={"plan": "free"})
    reports = {"page_url": {"op": "contains", "value": "/reports"}}
    pro = {"attribute": "plan", "op": "eq", "value": "pro"}
    on_reports = parse_condition({"all": [pro, reports]}, allow_context=True)
    predicate = compile_predicate(on_reports)
    here = {"page_url": "https://app.example/reports/42", "locale": "de-CH", "device": None}
    assert predicate(InMemoryFacts(attributes={"plan": "pro"}, context=here))
    assert not predicate(InMemoryFacts(attributes={"plan": "pro"}, context={"page_url": "/home"}))
    assert not predicate(InMemoryFacts(attributes={"plan": "pro"}))

    def count(data: dict[str, Any]) -> int:
        condition = parse_condition(data, allow_context=True)
        q = condition_to_q(condition, app=app, now=NOW, context="upper_bound")
        return Person.objects.filter(q).count()

    assert count({"all": [pro, reports]}) == 1
    assert count({"all": [pro, {"not": reports}]}) == 1  # still an upper bound under "not"
    assert count({"not": {"any": [reports, pro]}}) == 1
    with pytest.raises(ConditionInvalid):
        condition_to_q(on_reports, app=app, now=NOW)
    locale = parse_condition(
        {"locale": {"op": "in", "value": ["de-CH", "fr-CH"]}}, allow_context=True
    )
    assert compile_predicate(locale)(InMemoryFacts(context=here))
    device = parse_condition({"device": {"op": "is_not_set"}}, allow_context=True)
    assert compile_predicate(device)(InMemoryFacts(context=here))
