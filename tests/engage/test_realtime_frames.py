"""The shape of every frame of protocol v1: one test per client and per server frame type.

docs/protocol.md shows the same examples; if a shape changes here, it changes there.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from engage.realtime import frames
from engage.realtime.frames import (
    CLIENT_FRAMES,
    SERVER_FRAMES,
    Ack,
    Answer,
    DeliveryReport,
    Error,
    FrameError,
    Hello,
    Identify,
    Page,
    Ping,
    Pong,
    Revoke,
    Show,
    Snapshot,
    Track,
    Welcome,
    frame_encode,
    frame_parse,
)
from engage.targeting import Item

RESPONSE_ID = "6c0f6d52-1d6e-4a53-9a4a-3c1d7f1c2b3a"
DELIVERY_ID = "0b7e0d0c-8a43-4a8e-9d0e-2f7c4f2c9c11"


def parse(body: dict[str, Any]) -> Any:
    return frame_parse(json.dumps(body))


def refused(body: dict[str, Any] | str) -> FrameError:
    text = body if isinstance(body, str) else json.dumps(body)
    with pytest.raises(FrameError) as caught:
        frame_parse(text)
    return caught.value


# --- client frames ---------------------------------------------------------------------------


def test_every_client_type_has_one_schema():
    assert set(CLIENT_FRAMES) == {
        "hello",
        "identify",
        "page",
        "track",
        "delivery",
        "answer",
        "ping",
        "preview",
    }


def test_hello_shape():
    full = parse(
        {
            "type": "hello",
            "v": 1,
            "id": "h",
            "anonymous_id": "a1",
            "user_id": "u1",
            "user_hash": "ab" * 32,
            "attributes": {"plan": "pro"},
            "url": "https://app.example/reports",
            "locale": "pt-BR",
            "device": "mobile",
            "session_start": True,
            "future_field": "ignored",
        }
    )
    assert full == Hello(
        id="h",
        v=1,
        anonymous_id="a1",
        user_id="u1",
        user_hash="ab" * 32,
        attributes={"plan": "pro"},
        url="https://app.example/reports",
        locale="pt-BR",
        device="mobile",
        session_start=True,
    )
    minimal = parse({"type": "hello", "v": 1, "anonymous_id": "a1"})
    assert minimal == Hello(v=1, anonymous_id="a1")
    assert minimal.session_start is False
    assert refused({"type": "hello", "v": 1}).path == "anonymous_id"
    assert refused({"type": "hello", "anonymous_id": "a"}).path == "v"
    assert refused({"type": "hello", "v": "1", "anonymous_id": "a"}).path == "v"
    assert refused({"type": "hello", "v": 1, "anonymous_id": " "}).path == "anonymous_id"
    assert refused({"type": "hello", "v": 1, "anonymous_id": "a", "session_start": 1}).path == (
        "session_start"
    )


def test_hello_with_another_version_is_unsupported():
    error = refused({"type": "hello", "v": 2, "anonymous_id": "a", "id": 4})
    assert (error.code, error.frame_id, error.supported) == ("unsupported_version", 4, (1,))


def test_identify_shape():
    assert parse(
        {"type": "identify", "user_id": "u1", "user_hash": "x", "attributes": {"a": 1}}
    ) == Identify(user_id="u1", user_hash="x", attributes={"a": 1})
    assert refused({"type": "identify"}).path == "user_id"
    assert refused({"type": "identify", "user_id": "u", "attributes": []}).path == "attributes"


def test_page_shape():
    assert parse({"type": "page", "url": "https://x/", "locale": "en"}) == Page(
        url="https://x/", locale="en"
    )
    assert refused({"type": "page"}).path == "url"
    assert refused({"type": "page", "url": "x" * 5000}).path == "url"


def test_track_shape():
    assert parse(
        {"type": "track", "event": "export_clicked", "properties": {"f": "csv"}, "message_id": "m"}
    ) == Track(event="export_clicked", properties={"f": "csv"}, message_id="m")
    assert parse({"type": "track", "event": "e"}) == Track(event="e")
    assert refused({"type": "track", "event": ""}).path == "event"
    assert refused({"type": "track", "event": "e" * 256}).path == "event"
    assert refused({"type": "track", "event": "e", "properties": {"k": "a\u0000b"}}).path == (
        "properties.k"
    )


def test_delivery_shape():
    assert parse(
        {"type": "delivery", "delivery_id": DELIVERY_ID, "event": "clicked", "button": "Try"}
    ) == DeliveryReport(delivery_id=DELIVERY_ID, event="clicked", button="Try")
    assert refused({"type": "delivery", "delivery_id": DELIVERY_ID, "event": "seen"}).path == (
        "event"
    )
    assert refused({"type": "delivery", "delivery_id": 5, "event": "shown"}).path == "delivery_id"


def test_answer_shape():
    body: dict[str, Any] = {
        "type": "answer",
        "id": 9,
        "response": {
            "id": RESPONSE_ID,
            "survey_id": 3,
            "delivery_id": DELIVERY_ID,
            "answers": {"recommend": 9, "why": "fast"},
            "completed": True,
            "locale": "en",
        },
    }
    answer = parse(body)
    assert isinstance(answer, Answer)
    assert answer.id == 9
    assert answer.response == frames.Response(
        id=RESPONSE_ID,
        survey_id=3,
        delivery_id=DELIVERY_ID,
        answers={"recommend": 9, "why": "fast"},
        completed=True,
        locale="en",
    )
    assert refused({"type": "answer"}).path == "response"
    for field, value in [("id", "nope"), ("survey_id", 0), ("answers", None), ("completed", "y")]:
        response = {**body["response"], field: value}
        assert refused({"type": "answer", "response": response}).path == f"response.{field}"


def test_ping_shape():
    assert parse({"type": "ping"}) == Ping()
    assert parse({"type": "ping", "id": "p1"}) == Ping(id="p1")


@pytest.mark.parametrize("frame_id", [True, 1.5, {"a": 1}, "x" * 65])
def test_frame_ids_are_short_strings_or_integers(frame_id):
    assert refused({"type": "ping", "id": frame_id}).path == "id"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "malformed_frame"),
        ("null", "malformed_frame"),
        ('"hello"', "malformed_frame"),
        ('{"type": "ping", "n": Infinity}', "malformed_frame"),
        ('{"type": 5}', "unknown_type"),
        ('{"type": "welcome"}', "unknown_type"),  # a server frame is not a client frame
        ('{"type": "ping", "deep": ' + "[" * 40 + "]" * 40 + "}", "invalid_frame"),
        ('{"type": "track", "event": "' + "x" * 70_000 + '"}', "frame_too_large"),
    ],
)
def test_unusable_text_is_named(text, code):
    assert refused(text).code == code


def test_binary_frames_are_malformed():
    with pytest.raises(FrameError) as caught:
        frame_parse(None)
    assert caught.value.code == "malformed_frame"


def test_size_limit_counts_utf8_bytes():
    at_limit = '{"type":"ping","pad":"' + "é" * 30_000 + '"}'  # 60 kB of UTF-8
    assert frame_parse(at_limit) == Ping()
    assert refused('{"type":"ping","pad":"' + "é" * 33_000 + '"}').code == "frame_too_large"


# --- server frames ---------------------------------------------------------------------------

ITEM = Item(
    kind="message",
    id=12,
    delivery_id=DELIVERY_ID,
    variant="",
    display="banner",
    priority=10,
    delay_seconds=0,
    content={"type": "banner", "title": "Hello"},
).as_dict()


def wire(frame: Any) -> dict[str, Any]:
    return json.loads(frame_encode(frame))


def test_every_server_type_has_one_schema():
    assert set(SERVER_FRAMES) == {"welcome", "snapshot", "show", "revoke", "ack", "error", "pong"}


def test_welcome_shape():
    assert wire(Welcome(person={"user_id": None, "anonymous_id": "a1"}, heartbeat_seconds=25)) == {
        "type": "welcome",
        "v": 1,
        "person": {"user_id": None, "anonymous_id": "a1"},
        "heartbeat_seconds": 25,
    }


def test_snapshot_and_show_shapes():
    assert set(ITEM) == frames.ITEM_KEYS
    assert wire(Snapshot(items=[ITEM])) == {"type": "snapshot", "items": [ITEM]}
    assert wire(Snapshot(items=[])) == {"type": "snapshot", "items": []}
    assert wire(Show(item=ITEM)) == {"type": "show", "item": ITEM}


def test_revoke_shape():
    assert wire(Revoke(kind="survey", id=3)) == {"type": "revoke", "kind": "survey", "id": 3}


def test_ack_and_pong_shapes():
    assert wire(Ack(id="t1")) == {"type": "ack", "id": "t1"}
    assert wire(Pong()) == {"type": "pong"}
    assert wire(Pong(id=4)) == {"type": "pong", "id": 4}


def test_error_shape():
    assert wire(Error(code="not_found", message="No such delivery.", id=2)) == {
        "type": "error",
        "code": "not_found",
        "message": "No such delivery.",
        "id": 2,
        "retryable": False,
    }
    error = refused({"type": "hello", "v": 3, "anonymous_id": "a"})
    assert wire(frames.frame_error(error)) == {
        "type": "error",
        "code": "unsupported_version",
        "message": "Protocol version 3 is not supported; this server speaks 1.",
        "path": "v",
        "supported": [1],
        "retryable": False,
    }
    invalid = refused({"type": "page", "id": "p"})
    assert wire(frames.frame_error(invalid)) == {
        "type": "error",
        "code": "invalid_frame",
        "message": "url: is required",
        "id": "p",
        "path": "url",
        "retryable": False,
    }


def test_frame_ids_survive_as_sent():
    response_id = str(uuid.uuid4())
    answer = parse(
        {
            "type": "answer",
            "id": "outbox-1",
            "response": {"id": response_id, "survey_id": 1, "answers": {}},
        }
    )
    assert answer.id == "outbox-1"
    assert answer.response.id == response_id
