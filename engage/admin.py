"""Admin for Apps: keys are generated on creation and the secret key is shown once."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from engage import keys
from engage.admin_explain import IdentityFailureInline, TestUserInline, rotate_identity_secret
from engage.models import App, SnowplowAppId
from engage.selectors import app_cache_clear
from engage.services import app_secret_key_rotate

ROTATION_GRACE_HOURS = 24.0


class SnowplowAppIdInline(admin.TabularInline):
    model = SnowplowAppId
    extra = 1


@admin.register(App)
class AppAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "public_key",
        "secret_key_prefix",
        "identity_verification",
        "created_at",
    ]
    search_fields = ["name", "public_key"]
    inlines = [SnowplowAppIdInline, TestUserInline, IdentityFailureInline]
    readonly_fields = [
        "public_key",
        "secret_key_prefix",
        "secret_key_previous_until",
        "identity_secret",
        "identity_secret_previous_until",
        "created_at",
    ]
    fields = [
        "name",
        "default_locale",
        "allowed_origins",
        "identity_verification",
        "identity_mode",
        "identity_enforcement",
        "identity_secret_previous_until",
        "timezone",
        "quiet_hours",
        "event_retention_days",
        "public_key",
        "secret_key_prefix",
        "secret_key_previous_until",
        "identity_secret",
        "created_at",
    ]
    actions = ["rotate_secret_key", "rotate_secret_key_now", rotate_identity_secret]

    def save_model(self, request: HttpRequest, obj: App, form: Any, change: bool) -> None:
        secret = None
        if not change:
            secret = keys.secret_key_generate()
            obj.public_key = keys.public_key_generate()
            obj.secret_key_hash = keys.secret_key_hash(secret)
            obj.secret_key_prefix = secret[:10]
            obj.identity_secret = keys.identity_secret_generate()
        obj.allowed_origins = [str(o).strip().rstrip("/") for o in obj.allowed_origins or []]
        super().save_model(request, obj, form, change)
        app_cache_clear()
        if secret:
            messages.warning(request, f"Secret key (shown only now, keep it safe): {secret}")

    @admin.action(description="Rotate the secret key (the old one works 24 hours more)")
    def rotate_secret_key(self, request: HttpRequest, queryset: QuerySet[App]) -> None:
        self._rotate(request, queryset, grace_hours=ROTATION_GRACE_HOURS)

    @admin.action(description="Rotate the secret key now (the old one stops at once)")
    def rotate_secret_key_now(self, request: HttpRequest, queryset: QuerySet[App]) -> None:
        self._rotate(request, queryset, grace_hours=0)

    def _rotate(self, request: HttpRequest, queryset: QuerySet[App], *, grace_hours: float) -> None:
        for app in queryset:
            rotated = app_secret_key_rotate(app=app, grace_hours=grace_hours)
            until = rotated.previous_until
            after = (
                f"the previous key works until {until:%Y-%m-%d %H:%M} UTC"
                if until
                else "the previous key no longer works"
            )
            # Custom actions are not logged by Django: record who rotated which key, and when.
            self.log_change(request, app, f"Rotated the secret key; {after}.")
            messages.warning(
                request,
                f"New secret key of {app.name} (shown only now): {rotated.secret_key}; {after}.",
            )


import engage.admin_insights  # noqa: E402 - KPIs, saved insights, dashboards
import engage.admin_webhooks  # noqa: E402 - registers the webhook admins
import engage.dashboard_admin  # noqa: E402,F401 - adds the App "Overview" pages
from engage import admin_debug  # noqa: E402,F401 - adds the "Incoming events" page
