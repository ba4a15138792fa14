"""Custom dashboards: CRUD with tiles, every tile computed, errors per tile, tenancy, admin."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from segments.services import EventInput, events_ingest
from tests.surveys.conftest import submit, survey_create

pytestmark = pytest.mark.django_db

NOW = timezone.now()


@pytest.fixture
def insights(secret_client, app_keys) -> dict[str, int]:
    batch = []
    for i in range(4):
        batch.append(EventInput(name="signup", user_id=f"u{i}", timestamp=NOW - timedelta(days=i)))
        if i % 2:
            batch.append(
                EventInput(name="upgraded", user_id=f"u{i}", timestamp=NOW - timedelta(hours=i))
            )
    events_ingest(app=app_keys.app, events=batch)
    ids = {}
    for name, kind, definition in [
        ("Signups", "trend", {"event": "signup", "last_days": 7}),
        (
            "Signup to upgrade",
            "funnel",
            {"steps": [{"event": "signup"}, {"event": "upgraded"}], "last_days": 7},
        ),
    ]:
        response = secret_client.post(
            "/api/v1/insights",
            {"name": name, "kind": kind, "definition": definition},
            format="json",
        )
        assert response.status_code == 201, response.content
        ids[kind] = response.json()["id"]
    return ids


def _dashboard(secret_client, tiles: list[dict[str, Any]]) -> Any:
    return secret_client.post(
        "/api/v1/dashboards", {"name": "Growth", "tiles": tiles}, format="json"
    )


def test_dashboard_with_every_tile_kind(secret_client, app_keys, insights) -> None:
    survey = survey_create(secret_client)
    assert secret_client.post(f"/api/v1/surveys/{survey['id']}/publish").status_code == 200
    public = secret_client.__class__()
    public.credentials(HTTP_X_ENGAGE_KEY=app_keys.public_key, HTTP_ORIGIN="https://host.example")
    submit(public, survey["id"], {"recommend": 10, "satisfaction": 5}, completed=True)
    message = secret_client.post(
        "/api/v1/messages",
        {"name": "Nudge", "kind": "modal", "content": {"en": {"title": "t", "body": "b"}}},
        format="json",
    ).json()
    created = _dashboard(
        secret_client,
        [
            {"kind": "trend", "config": {"insight": insights["trend"]}, "width": 2},
            {"kind": "funnel", "config": {"insight": insights["funnel"]}},
            {"kind": "campaign_results", "config": {"kind": "message", "id": message["id"]}},
            {"kind": "survey_nps", "config": {"survey_id": survey["id"]}, "title": "NPS"},
            {"kind": "sentiment", "config": {"survey_id": survey["id"], "last_days": 7}},
        ],
    )
    assert created.status_code == 201, created.content
    dashboard = created.json()
    assert [t["kind"] for t in dashboard["tiles"]] == [
        "trend",
        "funnel",
        "campaign_results",
        "survey_nps",
        "sentiment",
    ]
    data = secret_client.get(f"/api/v1/dashboards/{dashboard['id']}/data/")
    assert data.status_code == 200, data.content
    tiles = data.json()["tiles"]
    assert all("data" in t for t in tiles), tiles
    trend, funnel, results, nps, sentiment = (t["data"] for t in tiles)
    assert trend["type"] == "line"
    assert sum(trend["series"][0]["data"]) == 4
    assert funnel["labels"] == ["signup", "upgraded"]
    assert funnel["series"][0]["data"] == [4, 2]
    assert results["type"] == "table"
    assert nps["type"] == "line"
    assert nps["note"].endswith("NPS 100 over 1 answers")
    assert sentiment["type"] == "bar"
    assert tiles[3]["title"] == "NPS"
    assert tiles[0]["title"] == "Signups"
    assert tiles[4]["title"] == "NPS Q4: sentiment"


@pytest.mark.parametrize(
    ("tiles", "message"),
    [
        ([{"kind": "pie", "config": {}}], "tiles[0].kind: unknown tile kind"),
        ([{"kind": "trend", "config": {}}], "tiles[0].config.insight:"),
        ([{"kind": "trend", "config": {"insight": 999999}}], "tiles[0].config.insight: no saved"),
        ([{"kind": "survey_nps", "config": {"survey_id": 999999}}], "tiles[0].config.survey_id"),
        ([{"kind": "trend", "config": {"insight": 1}, "width": 3}], "tiles[0].width"),
    ],
)
def test_bad_tiles_are_refused_naming_the_tile(secret_client, insights, tiles, message) -> None:
    response = _dashboard(secret_client, tiles)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["message"].startswith(message)


def test_a_failing_tile_does_not_break_the_dashboard(secret_client, insights, monkeypatch):
    dashboard = _dashboard(
        secret_client,
        [
            {"kind": "trend", "config": {"insight": insights["trend"]}},
            {"kind": "funnel", "config": {"insight": insights["funnel"]}},
        ],
    ).json()
    from segments.insights import QueryTooExpensive

    def too_slow(**_: Any) -> None:
        raise QueryTooExpensive("This insight took longer than its time budget of 5 ms.")

    monkeypatch.setattr("engage.insights.funnel_compute", too_slow)
    tiles = secret_client.get(f"/api/v1/dashboards/{dashboard['id']}/data").json()["tiles"]
    assert "data" in tiles[0]
    assert tiles[1]["error"]["code"] == "query_too_expensive"


def test_update_replaces_tiles_and_tenancy_holds(
    secret_client, insights, other_app_keys, api_client
) -> None:
    dashboard = _dashboard(
        secret_client, [{"kind": "trend", "config": {"insight": insights["trend"]}}]
    ).json()
    updated = secret_client.patch(
        f"/api/v1/dashboards/{dashboard['id']}",
        {"tiles": [{"kind": "funnel", "config": {"insight": insights["funnel"]}}]},
        format="json",
    )
    assert updated.status_code == 200, updated.content
    assert [t["kind"] for t in updated.json()["tiles"]] == ["funnel"]
    renamed = secret_client.patch(
        f"/api/v1/dashboards/{dashboard['id']}", {"name": "Activation"}, format="json"
    )
    assert renamed.json()["name"] == "Activation"
    assert len(renamed.json()["tiles"]) == 1  # tiles untouched when not given
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_app_keys.secret_key}")
    assert api_client.get(f"/api/v1/dashboards/{dashboard['id']}").status_code == 404
    assert api_client.get(f"/api/v1/dashboards/{dashboard['id']}/data").status_code == 404
    # another App cannot point a tile at this App's insight
    foreign = api_client.post(
        "/api/v1/dashboards",
        {"name": "x", "tiles": [{"kind": "trend", "config": {"insight": insights["trend"]}}]},
        format="json",
    )
    assert foreign.status_code == 400
    assert secret_client.delete(f"/api/v1/dashboards/{dashboard['id']}").status_code == 204


def test_admin_pages_render(admin_client, secret_client, insights, app_keys) -> None:
    dashboard = _dashboard(
        secret_client,
        [
            {"kind": "trend", "config": {"insight": insights["trend"]}},
            {"kind": "funnel", "config": {"insight": insights["funnel"]}},
        ],
    ).json()
    page = admin_client.get(f"/admin/engage/dashboard/{dashboard['id']}/view/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="overview-data"' in body
    assert "Signup to upgrade" in body  # an untitled tile shows its insight's name
    assert "overview.js" in body
    for url in (
        "/admin/engage/dashboard/",
        f"/admin/engage/dashboard/{dashboard['id']}/change/",
        "/admin/engage/kpi/add/",
        "/admin/engage/insight/",
    ):
        assert admin_client.get(url).status_code == 200, url
