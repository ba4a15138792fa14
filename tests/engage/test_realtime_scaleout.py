"""Scale-out on real Redis: two Daphne processes share the channel layer and presence.

A widget connected to one process gets the push caused by a request served by the other; an
idle connection held longer than redis-py's 5 s default socket timeout still gets pushes (the
channel layer must run with `socket_timeout: None`, see engage/settings.py).
Runs in CI, where REDIS_URL is set (skipped locally without it, failing with
ENGAGE_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import requests
import websockets
from websockets.typing import Origin

from engage.campaigns import campaign_create, campaign_publish
from engage.models import Delivery
from tests.live import daphne

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.live]

ORIGIN = Origin("https://host.example")
CONTENT = {"en": {"title": "Hello", "body": "Hi", "buttons": []}}


def message(app: Any, **fields: Any) -> Any:
    data = {"name": "m", "kind": "banner", "content": CONTENT, "trigger": {"on": "api"}, **fields}
    campaign = campaign_create(kind="message", app=app, data=data)
    campaign_publish(campaign=campaign)
    return campaign


def ws_url(base: str, key: str) -> str:
    return base.replace("http://", "ws://") + f"/ws/v1/widget?key={key}"


async def next_frame(ws: Any) -> dict[str, Any]:
    async with asyncio.timeout(10):
        return json.loads(await ws.recv())


async def hello(ws: Any, **fields: Any) -> None:
    await ws.send(json.dumps({"type": "hello", "v": 1, "anonymous_id": "anon-s", **fields}))
    assert (await next_frame(ws))["type"] == "welcome"
    assert (await next_frame(ws))["type"] == "snapshot"


@pytest.fixture
def two_processes(redis_url):
    env = {"REDIS_URL": redis_url, "CELERY_BROKER_URL": ""}
    with daphne(extra_env=env) as websockets_pool, daphne(extra_env=env) as http_pool:
        yield websockets_pool, http_pool


def test_an_event_sent_to_one_process_reaches_a_widget_on_the_other(app_keys, two_processes):
    websockets_pool, http_pool = two_processes
    campaign = message(app_keys.app, trigger={"on": "event", "event": "order_completed"})

    async def scenario() -> dict[str, Any]:
        async with websockets.connect(
            ws_url(websockets_pool, app_keys.public_key), origin=ORIGIN
        ) as ws:
            await hello(ws, user_id="u-scale")
            response = await asyncio.to_thread(
                requests.post,
                f"{http_pool}/api/v1/events",
                json={"events": [{"name": "order_completed", "user_id": "u-scale"}]},
                headers={"X-Engage-Key": app_keys.public_key, "Origin": ORIGIN},
                timeout=10,
            )
            assert response.status_code < 300, response.text
            return await next_frame(ws)

    show = asyncio.run(scenario())
    assert show["type"] == "show"
    assert show["item"]["id"] == campaign.pk
    delivery = Delivery.objects.get(pk=show["item"]["delivery_id"])
    assert delivery.person.user_id == "u-scale"


def test_an_idle_connection_longer_than_redis_timeouts_still_gets_pushes(app_keys, two_processes):
    websockets_pool, http_pool = two_processes
    campaign = message(app_keys.app)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with websockets.connect(
            ws_url(websockets_pool, app_keys.public_key), origin=ORIGIN, ping_interval=None
        ) as ws:
            await hello(ws, user_id="u-idle")
            await asyncio.sleep(6.5)  # longer than redis-py's 5 s socket timeout; no frames
            started = time.monotonic()
            response = await asyncio.to_thread(
                requests.post,
                f"{http_pool}/api/v1/targeting/push",
                json={"user_id": "u-idle", "campaign": {"kind": "message", "id": campaign.pk}},
                headers={"Authorization": f"Bearer {app_keys.secret_key}"},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            show = await next_frame(ws)
            assert time.monotonic() - started < 5
            return response.json(), show

    answer, show = asyncio.run(scenario())
    assert answer["connections"] == 1
    assert show["type"] == "show"
    assert show["item"]["delivery_id"] == answer["delivery_id"]
