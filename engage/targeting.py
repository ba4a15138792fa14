"""The targeting engine: which campaigns a person should see now.

Live campaigns of an App are compiled once (audience predicates, trigger matchers, buckets)
and cached per process under a version that every campaign or segment change bumps in the
shared cache, so all processes recompile after a change.

A decision walks the same ordered checks for every campaign (status and window, trigger,
audience, sampling, finished, caps, quiet period, holdout), then sorts by priority and keeps at
most one modal. `explain` reuses the same checks, so what it says is what evaluate does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from engage.campaigns import campaign_kind_get, campaign_kinds, campaigns_version
from engage.models import App, CampaignStatus, Delivery, TriggerOn
from segments.bucketing import bucket, variant_pick
from segments.conditions import (
    Condition,
    ConditionInvalid,
    InMemoryFacts,
    compile_predicate,
    condition_event_names,
    parse_condition,
    person_facts_load,
)
from segments.models import Person, Segment

MODAL = "modal"


@dataclass(frozen=True)
class Moment:
    """What is happening now: an event, a page view (url), or neither (api/session start)."""

    event: str | None = None
    url: str | None = None
    locale: str | None = None
    device: str | None = None
    session_start: bool = False

    def context(self) -> dict[str, str | None]:
        return {"page_url": self.url, "locale": self.locale, "device": self.device}


@dataclass(frozen=True)
class CompiledCampaign:
    kind: str
    id: int
    name: str
    status: str
    priority: int
    display: str
    starts_at: datetime | None
    ends_at: datetime | None
    trigger_on: str
    trigger_event: str | None
    trigger_url: Callable[[Any], bool] | None
    delay_seconds: int
    audience: Callable[[Any], bool] | None
    audience_condition: Condition | None
    sample_bp: int
    holdout_bp: int
    max_impressions: int | None
    recontact_days: int
    goal_event: str
    goal_window_days: int
    variants: tuple[tuple[str, int], ...]
    campaign: Any = field(compare=False, repr=False)


@dataclass(frozen=True)
class CompiledApp:
    version: int
    campaigns: tuple[CompiledCampaign, ...]
    segments: Mapping[str, Condition]
    goal_events: frozenset[str]
    # Event names any audience or segment counts: the only counters a decision loads.
    event_names: frozenset[str]


_compiled: dict[int, CompiledApp] = {}
_compile_lock = threading.Lock()


def _bp(percent: Any) -> int:
    """Percent (0–100, two decimals) as basis points of the 0..9999 bucket space."""
    return round(float(percent) * 100)


def _compile_campaign(
    kind_name: str, campaign: Any, segments: Mapping[str, Condition]
) -> CompiledCampaign:
    kind = campaign_kind_get(kind_name)
    audience = campaign.audience or {}
    parts: list[Any] = [{"segment": slug} for slug in audience.get("segments") or []]
    if audience.get("condition"):
        parts.append(audience["condition"])
    condition = parse_condition({"all": parts}, allow_context=True) if parts else None
    trigger = campaign.trigger or {"on": TriggerOn.API}
    url_predicate = None
    if trigger.get("url"):
        url_predicate = compile_predicate(
            parse_condition({"page_url": trigger["url"]}, allow_context=True)
        )
    return CompiledCampaign(
        kind=kind_name,
        id=campaign.pk,
        name=campaign.name,
        status=campaign.status,
        priority=campaign.priority,
        display=kind.display(campaign),
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        trigger_on=trigger.get("on", TriggerOn.API),
        trigger_event=trigger.get("event"),
        trigger_url=url_predicate,
        delay_seconds=int(trigger.get("delay_seconds") or 0),
        audience=compile_predicate(condition) if condition is not None else None,
        audience_condition=condition,
        sample_bp=_bp(campaign.sample_percent),
        holdout_bp=_bp(campaign.holdout_percent),
        max_impressions=campaign.max_impressions,
        recontact_days=campaign.recontact_days,
        goal_event=campaign.goal_event,
        goal_window_days=campaign.goal_window_days,
        variants=tuple(kind.variants(campaign)) or (("", 1),),
        campaign=campaign,
    )


def compiled_app(app_id: int) -> CompiledApp:
    """The App's live and scheduled campaigns, compiled; recompiled when the version moves."""
    version = campaigns_version(app_id)
    hit = _compiled.get(app_id)
    if hit is not None and hit.version == version:
        return hit
    with _compile_lock:
        hit = _compiled.get(app_id)
        if hit is not None and hit.version == version:
            return hit
        segments: dict[str, Condition] = {}
        for slug, raw in Segment.objects.filter(app_id=app_id).values_list("slug", "condition"):
            try:
                segments[slug] = parse_condition(raw)
            except ConditionInvalid:
                continue  # saved before a rule tightened: it matches nobody until fixed
        campaigns = []
        for kind in campaign_kinds():
            for campaign in kind.model._default_manager.filter(
                app_id=app_id, status__in=[CampaignStatus.LIVE, CampaignStatus.SCHEDULED]
            ):
                campaigns.append(_compile_campaign(kind.name, campaign, segments))
        campaigns.sort(key=lambda c: (-c.priority, c.kind, c.id))
        event_names: set[str] = set()
        for condition in segments.values():
            event_names |= condition_event_names(condition)
        for c in campaigns:
            if c.audience_condition is not None:
                event_names |= condition_event_names(c.audience_condition)
        compiled = CompiledApp(
            version=version,
            campaigns=tuple(campaigns),
            segments=segments,
            goal_events=frozenset(c.goal_event for c in campaigns if c.goal_event),
            event_names=frozenset(event_names),
        )
        _compiled[app_id] = compiled
        return compiled


