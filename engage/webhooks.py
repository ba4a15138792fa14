"""Webhooks: signed events for an App's endpoints, sent by Celery with retries and backoff.

Signing follows Standard Webhooks (https://www.standardwebhooks.com): every POST carries
`webhook-id` (the message id, the same on every retry), `webhook-timestamp` (unix seconds of
this attempt) and `webhook-signature: v1,<base64 HMAC-SHA256>` over `{id}.{timestamp}.{body}`,
keyed with the base64-decoded part of the endpoint's `whsec_…` secret.

The body is `{"type", "timestamp", "data"}`: `timestamp` is when the event happened (ISO 8601,
UTC) and `data` the event's payload (see docs/webhooks.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from engage.models import App, Delivery
from engage.models_webhooks import (
    SECRET_PREFIX,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEventType,
    WebhookMessage,
    WebhookMessageStatus,
    webhook_secret_generate,
)
from segments.models import Person

logger = logging.getLogger(__name__)

WEBHOOK_EVENT_TYPES: tuple[str, ...] = tuple(WebhookEventType.values)

# Seconds to wait after the 1st, 2nd, … failed attempt; after the last one the message fails.
RETRY_DELAYS: tuple[int, ...] = (10, 60, 5 * 60, 30 * 60, 2 * 3600, 6 * 3600)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
RETRY_JITTER = 0.1  # each delay is stretched or shrunk by up to 10%
TIMEOUT_SECONDS = 10
# A try holds its message for TIMEOUT_SECONDS plus this; a worker that died frees it after.
LEASE_MARGIN_SECONDS = 20
RESPONSE_EXCERPT_BYTES = 1024
# After a rotation the previous secret signs too for this long, so receivers can switch.
PREVIOUS_SECRET_VALID = timedelta(hours=24)
# A pending message this late was lost by the broker or a worker: the sweeper queues it again.
OVERDUE = timedelta(minutes=10)
USER_AGENT = "Engage-Webhooks/1"


# --- signing ------------------------------------------------------------------------------------


class WebhookVerificationError(ValueError):
    """A webhook whose headers, timestamp or signature do not check out."""


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError("The secret is not whsec_ + base64.") from exc


def webhook_signature(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of one attempt (Standard Webhooks, symmetric)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def webhook_verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> Any:
    """Check a received webhook and return its parsed JSON body.

    For receivers (and Engage's tests). `headers` may use any case; `body` must be the raw
    bytes as received, before any JSON parsing. Raises WebhookVerificationError when a header
    is missing, the timestamp is more than `tolerance` seconds away from `now` (replays), or no
    `v1` signature in the space-separated list matches (compared in constant time).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise WebhookVerificationError("Missing webhook-id, webhook-timestamp or signature.")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not unix seconds.") from None
    now = time.time() if now is None else now
    if abs(now - sent_at) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance.")
    raw = body.encode() if isinstance(body, str) else body
    expected = webhook_signature(secret=secret, msg_id=msg_id, timestamp=sent_at, body=raw)
    for candidate in signatures.split(" "):
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return json.loads(raw)
    raise WebhookVerificationError("No matching signature.")


def _signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    current = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        current.append(endpoint.previous_secret)
    return current


def webhook_message_body(message: WebhookMessage) -> bytes:
    """The bytes POSTed for a message: compact JSON with sorted keys, the same on each try."""
    envelope = {
        "type": message.type,
        "timestamp": message.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": message.payload,
    }
    return json.dumps(
        envelope, cls=DjangoJSONEncoder, separators=(",", ":"), sort_keys=True
    ).encode()


def webhook_message_headers(
    message: WebhookMessage, *, body: bytes, now: datetime
) -> dict[str, str]:
    """The headers of one attempt, signed with every secret that is valid now."""
    msg_id = str(message.id)
    timestamp = int(now.timestamp())
    signatures = [
        webhook_signature(secret=s, msg_id=msg_id, timestamp=timestamp, body=body)
        for s in _signing_secrets(message.endpoint, now)
    ]
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }


