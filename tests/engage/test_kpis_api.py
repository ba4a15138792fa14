"""Insights, KPIs and experiment set-up through the API: shapes, errors, tenancy, Thompson."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from engage.campaigns import campaign_kind_get
from engage.experiments import allocated_variants, shares_to_weights, thompson_shares
from engage.kpis import campaign_allocation_update
from engage.models import Delivery
from engage.targeting import compile_one
from segments.insights import QueryTooExpensive
from segments.models import Event, EventSource, Person
from segments.services import EventInput, events_ingest
from tests.factories import EventFactory, PersonFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def _events(app) -> None:
    """Through ingestion, as every door stores them (per-day counters included)."""
    batch = []
    for i in range(3):
        batch.append(EventInput(name="signup", user_id=f"p{i}", timestamp=NOW - timedelta(days=2)))
        if i:
            batch.append(
                EventInput(name="upgraded", user_id=f"p{i}", timestamp=NOW - timedelta(days=1))
            )
    events_ingest(app=app, events=batch)


def _message(client, **extra: Any) -> dict[str, Any]:
    body = {
        "name": "Upgrade nudge",
        "kind": "modal",
        "trigger": {"on": "api"},
        "content": {"en": {"title": "Go pro", "body": "Now."}},
        "holdout_percent": 10,
        **extra,
    }
    response = client.post("/api/v1/messages", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_trend_and_funnel_endpoints(secret_client, app_keys) -> None:
    _events(app_keys.app)
    trend = secret_client.post(
        "/api/v1/insights/trends", {"event": "signup", "last_days": 7}, format="json"
    )
    assert trend.status_code == 200, trend.content
    (series,) = trend.json()["series"]
    assert (series["count"], len(series["buckets"])) == (3, 7)
    assert sum(b["people"] for b in series["buckets"]) == 3
    funnel = secret_client.post(
        "/api/v1/insights/funnels/",
        {"steps": [{"event": "signup"}, {"event": "upgraded"}], "last_days": 7},
        format="json",
    )
    assert funnel.status_code == 200, funnel.content
    assert [s["people"] for s in funnel.json()["steps"]] == [3, 2]
    assert funnel.json()["steps"][1]["median_seconds_from_previous"] == 86400.0


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("funnels", {"steps": []}, "steps"),
        ("funnels", {"steps": [{"event": "signup"}] * 11}, "steps"),
        ("funnels", {"steps": [{"event": "signup"}, {"event": "nope"}]}, "steps[1].event"),
        (
            "funnels",
            {"steps": [{"event": "signup"}, {"event": "upgraded"}], "window": {"value": 0}},
            "window.value",
        ),
        ("trends", {"event": "signup", "interval": "hour"}, "interval"),
        (
            "trends",
            {"event": "signup", "breakdown": {"property": "x", "limit": 100}},
            "breakdown.limit",
        ),
        ("trends", ["signup"], "definition"),
    ],
)
def test_bad_definitions_answer_400_naming_the_field(secret_client, app_keys, path, body, field):
    _events(app_keys.app)
    response = secret_client.post(f"/api/v1/insights/{path}", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["message"].startswith(f"{field}:")


def test_time_budget_answers_422(secret_client, app_keys, monkeypatch) -> None:
    _events(app_keys.app)

    def too_slow(**_: Any) -> None:
        raise QueryTooExpensive("This insight took longer than its time budget of 5 ms.")

    monkeypatch.setattr("engage.insights.funnel_compute", too_slow)
    response = secret_client.post(
        "/api/v1/insights/funnels",
        {"steps": [{"event": "signup"}, {"event": "upgraded"}]},
        format="json",
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "query_too_expensive"


def test_saved_insights_and_tenancy(secret_client, app_keys, other_app_keys, api_client) -> None:
    _events(app_keys.app)
    created = secret_client.post(
        "/api/v1/insights",
        {"name": "Signups", "kind": "trend", "definition": {"event": "signup", "last_days": 7}},
        format="json",
    )
    assert created.status_code == 201, created.content
    insight_id = created.json()["id"]
    data = secret_client.get(f"/api/v1/insights/{insight_id}/data")
    assert data.status_code == 200
    assert data.json()["series"][0]["count"] == 3
    again = secret_client.get(f"/api/v1/insights/trends?insight={insight_id}")
    assert again.json() == data.json()
    assert secret_client.get(f"/api/v1/insights/funnels?insight={insight_id}").status_code == 400
    bad = secret_client.post(
        "/api/v1/insights",
        {"name": "x", "kind": "trend", "definition": {"event": "nope"}},
        format="json",
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("event:")
    # another App's key sees nothing of it
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_app_keys.secret_key}")
    assert api_client.get(f"/api/v1/insights/{insight_id}").status_code == 404
    assert api_client.get(f"/api/v1/insights/{insight_id}/data").status_code == 404
    assert api_client.get(f"/api/v1/insights/trends?insight={insight_id}").status_code == 404
    assert api_client.get("/api/v1/insights").json()["results"] == []
    # its events are not visible either: the event is unknown there
    response = api_client.post("/api/v1/insights/trends", {"event": "signup"}, format="json")
    assert response.status_code == 400


def test_public_key_is_refused(public_client) -> None:
    assert public_client.get("/api/v1/kpis").status_code == 403


def test_kpi_crud_and_campaign_results(secret_client, app_keys, other_app_keys, api_client):
    app = app_keys.app
    _events(app)
    kpi = secret_client.post(
        "/api/v1/kpis/",
        {"name": "Upgrades", "kind": "event", "definition": {"event": "upgraded"}},
        format="json",
    )
    assert kpi.status_code == 201, kpi.content
    kpi_id = kpi.json()["id"]
    assert (
        secret_client.post(
            "/api/v1/kpis", {"name": "Upgrades", "definition": {"event": "upgraded"}}, format="json"
        ).status_code
        == 409
    )
    message = _message(
        secret_client,
        hypothesis="A nudge gets more upgrades",
        primary_kpi=kpi_id,
        minimum_detectable_effect=20,
    )
    assert message["primary_kpi"] == kpi_id
    assert message["hypothesis"] == "A nudge gets more upgrades"
    # people exposed (or held out) yesterday; two upgrade afterwards
    p0, p1, p2 = Person.objects.filter(app=app).order_by("user_id")
    for person, holdout in [(p0, False), (p1, False), (p2, True)]:
        Delivery.objects.create(
            app=app,
            person=person,
            kind="message",
            campaign_id=message["id"],
            holdout=holdout,
            decided_at=NOW - timedelta(days=1, hours=1),
            shown_at=None if holdout else NOW - timedelta(days=1, hours=1),
        )
    results = secret_client.get(f"/api/v1/messages/{message['id']}/results")
    assert results.status_code == 200, results.content
    body = results.json()
    assert body["experiment"]["primary_kpi"] == kpi_id
    (block,) = body["kpis"]
    assert block["primary"] is True
    assert (block["exposed"]["people"], block["exposed"]["converted"]) == (2, 1)
    assert (block["holdout"]["people"], block["holdout"]["converted"]) == (1, 1)
    assert block["warning"].startswith("Too early to tell: with a holdout rate of 100%")
    # another App cannot use this KPI, see it, or change it
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_app_keys.secret_key}")
    assert api_client.get(f"/api/v1/kpis/{kpi_id}").status_code == 404
    assert api_client.delete(f"/api/v1/kpis/{kpi_id}").status_code == 404
    foreign = api_client.post(
        "/api/v1/messages",
        {
            "name": "x",
            "kind": "modal",
            "content": {"en": {"title": "t", "body": "b"}},
            "primary_kpi": kpi_id,
        },
        format="json",
    )
    assert foreign.status_code == 400
    assert foreign.json()["error"]["message"].startswith("primary_kpi:")


def test_adaptive_needs_a_primary_kpi(secret_client, app_keys) -> None:
    response = secret_client.post(
        "/api/v1/messages",
        {
            "name": "x",
            "kind": "modal",
            "content": {"en": {"title": "t", "body": "b"}},
            "allocation": "adaptive",
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("allocation:")


def test_thompson_sampling_prefers_the_better_variant() -> None:
    shares = thompson_shares({"A": (1000, 100), "B": (1000, 200)}, rng=random.Random(7), draws=5000)
    assert shares["B"] == pytest.approx(0.95)  # B is best in every draw; A keeps the floor
    assert shares["A"] == pytest.approx(0.05)
    even = thompson_shares({"A": (0, 0), "B": (0, 0)}, rng=random.Random(7), draws=5000)
    assert 0.45 < even["A"] < 0.55  # no data: about even
    weights = shares_to_weights({"A": 1 / 3, "B": 1 / 3, "C": 1 / 3})
    assert sum(weights.values()) == 10_000


def test_adaptive_allocation_shifts_weights_and_keeps_the_holdout(secret_client, app_keys):
    app = app_keys.app
    person = PersonFactory(app=app, user_id="seed")
    EventFactory(person=person, app=app, name="upgraded", timestamp=NOW)
    kpi = secret_client.post(
        "/api/v1/kpis", {"name": "Upgrades", "definition": {"event": "upgraded"}}, format="json"
    ).json()
    variant_content = {"en": {"title": "t", "body": "b"}}
    message = _message(
        secret_client,
        primary_kpi=kpi["id"],
        allocation="adaptive",
        variants=[
            {"key": "A", "weight": 50, "content": variant_content},
            {"key": "B", "weight": 50, "content": variant_content},
        ],
    )
    assert secret_client.post(f"/api/v1/messages/{message['id']}/publish").status_code == 200
    people, deliveries, events = [], [], []
    for i in range(400):
        people.append(Person(app=app, user_id=f"x{i}", first_seen=NOW, last_seen=NOW))
    Person.objects.bulk_create(people)
    at = NOW - timedelta(days=3)
    for i, p in enumerate(people):
        variant = "A" if i % 2 else "B"
        deliveries.append(
            Delivery(
                app=app,
                person=p,
                kind="message",
                campaign_id=message["id"],
                variant=variant,
                decided_at=at,
                shown_at=at,
            )
        )
        # B converts 40%, A 10%
        if (variant == "B" and i % 10 < 4) or (variant == "A" and i % 10 == 1):
            events.append(
                Event(
                    app=app,
                    person=p,
                    name="upgraded",
                    timestamp=at + timedelta(hours=1),
                    received_at=at,
                    source=EventSource.API,
                )
            )
    Delivery.objects.bulk_create(deliveries)
    Event.objects.bulk_create(events)
    kind = campaign_kind_get("message")
    campaign = kind.model.objects.get(pk=message["id"])
    weights = campaign_allocation_update(campaign=campaign, kind="message", rng=random.Random(3))
    assert weights is not None
    assert weights["B"] > 9000
    assert weights["A"] >= 500
    campaign.refresh_from_db()
    assert campaign.adaptive_weights == weights
    assert campaign.holdout_percent == 10  # the holdout never moves
    compiled = compile_one("message", campaign)
    assert dict(compiled.variants) == weights
    assert compiled.holdout_bp == 1000
    # a fixed campaign ignores stored weights
    campaign.allocation = "fixed"
    assert allocated_variants(campaign, (("A", 50), ("B", 50))) == (("A", 50), ("B", 50))
    shown = secret_client.get(f"/api/v1/messages/{message['id']}").json()
    assert shown["adaptive_weights"] == weights


def test_funnel_breakdown_by_campaign_exposure(secret_client, app_keys) -> None:
    app = app_keys.app
    _events(app)
    message = _message(secret_client)
    _p0, p1, p2 = Person.objects.filter(app=app).order_by("user_id")
    for person, holdout in [(p1, False), (p2, True)]:
        Delivery.objects.create(
            app=app,
            person=person,
            kind="message",
            campaign_id=message["id"],
            holdout=holdout,
            decided_at=NOW - timedelta(days=3),
            shown_at=None if holdout else NOW - timedelta(days=3),
        )
    response = secret_client.post(
        "/api/v1/insights/funnels",
        {
            "steps": [{"event": "signup"}, {"event": "upgraded"}],
            "last_days": 7,
            "breakdown": {"campaign": {"kind": "message", "id": message["id"]}},
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    groups = {g["label"]: [s["people"] for s in g["steps"]] for g in response.json()["breakdown"]}
    assert groups == {"exposed": [1, 1], "holdout": [1, 1]}
    missing = secret_client.post(
        "/api/v1/insights/funnels",
        {
            "steps": [{"event": "signup"}, {"event": "upgraded"}],
            "breakdown": {"campaign": {"kind": "message", "id": 999999}},
        },
        format="json",
    )
    assert missing.status_code == 400
    assert missing.json()["error"]["message"].startswith("breakdown.campaign:")


def test_paths_answer_without_and_with_slash(secret_client, app_keys) -> None:
    for path in ("/api/v1/insights", "/api/v1/insights/", "/api/v1/kpis", "/api/v1/kpis/"):
        assert secret_client.get(path).status_code == 200


def test_survey_results_carry_the_kpis(secret_client, app_keys) -> None:
    _events(app_keys.app)
    kpi = secret_client.post(
        "/api/v1/kpis", {"name": "Upgrades", "definition": {"event": "upgraded"}}, format="json"
    ).json()
    survey = secret_client.post(
        "/api/v1/surveys",
        {
            "name": "NPS",
            "questions": [{"id": "q", "type": "nps", "text": {"en": "Recommend us?"}}],
            "primary_kpi": kpi["id"],
            "hypothesis": "Asking makes people think of upgrading",
        },
        format="json",
    )
    assert survey.status_code == 201, survey.content
    results = secret_client.get(f"/api/v1/surveys/{survey.json()['id']}/results").json()
    assert results["experiment"]["hypothesis"] == "Asking makes people think of upgrading"
    assert [k["kpi"]["name"] for k in results["kpis"]] == ["Upgrades"]
    assert results["kpis"][0]["warning"].startswith("No holdout group")
