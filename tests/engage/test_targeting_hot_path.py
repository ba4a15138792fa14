"""The decision's hot path: trigger index, one-query history load, round trips per decision."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from engage.campaigns import campaign_create, campaign_publish
from engage.deliveries import delivery_event_record, targeting_evaluate
from engage.models import Delivery
from engage.targeting import (
    Moment,
    _check_trigger,
    compiled_app,
    decide,
    items_for,
    ledger_load,
    situation_build,
)
from segments.models import EventDailyCount, Person
from segments.services import EventInput, events_ingest
from tests.factories import PersonFactory

pytestmark = pytest.mark.django_db

CONTENT = {"en": {"title": "Hello", "body": "Try **CSV**", "buttons": []}}


def message(app: Any, **fields: Any) -> Any:
    data = {"name": "m", "kind": "banner", "content": CONTENT, "trigger": {"on": "api"}, **fields}
    campaign = campaign_create(kind="message", app=app, data=data)
    campaign_publish(campaign=campaign)
    return campaign


MOMENTS = [
    Moment(),
    Moment(event="export_clicked"),
    Moment(event="order_completed"),
    Moment(event="never_triggers"),
    Moment(url="https://x.test/reports/1"),
    Moment(url="https://x.test/home"),
    Moment(url="https://x.test/reports/1", session_start=True),
    Moment(session_start=True),
]


@pytest.fixture
def mixed(app_keys: Any) -> Any:
    app = app_keys.app
    message(app, name="api", priority=1)
    message(app, name="session", trigger={"on": "session_start"}, priority=2)
    message(app, name="any page", trigger={"on": "page_view"}, priority=3)
    message(
        app,
        name="reports",
        kind="modal",
        trigger={"on": "page_view", "url": {"op": "contains", "value": "/reports"}},
        priority=4,
    )
    message(app, name="export", trigger={"on": "event", "event": "export_clicked"}, priority=5)
    message(app, name="export too", trigger={"on": "event", "event": "export_clicked"})
    message(app, name="order", trigger={"on": "event", "event": "order_completed"}, priority=9)
    message(app, name="held out", holdout_percent=Decimal("99.99"), trigger={"on": "page_view"})
    return app


@pytest.mark.parametrize("moment", MOMENTS, ids=repr)
def test_campaigns_for_a_moment_are_those_whose_trigger_can_pass(mixed: Any, moment: Moment):
    compiled = compiled_app(mixed.pk)
    situation = situation_build(app=mixed, person=None, moment=moment, user_id="u1")
    could_pass = [
        c
        for c in compiled.campaigns
        if _check_trigger(c, situation).ok
        or _check_trigger(c, situation).reason.startswith("url ")  # its URL condition aside
    ]
    assert list(compiled.campaigns_for(moment)) == could_pass
    assert could_pass or moment.event == "never_triggers"


@pytest.mark.parametrize("moment", MOMENTS, ids=repr)
def test_deciding_the_moments_campaigns_gives_what_deciding_all_gives(mixed: Any, moment: Moment):
    compiled = compiled_app(mixed.pk)
    person: Any = PersonFactory(app=mixed, user_id="u1", attributes={})
    situation = situation_build(app=mixed, person=person, moment=moment, user_id="u1")
    every = decide(situation, compiled.campaigns)
    only = decide(situation, compiled.campaigns_for(moment))
    shown = [(d.campaign.name, d.shown, d.holdout) for d in every if d.shown or d.holdout]
    assert [(d.campaign.name, d.shown, d.holdout) for d in only if d.shown or d.holdout] == shown
    as_items = items_for(situation, every, dry_run=True, locale=None)
    assert items_for(situation, only, dry_run=True, locale=None) == as_items


def test_history_in_one_query_matches_the_orm_reads(
    postgres: None, app_keys: Any, django_assert_num_queries: Any
) -> None:
    app = app_keys.app
    message(
        app,
        name="exporters",
        audience={"condition": {"event": "export_clicked", "count": {"op": "gte", "value": 2}}},
        max_impressions=5,
    )
    message(app, name="everyone", priority=3)
    message(app, name="held", holdout_percent=Decimal("99.99"))
    now = timezone.now()
    events_ingest(
        app=app,
        source="api",
        events=[
            EventInput(name=name, user_id="u1", timestamp=now - timedelta(days=days))
            for name, days in [("export_clicked", 1), ("export_clicked", 3), ("login", 2)]
        ],
    )
    first = targeting_evaluate(app=app, user_id="u1", anonymous_id=None, moment=Moment())
    assert [i.content["name"] for i in first.items] == ["everyone", "exporters"]
    delivery_event_record(app=app, delivery_id=first.items[0].delivery_id, type="shown")
    person = Person.objects.get(app=app, user_id="u1")
    assert EventDailyCount.objects.filter(person=person).count() == 3

    with django_assert_num_queries(1):
        situation = situation_build(app=app, person=person, moment=Moment(), now=now)
    facts = situation.facts
    assert facts.loaded_names == frozenset({"export_clicked"})
    assert sorted(facts.daily["export_clicked"]) == sorted(
        EventDailyCount.objects.filter(person=person, name="export_clicked").values_list(
            "day", "count"
        )
    )
    assert "login" not in facts.daily
    assert facts.event_count("export_clicked", None, ()) == 2
    assert situation.ledger == ledger_load(person)
    assert situation.ledger.shown == {("message", first.items[0].id): 1}
    assert len(situation.ledger.pending) == 1
    assert len(situation.ledger.holdout) == 1


def test_a_decision_that_writes_nothing_takes_one_round_trip(
    postgres: None, app_keys: Any, django_assert_num_queries: Any
) -> None:
    app = app_keys.app
    message(app, name="everyone")
    message(app, name="page", trigger={"on": "page_view"})
    first = targeting_evaluate(app=app, user_id="u1", anonymous_id=None, moment=Moment())
    assert len(first.items) == 1
    # Known person, pending delivery offered again: the person with their whole history in
    # one query; no transaction is opened when nothing is written.
    with django_assert_num_queries(1) as captured:
        again = targeting_evaluate(app=app, user_id="u1", anonymous_id=None, moment=Moment())
    assert again.items[0].delivery_id == first.items[0].delivery_id
    # (Prepared statements are logged without their text.)
    assert not any("SAVEPOINT" in (q["sql"] or "") for q in captured.captured_queries)
    assert Delivery.objects.count() == 1


def test_new_deliveries_are_one_insert(
    postgres: None, app_keys: Any, django_assert_num_queries: Any
) -> None:
    from django.db import connection

    app = app_keys.app
    for n in range(5):
        message(app, name=f"m{n}")
    PersonFactory(app=app, user_id="u1", attributes={})
    compiled_app(app.pk)  # compiled once per change, not per decision
    statements: list[str] = []

    def capture(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)  # prepared statements are logged without their text
        return execute(sql, params, many, context)

    with django_assert_num_queries(2), connection.execute_wrapper(capture):
        # the person with their history, the INSERT
        evaluation = targeting_evaluate(app=app, user_id="u1", anonymous_id=None, moment=Moment())
    assert len(evaluation.items) == 5
    assert len([sql for sql in statements if "INSERT INTO" in sql]) == 1
    assert Delivery.objects.count() == 5


@pytest.mark.django_db(transaction=True)
def test_decisions_commit_without_waiting_for_the_disk(postgres: None, app_keys: Any) -> None:
    from django.db import connection

    app = app_keys.app
    message(app, name="everyone")
    compiled_app(app.pk)
    PersonFactory(app=app, user_id="u1", attributes={})
    statements: list[str] = []

    def capture(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)  # prepared statements are logged without their text
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        evaluation = targeting_evaluate(app=app, user_id="u1", anonymous_id=None, moment=Moment())
    # The person with their history, and the write: one query, its own implicit transaction.
    assert len(statements) == 2
    assert statements[1].startswith(
        "WITH commit_async AS (SELECT set_config('synchronous_commit', 'off', true)) INSERT INTO"
    )
    # Only this transaction: the connection's own setting is untouched afterwards.
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
    assert str(Delivery.objects.get().pk) == evaluation.items[0].delivery_id
