"""Running and saving insights for an App: the engine of `segments.insights`, plus what only
the engage app knows (funnel breakdowns by campaign exposure, holdout and variant)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from engage import errors
from engage.campaigns import campaign_get_for_app, campaign_kind_get
from engage.kpis import exposure_cohorts
from engage.models import App
from engage.models_insights import Insight, InsightKind
from segments.insights import (
    Cohorts,
    event_names_check,
    funnel_compute,
    funnel_parse,
    trend_compute,
    trend_parse,
)
from segments.insights.definitions import FunnelDefinition, TrendDefinition


def _campaign_cohorts(app: App, spec: Any) -> Cohorts:
    """`{"kind": "message"|"survey", "id": N}` → exposed / holdout / variant cohorts."""
    field = "breakdown.campaign"
    if not isinstance(spec, Mapping) or not isinstance(spec.get("kind"), str):
        raise errors.InvalidInput(f'{field}: give {{"kind": "message"|"survey", "id": N}}')
    try:
        kind = campaign_kind_get(spec["kind"])
        campaign = campaign_get_for_app(app=app, kind=kind.name, campaign_id=spec.get("id"))
    except errors.NotFound:
        raise errors.InvalidInput(
            f"{field}: no {spec['kind']} {spec.get('id')!r} in this App",
            code="unknown_campaign",
        ) from None
    except errors.InvalidInput:
        raise errors.InvalidInput(f"{field}.kind: unknown campaign kind") from None
    variants = [name for name, _ in kind.variants(campaign)]
    return exposure_cohorts(
        kind=kind.name, campaign_id=campaign.pk, variants=variants or [""], window=None
    )


def insight_parse(
    *, app: App, kind: str, definition: Any, today: date | None = None
) -> tuple[TrendDefinition | FunnelDefinition, Cohorts | None]:
    """A validated definition (and the campaign cohorts of a funnel broken down by campaign).

    Raises InvalidInput naming the field, including event names the App never received.
    """
    today = today or timezone.now().date()
    if kind == InsightKind.TREND:
        trend = trend_parse(definition, today=today)
        event_names_check(app_id=app.pk, names={"event": trend.event.event})
        return trend, None
    if kind == InsightKind.FUNNEL:
        body = dict(definition) if isinstance(definition, Mapping) else definition
        cohorts = None
        breakdown = body.get("breakdown") if isinstance(body, dict) else None
        if isinstance(breakdown, Mapping) and "campaign" in breakdown:
            if len(breakdown) > 1:
                raise errors.InvalidInput("breakdown: give campaign alone")
            cohorts = _campaign_cohorts(app, breakdown["campaign"])
            body = {k: v for k, v in body.items() if k != "breakdown"}
        funnel = funnel_parse(body, today=today)
        event_names_check(
            app_id=app.pk,
            names={f"steps[{i}].event": step.event for i, step in enumerate(funnel.steps)},
        )
        return funnel, cohorts
    raise errors.InvalidInput(f"kind: must be one of {', '.join(InsightKind.values)}")


def insight_run(
    *, app: App, kind: str, definition: Any, now: datetime | None = None
) -> dict[str, Any]:
    """The answer of a trend or funnel definition for the App. Read-only; 400 for a bad
    definition, 422 `query_too_expensive` past the time budget."""
    parsed, cohorts = insight_parse(
        app=app, kind=kind, definition=definition, today=(now or timezone.now()).date()
    )
    if isinstance(parsed, TrendDefinition):
        return trend_compute(app=app, definition=parsed, now=now)
    return funnel_compute(app=app, definition=parsed, cohorts=cohorts, now=now)


def insight_get_for_app(*, app: App, insight_id: Any) -> Insight:
    insight = (
        Insight.objects.filter(app=app, pk=insight_id).first()
        if str(insight_id).isdigit()
        else None
    )
    if insight is None:
        raise errors.NotFound("No such insight in this App.")
    return insight


@transaction.atomic
def insight_create(*, app: App, name: str, kind: str, definition: Any) -> Insight:
    """Save a trend or funnel definition. Before: it parses (400 naming the field otherwise)."""
    insight_parse(app=app, kind=kind, definition=definition)
    insight = Insight(app=app, name=name, kind=kind, definition=definition)
    insight.full_clean()
    insight.save()
    return insight


@transaction.atomic
def insight_update(*, insight: Insight, data: Mapping[str, Any]) -> Insight:
    """Change a saved insight's name, kind or definition (validated as on create)."""
    for field in ("name", "kind", "definition"):
        if field in data:
            setattr(insight, field, data[field])
    insight_parse(app=insight.app, kind=insight.kind, definition=insight.definition)
    insight.full_clean()
    insight.save()
    return insight


@transaction.atomic
def insight_delete(*, insight: Insight) -> None:
    """Delete a saved insight; dashboard tiles showing it go with it."""
    from engage.models_insights import DashboardTile

    DashboardTile.objects.filter(
        dashboard__app_id=insight.app_id, config__insight=insight.pk
    ).delete()
    insight.delete()
