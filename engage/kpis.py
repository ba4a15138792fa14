"""KPIs: their definitions and writes, and their effect in every campaign's results.

A KPI converts for a person of a campaign when its event happens (or its funnel is completed,
step 1 counted) at or after the person's first exposure, within the KPI's `window_days`:
- exposed: people with a shown, non-test delivery; their anchor is their first `shown_at`;
- holdout: people with a holdout delivery; their anchor is the first holdout decision, the
  moment they would have been shown it;
- per variant: exposed people by the variant they were shown.
The insight engine (`segments.insights`) counts; this module only builds the cohorts from
deliveries and compares each group with the holdout (`engage.experiments`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import reduce
from typing import Any

from django.db import transaction
from django.db.models import Min, QuerySet
from django.utils import timezone

from engage import errors
from engage.campaigns import campaign_kind_get, campaign_kinds, campaigns_changed
from engage.experiments import (
    ADAPTIVE,
    group_comparison,
    group_rate,
    sample_size_per_group,
    shares_to_weights,
    thompson_shares,
)
from engage.models import App, CampaignStatus, Delivery
from engage.models_insights import Kpi, KpiKind
from segments.insights import (
    Cohorts,
    DateRange,
    EventFilter,
    event_filter_parse,
    event_names_check,
    funnel_groups,
    funnel_parse,
)
from segments.insights.cohorts import label_value

MAX_KPIS_IN_RESULTS = 10
MAX_WINDOW_DAYS = 90
EXPOSED = "exposed"
HOLDOUT = "holdout"
VARIANT_PREFIX = "variant:"


# --- definitions and writes --------------------------------------------------------------------


def kpi_steps(
    *, kind: str, definition: Any, today: date | None = None
) -> tuple[tuple[EventFilter, ...], timedelta]:
    """The steps (one for an event KPI) and the funnel window of a KPI definition.

    Raises InvalidInput naming the field (`definition.steps[1].event: …`).
    """
    if kind == KpiKind.EVENT:
        step = event_filter_parse(definition, "definition")
        return (step,), timedelta(days=MAX_WINDOW_DAYS)
    if kind == KpiKind.FUNNEL:
        if not isinstance(definition, Mapping):
            raise errors.InvalidInput("definition: must be an object")
        extra = sorted(set(definition) - {"steps", "window"})
        if extra:
            raise errors.InvalidInput(f"definition.{extra[0]}: unknown field")
        try:
            funnel = funnel_parse(dict(definition), today=today or timezone.now().date())
        except errors.InvalidInput as exc:
            raise errors.InvalidInput(
                f"definition.{exc.message}", code=exc.code, details=exc.details
            ) from None
        return funnel.steps, funnel.window
    raise errors.InvalidInput(
        f"kind: must be one of {', '.join(KpiKind.values)}", code="invalid_kind"
    )


def _validate(*, app: App, kind: str, definition: Any, window_days: int) -> None:
    steps, _ = kpi_steps(kind=kind, definition=definition)
    field = "definition.event" if kind == KpiKind.EVENT else "definition.steps[{}].event"
    event_names_check(
        app_id=app.pk,
        names={field.format(i): step.event for i, step in enumerate(steps)},
    )
    if not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise errors.InvalidInput(f"window_days: must be between 1 and {MAX_WINDOW_DAYS}")


def _name_free(app: App, name: str, exclude: int | None = None) -> None:
    others = Kpi.objects.filter(app=app, name=name)
    taken = (others.exclude(pk=exclude) if exclude is not None else others).exists()
    if taken:
        raise errors.Conflict(f'name: this App already has a KPI named "{name}"')


@transaction.atomic
def kpi_create(
    *,
    app: App,
    name: str,
    kind: str,
    definition: Any,
    window_days: int = 14,
    description: str = "",
) -> Kpi:
    """A new KPI of the App. Before: the definition's events were received by the App and the
    name is free (409 otherwise). After: it shows in every campaign's results."""
    _validate(app=app, kind=kind, definition=definition, window_days=window_days)
    _name_free(app, name)
    kpi = Kpi(
        app=app,
        name=name,
        kind=kind,
        definition=definition,
        window_days=window_days,
        description=description,
    )
    kpi.full_clean()
    kpi.save()
    return kpi


@transaction.atomic
def kpi_update(*, kpi: Kpi, data: Mapping[str, Any]) -> Kpi:
    """Change a KPI's name, description, kind, definition or window (validated as on create)."""
    for field in ("name", "description", "kind", "definition", "window_days"):
        if field in data:
            setattr(kpi, field, data[field])
    _validate(app=kpi.app, kind=kpi.kind, definition=kpi.definition, window_days=kpi.window_days)
    _name_free(kpi.app, kpi.name, exclude=kpi.pk)
    kpi.full_clean()
    kpi.save()
    return kpi


