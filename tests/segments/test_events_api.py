"""The native events API, identify, the people API and data debugging, through DRF's client."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import override_settings

from engage.keys import user_hash_compute
from segments.models import BadEvent, Event, EventDailyCount, Person

pytestmark = pytest.mark.django_db


def _events(client, events, **extra):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/events", {"events": events}, format="json", **extra)


def test_events_are_stored_and_read_back_through_the_people_api(public_client, secret_client):
    response = _events(
        public_client,
        [
            {"name": "export_clicked", "user_id": "u1", "properties": {"format": "csv"}},
            {"name": "page_view", "user_id": "u1", "properties": {"url": "https://x/a"}},
        ],
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 2, "duplicates": 0}

    person = secret_client.get("/api/v1/people/u1").json()
    assert person["user_id"] == "u1"
    names = {e["name"]: e["properties"] for e in person["events"]}
    assert names["export_clicked"] == {"format": "csv"}
    assert names["page_view"] == {"url": "https://x/a"}


def test_retried_batch_with_message_ids_is_stored_once(public_client):
    batch = [
        {"name": "signup", "anonymous_id": "a1", "message_id": "m-1"},
        {"name": "signup", "anonymous_id": "a1", "message_id": "m-2"},
    ]
    assert _events(public_client, batch).json() == {"accepted": 2, "duplicates": 0}
    assert _events(public_client, batch).json() == {"accepted": 0, "duplicates": 2}
    assert Event.objects.count() == 2
    assert EventDailyCount.objects.get().count == 2


def test_invalid_events_are_named_and_valid_ones_kept(public_client):
    response = _events(
        public_client,
        [
            {"name": "ok", "user_id": "u1"},
            {"user_id": "u1"},
            {"name": "no_person"},
            "not an object",
        ],
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "events_rejected"
    assert error["message"].startswith("events[1].name:")
    assert error["details"]["accepted"] == 1
    assert [r["index"] for r in error["details"]["rejected"]] == [1, 2, 3]
    assert Event.objects.filter(name="ok").count() == 1
    assert BadEvent.objects.count() == 3


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("{not json", "Malformed"),
        (json.dumps({"events": "nope"}), "events"),
        (json.dumps({"events": []}), "events"),
        (json.dumps([1, 2]), ""),
    ],
)
def test_malformed_bodies_get_a_json_400(public_client, body, needle):
    response = public_client.post("/api/v1/events", body, content_type="application/json")
    assert response.status_code == 400
    assert needle in response.json()["error"]["message"]


def test_batch_over_the_limit_is_refused(public_client, settings):
    settings.ENGAGE_MAX_BATCH_EVENTS = 2
    response = _events(public_client, [{"name": "x", "user_id": "u"}] * 3)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "batch_too_large"
    assert "events" in response.json()["error"]["message"]


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100)
def test_oversized_body_is_413(public_client):
    response = _events(public_client, [{"name": "x" * 200, "user_id": "u"}])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_keys_missing_unknown_and_of_the_wrong_kind(api_client, public_client, app_keys):
    response = api_client.post("/api/v1/events", {"events": []}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_key"
    api_client.credentials(HTTP_X_ENGAGE_KEY="pk_nope")
    assert api_client.get("/api/v1/people/u1").status_code == 401
    response = public_client.get("/api/v1/people/u1")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "secret_key_required"


def test_secret_key_may_send_events_too(secret_client):
    assert _events(secret_client, [{"name": "x", "user_id": "srv"}]).status_code == 200


def test_another_apps_key_never_sees_this_apps_people(public_client, other_app_keys, api_client):
    _events(public_client, [{"name": "x", "user_id": "shared-id"}])
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_app_keys.secret_key}")
    assert api_client.get("/api/v1/people/shared-id").status_code == 404
    assert api_client.get("/api/v1/debug/events").json()["results"] == []


def test_every_path_answers_with_and_without_trailing_slash(public_client, secret_client):
    assert _events(public_client, [{"name": "x", "user_id": "u"}]).status_code == 200
    assert (
        public_client.post(
            "/api/v1/events/", {"events": [{"name": "x", "user_id": "u"}]}, format="json"
        ).status_code
        == 200
    )
    assert secret_client.get("/api/v1/people/u/").status_code == 200
    assert secret_client.get("/api/v1/debug/events/").status_code == 200


def test_identify_merges_anonymous_history(public_client, secret_client):
    _events(public_client, [{"name": "viewed_pricing", "anonymous_id": "anon-1"}])
    _events(public_client, [{"name": "signup", "user_id": "u9"}])
    response = public_client.post(
        "/api/v1/identify",
        {"user_id": "u9", "anonymous_id": "anon-1", "attributes": {"plan": "pro"}},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert Person.objects.count() == 1
    person = secret_client.get("/api/v1/people/u9").json()
    assert person["attributes"] == {"plan": "pro"}
    assert person["anonymous_ids"] == ["anon-1"]
    assert {e["name"] for e in person["events"]} == {"viewed_pricing", "signup"}
    counts = EventDailyCount.objects.filter(person__user_id="u9")
    assert {c.name for c in counts} == {"viewed_pricing", "signup"}


def test_identify_with_null_attribute_removes_it(public_client, secret_client):
    public_client.post(
        "/api/v1/identify", {"user_id": "u1", "attributes": {"a": 1, "b": 2}}, format="json"
    )
    public_client.post(
        "/api/v1/identify", {"user_id": "u1", "attributes": {"a": None}}, format="json"
    )
    assert secret_client.get("/api/v1/people/u1").json()["attributes"] == {"b": 2}


def test_event_with_both_ids_links_anonymous_person(public_client):
    _events(public_client, [{"name": "a", "anonymous_id": "anon-2"}])
    _events(public_client, [{"name": "b", "anonymous_id": "anon-2", "user_id": "u2"}])
    person = Person.objects.get()
    assert person.user_id == "u2"
    assert person.events.count() == 2


def test_identity_verification_needs_the_hash(public_client, app_keys):
    app = app_keys.app
    app.identity_verification = True
    app.save()
    response = _events(public_client, [{"name": "x", "user_id": "u1"}])
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "identity_verification_failed"
    response = _events(
        public_client, [{"name": "x", "user_id": "u1"}], HTTP_X_ENGAGE_USER_HASH="bad"
    )
    assert response.status_code == 401
    good = user_hash_compute(identity_secret=app.identity_secret, user_id="u1")
    response = _events(
        public_client, [{"name": "x", "user_id": "u1"}], HTTP_X_ENGAGE_USER_HASH=good
    )
    assert response.status_code == 200
    assert _events(public_client, [{"name": "x", "anonymous_id": "a"}]).status_code == 200


def test_database_down_answers_503_with_retry_after(public_client):
    with mock.patch(
        "segments.api.views.events_ingest", side_effect=OperationalError("connection refused")
    ):
        response = _events(public_client, [{"name": "x", "user_id": "u"}])
    assert response.status_code == 503
    assert response["Retry-After"]
    assert response.json()["error"]["code"] == "service_unavailable"


def test_debug_events_lists_good_and_bad_newest_first(public_client, secret_client):
    _events(public_client, [{"name": "good_one", "user_id": "u", "properties": {"k": 1}}])
    _events(public_client, [{"user_id": "u"}])
    body = secret_client.get("/api/v1/debug/events").json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["bad", "good"]
    bad, good = body["results"]
    assert bad["reason"].startswith("events[0].name")
    assert bad["source"] == "api"
    assert good["event"]["name"] == "good_one"
    assert good["raw"]["properties"] == {"k": 1}
    only_bad = secret_client.get("/api/v1/debug/events?status=bad").json()["results"]
    assert [r["status"] for r in only_bad] == ["bad"]
    assert secret_client.get("/api/v1/debug/events?status=meh").status_code == 400


def test_debug_events_pages_through_everything_once(public_client, secret_client):
    _events(public_client, [{"name": f"e{i}", "user_id": "u"} for i in range(5)])
    _events(public_client, [{"user_id": "u"}, {"user_id": "u"}])
    seen = []
    url = "/api/v1/debug/events?limit=2"
    while url:
        body = secret_client.get(url).json()
        seen.extend(body["results"])
        url = body["next"]
    assert len(seen) == 7
    assert len({json.dumps(r, sort_keys=True) for r in seen}) == 7


def test_unknown_api_path_is_a_json_404(secret_client):
    response = secret_client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
