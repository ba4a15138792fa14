"""The history query (PostgreSQL): property-filter counts and rolling windows' boundary days
read with the counters and the ledger, in one round trip, with the answers of the lazy reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from engage.campaigns import campaign_create, campaign_publish
from engage.deliveries import targeting_evaluate
from engage.models import Delivery
from engage.targeting import (
    Moment,
    compiled_app,
    history_query,
    situation_build,
    situation_for_user,
)
from segments.conditions import compile_predicate, parse_condition, person_facts_load
from segments.models import Person
from segments.services import EventInput, events_ingest

pytestmark = [pytest.mark.django_db, pytest.mark.postgres, pytest.mark.usefixtures("postgres")]

CONTENT = {"en": {"title": "Hello", "body": "Hi", "buttons": []}}
# Noon UTC: a 7-day window starts at noon 7 days ago, so events on that day fall on both
# sides of its start.
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)

CSV = {"property": "format", "op": "eq", "value": "csv"}
LEAVES: list[dict[str, Any]] = [
    {"event": "export_clicked", "where": [CSV], "within_days": 30},
    {"event": "export_clicked", "where": [CSV]},
    {"event": "export_clicked", "where": [{"property": "rows", "op": "gte", "value": 100}]},
    {"event": "export_clicked", "count": {"op": "gte", "value": 2}, "within_days": 7},
    {"event": "export_clicked", "count": {"op": "gte", "value": 3}, "within_days": 7},
    {"event": "report_viewed", "count": {"op": "eq", "value": 1}, "within_days": 7},
    {"event": "report_viewed", "within_days": 14},
    # Relative to now: not folded into the history query, counted when reached.
    {
        "event": "export_clicked",
        "where": [{"property": "at", "op": "within_last_days", "value": 3}],
    },
    {"segment": "csv-fans"},
]


def message(app: Any, name: str, condition: dict[str, Any], **fields: Any) -> Any:
    data = {
        "name": name,
        "kind": "banner",
        "content": CONTENT,
        "trigger": {"on": "api"},
        "audience": {"condition": condition},
        **fields,
    }
    campaign = campaign_create(kind="message", app=app, data=data)
    campaign_publish(campaign=campaign)
    return campaign


@pytest.fixture
def history(app_keys: Any) -> Any:
    from segments.services import segment_create

    app = app_keys.app
    segment_create(
        app=app,
        slug="csv-fans",
        name="CSV fans",
        condition={
            "event": "export_clicked",
            "where": [CSV],
            "count": {"op": "gte", "value": 2},
            "within_days": 7,
        },
    )
    for n, leaf in enumerate(LEAVES):
        message(app, f"leaf {n}", leaf)
    seven_days_ago = NOW - timedelta(days=7)
    events: list[tuple[str, datetime, dict[str, Any]]] = [
        # On the 7-day window's first day, before and after its start.
        ("export_clicked", seven_days_ago - timedelta(hours=2), {"format": "csv"}),
        ("export_clicked", seven_days_ago + timedelta(hours=3), {"format": "csv", "rows": 500}),
        ("export_clicked", NOW - timedelta(days=2), {"format": "pdf", "rows": 50}),
        ("export_clicked", NOW - timedelta(days=45), {"format": "csv"}),
        ("report_viewed", seven_days_ago + timedelta(hours=1), {}),
        ("report_viewed", NOW - timedelta(days=14, hours=-1), {}),
    ]
    events_ingest(
        app=app,
        source="api",
        events=[
            EventInput(
                name=name,
                user_id="u1",
                timestamp=at,
                properties={**properties, "at": (NOW - timedelta(days=1)).isoformat()},
            )
            for name, at, properties in events
        ],
    )
    return app


def test_the_history_query_answers_every_leaf_as_the_lazy_reads_do(
    history: Any, django_assert_num_queries: Any
) -> None:
    person = Person.objects.get(app=history, user_id="u1")
    compiled = compiled_app(history.pk)
    with django_assert_num_queries(1):
        situation = situation_build(app=history, person=person, moment=Moment(), now=NOW)
    lazy = person_facts_load(
        person, now=NOW, segment_resolver=compiled.segments.get, event_names=compiled.event_names
    )
    answers = []
    for leaf in LEAVES:
        predicate = compile_predicate(parse_condition(leaf))
        folded = leaf.get("where") and leaf["where"][0]["op"] == "within_last_days"
        with django_assert_num_queries(1 if folded else 0):
            answer = predicate(situation.facts)
        assert answer == predicate(lazy), leaf
        answers.append(answer)
    # The data set makes both answers occur, so the comparison means something.
    assert answers == [True, True, True, True, False, True, True, True, False]


def test_counts_read_with_the_history_are_the_orm_counts(history: Any) -> None:
    person = Person.objects.get(app=history, user_id="u1")
    compiled = compiled_app(history.pk)
    situation = situation_build(app=history, person=person, moment=Moment(), now=NOW)
    query = history_query(compiled, Moment(), connection)
    assert len(query.where_counts) == 4  # three leaves and the segment; not the relative one
    assert query.windows == (7, 14)
    lazy = person_facts_load(
        person, now=NOW, segment_resolver=compiled.segments.get, event_names=compiled.event_names
    )
    for count in query.where_counts:
        assert situation.facts.counted[count.key] == lazy.event_count(*count.key)
    assert situation.facts.event_count("export_clicked", 7, ()) == 2
    assert situation.facts.event_count("report_viewed", 14, ()) == 2
    assert situation.facts.event_count("report_viewed", 7, ()) == 1


def test_a_decision_reads_the_person_and_everything_else_in_one_query(
    history: Any, django_assert_num_queries: Any
) -> None:
    targeting_evaluate(app=history, user_id="u1", anonymous_id=None, moment=Moment(), now=NOW)
    # The person with their history, and the one count relative to now (within_last_days in
    # its filter); the pending deliveries are offered again, nothing is written.
    with django_assert_num_queries(2) as captured:
        again = targeting_evaluate(
            app=history, user_id="u1", anonymous_id=None, moment=Moment(), now=NOW
        )
    assert "COUNT(*)" in captured.captured_queries[1]["sql"]
    shown = [item.content["name"] for item in again.items]
    assert shown == [f"leaf {n}" for n in (0, 1, 2, 3, 5, 6, 7)]


@pytest.mark.django_db(transaction=True)
def test_deliveries_inserted_in_one_statement_hold_what_the_orm_writes(
    postgres: None, app_keys: Any
) -> None:
    app = app_keys.app
    message(app, "shown", {"attribute": "plan", "op": "eq", "value": "pro"})
    message(
        app,
        "held",
        {"attribute": "plan", "op": "eq", "value": "pro"},
        holdout_percent="99.99",
        priority=5,
    )
    message(
        app,
        "ab",
        {"attribute": "plan", "op": "eq", "value": "pro"},
        variants=[{"key": "a", "weight": 50}, {"key": "b", "weight": 50}],
        priority=3,
    )
    evaluation = targeting_evaluate(
        app=app,
        user_id="u1",
        anonymous_id=None,
        moment=Moment(url="https://x.test/a", locale="en"),
        attributes={"plan": "pro"},
        now=NOW,
    )
    assert len(evaluation.items) == 0  # page views trigger none of these: nothing written
    evaluation = targeting_evaluate(
        app=app,
        user_id="u1",
        anonymous_id=None,
        moment=Moment(locale="en"),
        now=NOW,
    )
    person = Person.objects.get(app=app, user_id="u1")
    rows = {d.campaign_id: d for d in Delivery.objects.filter(person=person)}
    by_id = {item.id: item for item in evaluation.items}
    assert len(rows) == 3
    assert len(by_id) == 2
    for campaign_id, delivery in rows.items():
        assert delivery.app_id == app.pk
        assert delivery.kind == "message"
        assert delivery.decided_at == NOW
        assert delivery.context == {"locale": "en"}
        assert delivery.is_test is False
        assert delivery.clicked_button == ""
        assert delivery.shown_at is None
        assert delivery.converted_at is None
        item = by_id.get(campaign_id)
        assert delivery.holdout is (item is None)
        if item is not None:
            assert str(delivery.pk) == item.delivery_id
            assert delivery.variant == item.variant
    assert {i.variant for i in evaluation.items} - {""} <= {"a", "b"}
    assert any(i.variant in ("a", "b") for i in evaluation.items)


def test_the_person_read_with_the_history_is_the_one_person_resolve_finds(
    history: Any, django_assert_num_queries: Any
) -> None:
    person = Person.objects.get(app=history, user_id="u1")
    compiled = compiled_app(history.pk)
    with django_assert_num_queries(1):
        found = situation_for_user(
            app=history,
            user_id="u1",
            moment=Moment(),
            now=NOW,
            attributes={"plan": "pro"},
            compiled=compiled,
        )
    assert found is not None
    built = situation_build(
        app=history,
        person=person,
        moment=Moment(),
        now=NOW,
        attributes={"plan": "pro"},
        user_id="u1",
    )
    assert found.person == person
    assert found.person.attributes == person.attributes
    assert found.person_key == built.person_key == "u:u1"
    assert found.ledger == built.ledger
    assert found.facts.attributes == built.facts.attributes
    assert found.facts.daily == built.facts.daily
    assert found.facts.counted == built.facts.counted
    assert (
        situation_for_user(
            app=history, user_id="u2", moment=Moment(), now=NOW, attributes=None, compiled=compiled
        )
        is None
    )


def test_people_the_one_query_does_not_find_are_resolved_as_before(
    history: Any, other_app_keys: Any
) -> None:
    person = Person.objects.get(app=history, user_id="u1")
    # Another App's key never finds this App's person.
    elsewhere = targeting_evaluate(
        app=other_app_keys.app, user_id="u1", anonymous_id=None, moment=Moment(), now=NOW
    )
    assert elsewhere.person is not None
    assert elsewhere.person.app_id == other_app_keys.app.pk
    # A user id the resolver cleans first (spaces around it) still names the same person.
    spaced = targeting_evaluate(
        app=history, user_id=" u1 ", anonymous_id=None, moment=Moment(), now=NOW
    )
    assert spaced.person == person
    # A newcomer is created, and sees what the audience lets a person without history see.
    fresh = targeting_evaluate(
        app=history, user_id="u9", anonymous_id=None, moment=Moment(), now=NOW
    )
    assert fresh.person is not None
    assert fresh.person.user_id == "u9"
    assert Person.objects.filter(app=history, user_id="u9").count() == 1