def compile_one(kind: str, campaign: Any) -> CompiledCampaign:
    """Compile a single campaign whatever its status (previews and explain of drafts)."""
    segments = compiled_app(campaign.app_id).segments
    return _compile_campaign(kind, campaign, segments)


# --- the person's ledger ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """A delivery decided earlier and not shown or dismissed yet: offered again as is."""

    id: Any
    variant: str


@dataclass(frozen=True)
class Ledger:
    """What a person has been shown so far, across all devices (deliveries are per person)."""

    shown: Mapping[tuple[str, int], int]
    last_shown_any: datetime | None
    holdout: frozenset[tuple[str, int]]
    finished: frozenset[tuple[str, int]]
    pending: Mapping[tuple[str, int], Pending]


def ledger_load(person: Person | None) -> Ledger:
    """The person's ledger from their deliveries, in one query (test deliveries left out)."""
    if person is None or person.pk is None:
        return Ledger({}, None, frozenset(), frozenset(), {})
    rows = (
        Delivery.objects.filter(person=person, is_test=False)
        .order_by("decided_at")
        .values_list(
            "id", "kind", "campaign_id", "variant", "holdout", "shown_at", "dismissed_at",
            "answered_at",
        )
    )  # fmt: skip
    shown: dict[tuple[str, int], int] = {}
    holdout: set[tuple[str, int]] = set()
    finished: set[tuple[str, int]] = set()
    pending: dict[tuple[str, int], Pending] = {}
    last_any: datetime | None = None
    for pk, kind, campaign_id, variant, is_holdout, shown_at, dismissed_at, answered_at in rows:
        key = (kind, campaign_id)
        if is_holdout:
            holdout.add(key)
            continue
        if answered_at is not None:
            finished.add(key)
        if shown_at is not None:
            shown[key] = shown.get(key, 0) + 1
            if last_any is None or shown_at > last_any:
                last_any = shown_at
        elif dismissed_at is None and key not in pending:
            pending[key] = Pending(id=pk, variant=variant)
    return Ledger(shown, last_any, frozenset(holdout), frozenset(finished), pending)


# --- checks -----------------------------------------------------------------------------------


@dataclass
class Situation:
    """Everything a check needs about the person and the moment."""

    app: App
    person: Person | None
    person_key: str
    facts: Any
    moment: Moment
    now: datetime
    ledger: Ledger


@dataclass(frozen=True)
class Verdict:
    """One check's outcome: `ok` False stops the campaign; `reason` says why in plain words."""

    step: str
    ok: bool
    reason: str


def _check_window(c: CompiledCampaign, s: Situation) -> Verdict:
    if c.status not in (CampaignStatus.LIVE, CampaignStatus.SCHEDULED):
        return Verdict("status", False, f"status is {c.status}")
    if c.starts_at and c.starts_at > s.now:
        return Verdict("status", False, f"starts at {c.starts_at.isoformat()}")
    if c.ends_at and c.ends_at <= s.now:
        return Verdict("status", False, f"ended at {c.ends_at.isoformat()}")
    return Verdict("status", True, "live and within its window")


