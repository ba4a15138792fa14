"""The App's overview dashboard: panels that engage and the campaign kinds contribute.

engage never imports `messaging` or `surveys`; a kind that has something to show registers a
panel in its `AppConfig.ready()` with `dashboard_panel_register`. engage itself provides the
panels built from data it owns or may read (events per day and active people from `segments`,
live campaigns with shown and converted counts through the campaign kind registry).

A panel's `build(app, period)` returns JSON-ready data for one of a few shapes, drawn by
`static/engage/admin/overview.js` with the vendored Chart.js:

- `{"type": "line" | "bar", "labels": [...], "series": [{"label", "data", "color"?,
  "axis"?: "y" | "y2", "type"?: "line" | "bar", "stack"?}], "y": {"min"?, "max"?},
  "y2"?: {...}, "note"?}`;
- `{"type": "numbers", "items": [{"label", "value", "note"?}]}`;
- `{"type": "table", "columns": [...], "rows": [[...]], "empty": "…"}`;
- `{"type": "quotes", "items": [{"text", "meta", "score"?}], "empty": "…"}`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Q, Sum
from django.utils import timezone

from engage.campaigns import campaign_kinds
from engage.models import App, CampaignStatus, Delivery
from segments.models import EventDailyCount, Person

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30


@dataclass(frozen=True)
class DashboardPeriod:
    """The days shown: [since, until) in whole UTC days, bucketed by day or, past a month,
    by ISO week (Monday)."""

    since: date
    until: date
    interval: str
    now: datetime

    @property
    def since_at(self) -> datetime:
        return datetime.combine(self.since, time.min, tzinfo=UTC)

    @property
    def until_at(self) -> datetime:
        return datetime.combine(self.until, time.min, tzinfo=UTC)

    def bucket(self, day: date) -> date:
        return day - timedelta(days=day.weekday()) if self.interval == "week" else day

    def buckets(self) -> list[date]:
        step = timedelta(days=7 if self.interval == "week" else 1)
        day, last, out = self.bucket(self.since), self.bucket(self.until - timedelta(days=1)), []
        while day <= last:
            out.append(day)
            day += step
        return out


def dashboard_period(*, days: int = DEFAULT_PERIOD, now: datetime | None = None) -> DashboardPeriod:
    """The last `days` UTC days up to and including today."""
    now = now or timezone.now()
    until = now.astimezone(UTC).date() + timedelta(days=1)
    return DashboardPeriod(
        since=until - timedelta(days=days),
        until=until,
        interval="day" if days <= 31 else "week",
        now=now,
    )


@dataclass(frozen=True)
class DashboardPanel:
    """One card of the overview. `order` sorts cards; `wide` spans the whole row."""

    key: str
    title: str
    build: Callable[[App, DashboardPeriod], dict[str, Any]]
    order: int = 100
    wide: bool = False
    description: str = ""


_panels: dict[str, DashboardPanel] = {}


def dashboard_panel_register(panel: DashboardPanel) -> None:
    _panels[panel.key] = panel


def dashboard_panels() -> list[DashboardPanel]:
    return sorted(_panels.values(), key=lambda p: (p.order, p.key))


def dashboard_build(*, app: App, period: DashboardPeriod) -> list[dict[str, Any]]:
    """Every registered panel for the App and period, in order, as JSON-ready cards."""
    return [
        {
            "key": panel.key,
            "title": panel.title,
            "description": panel.description,
            "wide": panel.wide,
            "data": panel.build(app, period),
        }
        for panel in dashboard_panels()
    ]


# --- engage's own panels ------------------------------------------------------------------------


def _labels(period: DashboardPeriod) -> list[str]:
    return [d.isoformat() for d in period.buckets()]


def events_per_day_panel(app: App, period: DashboardPeriod) -> dict[str, Any]:
    """Events per day (or week) from the per-person daily counters."""
    counts: dict[date, int] = {}
    for day, n in (
        EventDailyCount.objects.filter(person__app=app, day__gte=period.since, day__lt=period.until)
        .values_list("day")
        .annotate(n=Sum("count"))
        .order_by()
    ):
        bucket = period.bucket(day)
        counts[bucket] = counts.get(bucket, 0) + (n or 0)
    return {
        "type": "bar",
        "labels": _labels(period),
        "series": [{"label": "Events", "data": [counts.get(d, 0) for d in period.buckets()]}],
        "note": f"{sum(counts.values()):,} events",
    }


def active_people_panel(app: App, period: DashboardPeriod) -> dict[str, Any]:
    """People seen in the last day, week and 30 days (on `Person.last_seen`)."""
    now = period.now
    counts = Person.objects.filter(app=app).aggregate(
        day=Count("pk", filter=Q(last_seen__gte=now - timedelta(days=1))),
        week=Count("pk", filter=Q(last_seen__gte=now - timedelta(days=7))),
        month=Count("pk", filter=Q(last_seen__gte=now - timedelta(days=30))),
        known=Count("pk", filter=Q(user_id__isnull=False)),
        total=Count("pk"),
    )
    return {
        "type": "numbers",
        "items": [
            {"label": "Active today", "value": counts["day"], "note": "last 24 hours"},
            {"label": "Active this week", "value": counts["week"], "note": "last 7 days"},
            {"label": "Active this month", "value": counts["month"], "note": "last 30 days"},
            {
                "label": "People",
                "value": counts["total"],
                "note": f"{counts['known']:,} identified",
            },
        ],
    }


def live_campaigns_panel(app: App, period: DashboardPeriod) -> dict[str, Any]:
    """Live campaigns of every kind with deliveries shown and converted since publication."""
    rows: list[list[Any]] = []
    for kind in campaign_kinds():
        live = list(
            kind.model._default_manager.filter(app=app, status=CampaignStatus.LIVE)
            .order_by("-priority", "name")
            .values_list("pk", "name", "goal_event")
        )
        if not live:
            continue
        stats = {
            row["campaign_id"]: row
            for row in Delivery.objects.filter(
                kind=kind.name, campaign_id__in=[pk for pk, _, _ in live], is_test=False
            )
            .values("campaign_id")
            .annotate(
                shown=Count("pk", filter=Q(shown_at__isnull=False)),
                converted=Count("pk", filter=Q(converted_at__isnull=False)),
            )
            .order_by()
        }
        for pk, name, goal in live:
            shown = stats.get(pk, {}).get("shown", 0)
            converted = stats.get(pk, {}).get("converted", 0)
            rate = f"{100 * converted / shown:.1f}%" if shown and goal else "–"
            rows.append([name, kind.name, shown, converted if goal else "–", rate])
    return {
        "type": "table",
        "columns": ["Campaign", "Kind", "Shown", "Converted", "Conversion"],
        "rows": rows,
        "empty": "No live campaign.",
    }


def _register_engage_panels() -> None:
    dashboard_panel_register(
        DashboardPanel("active_people", "Active people", active_people_panel, order=10, wide=True)
    )
    dashboard_panel_register(DashboardPanel("events", "Events", events_per_day_panel, order=20))
    dashboard_panel_register(
        DashboardPanel(
            "live_campaigns",
            "Live campaigns",
            live_campaigns_panel,
            order=30,
            description="Shown and converted since each campaign went live (test deliveries "
            "excluded). Conversion needs a goal event.",
        )
    )


_register_engage_panels()
