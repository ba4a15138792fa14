"""The targeting engine: which campaigns a person should see now.

Live campaigns of an App are compiled once (audience predicates, trigger matchers, buckets)
and cached per process under a version that every campaign or segment change bumps in the
shared cache, so all processes recompile after a change.

A decision walks the same ordered checks for every campaign (status and window, trigger,
audience, sampling, finished, caps, quiet period, holdout), then sorts by priority and keeps at
most one modal. `explain` reuses the same checks, so what it says is what evaluate does.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from engage.campaigns import campaign_kind_get, campaign_kinds, campaigns_version
from engage.experiments import allocated_variants
from engage.models import App, CampaignStatus, Delivery, TriggerOn
from engage.quiet_hours import quiet_hours_verdict
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
from segments.conditions.facts import boundary_span, person_facts_from_counters
from segments.conditions.operators import RELATIVE_DATE_OPS
from segments.conditions.predicate import window_start
from segments.conditions.sql import event_filters_q
from segments.conditions.tree import (
    EventCondition,
    PropertyFilter,
    SegmentCondition,
    condition_walk,
)
from segments.models import Event, EventDailyCount, Person, Segment
from segments.services import prepared_cursor

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
    # False for explicit pushes and previews, which the App's quiet hours do not hold back.
    quiet_hours: bool = True


@dataclass(frozen=True)
class CompiledApp:
    version: int
    campaigns: tuple[CompiledCampaign, ...]
    segments: Mapping[str, Condition]
    goal_events: frozenset[str]
    # Event names any audience or segment counts: the only counters a decision loads.
    event_names: frozenset[str]
    # The campaigns each kind of moment can trigger, in priority order (see `campaigns_for`).
    by_event: Mapping[str, tuple[CompiledCampaign, ...]] = field(default_factory=dict)
    on_page_view: tuple[CompiledCampaign, ...] = ()
    on_page_view_or_session: tuple[CompiledCampaign, ...] = ()
    on_api_or_session: tuple[CompiledCampaign, ...] = ()
    # The history query of each kind of moment, built on first use (see `history_query`).
    histories: dict[str, HistoryQuery] = field(default_factory=dict, compare=False, repr=False)

    def moment_key(self, moment: Moment) -> str:
        """Which of the groups of `campaigns_for` the moment picks."""
        if moment.event:
            return "event:" + moment.event
        if moment.url:
            return "page_view_or_session" if moment.session_start else "page_view"
        return "api_or_session"

    def campaigns_for(self, moment: Moment) -> tuple[CompiledCampaign, ...]:
        """The campaigns whose kind of trigger the moment meets, in priority order.

        Exactly those whose trigger `_check_trigger` can pass (its URL condition aside), so
        deciding only these gives the same items as deciding them all: a decision then walks
        the checks of the few campaigns the moment concerns, not of every live one.
        """
        if moment.event:
            return self.by_event.get(moment.event, ())
        if moment.url:
            return self.on_page_view_or_session if moment.session_start else self.on_page_view
        return self.on_api_or_session


def _trigger_index(campaigns: list[CompiledCampaign]) -> dict[str, Any]:
    by_event: dict[str, list[CompiledCampaign]] = {}
    for c in campaigns:
        if c.trigger_on == TriggerOn.EVENT and c.trigger_event:
            by_event.setdefault(c.trigger_event, []).append(c)
    return {
        "by_event": {name: tuple(found) for name, found in by_event.items()},
        "on_page_view": tuple(c for c in campaigns if c.trigger_on == TriggerOn.PAGE_VIEW),
        "on_page_view_or_session": tuple(
            c for c in campaigns if c.trigger_on in (TriggerOn.PAGE_VIEW, TriggerOn.SESSION_START)
        ),
        "on_api_or_session": tuple(
            c for c in campaigns if c.trigger_on in (TriggerOn.API, TriggerOn.SESSION_START)
        ),
    }


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
        variants=allocated_variants(campaign, tuple(kind.variants(campaign))) or (("", 1),),
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
            ).select_related("app"):  # rendering content reads the App's default locale
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
            **_trigger_index(campaigns),
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
        .order_by("decided_at", "id")
        .values_list(
            "id", "kind", "campaign_id", "variant", "holdout", "shown_at", "dismissed_at",
            "answered_at",
        )
    )  # fmt: skip
    return _ledger(rows)


def _ledger(rows: Iterable[tuple[Any, ...]]) -> Ledger:
    """The ledger of delivery rows (id, kind, campaign_id, variant, holdout, shown_at,
    dismissed_at, answered_at), oldest decision first."""
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
        return Verdict("window", False, f"starts at {c.starts_at.isoformat()}")
    if c.ends_at and c.ends_at <= s.now:
        return Verdict("window", False, f"ended at {c.ends_at.isoformat()}")
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


def _check_quiet_hours(c: CompiledCampaign, s: Situation) -> Verdict:
    setting = s.app.quiet_hours
    if not setting or not c.quiet_hours:
        return Verdict("quiet_hours", True, "no quiet hours")
    zone = s.facts.attributes.get("timezone")
    found = quiet_hours_verdict(
        str(setting.get("start")),
        str(setting.get("end")),
        s.now,
        zone if isinstance(zone, str) else None,
        s.app.timezone,
    )
    if found is None:
        return Verdict("quiet_hours", True, "no quiet hours")
    return Verdict("quiet_hours", not found[0], found[1])


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
    _check_quiet_hours,
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
    compiled: CompiledApp | None = None,
) -> Situation:
    """What the checks need about the person and the moment (reads only). `compiled` is the
    App's compiled campaigns when the caller already holds them (saves a version read)."""
    now = now or timezone.now()
    compiled = compiled or compiled_app(app.pk)
    facts: Any
    ledger: Ledger | None = None
    if person is not None and person.pk is not None and connection.vendor == "postgresql":
        facts, ledger = _person_history_load(person, now=now, moment=moment, compiled=compiled)
        if attributes:
            facts = replace(facts, attributes={**facts.attributes, **attributes})
    elif person is not None and person.pk is not None:
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
        ledger=ledger if ledger is not None else ledger_load(person),
    )