# --- endpoints ----------------------------------------------------------------------------------


@transaction.atomic
def webhook_endpoint_create(
    *,
    app: App,
    url: str,
    description: str = "",
    event_types: Iterable[str] = (),
    active: bool = True,
) -> WebhookEndpoint:
    """Register a URL of the App's for events.

    Before: `url` is http(s); `event_types` are known types (empty means all). After: the
    endpoint exists with a fresh `whsec_…` secret, which the caller shows to its owner.
    """
    endpoint = WebhookEndpoint(
        app=app,
        url=url,
        description=description,
        event_types=list(event_types),
        active=active,
    )
    endpoint.full_clean()
    endpoint.save()
    return endpoint


@transaction.atomic
def webhook_endpoint_secret_rotate(
    *, endpoint: WebhookEndpoint, now: datetime | None = None
) -> str:
    """Give the endpoint a new secret and return it.

    After: messages are signed with the new secret and, for PREVIOUS_SECRET_VALID, also with
    the old one (two `v1,…` signatures), so the receiver can switch without losing any.
    """
    now = now or timezone.now()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + PREVIOUS_SECRET_VALID
    endpoint.secret = webhook_secret_generate()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return endpoint.secret


# --- emitting -----------------------------------------------------------------------------------


def _queue(message: WebhookMessage) -> None:
    from engage.tasks import webhook_send  # the tasks module imports this one

    message_id, attempt = str(message.id), message.attempts
    transaction.on_commit(
        lambda: webhook_send.apply_async(args=[message_id], kwargs={"attempt": attempt})
    )


def _emit(
    *,
    app_id: int,
    type_: str,
    payload: Callable[[], Mapping[str, Any]],
    at: datetime | None,
) -> list[WebhookMessage]:
    if type_ not in WEBHOOK_EVENT_TYPES:
        raise ValueError(f'Unknown webhook event type "{type_}"')
    # The only query when an App has no endpoints (indexed on app, active).
    endpoints = [
        e for e in WebhookEndpoint.objects.filter(app_id=app_id, active=True) if e.wants(type_)
    ]
    if not endpoints:
        return []
    # Stored as JSON and read back the same, so the first try and the retries send one body.
    data = json.loads(json.dumps(dict(payload()), cls=DjangoJSONEncoder))
    now = timezone.now()
    with transaction.atomic():
        messages = WebhookMessage.objects.bulk_create(
            WebhookMessage(
                endpoint=endpoint,
                type=type_,
                payload=data,
                created_at=at or now,
                next_attempt_at=now,
            )
            for endpoint in endpoints
        )
        for message in messages:
            _queue(message)
    return messages


@transaction.atomic
def webhook_emit(
    *,
    app: App,
    type: str,  # the event's name on the wire
    payload: Mapping[str, Any],
    at: datetime | None = None,
) -> list[WebhookMessage]:
    """Send an event to each active endpoint of the App that wants this type.

    Before: `type` is one of WEBHOOK_EVENT_TYPES; `payload` is JSON-serialisable (datetimes,
    UUIDs and decimals are turned into strings). After: one pending message per matching
    endpoint; each is sent by a Celery task queued after commit. `at` is when the event
    happened (now by default). Costs one indexed query when no endpoint matches.
    """
    return _emit(app_id=app.pk, type_=type, payload=lambda: payload, at=at)


def _delivery_payload(delivery: Delivery, type_: str, at: datetime | None) -> dict[str, Any]:
    user_id = Person.objects.filter(pk=delivery.person_id).values_list("user_id", flat=True)
    return {
        "delivery_id": str(delivery.pk),
        "kind": delivery.kind,
        "campaign_id": delivery.campaign_id,
        "variant": delivery.variant,
        "holdout": delivery.holdout,
        "person": {"user_id": user_id.first()},
        "at": at,
    }


