"""Admin for webhooks: endpoints with their secret, and every message with each attempt.

Messages and attempts are read-only: they are what Engage sent and what it was told back.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from engage.models_webhooks import (
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEventType,
    WebhookMessage,
)
from engage.webhooks import webhook_endpoint_secret_rotate, webhook_message_resend

RECENT_MESSAGES = 20


class WebhookEndpointForm(forms.ModelForm):
    event_types = forms.MultipleChoiceField(
        choices=WebhookEventType.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Leave all unticked to receive every event type, new ones included.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["app", "url", "description", "event_types", "active"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "app", "event_types_display", "active", "created_at"]
    list_filter = ["active", "app"]
    search_fields = ["url", "description"]
    list_select_related = ["app"]
    readonly_fields = ["secret", "previous_secret_expires_at", "created_at", "recent_messages"]
    actions = ["rotate_secret"]

    def get_fields(
        self, request: HttpRequest, obj: WebhookEndpoint | None = None
    ) -> tuple[str, ...]:
        fields = ("app", "url", "description", "event_types", "active")
        if obj is None:  # the secret is generated on save, then shown
            return fields
        return (*fields, "secret", "previous_secret_expires_at", "created_at", "recent_messages")

    @admin.display(description="event types")
    def event_types_display(self, obj: WebhookEndpoint) -> str:
        return ", ".join(obj.event_types) or "all"

    @admin.display(description="recent messages")
    def recent_messages(self, obj: WebhookEndpoint) -> SafeString | str:
        recent = obj.messages.order_by("-created_at")[:RECENT_MESSAGES]
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:engage_webhookmessage_change", args=[m.pk]),
                    m.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    m.type,
                    m.status,
                    m.attempts,
                )
                for m in recent
            ),
        )
        if not rows:
            return "None yet."
        every = reverse("admin:engage_webhookmessage_changelist") + f"?endpoint__id__exact={obj.pk}"
        return format_html(
            "<table><tr><th>event time</th><th>type</th><th>status</th><th>attempts</th></tr>"
            '{}</table><p><a href="{}">All messages of this endpoint</a></p>',
            rows,
            every,
        )

    def save_model(
        self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            messages.success(
                request,
                f"Signing secret of {obj.url}: {obj.secret} (verify webhooks with it; it is "
                "also shown on this endpoint's page).",
            )

    @admin.action(description="Rotate the signing secret (the old one also signs for 24 h)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            secret = webhook_endpoint_secret_rotate(endpoint=endpoint)
            self.log_change(request, endpoint, "Rotated the signing secret.")
            messages.warning(request, f"New signing secret of {endpoint.url}: {secret}")


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = readonly_fields = ("at", "status_code", "duration_ms", "error", "response_body")
    ordering = ["at", "id"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookMessage)
class WebhookMessageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "type",
        "endpoint",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "type", "endpoint", "endpoint__app"]
    list_select_related = ["endpoint"]
    search_fields = ["id"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "id",
        "endpoint",
        "type",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "delivered_at",
        "payload_pretty",
    )
    inlines = [WebhookAttemptInline]
    actions = ["send_again"]

    @admin.display(description="payload")
    def payload_pretty(self, obj: WebhookMessage) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # Everything is read-only: what was sent and what came back.
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Send again now", permissions=["change"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[WebhookMessage]) -> None:
        for message in queryset:
            webhook_message_resend(message=message)
            self.log_change(request, message, "Queued to be sent again.")
        messages.info(request, f"{queryset.count()} message(s) queued to be sent again.")
