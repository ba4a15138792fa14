"""Lean HTTP door of the Snowplow collector: the hot ingestion path.

Django's ASGI request path costs about 1.5 ms per request (a thread, a request object and the
whole middleware stack per request), which is most of the budget of a one-event tracker
request. This consumer answers `GET /i`, `POST /com.snowplowanalytics.snowplow/tp2` and their
preflights straight from the ASGI scope and hands the request to the same transport-agnostic
`collector_receive` the Django view calls, in one hop to a database thread. It answers exactly
as the Django view does (status, body, content type, CORS and security headers), which
tests/segments/test_collector.py checks request by request.

It deliberately skips what AsyncConsumer does for every message and an HTTP request never
needs: a channel-layer channel (with Redis, a blocking read per request) and the extra thread
hop of `aclose_old_connections` (`database_sync_to_async` closes stale connections itself).

Requests are stored by a small pool of database threads (`ENGAGE_COLLECTOR_DB_THREADS`, 4 by
default), each with its own connection, rather than by the one thread `database_sync_to_async`
uses by default: a request spends most of its time waiting for PostgreSQL (round trips, the
commit's WAL flush), and concurrent commits share one flush.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer
from channels.utils import await_many_dispatch
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.http.cookie import parse_cookie

from engage import errors, ratelimit
from engage.selectors import origin_allowed_for_any_app
from segments.collector import (
    COLLECTOR_METHODS,
    CollectorAnswer,
    collector_admit,
    collector_cors_headers,
    collector_query_from_bytes,
    collector_receive,
)

logger = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]

# What Django's SecurityMiddleware and XFrameOptionsMiddleware add to every response, so that
# both doors answer alike.
_SECURITY_HEADERS: Headers = [
    (b"X-Frame-Options", b"DENY"),
    (b"X-Content-Type-Options", b"nosniff"),
    (b"Referrer-Policy", b"same-origin"),
    (b"Cross-Origin-Opener-Policy", b"same-origin"),
]
_EMPTY_CONTENT_TYPE = "text/html; charset=utf-8"  # what an empty Django HttpResponse says


def _cors_headers(origin: str) -> Headers:
    return [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in collector_cors_headers(origin)
    ]


def _database_unavailable() -> CollectorAnswer:
    # The same answer engage.middleware.DatabaseUnavailableMiddleware gives the Django door.
    error = errors.ServiceUnavailable("The database is unavailable; retry shortly.")
    return CollectorAnswer(
        503, json.dumps(error.as_dict()).encode(), "application/json", (("Retry-After", "5"),)
    )


def collector_answer(
    *,
    method: str,
    query_string: bytes,
    body: bytes,
    origin: str | None,
    cookie: str | None,
    client_ip: str = "unknown",
) -> tuple[int, Headers, bytes]:
    """Receive one collector request and shape the HTTP answer (runs in a database thread).

    Stores the request's events through `collector_receive` for GET and POST, and decides the
    CORS headers (the allowed-origins lookup is cached, but may query when the cache expired).
    """
    extra: list[tuple[str, str]] = []
    try:
        throttled = collector_admit(client_ip=client_ip) if method in ("GET", "POST") else None
        if throttled is not None:
            answer = throttled
        elif method in ("GET", "POST"):
            answer = collector_receive(
                method=method,
                query=collector_query_from_bytes(query_string),
                body=body if method == "POST" else b"",
                origin=origin,
                cookie_nuid=parse_cookie(cookie).get("sp") if cookie else None,
            )
        elif method == "OPTIONS":
            answer = CollectorAnswer(200, b"", _EMPTY_CONTENT_TYPE)
        else:
            answer = CollectorAnswer(405, b"", _EMPTY_CONTENT_TYPE)
            extra = [("Allow", COLLECTOR_METHODS)]
        cors = bool(origin) and origin_allowed_for_any_app(origin)  # type: ignore[arg-type]
    except (OperationalError, InterfaceError):
        logger.warning("database unavailable while answering the collector", exc_info=True)
        answer, extra, cors = _database_unavailable(), [], False
    headers: Headers = [
        (b"Content-Type", answer.content_type.encode()),
        (b"Content-Length", str(len(answer.body)).encode()),
    ]
    headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers)
    headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra)
    if cors:
        headers.extend(_cors_headers(origin))  # type: ignore[arg-type]
    headers.extend(_SECURITY_HEADERS)
    return answer.status, headers, answer.body


_pool_lock = threading.Lock()
_pool: tuple[ThreadPoolExecutor, int, Any] | None = None


def _collector_answer_async() -> Any:
    """`collector_answer` as a coroutine function run by the collector's database threads."""
    global _pool
    with _pool_lock:
        if _pool is None:
            size = int(getattr(settings, "ENGAGE_COLLECTOR_DB_THREADS", 4))
            executor = ThreadPoolExecutor(size, thread_name_prefix="collector-db")
            call = database_sync_to_async(
                collector_answer, thread_sensitive=False, executor=executor
            )
            _pool = (executor, size, call)
        return _pool[2]


def collector_threads_close() -> None:
    """Close the database connections of the collector's threads and stop them.

    For tests and orderly shutdowns: a later request starts a new pool.
    """
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is None:
        return
    executor, size, _ = pool
    # One task per thread: the barrier keeps any thread from taking two of them.
    barrier = threading.Barrier(size)

    def close() -> None:
        barrier.wait(timeout=10)
        connections.close_all()

    for future in [executor.submit(close) for _ in range(size)]:
        future.result(timeout=15)
    executor.shutdown(wait=True)


class CollectorConsumer(AsyncHttpConsumer):
    """`/i` and `/com.snowplowanalytics.snowplow/tp2` (any trailing slash), every method."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.body_size = 0
        self.too_large = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # AsyncConsumer.__call__ minus the channel layer: an HTTP request never joins a group.
        self.scope = scope
        self.base_send = send
        with contextlib.suppress(StopConsumer):
            await await_many_dispatch([receive], self.dispatch)

    async def dispatch(self, message: Any) -> None:
        # No aclose_old_connections() hop: the database thread closes stale connections itself.
        if message["type"] == "http.request":
            await self.http_request(message)
        elif message["type"] == "http.disconnect":
            raise StopConsumer
        else:
            raise ValueError(f"No handler for message type {message['type']}")

    async def http_request(self, message: Any) -> None:
        chunk = message.get("body", b"")
        if chunk and not self.too_large:
            self.body_size += len(chunk)
            # Past the limit the content no longer matters: keep only enough to be refused.
            if self.body_size > settings.ENGAGE_MAX_BODY_BYTES:
                self.too_large = True
            self.body.append(chunk)
        if not message.get("more_body"):
            await self.handle(b"".join(self.body))
            raise StopConsumer

    async def handle(self, body: bytes) -> None:
        origin = cookie = None
        for name, value in self.scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"cookie":
                cookie = value.decode("latin-1")
        status, headers, content = await _collector_answer_async()(
            method=self.scope["method"],
            query_string=self.scope.get("query_string", b""),
            body=body,
            origin=origin,
            cookie=cookie,
            client_ip=ratelimit.client_ip(self.scope),
        )
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": content})