def webhook_delivery_listener(delivery: Delivery, type_: str) -> None:
    """Told after commit that a delivery was shown, clicked, dismissed or converted.

    Emits `delivery.<type>`, except for test deliveries (previews), which results leave out
    too. A failure is logged, never raised: the delivery event is already committed and the
    widget that reported it must not see an error for it.
    """
    if delivery.is_test:
        return
    at = getattr(delivery, f"{type_}_at", None)
    try:
        _emit(
            app_id=delivery.app_id,
            type_=f"delivery.{type_}",
            payload=lambda: _delivery_payload(delivery, type_, at),
            at=at,
        )
    except Exception:
        logger.exception("Could not emit delivery.%s webhooks for %s", type_, delivery.pk)


# --- sending ------------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx is a failed attempt: following it would POST somewhere the App did not register."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# ProxyHandler (HTTP(S)_PROXY) stays on, so an egress proxy can keep webhooks out of the
# internal network (SSRF); see docs/webhooks.md.
_opener = urllib.request.build_opener(_NoRedirects)


@dataclass(frozen=True)
class _Answer:
    status_code: int | None
    body: str
    error: str
    duration_ms: int
    retry_after: int | None


def _retry_after(value: str | None) -> int | None:
    try:
        return max(0, int(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the schedule decides


def _post(url: str, body: bytes, headers: Mapping[str, str]) -> _Answer:
    if urlsplit(url).scheme not in ("http", "https"):
        return _Answer(None, "", "Only http and https URLs are called.", 0, None)
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310 - scheme checked above
    started = time.monotonic()
    status: int | None = None
    excerpt = b""
    error = ""
    retry_after = None
    try:
        with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
            excerpt = response.read(RESPONSE_EXCERPT_BYTES)
    except urllib.error.HTTPError as exc:
        status = exc.code
        retry_after = _retry_after(exc.headers.get("Retry-After"))
        try:
            excerpt = exc.read(RESPONSE_EXCERPT_BYTES)
        except (OSError, http.client.HTTPException):
            excerpt = b""
        finally:
            exc.close()
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # URLError, timeouts, refused or reset connections, malformed answers
        reason = getattr(exc, "reason", None) or exc
        error = f"{type(exc).__name__}: {reason}"[:1000]
    duration_ms = round((time.monotonic() - started) * 1000)
    text = excerpt[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace")
    return _Answer(status, text, error, duration_ms, retry_after)


def webhook_retry_delay(attempts: int, *, retry_after: int | None = None) -> float:
    """Seconds to wait after `attempts` failed tries: the schedule with jitter, or longer when
    the endpoint asked for it with Retry-After (capped at the schedule's longest delay)."""
    base = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
    delay = base * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)  # noqa: S311 - jitter, not a secret
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_DELAYS[-1]))
    return delay


@dataclass(frozen=True)
class Retry:
    """Queue the task again in `countdown` seconds, expecting `attempt` tries made.

    `deferred`: not a failure but another worker holding the message; eager mode (one process)
    drops it, since running at once would only find the same worker still holding it.
    """

    countdown: float
    attempt: int
    deferred: bool = False


def _claim(
    message_id: Any, attempt: int | None, now: datetime
) -> tuple[WebhookMessage | None, Retry | None]:
    """Lock the message for one try (the `sending_until` lease), or say why not."""
    message = WebhookMessage.objects.select_for_update().filter(pk=message_id).first()
    if message is None or message.status != WebhookMessageStatus.PENDING:
        return None, None
    if attempt is not None and message.attempts != attempt:
        return None, None  # a duplicate of a try already made
    if attempt is None and message.next_attempt_at and message.next_attempt_at > now:
        return None, None  # not due yet; its own task will come
    if message.sending_until and message.sending_until > now:
        wait = (message.sending_until - now).total_seconds() + 1
        return None, Retry(countdown=wait, attempt=message.attempts, deferred=True)
    if not message.endpoint.active:
        message.status = WebhookMessageStatus.FAILED
        message.next_attempt_at = None
        message.save(update_fields=["status", "next_attempt_at"])
        return None, None
    message.sending_until = now + timedelta(seconds=TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS)
    message.save(update_fields=["sending_until"])
    return message, None


