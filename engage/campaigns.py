"""Campaign kinds, their lifecycle, and validation of what all kinds share.

Messages and surveys register a `CampaignKind` from their `AppConfig.ready()`; the engine
finds them here and never imports them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from engage import errors
from engage.models import App, Campaign, CampaignStatus, TriggerOn
from segments.conditions import ConditionInvalid, parse_condition
from segments.models import Segment

logger = logging.getLogger(__name__)
# While the shared cache (Redis) is unreachable, processes recompile campaigns this often.
CACHE_DOWN_RECOMPILE_SECONDS = 5

# --- kinds ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignKind:
    """How the engine deals with one kind of campaign.

    `content(campaign, locale, variant)` gives what the widget renders; `variants(campaign)`
    the A/B variants as (key, weight) pairs (one ("", 1) pair when there are none);
    `display(campaign)` how it shows (`modal`, `banner`, `slide_in`, `inbox`): at most one
    `modal` is shown at a time, and surveys show as modals.
    """

    name: str
    model: type[Campaign]
    content: Callable[[Any, str | None, str], dict[str, Any]]
    variants: Callable[[Any], list[tuple[str, int]]]
    display: Callable[[Any], str]


_kinds: dict[str, CampaignKind] = {}


def campaign_kind_register(kind: CampaignKind) -> None:
    _kinds[kind.name] = kind


def campaign_kind_get(name: str) -> CampaignKind:
    try:
        return _kinds[name]
    except KeyError:
        raise errors.InvalidInput(
            f'kind: unknown campaign kind "{name}"', code="unknown_campaign_kind"
        ) from None


def campaign_kinds() -> list[CampaignKind]:
    return list(_kinds.values())


def campaign_kind_of(campaign: Campaign) -> CampaignKind:
    for kind in _kinds.values():
        if isinstance(campaign, kind.model):
            return kind
    raise LookupError(f"{type(campaign).__name__} is not a registered campaign kind")


def campaign_get_for_app(*, app: App, kind: str, campaign_id: Any) -> Campaign:
    """The App's campaign of this kind and id; NotFound for another App's or an unknown one."""
    model = campaign_kind_get(kind).model
    try:
        campaign = model._default_manager.filter(app=app, pk=int(campaign_id)).first()
    except (TypeError, ValueError):
        campaign = None
    if campaign is None:
        raise errors.NotFound(f"No {kind} with id {campaign_id} in this App.")
    return campaign


# --- cache versioning -------------------------------------------------------------------------


def campaigns_version(app_id: int) -> int:
    """A number that changes whenever a campaign or segment of the App changes (any process).

    When the shared cache is down, a negative number that changes every few seconds: decisions
    keep working, on rules at most that old, and are recompiled once the cache is back.
    """
    try:
        return int(cache.get_or_set(f"engage:campaigns:v:{app_id}", 1, timeout=None) or 1)
    except Exception:  # the cache backend's own errors (redis-py's ConnectionError, timeouts)
        logger.warning("cache unavailable: campaigns recompiled every few seconds meanwhile")
        return -int(time.time() // CACHE_DOWN_RECOMPILE_SECONDS)


def campaigns_changed(app_id: int) -> None:
    """Invalidate every process's compiled campaigns of the App: now, and again after commit.

    The first bump makes this transaction's own later decisions see the change; the one after
    commit makes sure no process keeps rules it compiled from data read before the commit.
    """

    def bump() -> None:
        key = f"engage:campaigns:v:{app_id}"
        try:
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 2, timeout=None)
        except Exception:  # cache down: processes recompile on their own (campaigns_version)
            logger.warning("cache unavailable: campaign change of App %s not announced", app_id)

    bump()
    transaction.on_commit(bump)


# --- validation -------------------------------------------------------------------------------


def _path_errors(prefix: str, exc: ConditionInvalid) -> list[dict[str, str]]:
    return [
        {"path": f"{prefix}.{e.path}" if e.path else prefix, "message": e.message}
        for e in exc.errors
    ]


def audience_validate(*, app: App, audience: Any) -> dict[str, Any]:
    """A clean audience `{"segments": [...], "condition": {...}}`; 400 naming the bad part."""
    if audience in (None, {}):
        return {}
    if not isinstance(audience, Mapping):
        raise errors.InvalidInput("audience: must be an object")
    unknown = set(audience) - {"segments", "condition"}
    if unknown:
        raise errors.InvalidInput(f"audience: unknown key {sorted(unknown)[0]!r}")
    clean: dict[str, Any] = {}
    slugs = audience.get("segments") or []
    if not isinstance(slugs, list) or not all(isinstance(s, str) for s in slugs):
        raise errors.InvalidInput("audience.segments: must be a list of segment slugs")
    if slugs:
        known = set(Segment.objects.filter(app=app, slug__in=slugs).values_list("slug", flat=True))
        missing = [s for s in slugs if s not in known]
        if missing:
            raise errors.InvalidInput(
                f'audience.segments: unknown segment "{missing[0]}"',
                code="unknown_segment",
                details={"unknown": missing},
            )
        clean["segments"] = slugs
    condition = audience.get("condition")
    if condition is not None:
        try:
            parse_condition(condition, allow_context=True)
        except ConditionInvalid as exc:
            found = _path_errors("audience.condition", exc)
            raise errors.InvalidInput(
                "; ".join(f"{e['path']}: {e['message']}" for e in found),
                code="invalid_condition",
                details=found,
            ) from exc
        clean["condition"] = condition
    return clean


def trigger_validate(trigger: Any) -> dict[str, Any]:
    """A clean trigger; the default is `{"on": "api"}` (shown on evaluate/push only)."""
    if trigger in (None, {}):
        return {"on": TriggerOn.API}
    if not isinstance(trigger, Mapping):
        raise errors.InvalidInput("trigger: must be an object")
    unknown = set(trigger) - {"on", "event", "url", "delay_seconds"}
    if unknown:
        raise errors.InvalidInput(f"trigger: unknown key {sorted(unknown)[0]!r}")
    on = trigger.get("on")
    if on not in TriggerOn.values:
        raise errors.InvalidInput(
            f"trigger.on: must be one of {', '.join(TriggerOn.values)}", code="invalid_trigger"
        )
    clean: dict[str, Any] = {"on": on}
    if on == TriggerOn.EVENT:
        event = trigger.get("event")
        if not isinstance(event, str) or not event.strip():
            raise errors.InvalidInput("trigger.event: an event trigger needs the event name")
        clean["event"] = event.strip()
    if trigger.get("url") is not None:
        if on not in (TriggerOn.PAGE_VIEW, TriggerOn.EVENT):
            raise errors.InvalidInput("trigger.url: only page_view and event triggers take a url")
        try:
            parse_condition({"page_url": trigger["url"]}, allow_context=True)
        except ConditionInvalid as exc:
            message = "; ".join(e.message for e in exc.errors)
            raise errors.InvalidInput(f"trigger.url: {message}", code="invalid_trigger") from exc
        clean["url"] = trigger["url"]
    delay = trigger.get("delay_seconds", 0)
    if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= 86_400:
        raise errors.InvalidInput("trigger.delay_seconds: a whole number from 0 to 86400")
    if delay:
        clean["delay_seconds"] = delay
    return clean


def display_rules_validate(
    *,
    sample_percent: Decimal | float | int,
    holdout_percent: Decimal | float | int,
    starts_at: datetime | None,
    ends_at: datetime | None,
) -> None:
    for field, value in (("sample_percent", sample_percent), ("holdout_percent", holdout_percent)):
        if not 0 <= Decimal(str(value)) <= 100:
            raise errors.InvalidInput(f"{field}: must be between 0 and 100")
    if Decimal(str(holdout_percent)) >= 100:
        raise errors.InvalidInput("holdout_percent: must be below 100 or nobody sees it")
    if starts_at and ends_at and ends_at <= starts_at:
        raise errors.InvalidInput("ends_at: must be after starts_at")


# --- lifecycle --------------------------------------------------------------------------------

# Allowed status changes; anything else is refused with a 400 naming the transition.
TRANSITIONS: dict[str, set[str]] = {
    CampaignStatus.DRAFT: {CampaignStatus.SCHEDULED, CampaignStatus.LIVE, CampaignStatus.ARCHIVED},
    CampaignStatus.SCHEDULED: {
        CampaignStatus.LIVE,
        CampaignStatus.PAUSED,
        CampaignStatus.DRAFT,
        CampaignStatus.ARCHIVED,
    },
    CampaignStatus.LIVE: {CampaignStatus.PAUSED, CampaignStatus.ARCHIVED},
    CampaignStatus.PAUSED: {CampaignStatus.LIVE, CampaignStatus.SCHEDULED, CampaignStatus.ARCHIVED},
    CampaignStatus.ARCHIVED: set(),
}

# Told after commit when a campaign goes live (push to connected people) or stops (revoke).
StatusListener = Callable[[str, Campaign, str], None]
_status_listeners: list[StatusListener] = []


def campaign_status_listener_register(listener: StatusListener) -> None:
    if listener not in _status_listeners:
        _status_listeners.append(listener)


def _transition(campaign: Campaign, to: str) -> None:
    current = campaign.status
    if to not in TRANSITIONS[current]:
        raise errors.InvalidInput(
            f"status: a {current} campaign cannot become {to}", code="invalid_transition"
        )
    campaign.status = to


@transaction.atomic
def campaign_publish(*, campaign: Campaign, now: datetime | None = None) -> Campaign:
    """Make a campaign live now, or scheduled when its `starts_at` is in the future.

    Before: draft, scheduled or paused, and its window has not ended. After: live or
    scheduled; every process's compiled rules are invalidated; status listeners (push to
    eligible connected people) run after commit.
    """
    now = now or timezone.now()
    if campaign.ends_at and campaign.ends_at <= now:
        raise errors.InvalidInput("ends_at: the campaign's window has already ended")
    target = (
        CampaignStatus.SCHEDULED
        if campaign.starts_at and campaign.starts_at > now
        else CampaignStatus.LIVE
    )
    if campaign.status == target:
        return campaign
    _transition(campaign, target)
    if target == CampaignStatus.LIVE:
        campaign.published_at = now
    campaign.save(update_fields=["status", "published_at", "updated_at"])
    _changed(campaign)
    return campaign


@transaction.atomic
def campaign_pause(*, campaign: Campaign) -> Campaign:
    """Stop showing a campaign; open widgets are told to take it down (after commit)."""
    if campaign.status == CampaignStatus.PAUSED:
        return campaign
    _transition(campaign, CampaignStatus.PAUSED)
    campaign.save(update_fields=["status", "updated_at"])
    _changed(campaign)
    return campaign


@transaction.atomic
def campaign_archive(*, campaign: Campaign) -> Campaign:
    """Retire a campaign for good: it is never shown again and cannot be published."""
    if campaign.status == CampaignStatus.ARCHIVED:
        return campaign
    _transition(campaign, CampaignStatus.ARCHIVED)
    campaign.save(update_fields=["status", "updated_at"])
    _changed(campaign)
    return campaign


def _changed(campaign: Campaign) -> None:
    campaigns_changed(campaign.app_id)
    kind = campaign_kind_of(campaign).name
    status = campaign.status
    for listener in list(_status_listeners):
        transaction.on_commit(partial(listener, kind, campaign, status))


@transaction.atomic
def campaigns_schedule_tick(*, now: datetime | None = None) -> int:
    """Start scheduled campaigns whose time has come and archive those whose window ended.

    Run every minute by Celery beat; the engine already honours the window between ticks.
    Returns how many campaigns changed.
    """
    now = now or timezone.now()
    changed = 0
    for kind in campaign_kinds():
        for campaign in kind.model._default_manager.select_for_update().filter(
            status=CampaignStatus.SCHEDULED, starts_at__lte=now
        ):
            if campaign.ends_at and campaign.ends_at <= now:
                campaign.status = CampaignStatus.ARCHIVED
            else:
                campaign.status = CampaignStatus.LIVE
                campaign.published_at = now
            campaign.save(update_fields=["status", "published_at", "updated_at"])
            _changed(campaign)
            changed += 1
        for campaign in kind.model._default_manager.select_for_update().filter(
            status=CampaignStatus.LIVE, ends_at__lte=now
        ):
            campaign.status = CampaignStatus.ARCHIVED
            campaign.save(update_fields=["status", "updated_at"])
            _changed(campaign)
            changed += 1
    return changed


# --- create and edit --------------------------------------------------------------------------

SHARED_FIELDS = (
    "name",
    "audience",
    "trigger",
    "priority",
    "starts_at",
    "ends_at",
    "sample_percent",
    "holdout_percent",
    "max_impressions",
    "recontact_days",
    "goal_event",
    "goal_window_days",
)


def _apply(campaign: Campaign, data: Mapping[str, Any]) -> None:
    app = campaign.app
    for name, value in data.items():
        if name == "audience":
            value = audience_validate(app=app, audience=value)
        elif name == "trigger":
            value = trigger_validate(value)
        setattr(campaign, name, value)
    display_rules_validate(
        sample_percent=campaign.sample_percent,
        holdout_percent=campaign.holdout_percent,
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
    )


@transaction.atomic
def campaign_create(*, kind: str, app: App, data: Mapping[str, Any]) -> Campaign:
    """Create a draft campaign of `kind` from validated fields (shared and kind-specific).

    Audience segments must exist in the App; the condition and trigger are validated with
    errors naming their path. After: a draft exists; nothing is shown until published.
    """
    model = campaign_kind_get(kind).model
    campaign = model(app=app, status=CampaignStatus.DRAFT)
    if "trigger" not in data:
        campaign.trigger = trigger_validate(None)
    _apply(campaign, data)
    campaign.full_clean()
    campaign.save()
    return campaign


@transaction.atomic
def campaign_update(*, campaign: Campaign, data: Mapping[str, Any]) -> Campaign:
    """Change fields of a campaign; a live one changes for everyone at the next decision."""
    if campaign.status == CampaignStatus.ARCHIVED:
        raise errors.InvalidInput(
            "status: an archived campaign cannot be changed", code="invalid_transition"
        )
    _apply(campaign, data)
    campaign.full_clean()
    campaign.save()
    campaigns_changed(campaign.app_id)
    return campaign


@transaction.atomic
def campaign_delete(*, campaign: Campaign) -> None:
    """Delete a draft; campaigns that were ever published are archived instead (results stay)."""
    if campaign.status != CampaignStatus.DRAFT:
        raise errors.InvalidInput(
            "status: only drafts can be deleted; archive a published campaign",
            code="invalid_transition",
        )
    campaign.delete()
    campaigns_changed(campaign.app_id)


def campaigns_using_segment(app: App, slug: str) -> list[str]:
    """Descriptions of the App's campaigns (not archived) whose audience names the segment."""
    users = []
    for kind in campaign_kinds():
        for campaign in kind.model._default_manager.filter(app=app).exclude(
            status=CampaignStatus.ARCHIVED
        ):
            if slug in ((campaign.audience or {}).get("segments") or []):
                users.append(f'{kind.name} "{campaign.name}" (#{campaign.pk})')
    return users