# One round trip for a known person's history on PostgreSQL: the event counters the App's
# conditions need, the deliveries ledger (both as arrays: each aggregate yields exactly one
# row), the events of the rolling windows' boundary days, and the property-filter (`where`)
# counts the moment's campaigns may ask for. Built once per App version and kind of moment.
_COUNTERS_SQL = f"""
    SELECT array_agg(name) AS names, array_agg(day) AS days, array_agg(count) AS counts
    FROM {EventDailyCount._meta.db_table} WHERE person_id = %s AND name = ANY(%s::text[])
"""  # noqa: S608 - table names from the models, values bound as parameters
_LEDGER_SQL = f"""
    SELECT array_agg(id ORDER BY decided_at, id) AS ids,
           array_agg(kind ORDER BY decided_at, id) AS kinds,
           array_agg(campaign_id ORDER BY decided_at, id) AS campaign_ids,
           array_agg(variant ORDER BY decided_at, id) AS variants,
           array_agg(holdout ORDER BY decided_at, id) AS holdouts,
           array_agg(shown_at ORDER BY decided_at, id) AS shown,
           array_agg(dismissed_at ORDER BY decided_at, id) AS dismissed,
           array_agg(answered_at ORDER BY decided_at, id) AS answered
    FROM {Delivery._meta.db_table} WHERE person_id = %s AND NOT is_test
"""  # noqa: S608 - table names from the models, values bound as parameters
_EVENTS = Event._meta.db_table
_PERSON = Person._meta.db_table
_PERSON_FIELDS = tuple(f.attname for f in Person._meta.concrete_fields)
_PERSON_COLUMNS = tuple(f.column for f in Person._meta.concrete_fields)


@dataclass(frozen=True)
class _WhereCount:
    """One property-filter count read with the history: its key and its SQL's parameters."""

    key: tuple[str, int | None, tuple[PropertyFilter, ...]]
    params: tuple[Any, ...]


@dataclass(frozen=True)
class HistoryQuery:
    """The one query that reads a known person's history for a kind of moment (PostgreSQL)."""

    sql: str
    # `sql` for a person named by user id, their row first (None when there is no such one).
    sql_by_user: str
    names: str  # the App's counted event names, as a PostgreSQL array literal
    event_names: frozenset[str]
    windows: tuple[int, ...]  # rolling windows whose boundary-day events are read
    where_counts: tuple[_WhereCount, ...]

    def params(self, person_id: int | None, now: datetime) -> list[Any]:
        """The parameters in the order of the SQL's text: the counts of the select list,
        then the counters, the ledger and the boundary days. `person_id` None: for
        `sql_by_user`, to follow the App and user id."""
        person = [] if person_id is None else [person_id]
        params: list[Any] = []
        for count in self.where_counts:
            name, within, _where = count.key
            params += [*person, name]
            if within is not None:
                params.append(window_start(now, within))
            params += count.params
        params += [*person, self.names, *person]
        if self.windows:
            params += [*person, self.names]
            for within in self.windows:
                params += boundary_span(now, within)
        return params


