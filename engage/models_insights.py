"""KPIs, saved insights and custom dashboards of an App (docs/insights.md)."""

from __future__ import annotations

from django.db import models


class KpiKind(models.TextChoices):
    EVENT = "event", "Event"
    FUNNEL = "funnel", "Funnel"


class Kpi(models.Model):
    """A number the App cares about, measured per person: did they do the event (or complete
    the funnel) within `window_days` of their first exposure to a campaign?

    `definition` is `{"event", "where"?}` for an event KPI and `{"steps", "window"?}` for a
    funnel KPI (the insight definitions of `segments.insights`).
    """

    app = models.ForeignKey("engage.App", on_delete=models.CASCADE, related_name="kpis")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=16, choices=KpiKind.choices, default=KpiKind.EVENT)
    definition = models.JSONField(default=dict)
    window_days = models.PositiveIntegerField(
        default=14, help_text="The KPI counts this many days after a person's first exposure."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = "KPI"
        constraints = [
            models.UniqueConstraint(fields=["app", "name"], name="kpi_unique_name_per_app")
        ]

    def __str__(self) -> str:
        return self.name


class InsightKind(models.TextChoices):
    TREND = "trend", "Trend"
    FUNNEL = "funnel", "Funnel"


class Insight(models.Model):
    """A saved trend or funnel definition, to reuse through the API and on dashboards."""

    app = models.ForeignKey("engage.App", on_delete=models.CASCADE, related_name="insights")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=InsightKind.choices)
    definition = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Dashboard(models.Model):
    """A custom dashboard: tiles of saved insights, survey scores and campaign results."""

    app = models.ForeignKey("engage.App", on_delete=models.CASCADE, related_name="dashboards")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class DashboardTile(models.Model):
    """One tile: `kind` names a registered tile type (`engage.dashboard_tiles`); `config` holds
    what that type needs (`{"insight": id}`, `{"survey_id": id}`, `{"kind", "id"}` …)."""

    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="tiles")
    title = models.CharField(max_length=200, blank=True, default="")
    kind = models.CharField(max_length=32)
    config = models.JSONField(default=dict, blank=True)
    position = models.PositiveIntegerField(default=0)
    width = models.PositiveSmallIntegerField(
        default=1, help_text="1 = half the dashboard's width, 2 = the full width."
    )

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.title or self.kind
