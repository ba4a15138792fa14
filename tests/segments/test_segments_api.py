"""The segments API: CRUD by slug, members, preview, references and the people API."""

from __future__ import annotations

from typing import Any

import pytest

from segments.models import Segment
from segments.services import EventInput, events_ingest, person_identify

pytestmark = pytest.mark.django_db

POWER = {"event": "export_clicked", "count": {"op": "gte", "value": 3}, "within_days": 30}


def make(client: Any, slug: str, condition: Any, **extra: Any) -> Any:
    body = {"name": slug.title(), "slug": slug, "condition": condition, **extra}
    return client.post("/api/v1/segments/", body, format="json")


@pytest.fixture
def people(app_keys):  # type: ignore[no-untyped-def]
    app = app_keys.app
    person_identify(app=app, user_id="pro-heavy", attributes={"plan": "pro"})
    person_identify(app=app, user_id="pro-light", attributes={"plan": "pro"})
    person_identify(app=app, user_id="free-heavy", attributes={"plan": "free"})
    heavy = [EventInput(name="export_clicked", user_id=u) for u in ("pro-heavy", "free-heavy")]
    events_ingest(app=app, events=heavy * 3)
    events_ingest(app=app, events=[EventInput(name="export_clicked", user_id="pro-light")])
    return app


def test_create_read_update_delete_by_slug(secret_client, people):
    response = make(secret_client, "power-users", POWER, description="Heavy exporters")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "power-users"
    assert "export_clicked" in body["readable"]
    assert secret_client.get("/api/v1/segments/power-users").json()["name"] == "Power-Users"
    patched = secret_client.patch(
        "/api/v1/segments/power-users/", {"name": "Power users"}, format="json"
    )
    assert patched.status_code == 200
    assert patched.json()["name"] == "Power users"
    listed = secret_client.get("/api/v1/segments/").json()
    assert [s["slug"] for s in listed["results"]] == ["power-users"]
    assert secret_client.delete("/api/v1/segments/power-users").status_code == 204
    assert secret_client.get("/api/v1/segments/power-users").status_code == 404


def test_members_and_people_api_list_segments(secret_client, people):
    make(secret_client, "power-users", POWER)
    make(
        secret_client,
        "pro-power",
        {"all": [{"segment": "power-users"}, {"attribute": "plan", "op": "eq", "value": "pro"}]},
    )
    members = secret_client.get("/api/v1/segments/power-users/members").json()
    assert sorted(m["user_id"] for m in members["results"]) == ["free-heavy", "pro-heavy"]
    members = secret_client.get("/api/v1/segments/pro-power/members/").json()
    assert [m["user_id"] for m in members["results"]] == ["pro-heavy"]
    person = secret_client.get("/api/v1/people/pro-heavy").json()
    assert person["segments"] == ["power-users", "pro-power"]
    assert secret_client.get("/api/v1/people/pro-light").json()["segments"] == []


def test_members_paginate(secret_client, app_keys):
    for i in range(7):
        person_identify(app=app_keys.app, user_id=f"u{i}", attributes={"plan": "pro"})
    make(secret_client, "pros", {"attribute": "plan", "op": "eq", "value": "pro"})
    seen, url = [], "/api/v1/segments/pros/members?limit=3"
    while url:
        page = secret_client.get(url).json()
        seen += [m["user_id"] for m in page["results"]]
        url = page["next"]
    assert sorted(seen) == [f"u{i}" for i in range(7)]


def test_preview_counts_samples_and_times(secret_client, people):
    response = secret_client.post(
        "/api/v1/segments/preview",
        {"condition": {"all": [POWER, {"attribute": "plan", "op": "eq", "value": "pro"}]}},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 1
    assert [p["user_id"] for p in body["sample"]] == ["pro-heavy"]
    assert body["took_ms"] >= 0


def test_invalid_condition_lists_every_error_with_its_path(secret_client, app_keys):
    response = make(
        secret_client,
        "bad",
        {"all": [{"attribute": "plan", "op": "eqq", "value": "x"}, {"event": ""}]},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert 'all[0].op: unknown operator "eqq"' in error["message"]
    assert len(error["details"]) >= 2
    assert error["details"][0] == {"path": "all[0].op", "message": 'unknown operator "eqq"'}
    assert not Segment.objects.exists()


def test_unknown_and_cyclic_references_are_refused(secret_client, app_keys):
    response = make(secret_client, "a", {"segment": "nope"})
    assert response.status_code == 400
    assert 'unknown segment "nope"' in response.json()["error"]["message"]
    assert make(secret_client, "a", {"attribute": "x", "op": "is_set"}).status_code == 201
    assert make(secret_client, "b", {"segment": "a"}).status_code == 201
    response = secret_client.patch(
        "/api/v1/segments/a", {"condition": {"segment": "b"}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "segment_cycle"
    response = secret_client.delete("/api/v1/segments/a")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "segment_in_use"


def test_duplicate_slug_and_reserved_slug(secret_client, app_keys):
    assert make(secret_client, "x", {"attribute": "a", "op": "is_set"}).status_code == 201
    response = make(secret_client, "x", {"attribute": "a", "op": "is_set"})
    assert response.status_code == 400
    assert "slug" in response.json()["error"]["message"]
    assert make(secret_client, "preview", {"attribute": "a", "op": "is_set"}).status_code == 400


def test_segments_of_another_app_are_invisible(secret_client, other_app_keys, api_client):
    make(secret_client, "mine", {"attribute": "a", "op": "is_set"})
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_app_keys.secret_key}")
    assert api_client.get("/api/v1/segments/mine").status_code == 404
    assert api_client.get("/api/v1/segments/mine/members").status_code == 404
    assert api_client.get("/api/v1/segments/").json()["results"] == []


def test_public_key_may_not_manage_segments(public_client):
    assert public_client.get("/api/v1/segments/").status_code == 403