def _array_literal(items: Iterable[str]) -> str:
    quoted = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
    return "{" + ",".join(quoted) + "}"


def _event_leaves(
    campaigns: Iterable[CompiledCampaign], segments: Mapping[str, Condition]
) -> list[EventCondition]:
    """Every event-count leaf the campaigns' audiences may evaluate, through their segments."""
    leaves: list[EventCondition] = []
    seen: set[str] = set()
    todo = [c.audience_condition for c in campaigns if c.audience_condition is not None]
    while todo:
        for node in condition_walk(todo.pop()):
            if isinstance(node, EventCondition):
                leaves.append(node)
            elif isinstance(node, SegmentCondition) and node.slug not in seen:
                seen.add(node.slug)
                if (found := segments.get(node.slug)) is not None:
                    todo.append(found)
    return leaves


def _history_query(
    compiled: CompiledApp, campaigns: tuple[CompiledCampaign, ...], db: Any
) -> HistoryQuery:
    leaves = _event_leaves(campaigns, compiled.segments)
    windows = sorted({n.within_days for n in leaves if not n.where and n.within_days is not None})
    keys: dict[tuple[str, int | None, tuple[PropertyFilter, ...]], None] = {}
    for n in leaves:
        # A filter relative to now (within_last_days) would need its SQL built at every
        # decision: such counts stay lazy, made only when a predicate reaches them.
        if n.where and not any(f.op in RELATIVE_DATE_OPS for f in n.where):
            keys[(n.event, n.within_days, n.where)] = None
    columns = ["c.names", "c.days", "c.counts"]
    columns += [f"d.{c}" for c in ("ids", "kinds", "campaign_ids", "variants", "holdouts")]
    columns += ["d.shown", "d.dismissed", "d.answered"]
    sources = [f"({_COUNTERS_SQL}) AS c", f"({_LEDGER_SQL}) AS d"]
    if windows:
        spans = " OR ".join(["(timestamp >= %s AND timestamp < %s)"] * len(windows))
        boundary = (
            f"(SELECT array_agg(name) AS names, array_agg(timestamp) AS times FROM {_EVENTS}"  # noqa: S608 - a model's table, placeholders
            f" WHERE person_id = %s AND name = ANY(%s::text[]) AND ({spans})) AS b"
        )
        sources.append(boundary)
        columns += ["b.names", "b.times"]
    else:
        columns += ["NULL", "NULL"]
    where_counts = []
    for name, within, where in keys:
        query = Event.objects.filter(event_filters_q(where, now=_ANY_NOW)).query
        filter_sql, filter_params = query.get_compiler(connection=db).compile(query.where)
        since = " AND timestamp >= %s" if within is not None else ""
        count = (
            f"(SELECT count(*) FROM {_EVENTS} WHERE person_id = %s AND name = %s{since}"  # noqa: S608 - the filter's SQL as Django compiles it
            f" AND {filter_sql})"
        )
        columns.append(count)
        where_counts.append(_WhereCount((name, within, where), tuple(filter_params)))
    sql = f"SELECT {', '.join(columns)} FROM {', '.join(sources)}"  # noqa: S608 - see above
    # The same, finding the person by user id first: every "person_id = %s" reads theirs.
    person_columns = ", ".join(f"p.{column}" for column in _PERSON_COLUMNS)
    by_user = (
        f"WITH p AS (SELECT {', '.join(_PERSON_COLUMNS)} FROM {_PERSON}"  # noqa: S608 - model columns, placeholders
        " WHERE app_id = %s AND user_id = %s) "
        f"SELECT {person_columns}, {', '.join(columns)} "
        f"FROM (SELECT 1) AS one LEFT JOIN p ON TRUE, {', '.join(sources)}"
    ).replace("person_id = %s", "person_id = (SELECT id FROM p)")
    return HistoryQuery(
        sql=sql,
        sql_by_user=by_user,
        names=_array_literal(sorted(compiled.event_names)),
        event_names=compiled.event_names,
        windows=tuple(windows),
        where_counts=tuple(where_counts),
    )


# Filters relative to now are left out of the history query, so the SQL of those it holds
# does not depend on the instant it is built at.
_ANY_NOW = datetime(2000, 1, 1, tzinfo=UTC)


