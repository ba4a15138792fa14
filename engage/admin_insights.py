"""Admin for KPIs, saved insights and custom dashboards, and the experiment parts that the
message and survey admins share (set-up fields, the KPI section of their results pages).

A dashboard's page (`…/dashboard/<id>/view/`) draws every tile with the App overview's
script (static/engage/admin/overview.js and the vendored Chart.js).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from engage import errors
from engage.dashboard_tiles import dashboard_data, dashboard_tile_types
from engage.insights import insight_parse
from engage.kpis import campaign_kpi_results, kpi_steps
from engage.models_insights import Dashboard, DashboardTile, Insight, Kpi

DEFAULT_MDE = Decimal(10)
EXPERIMENT_FIELDS = ["hypothesis", "primary_kpi", "minimum_detectable_effect", "allocation"]
EXPERIMENT_FIELDSET: tuple[str, Any] = (
    "Experiment",
    {
        "fields": EXPERIMENT_FIELDS,
        "description": "What this campaign should move. Results show every KPI of the App for "
        "exposed people against the holdout; adaptive allocation shifts variant traffic toward "
        "the variant that does best on the primary KPI (the holdout never changes).",
    },
)


# --- experiment set-up on the campaign forms ---------------------------------------------------


def experiment_form_init(form: forms.ModelForm, app_id: int | None) -> None:
    """Offer the App's KPIs as primary KPI; the experiment fields may be left empty."""
    field = form.fields.get("primary_kpi")
    if isinstance(field, forms.ModelChoiceField):
        # Before the App is chosen every KPI is offered; clean() refuses another App's.
        field.queryset = (
            Kpi.objects.filter(app_id=app_id) if app_id else Kpi.objects.select_related("app")
        )
    for name in ("minimum_detectable_effect", "allocation"):  # left empty: the defaults
        if name in form.fields:
            form.fields[name].required = False


def experiment_form_clean(form: forms.ModelForm, cleaned: dict[str, Any]) -> None:
    """Empty fields take their defaults; adaptive allocation needs a primary KPI of the
    campaign's App."""
    if cleaned.get("minimum_detectable_effect") is None:
        cleaned["minimum_detectable_effect"] = DEFAULT_MDE
    if not cleaned.get("allocation"):
        cleaned["allocation"] = "fixed"
    kpi = cleaned.get("primary_kpi")
    app = cleaned.get("app") or getattr(form.instance, "app", None)
    if kpi is not None and app is not None and kpi.app_id != app.pk:
        form.add_error("primary_kpi", "This KPI belongs to another App.")
    if cleaned.get("allocation") == "adaptive" and kpi is None:
        form.add_error("primary_kpi", "Adaptive allocation needs a primary KPI to optimise.")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _interval(values: list[float] | None) -> str:
    if not values:
        return "–"
    return f"{values[0]:+.1%} to {values[1]:+.1%}"


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def kpi_section(*, campaign: Any, kind: str, variants: list[str]) -> dict[str, Any]:
    """The results pages' "Experiment" section: set-up and one table per KPI, formatted."""
    try:
        experiment = campaign_kpi_results(campaign=campaign, kind=kind, variants=variants or [""])
    except errors.EngageError as exc:  # e.g. over the time budget: the rest of the page shows
        return {"error": exc.message, "kpis": []}
    blocks = []
    for block in experiment["kpis"]:
        groups = [("Holdout", block["holdout"], False)]
        groups.append(("Exposed (all variants)", block["exposed"], True))
        groups += [(f"Variant {v['variant']}", v, True) for v in block["variants"]]
        rows = []
        for label, group, compared in groups:
            rows.append(
                {
                    "label": label,
                    "people": group["people"],
                    "converted": group["converted"],
                    "rate": _pct(group["rate"]),
                    "rate_interval": f"{_pct(group['rate_interval'][0])} – "
                    f"{_pct(group['rate_interval'][1])}",
                    "lift": _pct(group["lift"]) if compared else "",
                    "lift_interval": _interval(group["lift_interval"]) if compared else "",
                    "p": _p(group["p_value"]) if compared else "",
                    "verdict": group["verdict"] if compared else "",
                    "significant": compared and group["significant"],
                }
            )
        needed = block["sample_size_per_group"]
        sample_size_text = (
            f"About {needed:,} people per group are needed to detect a "
            f"{block['minimum_detectable_effect']:g}% change at 95% confidence and 80% power."
            if needed
            else ""
        )
        blocks.append({**block, "rows": rows, "sample_size_text": sample_size_text})
    return {
        **experiment["experiment"],
        "primary_kpi_name": next(
            (b["kpi"]["name"] for b in experiment["kpis"] if b["primary"]), None
        ),
        "kpis": blocks,
        "kpi_admin_url": reverse("admin:engage_kpi_changelist"),
    }


# --- KPIs and saved insights -------------------------------------------------------------------


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


