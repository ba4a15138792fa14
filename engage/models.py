"""Tenancy: an App is one product that embeds Engage."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models


class App(models.Model):
    """One product that embeds Engage, with its keys and browser settings.

    The secret key is stored only as a SHA-256 hash (keys are 192-bit random, so a fast hash
    is enough); it is shown once, when created or rotated.
    """

    name = models.CharField(max_length=200)
    public_key = models.CharField(max_length=64, unique=True)
    secret_key_hash = models.CharField(max_length=64, unique=True)
    secret_key_prefix = models.CharField(
        max_length=16, help_text="The first characters of the secret key, to recognise it."
    )
    identity_secret = models.CharField(max_length=64)
    identity_verification = models.BooleanField(
        default=False,
        help_text=(
            "When on, requests that name a user_id must carry "
            "HMAC-SHA256(identity secret, user_id)."
        ),
    )
    allowed_origins = models.JSONField(
        default=list,
        blank=True,
        help_text='Origins the widget and collector may be called from, e.g. "https://app.example.com".',
    )
    default_locale = models.CharField(max_length=16, default="en")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        # Keys and settings are cached per process for the ingest path: drop this process's
        # copy at once; other processes refresh within engage.selectors.APP_CACHE_SECONDS.
        from engage.selectors import app_cache_clear

        app_cache_clear()


class SnowplowAppId(models.Model):
    """A Snowplow `aid` value whose events belong to an App."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="snowplow_app_ids")
    aid = models.CharField(max_length=255, unique=True)

    class Meta:
        ordering = ["aid"]
        verbose_name = "Snowplow app id"

    def __str__(self) -> str:
        return self.aid


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    LIVE = "live", "Live"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


class TriggerOn(models.TextChoices):
    PAGE_VIEW = "page_view", "Page view"
    EVENT = "event", "Event"
    SESSION_START = "session_start", "Session start"
    API = "api", "API or push only"


class Campaign(models.Model):
    """What messages and surveys share: audience, trigger and display rules.

    Each campaign kind (messaging.Message, surveys.Survey) is a concrete subclass and
    registers itself with the targeting engine (engage.campaigns.campaign_kind_register).
    """

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    audience = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"segments": [slug, …], "condition": {…}}; empty means everyone in the App.',
    )
    trigger = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"on": "page_view"|"event"|"session_start"|"api", "event"?, "url"?, '
        '"delay_seconds"?}',
    )
    priority = models.IntegerField(default=0, help_text="Higher shows first.")
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    sample_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=100, help_text="Share of the audience (0–100)."
    )
    holdout_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=0,
        help_text="Control group (0–100): recorded but never shown.",
    )
    max_impressions = models.PositiveIntegerField(
        null=True, blank=True, help_text="Times one person may see it; empty means no cap."
    )
    recontact_days = models.PositiveIntegerField(
        default=0, help_text="Not shown to someone who saw any campaign in this many days."
    )
    goal_event = models.CharField(max_length=255, blank=True, default="")
    goal_window_days = models.PositiveIntegerField(
        default=14, help_text="A goal event counts as a conversion this long after exposure."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-priority", "id"]

    def __str__(self) -> str:
        return self.name


class Delivery(models.Model):
    """One exposure of one campaign to one person, and what the person did with it.

    A holdout delivery records that the person was in the control group: it is never shown.
    Its id is a UUID because browsers report on it with the public key.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="deliveries")
    person = models.ForeignKey(
        "segments.Person", on_delete=models.CASCADE, related_name="deliveries"
    )
    kind = models.CharField(max_length=32)
    campaign_id = models.BigIntegerField()
    variant = models.CharField(max_length=64, blank=True, default="")
    holdout = models.BooleanField(default=False)
    is_test = models.BooleanField(default=False)
    context = models.JSONField(default=dict, blank=True)
    decided_at = models.DateTimeField()
    shown_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    clicked_button = models.CharField(max_length=200, blank=True, default="")
    dismissed_at = models.DateTimeField(null=True, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-decided_at", "-id"]
        indexes = [
            models.Index(fields=["person", "kind", "campaign_id"], name="delivery_person_campaign"),
            models.Index(fields=["kind", "campaign_id", "variant"], name="delivery_campaign"),
            models.Index(fields=["person", "shown_at"], name="delivery_person_shown"),
        ]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.kind} #{self.campaign_id} → person {self.person_id}"


from engage.models_webhooks import WebhookAttempt, WebhookEndpoint, WebhookMessage  # noqa: E402,F401