def history_query(compiled: CompiledApp, moment: Moment, db: Any) -> HistoryQuery:
    """The history query of the moment's kind for the App (built on first use, then kept
    with the compiled campaigns, so a campaign or segment change builds it anew)."""
    key = compiled.moment_key(moment)
    found = compiled.histories.get(key)
    if found is None:
        found = _history_query(compiled, compiled.campaigns_for(moment), db)
        compiled.histories[key] = found
    return found


def _person_history_load(
    person: Person, *, now: datetime, moment: Moment, compiled: CompiledApp
) -> tuple[Any, Ledger]:
    """The person's facts and ledger in one query: what `person_facts_load` and `ledger_load`
    read in two, with the boundary-day and property-filter counts the moment's campaigns may
    need (PostgreSQL only). Reads only."""
    query = history_query(compiled, moment, connection)
    # Prepared once per connection: planning it anew (the event partitions of the boundary
    # days and property-filter counts) cost several times its execution.
    with prepared_cursor() as cursor:
        cursor.execute(query.sql, query.params(person.pk, now))
        row = cursor.fetchone()
    return _history(person, row, query=query, now=now, moment=moment, compiled=compiled)


def situation_for_user(
    *,
    app: App,
    user_id: str,
    moment: Moment,
    now: datetime,
    attributes: Mapping[str, Any] | None,
    compiled: CompiledApp,
) -> Situation | None:
    """`situation_build` for the person of `app` with this user id, read together with their
    history in one query (PostgreSQL); None when the App has no such person. Reads only."""
    query = history_query(compiled, moment, connection)
    with prepared_cursor() as cursor:
        cursor.execute(query.sql_by_user, [app.pk, user_id, *query.params(None, now)])
        row = cursor.fetchone()
    width = len(_PERSON_FIELDS)
    if row[0] is None:
        return None
    values = list(row[:width])
    at = _PERSON_FIELDS.index("attributes")
    if isinstance(values[at], str | bytes):  # jsonb arrives as text for Django's JSONField
        values[at] = json.loads(values[at])
    person = Person.from_db(connection.alias, list(_PERSON_FIELDS), values)
    facts, ledger = _history(
        person, row[width:], query=query, now=now, moment=moment, compiled=compiled
    )
    if attributes:
        facts = replace(facts, attributes={**facts.attributes, **attributes})
    return Situation(
        app=app,
        person=person,
        person_key=person_key(person, user_id=user_id, anonymous_id=None),
        facts=facts,
        moment=moment,
        now=now,
        ledger=ledger,
    )


def _history(
    person: Person,
    row: Sequence[Any],
    *,
    query: HistoryQuery,
    now: datetime,
    moment: Moment,
    compiled: CompiledApp,
) -> tuple[Any, Ledger]:
    """Facts and ledger from a row of the history query."""
    names, days, counts = row[0:3]
    deliveries = row[3:11]
    boundary_names, boundary_times = row[11:13]
    boundary: dict[tuple[str, int], int] = {}
    if boundary_names:
        spans = [(within, *boundary_span(now, within)) for within in query.windows]
        for name, at in zip(boundary_names, boundary_times, strict=True):
            for within, start, end in spans:
                if start <= at < end:
                    boundary[(name, within)] = boundary.get((name, within), 0) + 1
    counted = {count.key: found for count, found in zip(query.where_counts, row[13:], strict=True)}
    facts = person_facts_from_counters(
        person,
        now=now,
        counters=zip(names, days, counts, strict=True) if names else (),
        context=moment.context(),
        segment_resolver=compiled.segments.get,
        event_names=compiled.event_names,
        counted=counted,
        boundary=boundary,
        boundary_names=query.event_names,
        boundary_windows=frozenset(query.windows),
    )
    ledger = _ledger(zip(*deliveries, strict=True) if deliveries[0] else ())
    return facts, ledger


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
    new: list[NewDelivery] = []
    for d in decisions:
        c = d.campaign
        key = (c.kind, c.id)
        if d.holdout:
            if record and key not in situation.ledger.holdout:
                new.append(NewDelivery(uuid.uuid4(), c.kind, c.id, "", True))
            continue
        if not d.shown:
            continue
        pending = situation.ledger.pending.get(key)
        variant = pending.variant if pending is not None else _variant(app, c, situation.person_key)
        delivery_id: str | None = None
        if pending is not None:
            delivery_id = str(pending.id)
        elif record:
            made = uuid.uuid4()  # the id is known before the INSERT
            new.append(NewDelivery(made, c.kind, c.id, variant, False))
            delivery_id = str(made)
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
    if new and person is not None:
        _deliveries_insert(
            app=app, person=person, decided_at=situation.now, context=_context(situation), new=new
        )
    return items


