"""Admin for sentiment alerts: rules Parker sets per survey or App, and the alerts they fired."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from surveys.models import SentimentAlert, SentimentAlertRule


@admin.register(SentimentAlertRule)
class SentimentAlertRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "app", "survey", "kind", "threshold", "min_answers", "active"]
    list_filter = ["app", "kind", "active"]
    search_fields = ["name"]
    raw_id_fields = ["survey"]
    fields = ["app", "survey", "name", "kind", "threshold", "min_answers", "active"]


@admin.register(SentimentAlert)
class SentimentAlertAdmin(admin.ModelAdmin):
    """Alerts are made by the rules only: read-only here."""

    list_display = ["fired_at", "app", "rule", "period_start", "value", "previous_value", "answers"]
    list_filter = ["app", "rule__kind"]
    search_fields = ["message", "rule__name"]
    list_select_related = ["app", "rule"]
    date_hierarchy = "fired_at"
    readonly_fields = [
        "rule",
        "app",
        "period_start",
        "value",
        "previous_value",
        "answers",
        "message",
        "fired_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
