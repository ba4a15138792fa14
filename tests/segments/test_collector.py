"""The Snowplow-compatible collector through both of its doors.

Most tests go through Django's test client (the `collector` view); the last ones send the same
requests to the lean `CollectorConsumer` that serves `/i` and `tp2` in production (through
Channels' HttpCommunicator) and check that both doors answer alike.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import pytest
from channels.testing import HttpCommunicator
from django.db import OperationalError, connections
from django.test import Client

from segments.api.consumers import CollectorConsumer, collector_threads_close
from segments.collector import PIXEL, collector_receive
from segments.models import BadEvent, Event, Person

TP2 = "/com.snowplowanalytics.snowplow/tp2"
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
CONTEXTS_1_0_0 = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0"
CONTEXTS_1_0_1 = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
SURVEY_ANSWERED = "iglu:com.acme/survey_answered/jsonschema/1-0-0"
ORIGIN = "https://host.example"
FOREIGN = "https://evil.example"

_eids = itertools.count(1)


def event(**fields: Any) -> dict[str, Any]:
    """One tracker event (payload_data item) of the fixture App, with a fresh `eid`."""
    base: dict[str, Any] = {
        "e": "pv",
        "aid": "acme-web",
        "uid": "u1",
        "duid": "d1",
        "eid": f"00000000-0000-4000-8000-{next(_eids):012d}",
        "tv": "py-1.1.0",
        "p": "srv",
        "dtm": "1700000000123",
        "url": "https://host.example/reports",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def b64(document: Any, *, padded: bool = True) -> str:
    text = base64.urlsafe_b64encode(json.dumps(document).encode()).decode()
    return text if padded else text.rstrip("=")


def contexts(*entities: dict[str, Any], schema: str = CONTEXTS_1_0_1) -> dict[str, Any]:
    return {"schema": schema, "data": list(entities)}


def unstruct(schema: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"schema": UNSTRUCT, "data": {"schema": schema, "data": data}}


def tp2_body(*events: dict[str, Any]) -> bytes:
    return json.dumps({"schema": PAYLOAD_DATA, "data": list(events)}).encode()


def post(client: Client, body: bytes, *, origin: str | None = None, path: str = TP2) -> Any:
    extra = {"HTTP_ORIGIN": origin} if origin else {}
    return client.generic(
        "POST", path, body, content_type="application/json; charset=UTF-8", **extra
    )


def get(client: Client, fields: dict[str, Any], *, origin: str | None = None) -> Any:
    extra = {"HTTP_ORIGIN": origin} if origin else {}
    return client.get(f"/i?{urlencode(fields)}", **extra)


ENTITY = {"schema": "iglu:com.acme/page/jsonschema/1-0-0", "data": {"section": "report"}}


# --- The two endpoints and the preflight ---------------------------------------------------

pytestmark = pytest.mark.django_db


def test_get_pixel_answers_a_gif_and_stores_the_event(client, app_keys):
    response = get(client, event(e="pv", page="Reports"))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert response.content == PIXEL
    assert response.content.startswith(b"GIF89a")
    stored = Event.objects.get()
    assert (stored.app, stored.name, stored.source) == (app_keys.app, "page_view", "collector")
    assert stored.properties["page_title"] == "Reports"


def test_post_tp2_answers_ok_and_stores_the_batch(client, app_keys):
    response = post(client, tp2_body(event(e="pv"), event(e="se", se_ca="c", se_ac="clicked")))

    assert response.status_code == 200
    assert response.content == b"ok"
    assert sorted(Event.objects.values_list("name", flat=True)) == ["clicked", "page_view"]


@pytest.mark.parametrize("path", ["/i", "/i/", TP2, f"{TP2}/"])
def test_preflight_echoes_an_allowed_origin_with_credentials(client, app_keys, path):
    response = client.options(
        path,
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert response["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "content-type" in response["Access-Control-Allow-Headers"].lower()
    assert "origin" in response["Vary"].lower()


def test_preflight_does_not_echo_a_foreign_origin(client, app_keys):
    response = client.options(TP2, HTTP_ORIGIN=FOREIGN, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")

    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Credentials" not in response


def test_answers_to_an_allowed_origin_carry_cors_headers(client, app_keys):
    response = post(client, tp2_body(event()), origin=ORIGIN)

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert response["Access-Control-Allow-Credentials"] == "true"


# --- Event types, encodings and contexts ----------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "name", "properties"),
    [
        (
            {"e": "pv", "page": "Reports", "refr": "https://search.example/"},
            "page_view",
            {
                "url": "https://host.example/reports",
                "page_title": "Reports",
                "referrer": "https://search.example/",
            },
        ),
        (
            {"e": "pp", "pp_mix": "0", "pp_max": "20", "pp_miy": "5", "pp_may": "900"},
            "page_ping",
            {"pp_mix": 0, "pp_max": 20, "pp_miy": 5, "pp_may": 900},
        ),
        (
            {
                "e": "se",
                "se_ca": "reports",
                "se_ac": "export_clicked",
                "se_la": "csv",
                "se_pr": "toolbar",
                "se_va": "3",
            },
            "export_clicked",
            {"category": "reports", "label": "csv", "property": "toolbar", "value": 3},
        ),
        (
            {"e": "ue", "ue_pr": json.dumps(unstruct(SURVEY_ANSWERED, {"score": 9}))},
            "survey_answered",
            {"score": 9, "$schema": SURVEY_ANSWERED},
        ),
        (
            {"e": "tr", "tr_id": "o-1", "tr_tt": "42.5", "tr_cu": "EUR", "tr_co": "FR"},
            "transaction",
            {"order_id": "o-1", "total": 42.5, "currency": "EUR", "country": "FR"},
        ),
        (
            {
                "e": "ti",
                "ti_id": "o-1",
                "ti_sk": "sku-9",
                "ti_nm": "Widget",
                "ti_pr": "10.25",
                "ti_qu": "2",
            },
            "transaction_item",
            {"order_id": "o-1", "sku": "sku-9", "name": "Widget", "price": 10.25, "quantity": 2},
        ),
    ],
    ids=["pv", "pp", "se", "ue", "tr", "ti"],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_each_event_type_is_stored_under_its_design_name(
    client, app_keys, method, fields, name, properties
):
    payload = event(**fields)
    response = get(client, payload) if method == "GET" else post(client, tp2_body(payload))

    assert response.status_code == 200
    assert not BadEvent.objects.exists(), BadEvent.objects.values_list("reason", flat=True)
    stored = Event.objects.get()
    assert stored.name == name
    assert stored.properties.items() >= properties.items()
    assert stored.dedup_id == payload["eid"]
    assert stored.person.user_id == "u1"
    assert stored.raw["e"] == fields["e"]


@pytest.mark.parametrize("padded", [True, False], ids=["padded", "unpadded"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_base64_fields_are_decoded_with_or_without_padding(client, app_keys, method, padded):
    sd_event = unstruct(SURVEY_ANSWERED, {"score": 10, "comment": "great"})
    entities = contexts(ENTITY)
    ue_px, cx = b64(sd_event, padded=padded), b64(entities, padded=padded)
    if padded:  # the payloads were chosen so that padding is really there to be handled
        assert ue_px.endswith("=")
        assert cx.endswith("=")
    payload = event(e="ue", ue_px=ue_px, cx=cx)

    response = get(client, payload) if method == "GET" else post(client, tp2_body(payload))

    assert response.status_code == 200
    stored = Event.objects.get()
    assert stored.name == "survey_answered"
    assert stored.properties["comment"] == "great"
    assert stored.contexts == [ENTITY]


@pytest.mark.parametrize("schema", [CONTEXTS_1_0_0, CONTEXTS_1_0_1], ids=["1-0-0", "1-0-1"])
def test_contexts_of_both_schema_versions_are_kept_with_the_event(client, app_keys, schema):
    other = {"schema": "iglu:com.acme/user/jsonschema/2-0-0", "data": {"plan": "pro"}}
    payload = event(e="pv", co=json.dumps(contexts(ENTITY, other, schema=schema)))

    assert post(client, tp2_body(payload)).status_code == 200

    assert Event.objects.get().contexts == [ENTITY, other]


# --- Bad events: kept with the reason, still 200 --------------------------------------------


def test_unknown_aid_is_kept_as_a_bad_event_without_app(client, app_keys):
    response = get(client, event(aid="nobody-web"))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    bad = BadEvent.objects.get()
    assert bad.app is None
    assert "nobody-web" in bad.reason
    assert bad.raw["aid"] == "nobody-web"
    assert not Event.objects.exists()


def test_an_aid_with_a_nul_byte_is_kept_as_a_bad_event_without_app(client, app_keys):
    # PostgreSQL text cannot hold NUL: looking such an App up used to fail with a 503.
    response = get(client, event(aid="acme-web\x00"))

    assert response.status_code == 200
    bad = BadEvent.objects.get()
    assert bad.app is None
    assert "unknown app id" in bad.reason
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"e": "ue", "ue_px": "%%%not-base64%%%"}, "ue_px: invalid base64"),
        ({"e": "pv", "cx": "!!!!"}, "cx: invalid base64"),
        ({"e": "zz"}, 'e: unknown event type "zz"'),
    ],
    ids=["bad-ue_px", "bad-cx", "unknown-type"],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unusable_events_are_kept_with_the_reason_and_answered_200(
    client, app_keys, method, fields, needle
):
    good, bad_payload = event(e="pv"), event(**fields)
    if method == "GET":
        response = get(client, bad_payload)
    else:
        response = post(client, tp2_body(good, bad_payload))

    assert response.status_code == 200
    bad = BadEvent.objects.get()
    assert needle in bad.reason
    assert bad.app == app_keys.app
    assert bad.raw["eid"] == bad_payload["eid"]
    assert Event.objects.count() == (0 if method == "GET" else 1)


def test_a_body_that_is_not_payload_data_is_kept_whole(client, app_keys):
    response = post(client, b"{not json")

    assert response.status_code == 200
    bad = BadEvent.objects.get()
    assert bad.reason.startswith("body: invalid JSON")
    assert bad.raw["body"] == "{not json"


def test_an_origin_not_allowed_for_the_app_makes_a_bad_event(client, app_keys):
    response = post(client, tp2_body(event()), origin=FOREIGN)

    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response
    bad = BadEvent.objects.get()
    assert bad.app == app_keys.app
    assert bad.reason.startswith("origin:")
    assert FOREIGN in bad.reason
    assert not Event.objects.exists()


# --- Retries, limits and outages ------------------------------------------------------------


def test_a_retried_batch_is_stored_once(client, app_keys):
    body = tp2_body(event(e="pv"), event(e="se", se_ca="c", se_ac="clicked"))

    assert post(client, body).status_code == 200
    assert post(client, body).status_code == 200

    assert Event.objects.count() == 2
    assert Person.objects.count() == 1
    assert not BadEvent.objects.exists()


def test_the_same_eid_in_get_and_post_is_stored_once(client, app_keys):
    payload = event(e="pv")

    get(client, payload)
    post(client, tp2_body(payload))

    assert Event.objects.get().dedup_id == payload["eid"]


def test_an_oversized_body_is_refused_with_413_by_the_django_door(client, app_keys, settings):
    settings.ENGAGE_MAX_BODY_BYTES = 2_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_000
    body = tp2_body(*(event() for _ in range(20)))
    assert len(body) > 2_000

    response = post(client, body)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not Event.objects.exists()


def test_the_collector_refuses_an_oversized_body_with_413(app_keys, settings):
    settings.ENGAGE_MAX_BODY_BYTES = 2_000
    body = tp2_body(*(event() for _ in range(20)))

    answer = collector_receive(method="POST", query={}, body=body, origin=None, cookie_nuid=None)

    assert answer.status == 413
    assert json.loads(answer.body)["error"]["code"] == "payload_too_large"
    assert not Event.objects.exists()
    assert not BadEvent.objects.exists()


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_database_unavailable_answers_503_with_retry_after(client, app_keys, method):
    payload = event()
    with mock.patch(
        "segments.collector.events_ingest", side_effect=OperationalError("connection refused")
    ):
        response = get(client, payload) if method == "GET" else post(client, tp2_body(payload))

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "service_unavailable"
    assert not Event.objects.exists()


# --- The lean consumer answers as the Django view does --------------------------------------


@pytest.fixture(autouse=True)
def _collector_threads_closed():  # type: ignore[no-untyped-def]
    # The consumer's database threads keep their connections; PostgreSQL will not drop a test
    # database someone is still connected to.
    yield
    collector_threads_close()


async def in_thread(function: Any, *args: Any) -> Any:
    """Run `function` (the Django door, ORM reads) in a thread that closes its connection."""

    def run() -> Any:
        try:
            return function(*args)
        finally:
            connections.close_all()

    return await asyncio.to_thread(run)


async def consumer_request(
    method: str, path: str, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> dict[str, Any]:
    communicator = HttpCommunicator(CollectorConsumer.as_asgi(), method, path, body, headers)
    try:
        return await communicator.get_response(timeout=10)
    finally:
        await communicator.wait()


def _django_answer(method: str, path: str, body: bytes, origin: str | None) -> dict[str, Any]:
    extra: dict[str, str] = {}
    if origin:
        extra["HTTP_ORIGIN"] = origin
    if method == "OPTIONS":
        extra["HTTP_ACCESS_CONTROL_REQUEST_METHOD"] = "POST"
    response = Client().generic(method, path, body, content_type="application/json", **extra)
    return {
        "status": response.status_code,
        "body": response.content,
        "headers": {k.lower(): v for k, v in response.headers.items()},
    }


async def _consumer_answer(
    method: str, path: str, body: bytes, origin: str | None
) -> dict[str, Any]:
    headers = [(b"content-type", b"application/json")]
    if origin:
        headers.append((b"origin", origin.encode()))
    if method == "OPTIONS":
        headers.append((b"access-control-request-method", b"POST"))
    response = await consumer_request(method, path, body, headers)
    return {
        "status": response["status"],
        "body": response["body"],
        "headers": {k.decode().lower(): v.decode() for k, v in response["headers"]},
    }


# A preflight of the Django door is answered by django-cors-headers itself (engage.cors enables
# it on every path): it skips the inner middleware and lists its own methods and request headers.
# Preflights are therefore compared on what browsers act on, and the lists must allow what
# trackers send; every other answer must carry exactly the same headers.
_PREFLIGHT_COMPARED = (
    "content-type",
    "content-length",
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-max-age",
    "vary",
    "x-content-type-options",
)
_PREFLIGHT_LISTS = {
    "access-control-allow-methods": {"get", "post"},
    "access-control-allow-headers": {"content-type"},
}


def _assert_alike(django: dict[str, Any], lean: dict[str, Any], method: str) -> None:
    assert lean["status"] == django["status"]
    assert lean["body"] == django["body"]
    if method != "OPTIONS":
        assert lean["headers"] == django["headers"]
        return
    for name in _PREFLIGHT_COMPARED:
        assert lean["headers"].get(name, "").lower() == django["headers"].get(name, "").lower()
    for name, needed in _PREFLIGHT_LISTS.items():
        assert (name in lean["headers"]) == (name in django["headers"])
        for door in (lean, django):
            if name in door["headers"]:
                listed = {v.strip().lower() for v in door["headers"][name].split(",")}
                assert needed <= listed, (name, listed)


_CASES = [
    ("GET", "/i?{query}", None),
    ("GET", "/i/?{query}", ORIGIN),
    ("POST", TP2, ORIGIN),
    ("POST", f"{TP2}/", FOREIGN),
    ("POST", TP2, None),
    ("OPTIONS", TP2, ORIGIN),
    ("OPTIONS", "/i", FOREIGN),
    ("PUT", TP2, ORIGIN),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("method", "path", "origin"), _CASES)
async def test_the_lean_consumer_answers_as_the_django_view(app_keys, method, path, origin):
    answers = []
    for door in ("django", "lean"):
        payload = event(e="se", se_ca="c", se_ac=f"via_{door}")
        body = tp2_body(payload) if method == "POST" else b""
        target = path.format(query=urlencode(payload))
        if door == "django":
            answers.append(await in_thread(_django_answer, method, target, body, origin))
        else:
            answers.append(await _consumer_answer(method, target, body, origin))

    _assert_alike(answers[0], answers[1], method)
    if method in ("GET", "POST"):
        names = await in_thread(lambda: sorted(Event.objects.values_list("name", flat=True)))
        bad = await in_thread(BadEvent.objects.count)
        assert len(names) + bad == 2  # each door stored its request, good or bad
        if origin != FOREIGN:
            assert names == ["via_django", "via_lean"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_both_doors_answer_503_alike_when_the_database_is_down(app_keys, method):
    payload = event()
    body = tp2_body(payload) if method == "POST" else b""
    path = f"/i?{urlencode(payload)}" if method == "GET" else TP2
    with mock.patch("segments.collector.events_ingest", side_effect=OperationalError("down")):
        django = await in_thread(_django_answer, method, path, body, ORIGIN)
        lean = await _consumer_answer(method, path, body, ORIGIN)

    assert lean["status"] == 503
    assert lean["headers"]["retry-after"] == "5"
    _assert_alike(django, lean, method)


@pytest.mark.django_db(transaction=True)
async def test_the_lean_consumer_refuses_an_oversized_body_with_413(app_keys, settings):
    settings.ENGAGE_MAX_BODY_BYTES = 2_000
    body = tp2_body(*(event() for _ in range(20)))

    response = await consumer_request("POST", TP2, body)

    assert response["status"] == 413
    assert json.loads(response["body"])["error"]["code"] == "payload_too_large"
    assert await in_thread(Event.objects.count) == 0


@pytest.mark.django_db(transaction=True)
async def test_the_lean_consumer_reads_the_sp_cookie_as_anonymous_id(app_keys):
    payload = event(uid=None, duid=None)
    response = await consumer_request(
        "GET", f"/i?{urlencode(payload)}", headers=[(b"cookie", b"sp=nuid-42; other=1")]
    )

    assert response["status"] == 200
    stored = await in_thread(
        lambda: Event.objects.select_related("person").get().person.anonymous_ids.get()
    )
    assert stored.anonymous_id == "nuid-42"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/i", "/i/", TP2, f"{TP2}/"])
async def test_the_asgi_application_routes_collector_paths_to_the_lean_consumer(app_keys, path):
    from engage.asgi import application

    payload = event()
    method = "GET" if path.startswith("/i") else "POST"
    target = f"{path}?{urlencode(payload)}" if method == "GET" else path
    body = tp2_body(payload) if method == "POST" else b""
    with mock.patch(
        "segments.api.consumers.collector_receive", wraps=collector_receive
    ) as lean_receive:
        communicator = HttpCommunicator(application, method, target, body)
        response = await communicator.get_response(timeout=10)
        await communicator.wait()

    assert response["status"] == 200
    assert lean_receive.call_count == 1
    assert await in_thread(Event.objects.count) == 1


@pytest.mark.django_db(transaction=True)
async def test_other_paths_still_reach_django_through_the_asgi_application():
    from engage.asgi import application

    communicator = HttpCommunicator(application, "GET", "/healthz")
    response = await communicator.get_response(timeout=10)
    await communicator.wait()

    assert response["status"] == 200
    assert json.loads(response["body"]) == {"ok": True}
