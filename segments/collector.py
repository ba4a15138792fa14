"""The Snowplow-compatible collector, independent of the HTTP transport that carries it.

Both the Django view (tests, any WSGI/ASGI deployment) and the lean ASGI consumer on the hot
path call `collector_receive`, so they answer the same way:

- 200 (a 1×1 GIF for `GET /i`, `ok` for POST) whenever the request was stored, as good or bad
  events: trackers must not retry what cannot get better;
- 413 for a body over the limit (nothing stored: it was not read);
- 503 with Retry-After when the database is unavailable, so that trackers retry.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.utils import timezone

from engage import errors
from engage.models import App
from engage.ratelimit import rate_limit_hit, rate_limited_error
from engage.selectors import app_get_by_snowplow_aid, origin_allowed_for_app
from segments.models import EventSource
from segments.services import EventInput, bad_event_record, events_ingest
from segments.snowplow import SnowplowEvent, SnowplowRejected, parse_get, parse_post

logger = logging.getLogger(__name__)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@dataclass(frozen=True)
class CollectorAnswer:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


def _ok(method: str) -> CollectorAnswer:
    if method == "GET":
        return CollectorAnswer(200, PIXEL, "image/gif", (("Cache-Control", "no-store"),))
    return CollectorAnswer(200, b"ok", "text/plain")


def _error(error: errors.EngageError, *headers: tuple[str, str]) -> CollectorAnswer:
    import json

    return CollectorAnswer(
        error.status, json.dumps(error.as_dict()).encode(), "application/json", headers
    )


COLLECTOR_METHODS = "GET, POST, OPTIONS"


def collector_cors_headers(origin: str) -> list[tuple[str, str]]:
    """CORS of the collector for an allowed origin: with credentials, so the tracker's `sp`
    cookie (network user id) travels; preflights cached for a day."""
    return [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Allow-Methods", COLLECTOR_METHODS),
        ("Access-Control-Allow-Headers", "Content-Type"),
        ("Access-Control-Max-Age", "86400"),
        ("Vary", "Origin"),
    ]


def collector_too_large() -> CollectorAnswer:
    """The answer to a body over the limit: 413, nothing stored (it was not read)."""
    return _error(errors.PayloadTooLarge("Request body is larger than the limit."))


def collector_admit(*, client_ip: str) -> CollectorAnswer | None:
    """Count the request against the client IP's rate limit; the 429 answer when over it
    (nothing stored: the tracker retries after `Retry-After`), else None."""
    verdict = rate_limit_hit(scope="collector", identity=client_ip)
    if verdict.allowed:
        return None
    return _error(rate_limited_error(verdict), ("Retry-After", str(verdict.retry_after)))


def _to_input(event: SnowplowEvent) -> EventInput:
    properties = dict(event.properties)
    if event.url and "url" not in properties:
        properties["url"] = event.url
    if event.locale and "locale" not in properties:
        properties["locale"] = event.locale
    return EventInput(
        name=event.name,
        user_id=event.user_id,
        anonymous_id=event.anonymous_id,
        properties=properties,
        contexts=event.contexts,
        timestamp=event.timestamp,
        dedup_id=event.event_id,
        raw=event.raw,
    )


def collector_receive(
    *,
    method: str,
    query: Mapping[str, str],
    body: bytes,
    origin: str | None,
    cookie_nuid: str | None,
) -> CollectorAnswer:
    """Parse one collector request and store every event in it, good or bad.

    After: each event is either stored (deduplicated by `eid`) for the App its `aid` names, or
    kept as a BadEvent with the raw payload and the reason (with no App when the `aid` is
    unknown). Nothing is dropped silently.
    """
    if len(body) > settings.ENGAGE_MAX_BODY_BYTES:
        return collector_too_large()
    try:
        return _receive(method=method, query=query, body=body, origin=origin, nuid=cookie_nuid)
    except (OperationalError, InterfaceError, DatabaseError):
        logger.warning("database unavailable while storing a collector request", exc_info=True)
        return _error(
            errors.ServiceUnavailable("The database is unavailable; retry shortly."),
            ("Retry-After", "5"),
        )


def _receive(
    *, method: str, query: Mapping[str, str], body: bytes, origin: str | None, nuid: str | None
) -> CollectorAnswer:
    received_at = timezone.now()
    results = (
        parse_get(query, cookie_nuid=nuid)
        if method == "GET"
        else parse_post(body, cookie_nuid=nuid)
    )
    by_app: dict[int, tuple[App, list[EventInput]]] = {}
    apps: dict[str, App | None] = {}
    for result in results:
        aid = result.aid
        app = None
        if aid:
            if aid not in apps:
                apps[aid] = app_get_by_snowplow_aid(aid)
            app = apps[aid]
        if isinstance(result, SnowplowRejected):
            bad_event_record(
                app=app,
                source=EventSource.COLLECTOR,
                reason=result.reason,
                raw=result.raw,
                received_at=received_at,
            )
            continue
        if app is None:
            reason = f'aid: unknown app id "{aid}"' if aid else 'aid: missing app id ("aid")'
            bad_event_record(
                app=None,
                source=EventSource.COLLECTOR,
                reason=reason,
                raw=result.raw,
                received_at=received_at,
            )
            continue
        if not origin_allowed_for_app(app, origin):
            bad_event_record(
                app=app,
                source=EventSource.COLLECTOR,
                reason=f'origin: "{origin}" is not an allowed origin of this App',
                raw=result.raw,
                received_at=received_at,
            )
            continue
        by_app.setdefault(app.pk, (app, []))[1].append(_to_input(result))
    for app, inputs in by_app.values():
        events_ingest(app=app, events=inputs, source=EventSource.COLLECTOR, received_at=received_at)
    return _ok(method)


def collector_query_from_bytes(raw: Any) -> dict[str, str]:
    """Decode a query string into a flat dict (last value wins, like Snowplow's collector)."""
    from urllib.parse import parse_qsl

    text = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
    return dict(parse_qsl(text, keep_blank_values=True))
