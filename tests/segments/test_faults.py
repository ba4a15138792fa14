"""What clients see when a dependency fails: 503 (never 500) while PostgreSQL is down, a
reconnect once it is back, and working HTTP while Redis (cache, channel layer) is down.

bench/faults.py does the same with real outages; these pin each path with a simulated one.
"""

from __future__ import annotations

import json
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import psycopg
import pytest
from channels.layers import InMemoryChannelLayer
from django.core.exceptions import SynchronousOnlyOperation
from django.db import InterfaceError, OperationalError, connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import RequestFactory

from engage.campaigns import campaigns_version
from engage.cors import cors_allow_app_origins
from engage.realtime.consumers import db_threads_close
from engage.selectors import app_cache_clear, origin_allowed_for_any_app
from segments.api.consumers import collector_threads_close
from segments.models import Event
from tests.engage.test_realtime_consumer import frame, opened
from tests.segments.test_collector import (
    ORIGIN,
    TP2,
    _consumer_answer,
    _django_answer,
    event,
    in_thread,
    post,
    tp2_body,
)


@pytest.fixture(autouse=True, scope="module")
def _close_database_threads():  # type: ignore[no-untyped-def]
    yield
    collector_threads_close()  # else PostgreSQL refuses to drop the test database at the end
    db_threads_close()


def _widget_campaigns(client: Any, key: str) -> Any:
    return client.get(
        "/api/v1/widget/campaigns",
        {"anonymous_id": "a1", "url": "https://host.example/"},
        HTTP_X_ENGAGE_KEY=key,
        HTTP_ORIGIN=ORIGIN,
    )


# --- PostgreSQL down ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_closed_connection_answers_503_at_both_collector_doors(app_keys, method):
    """InterfaceError is what Django raises on a connection that died mid-transaction."""
    payload = event()
    body = tp2_body(payload) if method == "POST" else b""
    path = f"/i?{urlencode(payload)}" if method == "GET" else TP2
    down = InterfaceError("connection already closed")
    with mock.patch("segments.collector.events_ingest", side_effect=down):
        django = await in_thread(_django_answer, method, path, body, ORIGIN)
        lean = await _consumer_answer(method, path, body, ORIGIN)

    for answer in (django, lean):
        assert answer["status"] == 503
        assert answer["headers"]["retry-after"] == "5"
        assert json.loads(answer["body"])["error"]["code"] == "service_unavailable"


@pytest.mark.django_db
@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_the_widget_endpoint_answers_503_when_even_the_cors_check_cannot_reach_the_database(
    client, app_keys, error
):
    """The CORS check runs in middleware, outside the views' 503 handling: it must not 500."""
    app_cache_clear()  # the Apps and origins were read moments ago: forget them
    down = error("connection refused")
    with mock.patch.object(BaseDatabaseWrapper, "cursor", side_effect=down):
        response = _widget_campaigns(client, app_keys.public_key)

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "service_unavailable"


@pytest.mark.django_db
def test_the_cors_check_in_an_async_context_uses_the_origins_last_read(app_keys):
    origin_allowed_for_any_app(ORIGIN)  # the list as last read
    request = RequestFactory().get("/api/v1/widget/campaigns", HTTP_ORIGIN=ORIGIN)
    foreign = RequestFactory().get("/api/v1/widget/campaigns", HTTP_ORIGIN="https://evil.test")
    with mock.patch(
        "engage.cors.origin_allowed_for_any_app", side_effect=SynchronousOnlyOperation("async")
    ):
        assert cors_allow_app_origins(None, request) is True
        assert cors_allow_app_origins(None, foreign) is False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_collector_reconnects_after_postgresql_dropped_its_connections(
    postgres, app_keys, client
):
    """A restart of PostgreSQL kills every connection. A request that meets a dead one answers
    503 (never 500), the dead connection is dropped, and the tracker's retry is stored; after
    that every request stores at the first try, and nothing is stored twice."""
    assert post(client, tp2_body(event()), origin=ORIGIN).status_code == 200
    conf = connection.settings_dict
    admin = psycopg.connect(
        host=conf["HOST"] or "127.0.0.1",
        port=conf["PORT"] or 5432,
        user=conf["USER"],
        password=conf["PASSWORD"] or None,
        dbname=conf["NAME"],
        autocommit=True,
    )
    try:
        with admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert killed is not None
        assert killed[0] >= 1
        statuses = []
        for n in range(8):
            body = tp2_body(event(e="se", se_ca="c", se_ac=f"after_{n}"))
            for _ in range(10):  # a tracker keeps the batch and sends it again
                status = post(client, body, origin=ORIGIN).status_code
                statuses.append(status)
                if status == 200:
                    break
    finally:
        pool = getattr(connection, "pool", None)
        if pool is not None:
            pool.check()  # drop what is left dead in the pool before the test database goes

    assert set(statuses) <= {200, 503}
    assert statuses[-4:] == [200] * 4  # reconnected: the last requests stored at once
    assert statuses.count(200) == 8
    assert Event.objects.count() == 9


# --- Redis down ---------------------------------------------------------------------------------


class _CacheDown:
    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")

        return fail


@pytest.mark.django_db
def test_widget_campaigns_keep_answering_when_the_cache_is_down(client, app_keys):
    with mock.patch("engage.campaigns.cache", _CacheDown()):
        version = campaigns_version(app_keys.app.pk)
        response = _widget_campaigns(client, app_keys.public_key)

    assert version < 0  # a version no cache ever gave: rules are recompiled meanwhile
    assert response.status_code == 200, response.content
    assert response.json() == {"items": []}


@pytest.mark.django_db
def test_events_are_stored_when_the_cache_is_down(client, app_keys):
    with mock.patch("engage.campaigns.cache", _CacheDown()):
        response = client.generic(
            "POST",
            TP2,
            tp2_body(event(), event()),
            content_type="application/json",
            HTTP_ORIGIN=ORIGIN,
        )

    assert response.status_code == 200
    assert Event.objects.count() == 2


@pytest.mark.django_db(transaction=True)
async def test_a_widget_joins_its_groups_when_the_first_layer_call_fails(app_keys, settings):
    """After Redis restarts, each pooled connection fails its first command."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    real = InMemoryChannelLayer.group_add
    calls = []

    async def flaky(self: Any, group: str, channel: str) -> None:
        calls.append(group)
        if len(calls) == 1:
            raise ConnectionError("Connection closed by server.")
        await real(self, group, channel)

    with mock.patch.object(InMemoryChannelLayer, "group_add", flaky):
        comm = await opened(app_keys.public_key)
        await comm.send_json_to({"type": "hello", "v": 1, "anonymous_id": "anon-1"})
        welcome, snapshot = await frame(comm), await frame(comm)
        await comm.disconnect()

    assert (welcome["type"], snapshot["type"]) == ("welcome", "snapshot")
    assert calls[0] == calls[1]  # the failed join was tried again