def _check_trigger(c: CompiledCampaign, s: Situation) -> Verdict:
    m = s.moment
    if m.event:
        matches = c.trigger_on == TriggerOn.EVENT and c.trigger_event == m.event
        wanted = f'event "{m.event}"'
    elif m.url:
        matches = c.trigger_on == TriggerOn.PAGE_VIEW or (
            c.trigger_on == TriggerOn.SESSION_START and m.session_start
        )
        wanted = "a page view"
    else:
        matches = c.trigger_on in (TriggerOn.API, TriggerOn.SESSION_START)
        wanted = "an api call"
    if not matches:
        on = c.trigger_on + (f' "{c.trigger_event}"' if c.trigger_event else "")
        return Verdict("trigger", False, f"triggered on {on}, not by {wanted}")
    if c.trigger_url is not None:
        if not m.url:
            return Verdict("trigger", False, "its trigger needs a page url and none was given")
        if not c.trigger_url(s.facts):
            return Verdict("trigger", False, f"url {m.url} does not match the trigger's url")
    return Verdict("trigger", True, "trigger matches")


def _check_audience(c: CompiledCampaign, s: Situation) -> Verdict:
    if c.audience is None:
        return Verdict("audience", True, "audience is everyone")
    if c.audience(s.facts):
        return Verdict("audience", True, "in the audience")
    return Verdict("audience", False, "not in the audience")


def _check_sample(c: CompiledCampaign, s: Situation) -> Verdict:
    if c.sample_bp >= 10_000:
        return Verdict("sampling", True, "sample is 100%")
    b = bucket(app_id=s.app.pk, salt=f"{c.kind}:{c.id}:sample", person_key=s.person_key)
    if b < c.sample_bp:
        return Verdict("sampling", True, f"bucket {b} is inside the {c.sample_bp / 100:g}% sample")
    return Verdict("sampling", False, f"bucket {b} is outside the {c.sample_bp / 100:g}% sample")


def _check_finished(c: CompiledCampaign, s: Situation) -> Verdict:
    if (c.kind, c.id) in s.ledger.finished:
        return Verdict("finished", False, "already answered")
    return Verdict("finished", True, "not answered yet")


def _check_caps(c: CompiledCampaign, s: Situation) -> Verdict:
    seen = s.ledger.shown.get((c.kind, c.id), 0)
    if c.max_impressions is not None and seen >= c.max_impressions:
        return Verdict("caps", False, f"shown {seen} times, cap is {c.max_impressions}")
    return Verdict("caps", True, f"shown {seen} times")


def _check_quiet(c: CompiledCampaign, s: Situation) -> Verdict:
    last = s.ledger.last_shown_any
    if (c.kind, c.id) in s.ledger.pending:
        return Verdict("quiet_period", True, "already decided, waiting to be shown")
    if c.recontact_days and last and last > s.now - timedelta(days=c.recontact_days):
        return Verdict(
            "quiet_period",
            False,
            f"saw a campaign at {last.isoformat()}, within the {c.recontact_days}-day quiet period",
        )
    return Verdict("quiet_period", True, "outside any quiet period")


def _check_holdout(c: CompiledCampaign, s: Situation) -> Verdict:
    if not c.holdout_bp:
        return Verdict("holdout", True, "no holdout")
    b = bucket(app_id=s.app.pk, salt=f"{c.kind}:{c.id}:holdout", person_key=s.person_key)
    if b < c.holdout_bp:
        return Verdict("holdout", False, f"bucket {b} is in the {c.holdout_bp / 100:g}% holdout")
    return Verdict("holdout", True, f"bucket {b} is outside the holdout")


CHECKS: tuple[Callable[[CompiledCampaign, Situation], Verdict], ...] = (
    _check_window,
    _check_trigger,
    _check_audience,
    _check_sample,
    _check_finished,
    _check_caps,
    _check_quiet,
    _check_holdout,
)


def campaign_checks(c: CompiledCampaign, s: Situation) -> list[Verdict]:
    """Run the checks in order, stopping at the first that fails."""
    verdicts = []
    for check in CHECKS:
        verdict = check(c, s)
        verdicts.append(verdict)
        if not verdict.ok:
            break
    return verdicts


# --- decisions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A campaign to show now, as the APIs and the websocket send it."""

    kind: str
    id: int
    delivery_id: str | None
    variant: str
    display: str
    priority: int
    delay_seconds: int
    content: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "delivery_id": self.delivery_id,
            "variant": self.variant,
            "display": self.display,
            "priority": self.priority,
            "delay_seconds": self.delay_seconds,
            "content": self.content,
        }


def person_key(person: Person | None, *, user_id: str | None, anonymous_id: str | None) -> str:
    """The stable key buckets hash: the user id when known, else the anonymous id.

    A person who identifies later may change buckets once; known users stay stable forever.
    """
    if person is not None and person.user_id:
        return f"u:{person.user_id}"
    if user_id:
        return f"u:{user_id}"
    if anonymous_id:
        return f"a:{anonymous_id}"
    if person is not None and person.pk:
        return f"p:{person.pk}"
    return "a:"


