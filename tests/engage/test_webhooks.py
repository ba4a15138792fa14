"""Webhooks: a real HTTP receiver verifies Standard Webhooks signatures and sees retries."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from engage import webhooks
from engage.campaigns import campaign_create, campaign_publish
from engage.deliveries import delivery_event_record, targeting_evaluate
from engage.models import App
from engage.models_webhooks import (
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    webhook_secret_generate,
)
from engage.targeting import Moment
from engage.tasks import webhook_send, webhooks_send_overdue
from engage.webhooks import (
    MAX_ATTEMPTS,
    WebhookVerificationError,
    webhook_delivery_listener,
    webhook_emit,
    webhook_endpoint_create,
    webhook_endpoint_secret_rotate,
    webhook_message_body,
    webhook_message_headers,
    webhook_verify,
)

# --- a real receiver ----------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: Any = None  # the parsed body when the signature checked out
    error: str = ""


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that verifies each webhook with `secret` and answers the
    next status of `statuses` (200 once they run out)."""

    url: str
    secret: str = ""
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)

    @property
    def types(self) -> list[str]:
        return [r.verified["type"] for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            got = Received(headers=headers, body=body)
            try:
                got.verified = webhook_verify(state.secret, got.headers, body)
            except WebhookVerificationError as exc:
                got.error = str(exc)
            state.requests.append(got)
            time.sleep(state.delay)
            status = state.statuses.pop(0) if state.statuses else 200
            if got.error:
                status = 401
            answer = json.dumps({"status": status, "error": got.error}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/engage"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def endpoint_for(receiver: Receiver, app: App, **fields: Any) -> WebhookEndpoint:
    endpoint = webhook_endpoint_create(app=app, url=receiver.url, **fields)
    receiver.secret = endpoint.secret
    return endpoint


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone"


RESPONSE = {"response_id": "0b1c", "survey_id": 7, "completed": True}


# --- delivery and retries -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_receiver_verifies_the_signature_and_sees_a_retry_after_a_500(app_keys, receiver):
    endpoint = endpoint_for(receiver, app_keys.app)
    receiver.statuses = [500, 200]

    [message] = webhook_emit(app=app_keys.app, type="response.completed", payload=RESPONSE)

    assert len(receiver.requests) == 2
    first, second = receiver.requests
    assert not first.error
    assert not second.error
    assert first.verified["type"] == "response.completed"
    assert first.verified["data"] == RESPONSE
    assert first.verified["timestamp"].endswith("Z")
    # The retry is the same event: same id (the receiver's idempotency key), same body.
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(message.id)
    assert first.body == second.body
    assert first.headers["content-type"] == "application/json"
    message.refresh_from_db()
    assert message.endpoint == endpoint
    assert message.status == "delivered"
    assert message.attempts == 2
    assert message.delivered_at is not None
    assert message.next_attempt_at is None
    attempts = list(message.attempt_records.all())
    assert [a.status_code for a in attempts] == [500, 200]
    assert json.loads(attempts[0].response_body) == {"status": 500, "error": ""}
    assert all(a.error == "" and a.duration_ms >= 0 for a in attempts)


@pytest.mark.django_db(transaction=True)
def test_a_permanently_failing_endpoint_stops_after_the_last_attempt(app_keys):
    webhook_endpoint_create(app=app_keys.app, url=closed_port_url())

    [message] = webhook_emit(app=app_keys.app, type="response.completed", payload=RESPONSE)

    message.refresh_from_db()
    assert message.status == "failed"
    assert message.attempts == MAX_ATTEMPTS
    attempts = list(message.attempt_records.all())
    assert len(attempts) == MAX_ATTEMPTS
    assert all(a.status_code is None for a in attempts)
    assert "refused" in attempts[0].error.lower()


@pytest.mark.django_db(transaction=True)
def test_no_answer_within_the_timeout_is_a_failed_attempt(app_keys, receiver, monkeypatch):
    monkeypatch.setattr(webhooks, "TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(webhooks, "MAX_ATTEMPTS", 1)
    endpoint_for(receiver, app_keys.app)
    receiver.delay = 1.0

    [message] = webhook_emit(app=app_keys.app, type="response.completed", payload=RESPONSE)

    message.refresh_from_db()
    assert message.status == "failed"
    [attempt] = message.attempt_records.all()
    assert attempt.status_code is None
    assert "timed out" in attempt.error


def test_retry_schedule_backs_off_with_jitter_and_honours_retry_after():
    delays = [webhooks.webhook_retry_delay(n) for n in range(1, MAX_ATTEMPTS)]
    for delay, base in zip(delays, webhooks.RETRY_DELAYS, strict=True):
        assert base * 0.9 <= delay <= base * 1.1
    assert delays == sorted(delays)
    assert webhooks.webhook_retry_delay(1, retry_after=120) == 120
    assert webhooks.webhook_retry_delay(1, retry_after=10**9) == webhooks.RETRY_DELAYS[-1]


@pytest.mark.django_db(transaction=True)
def test_a_failed_try_is_scheduled_and_a_duplicate_task_sends_nothing(app_keys, receiver):
    endpoint_for(receiver, app_keys.app)
    receiver.statuses = [503]
    # The test plays the broker: nothing is queued, it runs each task itself.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(webhook_send, "apply_async", lambda *a, **kw: None)
        [message] = webhook_emit(app=app_keys.app, type="response.completed", payload=RESPONSE)
        webhook_send(str(message.id), attempt=0)
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("pending", 1)
    assert message.next_attempt_at is not None
    wait = (message.next_attempt_at - timezone.now()).total_seconds()
    assert 8 < wait <= 11

    webhook_send(str(message.id), attempt=0)  # a redelivered copy of the first task
    assert len(receiver.requests) == 1
    webhook_send(str(message.id))  # the sweeper's way: not due yet
    assert len(receiver.requests) == 1

    webhook_send(str(message.id), attempt=1)
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("delivered", 2)
    webhook_send(str(message.id), attempt=1)  # once delivered, never again
    assert len(receiver.requests) == 2


@pytest.mark.django_db(transaction=True)
def test_a_message_another_worker_is_sending_is_deferred_not_sent_twice(app_keys, receiver):
    endpoint = endpoint_for(receiver, app_keys.app)
    now = timezone.now()
    message = WebhookMessage.objects.create(
        endpoint=endpoint,
        type="response.completed",
        payload=RESPONSE,
        created_at=now,
        next_attempt_at=now,
        sending_until=now + timedelta(seconds=25),
    )

    retry = webhooks.webhook_message_send(message_id=message.pk, attempt=0, now=now)

    assert retry is not None
    assert retry.deferred
    assert (retry.attempt, round(retry.countdown)) == (0, 26)
    assert receiver.requests == []
    # That worker died: once its lease ran out, the redelivered task sends.
    later = now + timedelta(seconds=30)
    assert webhooks.webhook_message_send(message_id=message.pk, attempt=0, now=later) is None
    message.refresh_from_db()
    assert (message.status, message.attempts, message.sending_until) == ("delivered", 1, None)
    assert len(receiver.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_410_gone_turns_the_endpoint_off(app_keys, receiver):
    endpoint = endpoint_for(receiver, app_keys.app)
    receiver.statuses = [410]

    [message] = webhook_emit(app=app_keys.app, type="response.completed", payload=RESPONSE)

    message.refresh_from_db()
    endpoint.refresh_from_db()
    assert (message.status, message.attempts) == ("failed", 1)
    assert endpoint.active is False
    assert webhook_emit(app=app_keys.app, type="response.completed", payload=RESPONSE) == []
    assert len(receiver.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_a_redirect_is_not_followed(app_keys, receiver):
    endpoint_for(receiver, app_keys.app)
    receiver.statuses = [302]
    [message] = webhook_emit(app=app_keys.app, type="response.completed", payload=RESPONSE)
    attempts = list(message.attempt_records.values_list("status_code", flat=True))
    assert attempts == [302, 200]
    assert all(r.verified for r in receiver.requests)  # both were POSTs to the URL


@pytest.mark.django_db(transaction=True)
def test_overdue_messages_are_queued_again(app_keys, receiver):
    endpoint = endpoint_for(receiver, app_keys.app)
    lost = WebhookMessage.objects.create(
        endpoint=endpoint,
        type="response.completed",
        payload=RESPONSE,
        created_at=timezone.now(),
        next_attempt_at=timezone.now() - timedelta(hours=1),
    )
    WebhookMessage.objects.create(  # due in a moment: its task is still on its way
        endpoint=endpoint,
        type="response.completed",
        payload=RESPONSE,
        created_at=timezone.now(),
        next_attempt_at=timezone.now() + timedelta(minutes=1),
    )
    assert webhooks_send_overdue() == 1
    lost.refresh_from_db()
    assert lost.status == "delivered"
    assert [r.headers["webhook-id"] for r in receiver.requests] == [str(lost.id)]


# --- who gets what ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_only_active_endpoints_that_want_the_type_get_it(app_keys, other_app_keys, receiver):
    app = app_keys.app
    wanted = endpoint_for(receiver, app, event_types=["response.completed"])
    catch_all = webhook_endpoint_create(app=app, url=receiver.url)
    webhook_endpoint_create(app=app, url=receiver.url, active=False)
    webhook_endpoint_create(app=app, url=receiver.url, event_types=["delivery.shown"])
    webhook_endpoint_create(app=other_app_keys.app, url=receiver.url)
    # One secret per endpoint: the receiver checks the one it was configured with.
    catch_all.secret = wanted.secret
    catch_all.save()

    messages = webhook_emit(app=app, type="response.completed", payload=RESPONSE)

    assert {m.endpoint_id for m in messages} == {wanted.pk, catch_all.pk}
    assert len(receiver.requests) == 2
    assert all(r.verified["type"] == "response.completed" for r in receiver.requests)
    assert WebhookMessage.objects.count() == 2


def test_unknown_event_types_are_refused(app_keys):
    with pytest.raises(ValueError, match="Unknown webhook event type"):
        webhook_emit(app=app_keys.app, type="response.created", payload={})
    with pytest.raises(ValidationError, match="event_types"):
        webhook_endpoint_create(app=app_keys.app, url="https://x.test/h", event_types=["nope"])


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://x.test/h", "not a url"])
def test_only_http_urls_can_be_registered(app_keys, url):
    with pytest.raises(ValidationError, match="url"):
        webhook_endpoint_create(app=app_keys.app, url=url)


# --- campaign events ----------------------------------------------------------------------------


def _delivery(app: App, user: str = "u_42") -> Any:
    data = {
        "name": "CSV export",
        "kind": "modal",
        "content": {"en": {"title": "Hello", "body": "Try **CSV**", "buttons": []}},
        "trigger": {"on": "api"},
    }
    campaign = campaign_create(kind="message", app=app, data=data)
    campaign_publish(campaign=campaign)
    evaluation = targeting_evaluate(app=app, user_id=user, anonymous_id=None, moment=Moment())
    [item] = evaluation.items
    return campaign, item.delivery_id


@pytest.mark.django_db(transaction=True)
def test_a_shown_then_clicked_delivery_emits_delivery_events(app_keys, receiver):
    app = app_keys.app
    endpoint_for(receiver, app)
    campaign, delivery_id = _delivery(app)

    delivery_event_record(app=app, delivery_id=delivery_id, type="shown")
    delivery_event_record(app=app, delivery_id=delivery_id, type="shown")  # counts once
    delivery_event_record(app=app, delivery_id=delivery_id, type="clicked", button="Try it")

    assert receiver.types == ["delivery.shown", "delivery.clicked"]
    shown = receiver.requests[0].verified
    assert shown["data"]["delivery_id"] == str(delivery_id)
    assert shown["data"]["kind"] == "message"
    assert shown["data"]["campaign_id"] == campaign.pk
    assert shown["data"]["variant"] == ""
    assert shown["data"]["holdout"] is False
    assert shown["data"]["person"] == {"user_id": "u_42"}
    assert shown["data"]["at"].startswith(str(timezone.now().year))
    assert shown["timestamp"][:19] == shown["data"]["at"][:19]


@pytest.mark.django_db(transaction=True)
def test_a_dismiss_through_the_widget_endpoint_reaches_the_receiver(
    app_keys, receiver, public_client
):
    app = app_keys.app
    endpoint_for(receiver, app, event_types=["delivery.dismissed"])
    _, delivery_id = _delivery(app)

    answer = public_client.post(
        f"/api/v1/deliveries/{delivery_id}/events", {"type": "dismissed"}, format="json"
    )

    assert answer.status_code < 300, answer.content
    assert receiver.types == ["delivery.dismissed"]


@pytest.mark.django_db
def test_the_delivery_listener_costs_one_query_when_the_app_has_no_endpoints(
    app_keys, django_assert_num_queries
):
    _, delivery_id = _delivery(app_keys.app)
    delivery = delivery_event_record(app=app_keys.app, delivery_id=delivery_id, type="shown")
    with django_assert_num_queries(1):
        webhook_delivery_listener(delivery, "shown")
    assert WebhookMessage.objects.count() == 0


@pytest.mark.django_db
def test_test_deliveries_send_no_webhooks(
    app_keys, django_assert_num_queries, django_capture_on_commit_callbacks
):
    webhook_endpoint_create(app=app_keys.app, url="https://x.test/h")
    _, delivery_id = _delivery(app_keys.app)
    delivery = delivery_event_record(app=app_keys.app, delivery_id=delivery_id, type="shown")
    delivery.is_test = True
    with django_assert_num_queries(0):
        webhook_delivery_listener(delivery, "shown")
    delivery.is_test = False
    with django_capture_on_commit_callbacks() as queued:
        webhook_delivery_listener(delivery, "shown")
    assert WebhookMessage.objects.get().type == "delivery.shown"
    assert len(queued) == 1  # its send, after commit


# --- signatures ---------------------------------------------------------------------------------


def test_secrets_are_whsec_and_24_random_bytes():
    secret = webhook_secret_generate()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    assert webhook_secret_generate() != secret


def test_signature_matches_the_standard_webhooks_example():
    # The example of the Standard Webhooks reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = webhooks.webhook_signature(
        secret=secret, msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp=1614265330, body=body
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.django_db(transaction=True)
def test_a_wrong_secret_or_a_changed_body_fails_verification(app_keys, receiver):
    endpoint_for(receiver, app_keys.app)
    webhook_emit(app=app_keys.app, type="response.completed", payload=RESPONSE)
    [got] = receiver.requests
    assert got.verified["data"] == RESPONSE

    with pytest.raises(WebhookVerificationError, match="signature"):
        webhook_verify(webhook_secret_generate(), got.headers, got.body)
    with pytest.raises(WebhookVerificationError, match="signature"):
        webhook_verify(receiver.secret, got.headers, got.body.replace(b"true", b"false"))
    other_id = {**got.headers, "webhook-id": "another-id"}
    with pytest.raises(WebhookVerificationError, match="signature"):
        webhook_verify(receiver.secret, other_id, got.body)
    missing = {k: v for k, v in got.headers.items() if k.lower() != "webhook-signature"}
    with pytest.raises(WebhookVerificationError, match="Missing"):
        webhook_verify(receiver.secret, missing, got.body)


@pytest.mark.django_db
def test_a_timestamp_outside_the_tolerance_fails_verification(app_keys):
    endpoint = webhook_endpoint_create(app=app_keys.app, url="https://x.test/h")
    message = WebhookMessage.objects.create(
        endpoint=endpoint, type="delivery.shown", payload={"a": 1}, created_at=timezone.now()
    )
    body = webhook_message_body(message)
    headers = webhook_message_headers(message, body=body, now=timezone.now())
    sent = int(headers["webhook-timestamp"])

    assert webhook_verify(endpoint.secret, headers, body, now=sent + 299)["data"] == {"a": 1}
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        webhook_verify(endpoint.secret, headers, body, now=sent + 301)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        webhook_verify(endpoint.secret, headers, body, now=sent - 301)
    assert webhook_verify(endpoint.secret, headers, body, tolerance=600, now=sent + 500)


@pytest.mark.django_db
def test_after_a_rotation_both_secrets_verify_for_a_day(app_keys):
    endpoint = webhook_endpoint_create(app=app_keys.app, url="https://x.test/h")
    old = endpoint.secret
    message = WebhookMessage.objects.create(
        endpoint=endpoint, type="delivery.shown", payload={}, created_at=timezone.now()
    )
    new = webhook_endpoint_secret_rotate(endpoint=endpoint)
    body = webhook_message_body(message)
    message.endpoint = endpoint

    now = timezone.now()
    headers = webhook_message_headers(message, body=body, now=now)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert webhook_verify(new, headers, body)
    assert webhook_verify(old, headers, body)

    later = now + timedelta(hours=25)
    headers = webhook_message_headers(message, body=body, now=later)
    assert webhook_verify(new, headers, body, now=later.timestamp())
    with pytest.raises(WebhookVerificationError):
        webhook_verify(old, headers, body, now=later.timestamp())


# --- admin --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_admin_creates_an_endpoint_and_shows_each_attempt(admin_client, app_keys, receiver):
    answer = admin_client.post(
        reverse("admin:engage_webhookendpoint_add"),
        {
            "app": app_keys.app.pk,
            "url": receiver.url,
            "description": "CRM",
            "event_types": ["response.completed"],
            "active": "on",
        },
        follow=True,
    )
    assert answer.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == ["response.completed"]
    assert endpoint.secret in answer.content.decode()  # shown once created
    receiver.secret = endpoint.secret
    receiver.statuses = [500, 200]
    [message] = webhook_emit(app=app_keys.app, type="response.completed", payload=RESPONSE)

    page = admin_client.get(reverse("admin:engage_webhookendpoint_change", args=[endpoint.pk]))
    assert str(message.pk) in page.content.decode()

    page = admin_client.get(reverse("admin:engage_webhookmessage_change", args=[message.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "&quot;status&quot;: 500" in html  # each attempt's answer
    assert "&quot;status&quot;: 200" in html
    assert "survey_id" in html  # the payload
    assert WebhookAttempt.objects.filter(message=message).count() == 2

    listing = admin_client.get(
        reverse("admin:engage_webhookmessage_changelist"),
        {"status__exact": "delivered", "type__exact": "response.completed"},
    )
    assert str(message.pk) in listing.content.decode()
    listing = admin_client.get(
        reverse("admin:engage_webhookmessage_changelist"), {"status__exact": "failed"}
    )
    assert str(message.pk) not in listing.content.decode()
    listing = admin_client.get(
        reverse("admin:engage_webhookmessage_changelist"), {"q": str(message.pk)}
    )
    assert str(message.pk) in listing.content.decode()  # found by its webhook-id
    listing = admin_client.get(reverse("admin:engage_webhookmessage_changelist"), {"q": "x"})
    assert listing.status_code == 200
    assert admin_client.get(reverse("admin:engage_webhookmessage_add")).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_admin_sends_a_failed_message_again(admin_client, app_keys, receiver):
    endpoint = endpoint_for(receiver, app_keys.app)
    receiver.statuses = [410]
    [message] = webhook_emit(app=app_keys.app, type="response.completed", payload=RESPONSE)
    endpoint.active = True  # the receiver is back
    endpoint.save()

    admin_client.post(
        reverse("admin:engage_webhookmessage_changelist"),
        {"action": "send_again", "_selected_action": [str(message.pk)]},
    )

    message.refresh_from_db()
    assert (message.status, message.attempts) == ("delivered", 2)
    assert len(receiver.requests) == 2
    assert receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"]
