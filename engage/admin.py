"""Admin for Apps: keys are generated on creation and the secret key is shown once."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from engage import keys
from engage.models import App, SnowplowAppId
from engage.selectors import app_cache_clear
from engage.services import app_secret_key_rotate


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
    inlines = [SnowplowAppIdInline]
    readonly_fields = ["public_key", "secret_key_prefix", "identity_secret", "created_at"]
    fields = [
        "name",
        "default_locale",
        "allowed_origins",
        "identity_verification",
        "public_key",
        "secret_key_prefix",
        "identity_secret",
        "created_at",
    ]
    actions = ["rotate_secret_key"]

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

    @admin.action(description="Rotate the secret key (the old one stops working)")
    def rotate_secret_key(self, request: HttpRequest, queryset: QuerySet[App]) -> None:
        for app in queryset:
            secret = app_secret_key_rotate(app=app)
            messages.warning(request, f"New secret key of {app.name} (shown only now): {secret}")


import engage.admin_webhooks  # noqa: E402,F401 - registers the webhook admins
from engage import admin_debug  # noqa: E402,F401 - adds the "Incoming events" page