class NewDelivery(NamedTuple):
    """A delivery decided now, to be inserted with the decision's others."""

    id: uuid.UUID
    kind: str
    campaign_id: int
    variant: str
    holdout: bool


def _deliveries_insert(
    *,
    app: App,
    person: Person,
    decided_at: datetime,
    context: dict[str, Any],
    new: list[NewDelivery],
) -> None:
    """Insert the decision's deliveries in one statement that commits without waiting for the
    disk (see `decisions_commit_async`), unless a caller's transaction is open: then in that one.

    On PostgreSQL outside a transaction, this is one prepared statement, its own implicit
    transaction: a CTE turns synchronous commit off for that transaction only (what
    `SET LOCAL` does) and the rows travel as one JSON parameter. Elsewhere it takes BEGIN,
    SET LOCAL, INSERT and COMMIT.
    """
    db = transaction.get_connection()
    if db.vendor == "postgresql" and not db.in_atomic_block and len(new) <= _ONE_QUERY_ROWS:
        rows = [[str(d.id), d.kind, d.campaign_id, d.variant, d.holdout] for d in new]
        with prepared_cursor() as cursor:
            cursor.execute(
                _INSERT_ASYNC_SQL,
                [app.pk, person.pk, json.dumps(context), decided_at, json.dumps(rows)],
            )
        return
    deliveries = [
        Delivery(
            id=d.id,
            app=app,
            person=person,
            kind=d.kind,
            campaign_id=d.campaign_id,
            variant=d.variant,
            holdout=d.holdout,
            decided_at=decided_at,
            context=context,
        )
        for d in new
    ]
    if db.in_atomic_block:
        Delivery.objects.bulk_create(deliveries)  # the caller's transaction decides
        return
    with transaction.atomic():
        decisions_commit_async()
        Delivery.objects.bulk_create(deliveries)


def _delivery_insert_sql() -> str:
    """The INSERT of a decision's deliveries: what every delivery of the decision shares as
    parameters (App, person, context, time), the rest from one JSON parameter of
    [id, kind, campaign_id, variant, holdout] rows. Columns left out are nullable."""
    column = {f.name: f.column for f in Delivery._meta.concrete_fields}
    values = {
        "id": "(r->>0)::uuid",
        "kind": "r->>1",
        "campaign_id": "(r->>2)::bigint",
        "variant": "r->>3",
        "holdout": "(r->>4)::boolean",
        "app": "%s",
        "person": "%s",
        "context": "%s::jsonb",
        "decided_at": "%s",
        "is_test": "FALSE",
        "clicked_button": "''",
    }
    # set_config(…, true) is SET LOCAL as an expression: it lasts until this statement's
    # implicit transaction commits, and that commit then does not wait for the WAL flush.
    return (
        "WITH commit_async AS (SELECT set_config('synchronous_commit', 'off', true)) "  # noqa: S608 - model columns, placeholders
        f"INSERT INTO {Delivery._meta.db_table} "
        f"({', '.join(column[name] for name in values)}) "
        f"SELECT {', '.join(values.values())} "
        "FROM jsonb_array_elements(%s::jsonb) AS r, commit_async"
    )


# A decision makes at most one delivery per live campaign, usually a handful.
_ONE_QUERY_ROWS = 500
_COMMIT_ASYNC = "SET LOCAL synchronous_commit = off"
_INSERT_ASYNC_SQL = _delivery_insert_sql()


def decisions_commit_async() -> None:
    """Let the current transaction commit without waiting for its WAL flush (PostgreSQL).

    For transactions that only record decisions (deliveries decided, not yet shown): the flush
    costs milliseconds at every commit on ordinary disks (about 4 ms median, 25 ms p99 on the
    benchmark machine), more than the decision itself. A crash of the database server can lose
    the last fraction of a second of such commits and nothing else: the database stays
    consistent, and a lost pending delivery is decided again at the person's next moment.
    Impressions, clicks, dismissals and answers are other writes, which commit durably.
    Call inside `transaction.atomic()`; elsewhere, and on other databases, it does nothing.
    """
    db = transaction.get_connection()
    if db.vendor == "postgresql" and db.in_atomic_block:
        with db.cursor() as cursor:
            cursor.execute(_COMMIT_ASYNC)


def _context(s: Situation) -> dict[str, Any]:
    m = s.moment
    return {k: v for k, v in {"event": m.event, "url": m.url, "locale": m.locale}.items() if v}
