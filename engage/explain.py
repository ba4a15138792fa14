"""Why a person would (or would not) see each campaign now: the engine's own checks, in words.

`targeting_explain` builds the same situation `targeting_evaluate(dry_run=True)` builds, runs
the engine's `decide` over the same compiled campaigns, and reports each decision with every
check of `engage.targeting.CHECKS` in the engine's order. It adds words, never rules: each
reason is the verdict of an engine check; the audience reason adds the failing condition nodes
with the person's actual values (segments.conditions.explain, which decides each node with the
same compiled predicate over the same facts). Read-only: records nothing, spends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from engage import errors
from engage.campaigns import campaign_get_for_app
from engage.models import App, CampaignStatus
from engage.targeting import (
    CHECKS,
    MODAL,
    CompiledCampaign,
    Decision,
    Moment,
    Situation,
    Verdict,
    compile_one,
    compiled_app,
    decide,
    situation_build,
)
from segments.conditions import (
    Condition,
    ConditionInvalid,
    SegmentCondition,
    parse_condition,
)
from segments.conditions.explain import NodeExplanation, condition_explain
from segments.models import AnonymousId, Person
from segments.services import person_resolve

# Engine step → the check name explain answers with (docs/explain.md).
CHECK_NAMES = {
    "status": "status",
    "window": "window",
    "trigger": "trigger",
    "audience": "audience",
    "sampling": "sample",
    "finished": "finished",
    "caps": "caps",
    "quiet_period": "quiet",
    "quiet_hours": "quiet_hours",
    "holdout": "holdout",
}
UNKNOWN_PERSON_NOTE = (
    "No person with this id in this App yet: evaluated as an anonymous newcomer would be "
    "(no attributes but those given, no events, no deliveries)."
)


@dataclass(frozen=True)
class Reason:
    check: str
    passed: bool
    message: str
    details: dict[str, Any] | None = None
    # False for a check after the one that stopped the campaign: the engine stops there, so it
    # did not decide anything; it is shown so that every obstacle is visible at once.
    reached: bool = True

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "check": self.check,
            "passed": self.passed,
            "message": self.message,
            "reached": self.reached,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


@dataclass(frozen=True)
class CampaignExplanation:
    kind: str
    id: int
    name: str
    status: str
    decision: str  # shown | withheld | holdout
    stopped_at: str | None
    reasons: tuple[Reason, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "decision": self.decision,
            "stopped_at": self.stopped_at,
            "reasons": [r.as_dict() for r in self.reasons],
        }


@dataclass(frozen=True)
class Explanation:
    person: dict[str, Any] | None
    note: str | None
    moment: dict[str, Any]
    campaigns: tuple[CampaignExplanation, ...]

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "person": self.person,
            "moment": self.moment,
            "campaigns": [c.as_dict() for c in self.campaigns],
        }
        if self.note:
            body["note"] = self.note
        return body


# --- reasons ----------------------------------------------------------------------------------


def _audience_parts(c: CompiledCampaign) -> list[tuple[str, Condition]]:
    """The audience as the campaign states it: each segment, then the condition."""
    audience = getattr(c.campaign, "audience", None) or {}
    parts: list[tuple[str, Condition]] = [
        (f"segments[{i}]", SegmentCondition(slug))
        for i, slug in enumerate(audience.get("segments") or [])
    ]
    if audience.get("condition"):
        # Compiled from the same JSON, so it parsed there too.
        with suppress(ConditionInvalid):
            parts.append(("", parse_condition(audience["condition"], allow_context=True)))
    return parts


def _audience_reason(c: CompiledCampaign, s: Situation, verdict: Verdict) -> Reason:
    if c.audience_condition is None:
        return Reason("audience", verdict.ok, verdict.reason)
    nodes: list[NodeExplanation] = [
        condition_explain(condition, s.facts, path=path) for path, condition in _audience_parts(c)
    ]
    details = {"nodes": [n.as_dict() for n in nodes]}
    if verdict.ok:
        return Reason("audience", True, verdict.reason, details)
    failures = [f for n in nodes for f in n.failures()]
    message = "; ".join(f.message() for f in failures) or verdict.reason
    return Reason("audience", False, message, details)


def _details(step: str, c: CompiledCampaign, s: Situation) -> dict[str, Any] | None:
    key = (c.kind, c.id)
    if step == "caps":
        return {"shown": s.ledger.shown.get(key, 0), "max_impressions": c.max_impressions}
    if step == "quiet_period":
        last = s.ledger.last_shown_any
        return {
            "last_shown_any": last.isoformat() if last else None,
            "recontact_days": c.recontact_days,
        }
    if step == "trigger":
        return {
            "trigger_on": c.trigger_on,
            "trigger_event": c.trigger_event,
            "moment": _moment_dict(s.moment),
        }
    if step in ("status", "window"):
        return {
            "status": c.status,
            "starts_at": c.starts_at.isoformat() if c.starts_at else None,
            "ends_at": c.ends_at.isoformat() if c.ends_at else None,
        }
    return None


def _status_reasons(c: CompiledCampaign, s: Situation, verdict: Verdict) -> list[Reason]:
    """The engine decides status and window in one check; explain names them apart."""
    details = _details("status", c, s)
    if verdict.step == "status" and not verdict.ok:
        # The window as it would be for a live campaign, by the same engine check.
        window = CHECKS[0](replace(c, status=CampaignStatus.LIVE), s)
        return [
            Reason("status", False, f"not live: {verdict.reason}", details),
            Reason("window", window.ok, window.reason, details, reached=False),
        ]
    status = Reason("status", True, f"status is {c.status}", details)
    if verdict.ok:
        return [status, Reason("window", True, "within its window", details)]
    return [status, Reason("window", False, verdict.reason, details)]


def _reasons(
    c: CompiledCampaign, s: Situation, decision: Decision, shown_order: list[CompiledCampaign]
) -> list[Reason]:
    stopped = decision.verdicts[-1] if not decision.verdicts[-1].ok else None
    reasons: list[Reason] = []
    reached = True
    for check in CHECKS:
        verdict = check(c, s)
        if verdict.step in ("status", "window"):
            reasons += _status_reasons(c, s, verdict)
        elif verdict.step == "audience":
            reasons.append(replace(_audience_reason(c, s, verdict), reached=reached))
        else:
            reasons.append(
                Reason(
                    CHECK_NAMES.get(verdict.step, verdict.step),
                    verdict.ok,
                    verdict.reason,
                    _details(verdict.step, c, s),
                    reached=reached,
                )
            )
        if stopped is not None and verdict.step == stopped.step:
            reached = False
    if stopped is None:
        reasons += _ranking_reasons(c, decision, shown_order)
    return reasons


def _label(c: CompiledCampaign) -> str:
    return f'{c.kind} #{c.id} "{c.name}" (priority {c.priority})'


def _ranking_reasons(
    c: CompiledCampaign, decision: Decision, shown_order: list[CompiledCampaign]
) -> list[Reason]:
    if decision.lost_to is not None:
        rival = decision.lost_to
        return [
            Reason(
                "modal",
                False,
                f"at most one modal shows at a time and {_label(rival)} takes the slot",
                {"lost_to": {"kind": rival.kind, "id": rival.id}},
            ),
            Reason(
                "priority",
                False,
                f"priority {c.priority} ranks below {_label(rival)}",
                {"priority": c.priority, "lost_to": {"kind": rival.kind, "id": rival.id}},
            ),
        ]
    modal = (
        "the highest-ranked modal that passes every check"
        if c.display == MODAL
        else f"shows as {c.display}, which does not compete for the modal slot"
    )
    position = shown_order.index(c) + 1 if c in shown_order else 0
    return [
        Reason("modal", True, modal),
        Reason(
            "priority",
            True,
            f"priority {c.priority}: number {position} of {len(shown_order)} shown now",
            {"priority": c.priority, "position": position, "shown": len(shown_order)},
        ),
    ]


def _moment_dict(moment: Moment) -> dict[str, Any]:
    return {
        "event": moment.event,
        "url": moment.url,
        "locale": moment.locale,
        "device": moment.device,
        "session_start": moment.session_start,
    }


def _person_dict(person: Person) -> dict[str, Any]:
    return {
        "id": person.pk,
        "user_id": person.user_id,
        "anonymous_ids": list(
            AnonymousId.objects.filter(person=person)
            .order_by("id")
            .values_list("anonymous_id", flat=True)[:20]
        ),
        "attributes": person.attributes,
    }


# --- the service ------------------------------------------------------------------------------


def targeting_explain(
    *,
    app: App,
    user_id: str | None,
    anonymous_id: str | None,
    moment: Moment,
    attributes: Mapping[str, Any] | None = None,
    campaign: tuple[str, Any] | None = None,
    now: datetime | None = None,
) -> Explanation:
    """Explain, for each live campaign (or only `campaign`, whatever its status), the decision
    `targeting_evaluate(dry_run=True)` would take now and every check behind it.

    Before: `user_id` or `anonymous_id` is given; `campaign` is (kind, id) of this App's
    campaign (NotFound otherwise). After: nothing written (no person, delivery or impression).
    An unknown person is evaluated as an anonymous newcomer with only `attributes`, and the
    answer's `note` says so.
    """
    if not user_id and not anonymous_id:
        raise errors.InvalidInput("user_id: give a user_id or an anonymous_id")
    campaigns = list(compiled_app(app.pk).campaigns)
    wanted: tuple[str, int] | None = None
    if campaign is not None:
        kind, campaign_id = campaign
        found = campaign_get_for_app(app=app, kind=kind, campaign_id=campaign_id)
        wanted = (kind, found.pk)
        if not any((c.kind, c.id) == wanted for c in campaigns):
            # Not live or scheduled: decided beside the live ones (it cannot take their place).
            campaigns.append(compile_one(kind, found))
            campaigns.sort(key=lambda c: (-c.priority, c.kind, c.id))
    person = person_resolve(app=app, user_id=user_id, anonymous_id=anonymous_id, create=False)
    situation = situation_build(
        app=app,
        person=person,
        moment=moment,
        now=now,
        attributes=attributes,
        user_id=user_id,
        anonymous_id=anonymous_id,
    )
    decisions = decide(situation, tuple(campaigns))
    shown_order = [d.campaign for d in decisions if d.shown]
    explained = []
    for d in decisions:
        c = d.campaign
        if wanted is not None and (c.kind, c.id) != wanted:
            continue
        decision = "shown" if d.shown else "holdout" if d.holdout else "withheld"
        stopped = d.verdicts[-1]
        stopped_at = (
            CHECK_NAMES.get(stopped.step, stopped.step)
            if not stopped.ok
            else "modal"
            if d.lost_to is not None
            else None
        )
        explained.append(
            CampaignExplanation(
                kind=c.kind,
                id=c.id,
                name=c.name,
                status=c.status,
                decision=decision,
                stopped_at=stopped_at,
                reasons=tuple(_reasons(c, situation, d, shown_order)),
            )
        )
    known = person is not None and person.pk is not None
    return Explanation(
        person=_person_dict(person) if known and person is not None else None,
        note=None if known else UNKNOWN_PERSON_NOTE,
        moment=_moment_dict(moment),
        campaigns=tuple(explained),
    )