class KpiForm(forms.ModelForm):
    class Meta:
        model = Kpi
        fields = ["app", "name", "description", "kind", "definition", "window_days"]
        help_texts = {
            "definition": 'Event: {"event": "upgraded", "where": [...]}; funnel: '
            '{"steps": [{"event": "signup"}, {"event": "upgraded"}], '
            '"window": {"value": 7, "unit": "day"}}.',
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind, definition = cleaned.get("kind"), cleaned.get("definition")
        if kind and definition is not None:
            try:
                kpi_steps(kind=kind, definition=definition)
            except errors.InvalidInput as exc:
                self.add_error("definition", ValidationError(exc.message))
        return cleaned


@admin.register(Kpi)
class KpiAdmin(admin.ModelAdmin):
    form = KpiForm
    list_display = ["name", "app", "kind", "window_days", "updated_at"]
    list_filter = ["app", "kind"]
    search_fields = ["name", "description"]
    list_select_related = ["app"]


class InsightForm(forms.ModelForm):
    class Meta:
        model = Insight
        fields = ["app", "name", "kind", "definition"]
        help_texts = {
            "definition": 'Trend: {"event": "page_view", "interval": "day", "last_days": 30}; '
            'funnel: {"steps": [{"event": "signup"}, {"event": "upgraded"}], "last_days": 30}.',
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        app, kind, definition = cleaned.get("app"), cleaned.get("kind"), cleaned.get("definition")
        if app and kind and definition is not None:
            try:
                insight_parse(app=app, kind=kind, definition=definition)
            except errors.InvalidInput as exc:
                self.add_error("definition", ValidationError(exc.message))
        return cleaned


@admin.register(Insight)
class InsightAdmin(admin.ModelAdmin):
    form = InsightForm
    list_display = ["name", "app", "kind", "updated_at"]
    list_filter = ["app", "kind"]
    search_fields = ["name"]
    list_select_related = ["app"]


# --- dashboards --------------------------------------------------------------------------------


class DashboardTileForm(forms.ModelForm):
    kind = forms.ChoiceField(choices=())

    class Meta:
        model = DashboardTile
        fields = ["position", "kind", "title", "config", "width"]
        help_texts = {
            "config": '{"insight": ID} for trend and funnel; {"kind": "message", "id": ID} for '
            'campaign results; {"survey_id": ID, "last_days": 30} for survey NPS and sentiment.',
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kind = self.fields["kind"]
        assert isinstance(kind, forms.ChoiceField)  # noqa: S101 - declared above
        kind.choices = [(t.kind, t.title) for t in dashboard_tile_types()]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        dashboard = self.instance.dashboard if self.instance.dashboard_id else None
        app = getattr(dashboard, "app", None) or getattr(self, "dashboard_app", None)
        kind, config = cleaned.get("kind"), cleaned.get("config") or {}
        if app is not None and kind:
            tile_type = next((t for t in dashboard_tile_types() if t.kind == kind), None)
            if tile_type is not None:
                try:
                    cleaned["config"] = tile_type.check(app, config, "config")
                except errors.InvalidInput as exc:
                    self.add_error("config", ValidationError(exc.message))
        return cleaned


class DashboardTileInline(admin.TabularInline):
    model = DashboardTile
    form = DashboardTileForm
    extra = 1
    ordering = ["position", "id"]


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    list_display = ["name", "app", "tile_count", "view_link", "updated_at"]
    list_filter = ["app"]
    search_fields = ["name", "description"]
    list_select_related = ["app"]
    inlines = [DashboardTileInline]

    @admin.display(description="tiles")
    def tile_count(self, obj: Dashboard) -> int:
        return obj.tiles.count()

    @admin.display(description="dashboard")
    def view_link(self, obj: Dashboard) -> SafeString:
        return format_html(
            '<a href="{}">View</a>', reverse("admin:engage_dashboard_view", args=[obj.pk])
        )

    def view_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        dashboard = self.get_object(request, object_id)
        if dashboard is None:
            raise Http404(f"No dashboard with id {object_id}.")
        if not self.has_view_permission(request, dashboard):
            raise PermissionDenied
        data = dashboard_data(dashboard=dashboard)
        panels = [
            {
                "key": f"tile-{tile['id']}",
                "title": tile["title"],
                "description": "",
                "wide": tile["width"] == 2,
                "data": tile.get("data") or {"type": "error"},
                "error": (tile.get("error") or {}).get("message"),
            }
            for tile in data["tiles"]
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": dashboard.name,
            "dashboard": dashboard,
            "panels": panels,
            "change_url": reverse("admin:engage_dashboard_change", args=[dashboard.pk]),
        }
        return TemplateResponse(request, "admin/engage/dashboard/view.html", context)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.view_view)
        return [
            path("<path:object_id>/view/", view, name="engage_dashboard_view"),
            *super().get_urls(),
        ]
