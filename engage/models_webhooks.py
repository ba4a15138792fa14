"""Webhooks: endpoints an App registers, one message per (endpoint, event), and each attempt.

Kept apart from `engage.models` so that webhooks can change without touching tenancy or
campaigns; `engage.models` imports these classes so that Django sees them in the `engage` app.
"""

from __future__ import annotations

import base64
import secrets
import uuid

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import models

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not a secret


def webhook_secret_generate() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 24 random bytes (192 bits)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


class WebhookEventType(models.TextChoices):
    RESPONSE_COMPLETED = "response.completed", "A survey response was completed"
    DELIVERY_SHOWN = "delivery.shown", "A message or survey was shown"
    DELIVERY_CLICKED = "delivery.clicked", "A button of a message was clicked"
    DELIVERY_DISMISSED = "delivery.dismissed", "A message or survey was dismissed"
    DELIVERY_CONVERTED = "delivery.converted", "A goal event converted a delivery"
    SENTIMENT_ALERT = "sentiment.alert", "A sentiment alert rule fired"


def _event_types_validate(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError("Give a list of event types (empty means all of them).")
    unknown = sorted(set(value) - set(WebhookEventType.values))
    if unknown:
        raise ValidationError(
            f"Unknown event types: {', '.join(unknown)}; "
            f"known: {', '.join(WebhookEventType.values)}."
        )


class WebhookEndpoint(models.Model):
    """A URL of the App's that receives signed events.

    The secret is kept in clear text because every send is signed with it (HMAC); it is shown
    to staff in the admin. After a rotation the previous secret also signs until
    `previous_secret_expires_at`, so receivers can switch without missing a message.
    """

    app = models.ForeignKey("engage.App", on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(
        max_length=2000,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Receives a POST per event. Use https outside development.",
    )
    description = models.CharField(max_length=500, blank=True, default="")
    event_types = models.JSONField(
        default=list,
        blank=True,
        validators=[_event_types_validate],
        help_text="Event types sent to this URL; empty means all of them.",
    )
    secret = models.CharField(max_length=100, default=webhook_secret_generate, editable=False)
    previous_secret = models.CharField(max_length=100, blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    active = models.BooleanField(
        default=True,
        help_text="Turned off by hand, or by Engage when the URL answers 410 Gone.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["app", "active"], name="webhook_endpoint_app_active")]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return self.url

    def wants(self, type_: str) -> bool:
        return not self.event_types or type_ in self.event_types


class WebhookMessageStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookMessage(models.Model):
    """One event for one endpoint. Its id is the `webhook-id` header: the same on every retry,
    so receivers can use it to process an event once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="messages")
    type = models.CharField(max_length=64, choices=WebhookEventType.choices)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(help_text="When the event happened.")
    status = models.CharField(
        max_length=16,
        choices=WebhookMessageStatus.choices,
        default=WebhookMessageStatus.PENDING,
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    sending_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker is sending it; others leave it alone until then."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["endpoint", "-created_at"], name="webhook_message_endpoint"),
            models.Index(fields=["status", "next_attempt_at"], name="webhook_message_due"),
        ]
        verbose_name = "webhook message"

    def __str__(self) -> str:
        return f"{self.type} → {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a message: what the endpoint answered, or why there was no answer."""

    message = models.ForeignKey(
        WebhookMessage, on_delete=models.CASCADE, related_name="attempt_records"
    )
    at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="", help_text="The first 1 KB.")
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = "webhook attempt"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.status_code or self.error[:40]}"