@transaction.atomic
def kpi_delete(*, kpi: Kpi) -> None:
    """Delete a KPI; campaigns that had it as primary KPI keep running without one."""
    kpi.delete()


def kpi_get_for_app(*, app: App, kpi_id: Any) -> Kpi:
    kpi = Kpi.objects.filter(app=app, pk=kpi_id).first() if str(kpi_id).isdigit() else None
    if kpi is None:
        raise errors.NotFound("No such KPI in this App.")
    return kpi


# --- exposure cohorts --------------------------------------------------------------------------


def _deliveries(kind: str, campaign_id: int) -> QuerySet[Delivery]:
    return Delivery.objects.filter(kind=kind, campaign_id=campaign_id, is_test=False).order_by()


def exposure_cohorts(
    *, kind: str, campaign_id: int, variants: list[str], window: timedelta | None
) -> Cohorts:
    """People of a campaign as cohorts `exposed`, `holdout` and `variant:NAME`, each anchored
    at the person's first exposure (first holdout decision for the holdout)."""
    shown = _deliveries(kind, campaign_id).filter(holdout=False, shown_at__isnull=False)
    parts = [
        shown.values("person_id").annotate(label=label_value(EXPOSED), anchor=Min("shown_at")),
        _deliveries(kind, campaign_id)
        .filter(holdout=True)
        .values("person_id")
        .annotate(label=label_value(HOLDOUT), anchor=Min("decided_at")),
    ]
    labels = [EXPOSED, HOLDOUT]
    if len(variants) > 1:
        for name in variants:
            parts.append(
                shown.filter(variant=name)
                .values("person_id")
                .annotate(label=label_value(VARIANT_PREFIX + name), anchor=Min("shown_at"))
            )
            labels.append(VARIANT_PREFIX + name)
    queryset = reduce(lambda a, b: a.union(b, all=True), parts)
    return Cohorts(queryset=queryset, labels=tuple(labels), anchored=True, anchor_window=window)


def kpi_conversions(
    *,
    kpi: Kpi,
    kind: str,
    campaign_id: int,
    variants: list[str],
    now: datetime | None = None,
) -> dict[str, tuple[int, int]]:
    """label → (people, converted) for one KPI on one campaign (one statement)."""
    now = now or timezone.now()
    first = _deliveries(kind, campaign_id).aggregate(first=Min("decided_at"))["first"]
    cohorts = exposure_cohorts(
        kind=kind,
        campaign_id=campaign_id,
        variants=variants,
        window=timedelta(days=kpi.window_days),
    )
    if first is None:
        return dict.fromkeys(cohorts.labels, (0, 0))
    # Step 1 must fall in the KPI window after the anchor; a funnel KPI's later steps follow
    # within the funnel's own conversion window.
    steps, funnel_window = kpi_steps(kind=kpi.kind, definition=kpi.definition)
    groups = funnel_groups(
        app_id=kpi.app_id,
        steps=steps,
        window=funnel_window,
        date_range=DateRange(start=first, end=now + timedelta(days=1)),
        cohorts=cohorts,
        now=now,
    )
    return {g.label: (g.members or 0, g.reached[-1]) for g in groups}


def _warning(
    needed: int | None, exposed: int, holdout: int, mde: float, baseline: float | None
) -> str | None:
    if holdout == 0:
        return "No holdout group: set a holdout percentage to measure the effect."
    if needed is None:
        return (
            f"Too early to tell: with a holdout rate of {baseline or 0:.0%} the sample size "
            "needed cannot be estimated yet."
        )
    if exposed < needed or holdout < needed:
        return (
            f"Sample too small to tell: about {needed:,} people per group are needed to "
            f"detect a {mde:g}% change (now {exposed:,} exposed, {holdout:,} in holdout)."
        )
    return None


