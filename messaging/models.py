"""In-app messages: modals, banners, slide-ins and inbox posts, with A/B variants."""

from __future__ import annotations

from django.db import models

from engage.models import Campaign


class MessageKind(models.TextChoices):
    MODAL = "modal", "Modal"
    BANNER = "banner", "Banner"
    SLIDE_IN = "slide_in", "Slide-in"
    INBOX = "inbox", "Inbox"


class Message(Campaign):
    """A message campaign.

    `content` maps a locale to `{"title", "body" (markdown), "buttons": [{"label", "action",
    "url"?, "event"?}]}`. `variants` is `[{"key", "weight", "content"?}]`: a variant without
    content shows the base content (useful as an in-campaign control).
    """

    kind = models.CharField(max_length=16, choices=MessageKind.choices, default=MessageKind.MODAL)
    content = models.JSONField(default=dict)
    variants = models.JSONField(default=list, blank=True)

    class Meta(Campaign.Meta):
        indexes = [models.Index(fields=["app", "status"], name="message_app_status")]
