"""Tenancy: an App is one product that embeds Engage."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.validators import MinValueValidator
from django.db import models


class IdentityMode(models.TextChoices):
    HASH = "hash", "HMAC user hash"
    TOKEN = "token", "Signed identity token (JWT)"
    HASH_OR_TOKEN = "hash_or_token", "Hash or token"


class IdentityEnforcement(models.TextChoices):
    ENFORCE = "enforce", "Enforce: refuse unproven identities"
    MONITOR = "monitor", "Monitor: let them through, count and list them"


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
    secret_key_hash_previous = models.CharField(max_length=64, blank=True, default="")
    secret_key_previous_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="After a rotation the previous secret key keeps working until then.",
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
    event_retention_days = models.PositiveIntegerField(
        default=395,
        validators=[MinValueValidator(1)],
        help_text=(
            "Events that happened longer ago than this are deleted (docs/ingestion.md, Retention)."
        ),
    )
    identity_mode = models.CharField(
        max_length=16,
        choices=IdentityMode.choices,
        default=IdentityMode.HASH,
        help_text="What proves a user id when identity verification is on (docs/identity.md).",
    )
    identity_enforcement = models.CharField(
        max_length=16,
        choices=IdentityEnforcement.choices,
        default=IdentityEnforcement.ENFORCE,
        help_text="Monitor lets unproven identities through but counts and lists them.",
    )
    identity_secret_previous = models.CharField(max_length=64, blank=True, default="")
    identity_secret_previous_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Hashes and tokens made with the previous identity secret work until then.",
    )
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        help_text="Time zone for quiet hours of people without a valid timezone attribute.",
    )
    quiet_hours = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"start": "22:00", "end": "08:00"} in each person\'s time zone; empty: none.',
    )
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

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from engage.errors import InvalidInput
        from engage.quiet_hours import quiet_hours_validate, zone

        try:
            self.quiet_hours = quiet_hours_validate(self.quiet_hours)
        except InvalidInput as exc:
            raise ValidationError({"quiet_hours": exc.message}) from None
        if zone(self.timezone) is None:
            raise ValidationError({"timezone": f'"{self.timezone}" is not an IANA time zone'})


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
    # Experiment set-up (docs/insights.md): what the campaign should move and how to split.
    hypothesis = models.TextField(
        blank=True, default="", help_text="What this campaign should change, and why."
    )
    primary_kpi = models.ForeignKey(
        "engage.Kpi",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The KPI that decides the experiment (and drives adaptive allocation).",
    )
    minimum_detectable_effect = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        default=10,
        help_text="Smallest relative lift worth detecting, in percent (10 = a 10% change).",
    )
    allocation = models.CharField(
        max_length=16,
        choices=[("fixed", "Fixed weights"), ("adaptive", "Adaptive (Thompson sampling)")],
        default="fixed",
    )
    adaptive_weights = models.JSONField(
        default=dict,
        blank=True,
        help_text="Variant weights last computed by adaptive allocation; empty: fixed weights.",
    )
    adaptive_updated_at = models.DateTimeField(null=True, blank=True)
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


class TestUser(models.Model):
    """A user id of the App's own team, on whose open widgets drafts can be previewed."""

    __test__ = False  # a model, not a test class for pytest's collector

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="test_users")
    user_id = models.CharField(max_length=255)
    note = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user_id"]
        constraints = [
            models.UniqueConstraint(fields=["app", "user_id"], name="test_user_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} ({self.note})" if self.note else self.user_id


class PreviewToken(models.Model):
    """A one-time preview link: shows one campaign to whichever browser redeems it first.

    Only the SHA-256 of the nonce is stored; the link carries a signed, short-lived token.
    """

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32)
    campaign_id = models.BigIntegerField()
    nonce_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    delivery = models.ForeignKey(
        Delivery, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"preview of {self.kind} #{self.campaign_id}"


class IdentityFailureCause(models.TextChoices):
    MISSING = "missing", "No hash or token"
    BAD_SIGNATURE = "bad_signature", "Wrong hash or token signature"
    TOKEN_EXPIRED = "token_expired", "Token expired"
    TOKEN_INVALID = "token_invalid", "Malformed token"
    SUB_MISMATCH = "sub_mismatch", "Token for another user"


class IdentityFailure(models.Model):
    """Identity proofs that failed, counted per App, day and cause, with the latest examples.

    Kept in both enforcement modes; in monitor mode they are the requests that would have been
    refused, so an App can see who would break before it turns enforcement on.
    """

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="identity_failures")
    day = models.DateField()
    cause = models.CharField(max_length=32, choices=IdentityFailureCause.choices)
    count = models.PositiveIntegerField(default=0)
    allowed = models.PositiveIntegerField(
        default=0, help_text="How many were let through (monitor mode)."
    )
    examples = models.JSONField(default=list, blank=True)
    last_at = models.DateTimeField()

    class Meta:
        ordering = ["-day", "cause"]
        constraints = [
            models.UniqueConstraint(fields=["app", "day", "cause"], name="identity_failure_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.cause}: {self.count}"


from engage.models_insights import Dashboard, DashboardTile, Insight, Kpi  # noqa: E402,F401
from engage.models_webhooks import WebhookAttempt, WebhookEndpoint, WebhookMessage  # noqa: E402,F401
