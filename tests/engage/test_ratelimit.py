"""Rate limits: the counter, 429 + Retry-After on every door, window reset, failing open."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from channels.routing import URLRouter
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.db import connections

from engage import ratelimit
from engage.ratelimit import LocalCounter, Rate, RedisCounter, rate_limit_hit, rate_parse
from engage.realtime.consumers import db_threads_close
from segments.api.consumers import CollectorConsumer, collector_threads_close
from segments.models import Event

START = 1_800_000_000.0  # a window boundary for windows of 1 s, 60 s and 1 h


@pytest.fixture(autouse=True)
def fresh_counter():  # type: ignore[no-untyped-def]
    store = LocalCounter()
    ratelimit.counter_set(store)
    yield store
    ratelimit.counter_set(None)


@pytest.fixture
def clock(monkeypatch):  # type: ignore[no-untyped-def]
    now = [START + 10]
    monkeypatch.setattr(ratelimit, "clock", lambda: now[0])
    return now


# --- parsing and counting -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("600/m", Rate(600, 60)),
        ("100/s", Rate(100, 1)),
        ("5000/h", Rate(5000, 3600)),
        ("1000/10s", Rate(1000, 10)),
        (" 20 / minute ", Rate(20, 60)),
        ("7/d", Rate(7, 86400)),
    ],
)
def test_rates_parse(text, rate):
    assert rate_parse(text) == rate


@pytest.mark.parametrize("text", ["", "0", "off", "OFF", "none"])
def test_off_means_no_limit(text):
    assert rate_parse(text) is None


@pytest.mark.parametrize("text", ["600", "600/w", "x/m", "-1/m", "0/m", "5/0s"])
def test_bad_rates_are_refused_with_the_text(text):
    with pytest.raises(ValueError, match="rate limit"):
        rate_parse(text)


def test_the_limit_holds_for_one_window_then_resets(settings, clock):
    settings.ENGAGE_RATE_LIMIT_PUBLIC = "3/m"
    verdicts = [rate_limit_hit(scope="public", identity="k:1.2.3.4") for _ in range(4)]

    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    assert verdicts[-1].retry_after == 50  # the window started 10 s ago
    assert rate_limit_hit(scope="public", identity="k:5.6.7.8").allowed  # another client

    clock[0] = START + 60  # the next window
    assert rate_limit_hit(scope="public", identity="k:1.2.3.4").allowed


def test_retry_after_is_at_least_one_second(settings, clock):
    settings.ENGAGE_RATE_LIMIT_SECRET = "1/s"
    clock[0] = START + 0.9999
    rate_limit_hit(scope="secret", identity="app1")
    refused = rate_limit_hit(scope="secret", identity="app1")
    assert not refused.allowed
    assert refused.retry_after == 1


def test_an_unlimited_scope_counts_nothing(settings, fresh_counter):
    settings.ENGAGE_RATE_LIMIT_COLLECTOR = "off"
    assert all(rate_limit_hit(scope="collector", identity="ip").allowed for _ in range(50))
    assert not fresh_counter._counts


# --- HTTP: 429 with Retry-After -------------------------------------------------------------


def _events(client: Any, **extra: Any) -> Any:
    body = {"events": [{"name": "clicked", "anonymous_id": "a1"}]}
    return client.post("/api/v1/events", body, format="json", **extra)


@pytest.mark.django_db
def test_public_key_endpoints_answer_429_with_retry_after_then_recover(
    public_client, settings, clock
):
    settings.ENGAGE_RATE_LIMIT_PUBLIC = "2/m"
    assert _events(public_client).status_code == 200
    assert public_client.get("/api/v1/widget/campaigns?anonymous_id=a1").status_code == 200

    refused = _events(public_client)

    assert refused.status_code == 429
    assert refused["Retry-After"] == "50"
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["details"] == {"retry_after": 50}
    assert Event.objects.count() == 1  # the refused batch was not stored
    # Counted per client IP: another address of the same App is not limited.
    assert _events(public_client, REMOTE_ADDR="10.0.0.9").status_code == 200

    clock[0] = START + 60
    assert _events(public_client).status_code == 200


@pytest.mark.django_db
def test_each_app_has_its_own_counters(public_client, other_app_keys, api_client, settings, clock):
    settings.ENGAGE_RATE_LIMIT_PUBLIC = "1/m"
    assert _events(public_client).status_code == 200
    assert _events(public_client).status_code == 429
    api_client.credentials(HTTP_X_ENGAGE_KEY=other_app_keys.public_key)
    assert _events(api_client).status_code == 200


@pytest.mark.django_db
def test_management_apis_are_limited_per_secret_key(secret_client, settings, clock):
    settings.ENGAGE_RATE_LIMIT_SECRET = "2/m"
    assert secret_client.get("/api/v1/segments/").status_code == 200
    assert secret_client.get("/api/v1/messages").status_code == 200
    # Per App, whatever the client address.
    refused = secret_client.get("/api/v1/surveys/", REMOTE_ADDR="10.0.0.7")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "50"


@pytest.mark.django_db
def test_requests_without_a_valid_key_are_refused_before_counting(
    api_client, public_client, settings, clock
):
    settings.ENGAGE_RATE_LIMIT_PUBLIC = "1/m"
    api_client.credentials(HTTP_X_ENGAGE_KEY="pk_unknown")
    assert all(_events(api_client).status_code == 401 for _ in range(3))
    assert _events(public_client).status_code == 200


def _pixel(event_id: str) -> str:
    return "/i?" + urlencode({"e": "pv", "aid": "acme-web", "eid": event_id, "duid": "d1"})


@pytest.mark.django_db
def test_the_collector_answers_429_per_client_ip_and_stores_nothing(
    client, app_keys, settings, clock
):
    settings.ENGAGE_RATE_LIMIT_COLLECTOR = "2/m"
    origin = {"HTTP_ORIGIN": "https://host.example"}
    assert client.get(_pixel(str(uuid.uuid4())), **origin).status_code == 200
    assert client.get(_pixel(str(uuid.uuid4())), **origin).status_code == 200

    refused = client.get(_pixel(str(uuid.uuid4())), **origin)

    assert refused.status_code == 429
    assert refused["Retry-After"] == "50"
    assert refused.json()["error"]["code"] == "rate_limited"
    # The browser may read the refusal: CORS as on every collector answer.
    assert refused["Access-Control-Allow-Origin"] == "https://host.example"
    assert Event.objects.count() == 2
    # Preflights are never counted.
    assert client.options("/com.snowplowanalytics.snowplow/tp2", **origin).status_code == 200
    assert client.get(_pixel(str(uuid.uuid4())), REMOTE_ADDR="10.1.1.1").status_code == 200

    clock[0] = START + 60
    assert client.get(_pixel(str(uuid.uuid4()))).status_code == 200
    assert Event.objects.count() == 4


async def _lean(path: str, client_addr: str = "127.0.0.1") -> dict[str, Any]:
    communicator = HttpCommunicator(CollectorConsumer.as_asgi(), "GET", path)
    communicator.scope["client"] = (client_addr, 50000)
    try:
        return await communicator.get_response(timeout=10)
    finally:
        await communicator.wait()


def _count_events() -> int:
    try:
        return Event.objects.count()
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
async def test_the_lean_collector_answers_429_alike(app_keys, settings, clock):
    import asyncio

    settings.ENGAGE_RATE_LIMIT_COLLECTOR = "1/m"
    try:
        assert (await _lean(_pixel(str(uuid.uuid4()))))["status"] == 200
        refused = await _lean(_pixel(str(uuid.uuid4())))
        other_client = await _lean(_pixel(str(uuid.uuid4())), client_addr="10.2.2.2")
    finally:
        collector_threads_close()

    assert refused["status"] == 429
    headers = {k.decode().lower(): v.decode() for k, v in refused["headers"]}
    assert headers["retry-after"] == "50"
    assert json.loads(refused["body"])["error"]["code"] == "rate_limited"
    assert other_client["status"] == 200
    assert await asyncio.to_thread(_count_events) == 2


@pytest.mark.django_db
def test_ingestion_keeps_working_when_redis_is_down(client, public_client, app_keys, settings):
    settings.ENGAGE_RATE_LIMIT_COLLECTOR = "1/m"
    settings.ENGAGE_RATE_LIMIT_PUBLIC = "1/m"
    ratelimit.counter_set(RedisCounter("redis://127.0.0.1:1/0"))  # nothing listens there

    started = time.monotonic()
    answers = [client.get(_pixel(str(uuid.uuid4()))).status_code for _ in range(3)]
    answers += [_events(public_client).status_code for _ in range(3)]

    assert answers == [200] * 6  # fails open: no limit rather than no ingestion
    assert Event.objects.count() == 6
    # After the first failure Redis is not asked again for a while: no timeout per request.
    assert time.monotonic() - started < 2


# --- websocket connects ------------------------------------------------------------------------


async def _ws_connect(key: str, client_addr: str = "127.0.0.1") -> int | None:
    """Open a widget socket; the close code when the server closed it at once, else None."""
    from engage.routing import websocket_routes

    comm = WebsocketCommunicator(
        URLRouter(websocket_routes),
        f"/ws/v1/widget?key={key}",
        headers=[(b"origin", b"https://host.example")],
    )
    comm.scope["client"] = (client_addr, 40000)
    connected, _ = await comm.connect(timeout=5)
    assert connected  # accepted first, so that browsers can read the close code
    if await comm.receive_nothing(timeout=0.5):
        await comm.disconnect()
        return None
    output = await comm.receive_output(timeout=1)
    assert output["type"] == "websocket.close"
    return int(output["code"])


@pytest.mark.django_db(transaction=True)
async def test_websocket_connects_over_the_limit_close_with_4429(app_keys, settings, clock):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.ENGAGE_RATE_LIMIT_WS_CONNECT = "2/m"
    try:
        assert await _ws_connect(app_keys.public_key) is None
        assert await _ws_connect(app_keys.public_key) is None
        assert await _ws_connect(app_keys.public_key) == 4429
        assert await _ws_connect(app_keys.public_key, client_addr="10.3.3.3") is None
        clock[0] = START + 60
        assert await _ws_connect(app_keys.public_key) is None
    finally:
        db_threads_close()


# --- Redis ---------------------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_counts_across_processes_and_windows_reset(redis_url, settings, monkeypatch):
    settings.REDIS_URL = redis_url
    settings.ENGAGE_RATE_LIMIT_PUBLIC = "2/s"
    ratelimit.counter_set(None)  # choose from the settings: Redis
    assert isinstance(ratelimit.counter(), RedisCounter)
    identity = f"test-{uuid.uuid4()}"
    # Two stores on the same Redis stand for two processes: they share the counter.
    other_process = RedisCounter(redis_url)

    # Start just after a window boundary so that the three hits share one window.
    time.sleep(1 - time.time() % 1 + 0.01)
    first = rate_limit_hit(scope="public", identity=identity)
    monkeypatch.setattr(ratelimit, "counter", lambda: other_process)
    second = rate_limit_hit(scope="public", identity=identity)
    third = rate_limit_hit(scope="public", identity=identity)

    assert (first.allowed, second.allowed, third.allowed) == (True, True, False)
    assert third.retry_after == 1
    time.sleep(1 - time.time() % 1 + 0.01)
    assert rate_limit_hit(scope="public", identity=identity).allowed