def situation_build(
    *,
    app: App,
    person: Person | None,
    moment: Moment,
    now: datetime | None = None,
    attributes: Mapping[str, Any] | None = None,
    user_id: str | None = None,
    anonymous_id: str | None = None,
) -> Situation:
    now = now or timezone.now()
    compiled = compiled_app(app.pk)
    facts: Any
    if person is not None and person.pk is not None:
        facts = person_facts_load(
            person,
            now=now,
            context=moment.context(),
            segment_resolver=compiled.segments.get,
            event_names=compiled.event_names,
        )
        if attributes:
            facts = replace(facts, attributes={**facts.attributes, **attributes})
    else:
        # A newcomer Engage has never seen: no history, only what the caller tells.
        facts = InMemoryFacts(
            attributes=dict(attributes or {}),
            now=now,
            context=moment.context(),
            segments=compiled.segments.get,
        )
    return Situation(
        app=app,
        person=person,
        person_key=person_key(person, user_id=user_id, anonymous_id=anonymous_id),
        facts=facts,
        moment=moment,
        now=now,
        ledger=ledger_load(person),
    )


@dataclass(frozen=True)
class Decision:
    campaign: CompiledCampaign
    verdicts: tuple[Verdict, ...]
    shown: bool
    holdout: bool
    lost_to: CompiledCampaign | None = None


def decide(situation: Situation, campaigns: tuple[CompiledCampaign, ...]) -> list[Decision]:
    """Decide every campaign for the situation, in priority order; at most one modal shows."""
    decisions: list[Decision] = []
    modal_taken: CompiledCampaign | None = None
    for c in campaigns:
        verdicts = campaign_checks(c, situation)
        last = verdicts[-1]
        holdout = last.step == "holdout" and not last.ok
        shown = all(v.ok for v in verdicts)
        lost_to = None
        if shown and c.display == MODAL:
            if modal_taken is not None:
                shown = False
                lost_to = modal_taken
            else:
                modal_taken = c
        decisions.append(Decision(c, tuple(verdicts), shown, holdout, lost_to))
    return decisions


def _variant(app: App, c: CompiledCampaign, key: str) -> str:
    if len(c.variants) == 1:
        return c.variants[0][0]
    b = bucket(app_id=app.pk, salt=f"{c.kind}:{c.id}:variant", person_key=key)
    return variant_pick(b, c.variants)


def items_for(
    situation: Situation,
    decisions: list[Decision],
    *,
    dry_run: bool,
    locale: str | None,
) -> list[Item]:
    """Turn decisions into items, recording deliveries (holdout too) unless `dry_run`.

    New deliveries are written in one INSERT.
    """
    items: list[Item] = []
    app = situation.app
    person = situation.person
    record = not dry_run and person is not None
    new: list[Delivery] = []
    for d in decisions:
        c = d.campaign
        key = (c.kind, c.id)
        if d.holdout:
            if record and key not in situation.ledger.holdout:
                new.append(
                    Delivery(
                        app=app,
                        person=person,
                        kind=c.kind,
                        campaign_id=c.id,
                        holdout=True,
                        decided_at=situation.now,
                        context=_context(situation),
                    )
                )
            continue
        if not d.shown:
            continue
        pending = situation.ledger.pending.get(key)
        variant = pending.variant if pending is not None else _variant(app, c, situation.person_key)
        delivery_id: str | None = None
        if pending is not None:
            delivery_id = str(pending.id)
        elif record:
            delivery = Delivery(
                app=app,
                person=person,
                kind=c.kind,
                campaign_id=c.id,
                variant=variant,
                decided_at=situation.now,
                context=_context(situation),
            )
            new.append(delivery)
            delivery_id = str(delivery.pk)  # a UUID made before the INSERT
        kind = campaign_kind_get(c.kind)
        items.append(
            Item(
                kind=c.kind,
                id=c.id,
                delivery_id=delivery_id,
                variant=variant,
                display=c.display,
                priority=c.priority,
                delay_seconds=c.delay_seconds,
                content=kind.content(c.campaign, locale or app.default_locale, variant),
            )
        )
    if new:
        Delivery.objects.bulk_create(new)
    return items


def _context(s: Situation) -> dict[str, Any]:
    m = s.moment
    return {k: v for k, v in {"event": m.event, "url": m.url, "locale": m.locale}.items() if v}