def webhook_message_send(
    *, message_id: Any, attempt: int | None = None, now: datetime | None = None
) -> Retry | None:
    """Make one attempt to deliver a pending message; returns when to try again, if ever.

    Idempotent: `attempt` is how many tries the caller expects already made, so a duplicate
    task (a broker's redelivery, the sweeper) finds the count moved and does nothing; without
    it, only a due message is sent. Delivered and failed messages are left alone. No
    transaction stays open during the POST: a short one claims the message with a lease
    (`sending_until`), so a second worker defers instead of sending it twice; if the worker
    dies mid-try, the lease runs out and the redelivered task sends it.

    After: a WebhookAttempt records the answer. 2xx → delivered. 410 Gone → the endpoint is
    turned off and the message failed. Anything else, or no answer within TIMEOUT_SECONDS →
    retried per RETRY_DELAYS, failed after MAX_ATTEMPTS. An endpoint turned off meanwhile
    fails its pending messages without sending.
    """
    now = now or timezone.now()
    with transaction.atomic():
        claimed, retry = _claim(message_id, attempt, now)
        if claimed is None:
            return retry
        endpoint = claimed.endpoint
        body = webhook_message_body(claimed)
        headers = webhook_message_headers(claimed, body=body, now=now)

    answer = _post(endpoint.url, body, headers)

    retry = None
    with transaction.atomic():
        message = WebhookMessage.objects.select_for_update().get(pk=claimed.pk)
        WebhookAttempt.objects.create(
            message=message,
            at=now,
            status_code=answer.status_code,
            response_body=answer.body,
            error=answer.error,
            duration_ms=answer.duration_ms,
        )
        message.attempts += 1
        message.sending_until = None
        if message.status != WebhookMessageStatus.PENDING:
            pass  # finished meanwhile (a worker that outlived its lease): keep its outcome
        elif answer.status_code is not None and 200 <= answer.status_code < 300:
            message.status = WebhookMessageStatus.DELIVERED
            message.delivered_at = timezone.now()
            message.next_attempt_at = None
        elif answer.status_code == 410:
            message.status = WebhookMessageStatus.FAILED
            message.next_attempt_at = None
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)
            logger.warning("Webhook endpoint %s answered 410 Gone: turned off", endpoint.pk)
        elif message.attempts >= MAX_ATTEMPTS:
            message.status = WebhookMessageStatus.FAILED
            message.next_attempt_at = None
        else:
            delay = webhook_retry_delay(message.attempts, retry_after=answer.retry_after)
            message.next_attempt_at = now + timedelta(seconds=delay)
            retry = Retry(countdown=delay, attempt=message.attempts)
        message.save(
            update_fields=["attempts", "status", "delivered_at", "next_attempt_at", "sending_until"]
        )
    return retry


@transaction.atomic
def webhook_message_resend(*, message: WebhookMessage) -> None:
    """Send a delivered or failed message once more, now (staff asked for it).

    After: the message is pending and one try is queued after commit; if it fails, the
    message fails again (no further automatic retries once MAX_ATTEMPTS were made).
    """
    message = WebhookMessage.objects.select_for_update().get(pk=message.pk)
    message.status = WebhookMessageStatus.PENDING
    message.next_attempt_at = timezone.now()
    message.save(update_fields=["status", "next_attempt_at"])
    _queue(message)


def webhook_messages_overdue(
    *, now: datetime | None = None, limit: int = 1000
) -> list[tuple[str, int]]:
    """Pending messages whose next try is more than OVERDUE late, as (id, attempts).

    Their tasks were lost (a broker flushed, a worker killed before it could hand the task
    back); the periodic sweeper queues them again.
    """
    now = now or timezone.now()
    rows = WebhookMessage.objects.filter(
        status=WebhookMessageStatus.PENDING, next_attempt_at__lte=now - OVERDUE
    ).values_list("id", "attempts")[:limit]
    return [(str(pk), attempts) for pk, attempts in rows]
