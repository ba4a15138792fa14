"""The widget websocket through Channels' WebsocketCommunicator, on the in-memory layer.

Every client frame, every close code, identity verification, idempotent acks and answers,
and the snapshot as resume-after-reconnect.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from engage import keys
from engage.campaigns import campaign_create, campaign_publish
from engage.models import Delivery
from engage.realtime import services
from engage.realtime.consumers import db as realtime_db
from engage.realtime.consumers import db_threads_close
from engage.realtime.presence import presence, presence_reset
from segments.models import AnonymousId, Event, Person

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = "https://host.example"
CONTENT = {"en": {"title": "Hello", "body": "Try **CSV**", "buttons": []}}


@pytest.fixture(autouse=True, scope="module")
def _close_database_threads():
    yield
    db_threads_close()  # else PostgreSQL refuses to drop the test database at the end


@pytest.fixture(autouse=True)
def _in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    presence_reset()
    yield
    presence_reset()


def message(app: Any, *, publish: bool = True, **fields: Any) -> Any:
    data = {"name": "m", "kind": "banner", "content": CONTENT, "trigger": {"on": "api"}, **fields}
    campaign = campaign_create(kind="message", app=app, data=data)
    if publish:
        campaign_publish(campaign=campaign)
    return campaign


def application() -> Any:
    from engage.routing import websocket_routes

    return URLRouter(websocket_routes)


async def opened(key: str, origin: str | None = ORIGIN) -> WebsocketCommunicator:
    headers = [(b"origin", origin.encode())] if origin else []
    comm = WebsocketCommunicator(application(), f"/ws/v1/widget?key={key}", headers=headers)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    return comm


async def closed_with(comm: WebsocketCommunicator) -> int:
    while True:
        output = await comm.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return int(output["code"])


async def frame(comm: WebsocketCommunicator) -> dict[str, Any]:
    return await comm.receive_json_from(timeout=5)


async def hello(
    comm: WebsocketCommunicator, anonymous_id: str = "anon-1", **fields: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    await comm.send_json_to({"type": "hello", "v": 1, "anonymous_id": anonymous_id, **fields})
    welcome = await frame(comm)
    assert welcome["type"] == "welcome", welcome
    snapshot = await frame(comm)
    assert snapshot["type"] == "snapshot", snapshot
    return welcome, snapshot


async def widget(key: str, anonymous_id: str = "anon-1", **fields: Any) -> WebsocketCommunicator:
    comm = await opened(key)
    await hello(comm, anonymous_id, **fields)
    return comm


async def nothing_more(comm: WebsocketCommunicator) -> None:
    assert await comm.receive_nothing(timeout=0.3)


db = realtime_db  # the websocket pool's threads, closed after the module


# --- key, origin, hello, heartbeat -------------------------------------------------------------


@pytest.mark.parametrize("key", ["pk_unknown", "", "sk_whatever"])
async def test_unknown_missing_or_secret_key_closes_4401(app_keys, key):
    comm = await opened(key)
    assert await closed_with(comm) == 4401


async def test_foreign_origin_closes_4403(app_keys):
    comm = await opened(app_keys.public_key, origin="https://evil.example")
    assert await closed_with(comm) == 4403


async def test_no_origin_header_is_a_server_client_and_allowed(app_keys):
    comm = await opened(app_keys.public_key, origin=None)
    welcome, _ = await hello(comm)
    assert welcome["v"] == 1
    await comm.disconnect()


async def test_no_hello_in_time_closes_4408(app_keys, settings):
    settings.ENGAGE_WS_HELLO_TIMEOUT_SECONDS = 0.2
    comm = await opened(app_keys.public_key)
    assert await closed_with(comm) == 4408


async def test_silence_longer_than_two_heartbeats_closes_4408_and_pings_keep_it_open(
    app_keys, settings
):
    settings.ENGAGE_WS_HEARTBEAT_SECONDS = 0.3
    pinging = await widget(app_keys.public_key, "anon-ping")
    silent = await widget(app_keys.public_key, "anon-silent")
    for _ in range(6):  # 1.2 s: twice the 0.6 s limit
        await asyncio.sleep(0.2)
        await pinging.send_json_to({"type": "ping"})
        assert (await frame(pinging))["type"] == "pong"
    assert await closed_with(silent) == 4408
    await pinging.send_json_to({"type": "ping", "id": 7})
    assert await frame(pinging) == {"type": "pong", "id": 7}
    await pinging.disconnect()


async def test_pings_refresh_presence_only_when_it_could_expire(app_keys, monkeypatch):
    from engage.realtime import consumers

    comm = await widget(app_keys.public_key, "anon-p")
    person = await db(lambda: AnonymousId.objects.get(anonymous_id="anon-p").person)()
    entries = presence()._by_person[(app_keys.app.pk, person.pk)]  # type: ignore[attr-defined]
    (first,) = entries.values()
    await comm.send_json_to({"type": "ping", "id": 1})
    assert await frame(comm) == {"type": "pong", "id": 1}
    assert list(entries.values()) == [first]  # just refreshed at hello: not again
    monkeypatch.setattr(consumers, "TTL_SECONDS", 30)  # the next ping would come too late
    await comm.send_json_to({"type": "ping", "id": 2})
    assert await frame(comm) == {"type": "pong", "id": 2}
    (refreshed,) = entries.values()
    assert refreshed > first
    await comm.disconnect()


async def test_hello_answers_welcome_then_snapshot(app_keys):
    comm = await opened(app_keys.public_key)
    welcome, snapshot = await hello(comm, "anon-w", attributes={"plan": "pro"}, id="h1")
    assert welcome == {
        "type": "welcome",
        "v": 1,
        "person": {"user_id": None, "anonymous_id": "anon-w"},
        "heartbeat_seconds": 25,
    }
    assert snapshot == {"type": "snapshot", "items": []}
    assert await frame(comm) == {"type": "ack", "id": "h1"}
    person = await db(lambda: AnonymousId.objects.get(anonymous_id="anon-w").person)()
    assert person.attributes == {"plan": "pro"}
    assert presence().connections_count(app_id=app_keys.app.pk, person_id=person.pk) == 1
    await comm.disconnect()
    assert presence().connections_count(app_id=app_keys.app.pk, person_id=person.pk) == 0


async def test_unsupported_version_is_an_error_and_hello_can_follow(app_keys):
    comm = await opened(app_keys.public_key)
    await comm.send_json_to({"type": "hello", "v": 2, "anonymous_id": "a", "id": 1})
    error = await frame(comm)
    assert error["code"] == "unsupported_version"
    assert error["supported"] == [1]
    assert error["id"] == 1
    welcome, _ = await hello(comm)
    assert welcome["v"] == 1
    await comm.disconnect()


async def test_frames_before_hello_are_refused_but_ping_works(app_keys):
    comm = await opened(app_keys.public_key)
    await comm.send_json_to({"type": "page", "url": "https://x/", "id": "p"})
    error = await frame(comm)
    assert (error["code"], error["id"]) == ("hello_required", "p")
    await comm.send_json_to({"type": "ping"})
    assert await frame(comm) == {"type": "pong"}
    await comm.disconnect()


# --- identity verification -------------------------------------------------------------------


@pytest.fixture
def verified_app(app_keys):
    app_keys.app.identity_verification = True
    app_keys.app.save()
    return app_keys


def user_hash(app: Any, user_id: str) -> str:
    return keys.user_hash_compute(identity_secret=app.identity_secret, user_id=user_id)


async def test_identity_verification_right_hash_is_welcome(verified_app):
    comm = await opened(verified_app.public_key)
    welcome, _ = await hello(comm, user_id="u1", user_hash=user_hash(verified_app.app, "u1"))
    assert welcome["person"] == {"user_id": "u1", "anonymous_id": "anon-1"}
    await comm.disconnect()


@pytest.mark.parametrize("hash_", [None, "0" * 64, "not-hex"])
async def test_identity_verification_missing_or_wrong_hash_closes_4401(verified_app, hash_):
    comm = await opened(verified_app.public_key)
    body = {"type": "hello", "v": 1, "anonymous_id": "a", "user_id": "u1"}
    if hash_ is not None:
        body["user_hash"] = hash_
    await comm.send_json_to(body)
    assert await closed_with(comm) == 4401
    assert not await db(Person.objects.filter(user_id="u1").exists)()


async def test_identity_verification_applies_to_identify_too(verified_app):
    comm = await widget(verified_app.public_key)  # anonymous: no hash needed
    await comm.send_json_to({"type": "identify", "user_id": "u2", "user_hash": "f" * 64})
    assert await closed_with(comm) == 4401
    ok = await widget(verified_app.public_key, "anon-2")
    await ok.send_json_to(
        {"type": "identify", "user_id": "u2", "user_hash": user_hash(verified_app.app, "u2")}
    )
    assert (await frame(ok))["type"] == "snapshot"
    await ok.disconnect()


async def test_without_identity_verification_no_hash_is_needed(app_keys):
    comm = await opened(app_keys.public_key)
    welcome, _ = await hello(comm, user_id="u1")
    assert welcome["person"]["user_id"] == "u1"
    await comm.disconnect()


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "path"),
    [
        ("{not json", "malformed_frame", None),
        ("[1, 2]", "malformed_frame", None),
        ('{"type": "track", "event": "x", "properties": {"n": NaN}}', "malformed_frame", None),
        ('{"type": "shout"}', "unknown_type", "type"),
        ('{"v": 1}', "unknown_type", "type"),
        ('{"type": "track"}', "invalid_frame", "event"),
        ('{"type": "track", "event": "x", "properties": [1]}', "invalid_frame", "properties"),
        ('{"type": "delivery", "delivery_id": "nope", "event": "shown"}', "invalid_frame",
         "delivery_id"),
        ('{"type": "answer", "response": {"id": "6c0f6d52-1d6e-4a53-9a4a-3c1d7f1c2b3a", '
         '"survey_id": "x", "answers": {}}}', "invalid_frame", "response.survey_id"),
        ('{"type": "page", "url": "x", "id": true}', "invalid_frame", "id"),
        ("[" * 5000 + "]" * 5000, "malformed_frame", None),
    ],
)  # fmt: skip
async def test_bad_frames_get_an_error_and_the_connection_stays_usable(app_keys, text, code, path):
    comm = await widget(app_keys.public_key)
    await comm.send_to(text_data=text)
    error = await frame(comm)
    assert error["type"] == "error"
    assert error["code"] == code, error
    assert error.get("path") == path
    assert error["retryable"] is False
    await comm.send_json_to({"type": "ping", "id": "still"})
    assert await frame(comm) == {"type": "pong", "id": "still"}
    await comm.disconnect()


async def test_oversized_and_binary_frames_are_refused(app_keys):
    comm = await widget(app_keys.public_key)
    big = json.dumps({"type": "track", "event": "x", "properties": {"pad": "é" * 40_000}})
    await comm.send_to(text_data=big)
    assert (await frame(comm))["code"] == "frame_too_large"
    await comm.send_to(bytes_data=b"\x00\x01")
    assert (await frame(comm))["code"] == "malformed_frame"
    assert not await db(Event.objects.exists)()
    await comm.disconnect()


async def test_more_than_twenty_bad_frames_a_minute_closes_4429(app_keys):
    comm = await widget(app_keys.public_key)
    for _ in range(20):
        await comm.send_to(text_data="nope")
        assert (await frame(comm))["code"] == "malformed_frame"
    await comm.send_to(text_data="nope")
    assert await closed_with(comm) == 4429


# --- client frames ---------------------------------------------------------------------------


async def test_page_shows_page_view_campaigns_for_matching_urls(app_keys):
    campaign = await db(message)(
        app_keys.app,
        trigger={"on": "page_view", "url": {"op": "contains", "value": "/reports"}},
    )
    comm = await widget(app_keys.public_key)
    await comm.send_json_to({"type": "page", "url": "https://host.example/home", "id": 1})
    assert await frame(comm) == {"type": "ack", "id": 1}
    await comm.send_json_to({"type": "page", "url": "https://host.example/reports/9", "id": 2})
    show = await frame(comm)
    assert show["type"] == "show"
    assert show["item"]["id"] == campaign.pk
    assert show["item"]["kind"] == "message"
    assert show["item"]["content"]["title"] == "Hello"
    assert await frame(comm) == {"type": "ack", "id": 2}
    await comm.disconnect()


async def test_track_stores_the_event_once_and_pushes_event_campaigns(app_keys):
    campaign = await db(message)(app_keys.app, trigger={"on": "event", "event": "export_clicked"})
    comm = await widget(app_keys.public_key)
    body = {"type": "track", "event": "export_clicked", "properties": {"format": "csv"}}
    await comm.send_json_to({**body, "id": "t1", "message_id": "m-1"})
    got = [await frame(comm), await frame(comm)]
    assert {"type": "ack", "id": "t1"} in got
    show = next(f for f in got if f["type"] == "show")
    assert show["item"]["id"] == campaign.pk
    # Sent again (a retry after a lost ack): acked, stored once, nothing new to show.
    await comm.send_json_to({**body, "id": "t2", "message_id": "m-1"})
    assert await frame(comm) == {"type": "ack", "id": "t2"}
    await nothing_more(comm)
    events = await db(lambda: list(Event.objects.values_list("name", "source", "properties")))()
    assert events == [("export_clicked", "widget", {"format": "csv"})]
    await comm.disconnect()


async def test_delivery_reports_count_once_and_belong_to_the_person(app_keys):
    await db(message)(app_keys.app, trigger={"on": "session_start"})
    comm = await opened(app_keys.public_key)
    _, snapshot = await hello(comm, session_start=True)
    delivery_id = snapshot["items"][0]["delivery_id"]
    for i in range(2):
        await comm.send_json_to(
            {"type": "delivery", "delivery_id": delivery_id, "event": "shown", "id": i}
        )
        assert await frame(comm) == {"type": "ack", "id": i}
    await comm.send_json_to(
        {"type": "delivery", "delivery_id": delivery_id, "event": "clicked", "button": "Try it"}
    )
    await comm.send_json_to({"type": "ping", "id": "sync"})
    assert await frame(comm) == {"type": "pong", "id": "sync"}
    delivery = await db(Delivery.objects.get)(pk=delivery_id)
    assert delivery.shown_at is not None
    assert delivery.clicked_button == "Try it"
    # Another visitor cannot report on it.
    other = await widget(app_keys.public_key, "anon-other")
    await other.send_json_to(
        {"type": "delivery", "delivery_id": delivery_id, "event": "dismissed", "id": "x"}
    )
    error = await frame(other)
    assert (error["code"], error["id"], error["retryable"]) == ("not_found", "x", False)
    assert (await db(Delivery.objects.get)(pk=delivery_id)).dismissed_at is None
    await comm.disconnect()
    await other.disconnect()


@pytest.fixture
def recorded_answers():
    calls: list[dict[str, Any]] = []
    previous = list(services._answer_handler)

    def handler(**kwargs: Any) -> None:
        calls.append(kwargs)

    services.answer_handler_register(handler)
    yield calls
    services._answer_handler[:] = previous


async def test_answer_goes_to_the_registered_handler(app_keys, recorded_answers):
    comm = await widget(app_keys.public_key, locale="fr")
    response_id = str(uuid.uuid4())
    await comm.send_json_to(
        {
            "type": "answer",
            "id": "a1",
            "response": {
                "id": response_id,
                "survey_id": 5,
                "answers": {"recommend": 9},
                "completed": True,
            },
        }
    )
    assert await frame(comm) == {"type": "ack", "id": "a1"}
    (call,) = recorded_answers
    assert call["response_id"] == response_id
    assert call["survey_id"] == 5
    assert call["answers"] == {"recommend": 9}
    assert call["completed"] is True
    assert call["anonymous_id"] == "anon-1"
    assert call["user_id"] is None
    assert call["delivery_id"] is None
    assert call["locale"] == "fr"
    assert call["app"].pk == app_keys.app.pk
    await comm.disconnect()


async def test_answer_without_a_handler_is_a_retryable_error(app_keys):
    previous = list(services._answer_handler)
    services._answer_handler.clear()
    try:
        comm = await widget(app_keys.public_key)
        await comm.send_json_to(
            {
                "type": "answer",
                "id": 3,
                "response": {"id": str(uuid.uuid4()), "survey_id": 1, "answers": {}},
            }
        )
        error = await frame(comm)
        assert (error["code"], error["id"], error["retryable"]) == (
            "answers_unavailable",
            3,
            True,
        )
        await comm.disconnect()
    finally:
        services._answer_handler[:] = previous


async def test_an_answer_sent_twice_counts_once_with_the_surveys_handler(app_keys):
    from surveys.models import Response
    from surveys.services import response_submit

    previous = list(services._answer_handler)
    services.answer_handler_register(response_submit)
    try:
        survey = await db(campaign_create)(
            kind="survey",
            app=app_keys.app,
            data={
                "name": "NPS",
                "trigger": {"on": "session_start"},
                "questions": [{"id": "recommend", "type": "nps", "text": {"en": "Recommend us?"}}],
            },
        )
        await db(campaign_publish)(campaign=survey)
        comm = await opened(app_keys.public_key)
        _, snapshot = await hello(comm, session_start=True)
        (item,) = snapshot["items"]
        response = {
            "id": str(uuid.uuid4()),
            "survey_id": survey.pk,
            "delivery_id": item["delivery_id"],
            "answers": {"recommend": 9},
            "completed": True,
        }
        for i in range(2):
            await comm.send_json_to({"type": "answer", "id": i, "response": response})
            assert await frame(comm) == {"type": "ack", "id": i}
        assert await db(Response.objects.count)() == 1
        delivery = await db(Delivery.objects.get)(pk=item["delivery_id"])
        assert delivery.answered_at is not None
        await comm.disconnect()
    finally:
        services._answer_handler[:] = previous


# --- identify and snapshots ------------------------------------------------------------------


async def test_identify_links_the_visitor_and_moves_the_connection_to_the_known_person(app_keys):
    comm = await widget(app_keys.public_key, "anon-9")
    await comm.send_json_to(
        {"type": "identify", "user_id": "u9", "attributes": {"plan": "pro"}, "id": "i"}
    )
    assert await frame(comm) == {"type": "snapshot", "items": []}
    assert await frame(comm) == {"type": "ack", "id": "i"}
    person = await db(Person.objects.get)(user_id="u9")
    assert person.attributes == {"plan": "pro"}
    assert await db(
        lambda: list(person.anonymous_ids.values_list("anonymous_id", flat=True))
    )() == ["anon-9"]
    assert presence().connections_count(app_id=app_keys.app.pk, person_id=person.pk) == 1
    await comm.disconnect()


async def test_a_campaign_decided_while_offline_is_in_the_next_snapshot(app_keys, secret_client):
    campaign = await db(message)(app_keys.app)
    response = await db(secret_client.post)(
        "/api/v1/targeting/push",
        {"user_id": "u1", "campaign": {"kind": "message", "id": campaign.pk}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["connections"] == 0
    delivery_id = response.json()["delivery_id"]
    comm = await opened(app_keys.public_key)
    _, snapshot = await hello(comm, "anon-u1", user_id="u1")
    assert [(i["id"], i["delivery_id"]) for i in snapshot["items"]] == [(campaign.pk, delivery_id)]
    # Reconnecting without reporting it shown: the same delivery comes back, still pending.
    await comm.disconnect()
    again = await opened(app_keys.public_key)
    _, snapshot = await hello(again, "anon-u1", user_id="u1")
    assert [i["delivery_id"] for i in snapshot["items"]] == [delivery_id]
    await again.send_json_to({"type": "delivery", "delivery_id": delivery_id, "event": "shown"})
    await again.disconnect()
    third = await opened(app_keys.public_key)
    _, snapshot = await hello(third, "anon-u1", user_id="u1")
    assert snapshot["items"] == []
    await third.disconnect()


async def test_snapshot_decides_the_moment_of_the_hello(app_keys):
    on_start = await db(message)(app_keys.app, name="start", trigger={"on": "session_start"})
    on_page = await db(message)(
        app_keys.app,
        name="reports",
        trigger={"on": "page_view", "url": {"op": "contains", "value": "/reports"}},
    )
    await db(message)(app_keys.app, name="api only", trigger={"on": "api"})
    reconnect = await opened(app_keys.public_key)
    _, snapshot = await hello(reconnect, "anon-r")  # no url, no session start: nothing new
    assert snapshot["items"] == []
    await reconnect.disconnect()
    first = await opened(app_keys.public_key)
    _, snapshot = await hello(
        first, "anon-f", url="https://host.example/reports", session_start=True
    )
    assert sorted(i["id"] for i in snapshot["items"]) == sorted([on_start.pk, on_page.pk])
    await first.disconnect()
    # Pending again, on another page: the URL-bound one waits for its page.
    elsewhere = await opened(app_keys.public_key)
    _, snapshot = await hello(elsewhere, "anon-f", url="https://host.example/home")
    assert [i["id"] for i in snapshot["items"]] == [on_start.pk]
    await elsewhere.disconnect()


# --- pushes ----------------------------------------------------------------------------------


async def test_pause_and_archive_revoke_on_every_open_widget_of_the_app(app_keys, other_app_keys):
    campaign = await db(message)(app_keys.app)
    comm = await widget(app_keys.public_key)
    stranger = await widget(other_app_keys.public_key, "anon-s")
    from engage.campaigns import campaign_archive, campaign_pause

    await db(campaign_pause)(campaign=campaign)
    assert await frame(comm) == {"type": "revoke", "kind": "message", "id": campaign.pk}
    await db(campaign_publish)(campaign=campaign)
    await db(campaign_archive)(campaign=campaign)
    assert await frame(comm) == {"type": "revoke", "kind": "message", "id": campaign.pk}
    await nothing_more(stranger)
    await comm.disconnect()
    await stranger.disconnect()


async def test_publish_pushes_to_eligible_connected_people(app_keys):
    pro = await widget(app_keys.public_key, "anon-pro", attributes={"plan": "pro"})
    free = await widget(app_keys.public_key, "anon-free", attributes={"plan": "free"})
    banner = await db(message)(
        app_keys.app,
        publish=False,
        trigger={"on": "session_start"},
        audience={"condition": {"attribute": "plan", "op": "eq", "value": "pro"}},
    )
    on_event = await db(message)(
        app_keys.app, publish=False, trigger={"on": "event", "event": "export_clicked"}
    )
    await db(campaign_publish)(campaign=banner)
    show = await frame(pro)
    assert (show["type"], show["item"]["id"]) == ("show", banner.pk)
    await db(campaign_publish)(campaign=on_event)  # waits for its event
    await nothing_more(pro)
    await nothing_more(free)
    await pro.disconnect()
    await free.disconnect()


async def test_an_event_from_the_events_api_reaches_the_open_widget(app_keys, public_client):
    campaign = await db(message)(app_keys.app, trigger={"on": "event", "event": "order_completed"})
    comm = await widget(app_keys.public_key, "anon-e", user_id="u-e")
    response = await db(public_client.post)(
        "/api/v1/events",
        {"events": [{"name": "order_completed", "user_id": "u-e"}]},
        format="json",
        HTTP_ORIGIN=ORIGIN,
    )
    assert response.status_code in (200, 201, 202), response.content
    show = await frame(comm)
    assert (show["type"], show["item"]["id"]) == ("show", campaign.pk)
    await comm.disconnect()


async def test_events_of_people_without_a_widget_are_not_evaluated(app_keys):
    from segments.services import EventInput, events_ingest

    await db(message)(app_keys.app, trigger={"on": "event", "event": "order_completed"})
    await db(events_ingest)(
        app=app_keys.app, events=[EventInput(name="order_completed", user_id="off")]
    )
    assert await db(Event.objects.count)() == 1
    assert not await db(Delivery.objects.exists)()


async def test_push_reaches_every_open_widget_of_the_person(app_keys, secret_client):
    campaign = await db(message)(app_keys.app)
    tab1 = await widget(app_keys.public_key, "anon-t1", user_id="u1")
    tab2 = await widget(app_keys.public_key, "anon-t2", user_id="u1")
    someone_else = await widget(app_keys.public_key, "anon-x", user_id="u2")
    response = await db(secret_client.post)(
        "/api/v1/targeting/push/",
        {"user_id": "u1", "campaign": {"kind": "message", "id": campaign.pk}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["connections"] == 2
    for tab in (tab1, tab2):
        show = await frame(tab)
        assert show["item"]["delivery_id"] == response.json()["delivery_id"]
    await nothing_more(someone_else)
    for comm in (tab1, tab2, someone_else):
        await comm.disconnect()


async def test_pushes_arrive_in_the_language_of_each_connection(app_keys, secret_client):
    content = {**CONTENT, "fr": {"title": "Bonjour", "body": "Essayez", "buttons": []}}
    campaign = await db(message)(app_keys.app, content=content)
    french = await widget(app_keys.public_key, "anon-fr", user_id="u1", locale="fr-FR")
    english = await widget(app_keys.public_key, "anon-en", user_id="u1", locale="en")
    response = await db(secret_client.post)(
        "/api/v1/targeting/push",
        {"user_id": "u1", "campaign": {"kind": "message", "id": campaign.pk}},
        format="json",
    )
    assert response.json()["connections"] == 2
    fr = (await frame(french))["item"]
    en = (await frame(english))["item"]
    assert (fr["content"]["title"], fr["content"]["locale"]) == ("Bonjour", "fr")
    assert (en["content"]["title"], en["content"]["locale"]) == ("Hello", "en")
    assert fr["delivery_id"] == en["delivery_id"]
    await french.disconnect()
    await english.disconnect()


async def test_a_connection_follows_a_merge_made_through_another_door(app_keys):
    from segments.services import EventInput, events_ingest, person_identify

    await db(events_ingest)(app=app_keys.app, events=[EventInput(name="signup", user_id="u-m")])
    comm = await widget(app_keys.public_key, "anon-m")
    await db(person_identify)(app=app_keys.app, user_id="u-m", anonymous_id="anon-m")
    await comm.send_json_to({"type": "page", "url": "https://host.example/", "id": 1})
    assert await frame(comm) == {"type": "ack", "id": 1}
    person = await db(Person.objects.get)(user_id="u-m")
    assert presence().connections_count(app_id=app_keys.app.pk, person_id=person.pk) == 1
    await comm.disconnect()
