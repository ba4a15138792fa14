"""Tenancy: an App is one product that embeds Engage."""

from __future__ import annotations

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


class SnowplowAppId(models.Model):
    """A Snowplow `aid` value whose events belong to an App."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="snowplow_app_ids")
    aid = models.CharField(max_length=255, unique=True)

    class Meta:
        ordering = ["aid"]
        verbose_name = "Snowplow app id"

    def __str__(self) -> str:
        return self.aid