def kpi_effect(
    *,
    kpi: Kpi,
    conversions: Mapping[str, tuple[int, int]],
    variants: list[str],
    minimum_detectable_effect: Decimal | float,
    primary: bool = False,
) -> dict[str, Any]:
    """One KPI's block of a campaign's results: holdout, exposed and each variant against the
    holdout, the sample size needed per group for the campaign's minimum detectable effect,
    and a warning while the sample is smaller than that."""
    mde = float(minimum_detectable_effect)
    holdout_n, holdout_conv = conversions.get(HOLDOUT, (0, 0))
    exposed_n, exposed_conv = conversions.get(EXPOSED, (0, 0))
    baseline = holdout_conv / holdout_n if holdout_n else None
    needed = (
        sample_size_per_group(baseline=baseline, relative_effect=mde / 100) if baseline else None
    )
    variant_rows = []
    if len(variants) > 1:
        for name in variants:
            n, conv = conversions.get(VARIANT_PREFIX + name, (0, 0))
            variant_rows.append(
                {
                    "variant": name,
                    **group_comparison(
                        name=name,
                        converted=conv,
                        n=n,
                        holdout_converted=holdout_conv,
                        holdout_n=holdout_n,
                    ),
                }
            )
    return {
        "kpi": {"id": kpi.pk, "name": kpi.name, "kind": kpi.kind, "window_days": kpi.window_days},
        "primary": primary,
        "holdout": group_rate(holdout_conv, holdout_n),
        "exposed": group_comparison(
            name="The campaign",
            converted=exposed_conv,
            n=exposed_n,
            holdout_converted=holdout_conv,
            holdout_n=holdout_n,
        ),
        "variants": variant_rows,
        "minimum_detectable_effect": mde,
        "sample_size_per_group": needed,
        "warning": _warning(needed, exposed_n, holdout_n, mde, baseline),
    }


def campaign_kpi_results(
    *, campaign: Any, kind: str, variants: list[str], now: datetime | None = None
) -> dict[str, Any]:
    """The experiment section of a campaign's results: its set-up, and every KPI of the App
    (the primary KPI first, at most 10) measured on exposed, holdout and variants.

    Read-only; one statement per KPI, each inside the insight time budget.
    """
    kpis = list(Kpi.objects.filter(app_id=campaign.app_id).order_by("name", "id"))
    kpis.sort(key=lambda k: k.pk != campaign.primary_kpi_id)
    blocks = []
    for kpi in kpis[:MAX_KPIS_IN_RESULTS]:
        conversions = kpi_conversions(
            kpi=kpi, kind=kind, campaign_id=campaign.pk, variants=variants, now=now
        )
        blocks.append(
            kpi_effect(
                kpi=kpi,
                conversions=conversions,
                variants=variants,
                minimum_detectable_effect=campaign.minimum_detectable_effect,
                primary=kpi.pk == campaign.primary_kpi_id,
            )
        )
    return {
        "experiment": {
            "hypothesis": campaign.hypothesis,
            "primary_kpi": campaign.primary_kpi_id,
            "minimum_detectable_effect": float(campaign.minimum_detectable_effect),
            "allocation": campaign.allocation,
            "adaptive_weights": campaign.adaptive_weights or None,
            "adaptive_updated_at": campaign.adaptive_updated_at,
        },
        "kpis": blocks,
    }


# --- adaptive allocation -----------------------------------------------------------------------


def campaign_allocation_update(
    *, campaign: Any, kind: str, rng: random.Random | None = None, now: datetime | None = None
) -> dict[str, int] | None:
    """Recompute an adaptive campaign's variant weights from its primary KPI (Thompson
    sampling over the exposed people of each variant) and store them.

    Before: the campaign allocates adaptively, has a primary KPI and two or more variants
    (else nothing happens and None is returned). After: `adaptive_weights` (integers summing to
    10,000) and `adaptive_updated_at` are saved and the engine recompiles the App's campaigns.
    The holdout percentage is never touched: the holdout stays the same size.
    """
    if campaign.allocation != ADAPTIVE or campaign.primary_kpi_id is None:
        return None
    variants = [name for name, _ in campaign_kind_get(kind).variants(campaign)]
    if len(variants) < 2:
        return None
    kpi = Kpi.objects.get(pk=campaign.primary_kpi_id)
    conversions = kpi_conversions(
        kpi=kpi, kind=kind, campaign_id=campaign.pk, variants=variants, now=now
    )
    shares = thompson_shares(
        {name: conversions.get(VARIANT_PREFIX + name, (0, 0)) for name in variants},
        rng=rng or random.Random(),  # noqa: S311 - allocation, not security
    )
    weights = shares_to_weights(shares)
    type(campaign)._default_manager.filter(pk=campaign.pk).update(
        adaptive_weights=weights, adaptive_updated_at=now or timezone.now()
    )
    campaign.adaptive_weights = weights
    campaigns_changed(campaign.app_id)
    return weights


def adaptive_allocations_update(*, now: datetime | None = None) -> int:
    """Recompute the weights of every live adaptive campaign (Celery beat); how many changed."""
    updated = 0
    for kind in campaign_kinds():
        for campaign in kind.model._default_manager.filter(
            status=CampaignStatus.LIVE, allocation=ADAPTIVE, primary_kpi__isnull=False
        ):
            if campaign_allocation_update(campaign=campaign, kind=kind.name, now=now):
                updated += 1
    return updated
