"""What the widget connection does, one service per client frame (the consumer is only a door).

Each function takes the connection's identity (App, user id, anonymous id) and resolves the
person afresh, so that a merge made through another door (events API, identify API) is picked
up at the next frame; each returns the person it acted for, so the consumer can move its groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from django.db import transaction
from django.utils import timezone

from engage import errors
from engage.campaigns import campaign_kind_get
from engage.deliveries import delivery_event_record
from engage.models import App, CampaignStatus, TriggerOn
from engage.targeting import (
    CompiledApp,
    CompiledCampaign,
    Item,
    Moment,
    compiled_app,
    decide,
    items_for,
    ledger_load,
    situation_build,
)
from segments.models import EventSource, Person
from segments.services import EventInput, events_ingest, person_identify, person_resolve


@dataclass(frozen=True)
class Acted:
    """The person a frame acted for, and the items it produced (snapshot or shows)."""

    person: Person
    items: list[Item]


def _person(*, app: App, user_id: str | None, anonymous_id: str) -> Person:
    person = person_resolve(app=app, user_id=user_id, anonymous_id=anonymous_id, create=True)
    assert person is not None  # noqa: S101 - an anonymous id is always given
    return person


def _evaluable(campaigns: tuple[CompiledCampaign, ...]) -> tuple[CompiledCampaign, ...]:
    # `api` campaigns show only through targeting/evaluate and targeting/push, never on their
    # own on a widget connection.
    return tuple(c for c in campaigns if c.trigger_on != TriggerOn.API)


@transaction.atomic
def moment_items(
    *,
    app: App,
    person: Person,
    moment: Moment,
    anonymous_id: str | None = None,
    campaigns: tuple[CompiledCampaign, ...] | None = None,
    compiled: CompiledApp | None = None,
) -> list[Item]:
    """Decide `campaigns` (default: the App's live ones but `api`) for the person now.

    After: a delivery is recorded for each item and holdout decision (pending ones reused),
    exactly as targeting_evaluate records them.
    """
    compiled = compiled or compiled_app(app.pk)
    situation = situation_build(
        app=app,
        person=person,
        moment=moment,
        user_id=person.user_id,
        anonymous_id=anonymous_id,
        compiled=compiled,
    )
    chosen = _evaluable(compiled.campaigns_for(moment)) if campaigns is None else campaigns
    decisions = decide(situation, chosen)
    return items_for(situation, decisions, dry_run=False, locale=moment.locale)


def pending_items(
    *, app: App, person: Person, locale: str | None, exclude: set[str] | None = None
) -> list[Item]:
    """The person's deliveries decided earlier and not yet shown or dismissed, rendered again.

    Only campaigns still live and inside their window count. Those whose trigger names a URL
    are left out: they belong to the page they were decided on and come back through a page
    view of a matching URL. Reads only.
    """
    ledger = ledger_load(person)
    if not ledger.pending:
        return []
    compiled = {(c.kind, c.id): c for c in compiled_app(app.pk).campaigns}
    now = timezone.now()
    items = []
    for key, delivery in ledger.pending.items():
        c = compiled.get(key)
        if c is None or c.status != CampaignStatus.LIVE or c.trigger_url is not None:
            continue
        if (c.starts_at and c.starts_at > now) or (c.ends_at and c.ends_at <= now):
            continue
        if exclude and str(delivery.id) in exclude:
            continue
        kind = campaign_kind_get(c.kind)
        items.append(
            Item(
                kind=c.kind,
                id=c.id,
                delivery_id=str(delivery.id),
                variant=delivery.variant,
                display=c.display,
                priority=c.priority,
                delay_seconds=c.delay_seconds,
                content=kind.content(c.campaign, locale or app.default_locale, delivery.variant),
            )
        )
    return items


def item_localize(*, app: App, item: dict[str, Any], locale: str) -> dict[str, Any]:
    """The pushed `item` with its content rendered for `locale`.

    Pushes are decided once per person, in the App's default locale; each connection renders
    them again in its own. An item whose campaign is no longer live is returned as it is.
    Reads only.
    """
    key = (str(item.get("kind")), int(item.get("id") or 0))
    compiled = {(c.kind, c.id): c for c in compiled_app(app.pk).campaigns}.get(key)
    if compiled is None:
        return item
    kind = campaign_kind_get(compiled.kind)
    content = kind.content(compiled.campaign, locale, str(item.get("variant") or ""))
    return {**item, "content": content}


def snapshot_items(
    *, app: App, person: Person, anonymous_id: str | None, moment: Moment | None
) -> list[Item]:
    """What the person should see now: pending deliveries plus decisions for `moment`.

    `moment` None decides nothing new (a reconnect, or identify). A moment with a URL decides
    page-view campaigns (and session-start ones when `session_start`); without a URL and with
    `session_start`, session-start campaigns. Highest priority first; one item per delivery.
    """
    decided: list[Item] = []
    if moment is not None and (moment.url or moment.session_start):
        decided = moment_items(app=app, person=person, moment=moment, anonymous_id=anonymous_id)
    seen = {i.delivery_id for i in decided if i.delivery_id}
    locale = moment.locale if moment is not None else None
    items = decided + pending_items(app=app, person=person, locale=locale, exclude=seen)
    items.sort(key=lambda i: (-i.priority, i.kind, i.id))
    return items


def session_open(
    *,
    app: App,
    user_id: str | None,
    anonymous_id: str,
    attributes: Mapping[str, Any] | None,
) -> Person:
    """hello: the person these ids name (created and linked as an event would link them).

    Before: identity verification was checked by the caller. After: the person exists, the
    anonymous id points at it, and `attributes` are merged over its attributes.
    """
    with transaction.atomic():
        person = _person(app=app, user_id=user_id, anonymous_id=anonymous_id)
        if attributes:
            person.attributes = {**person.attributes, **attributes}
            person.save(update_fields=["attributes"])
    return person


def session_identify(
    *,
    app: App,
    user_id: str,
    anonymous_id: str,
    attributes: Mapping[str, Any] | None,
) -> Person:
    """identify: link the connection's anonymous person to the known one (merging history)."""
    return person_identify(
        app=app, user_id=user_id, anonymous_id=anonymous_id, attributes=dict(attributes or {})
    )


def page_view(*, app: App, user_id: str | None, anonymous_id: str, moment: Moment) -> Acted:
    """page: decide page-view campaigns for the URL; deliveries recorded for what shows."""
    person = _person(app=app, user_id=user_id, anonymous_id=anonymous_id)
    items = moment_items(
        app=app,
        person=person,
        moment=replace(moment, session_start=False),
        anonymous_id=anonymous_id,
    )
    return Acted(person=person, items=items)


def widget_track(
    *,
    app: App,
    user_id: str | None,
    anonymous_id: str,
    event: str,
    properties: Mapping[str, Any] | None,
    message_id: str | None,
) -> None:
    """track: store the event like every other door does (source `widget`).

    Event-triggered campaigns reach the person's widgets through the events listener after
    commit, as for an event from the collector or the events API.
    """
    events_ingest(
        app=app,
        events=[
            EventInput(
                name=event,
                user_id=user_id,
                anonymous_id=anonymous_id,
                properties=dict(properties or {}),
                dedup_id=message_id,
                raw={"event": event, "properties": properties, "message_id": message_id},
            )
        ],
        source=EventSource.WIDGET,
    )


def widget_delivery(
    *,
    app: App,
    user_id: str | None,
    anonymous_id: str,
    delivery_id: str,
    event: str,
    button: str | None,
) -> Person:
    """delivery: record shown/clicked/dismissed for one of this person's deliveries, once."""
    person = _person(app=app, user_id=user_id, anonymous_id=anonymous_id)
    delivery_event_record(
        app=app, delivery_id=delivery_id, type=event, button=button, person=person
    )
    return person


# --- survey answers ---------------------------------------------------------------------------


class AnswerHandler(Protocol):
    """What a campaign kind that takes answers registers (surveys.services.response_submit)."""

    def __call__(
        self,
        *,
        app: App,
        survey_id: int,
        response_id: str,
        user_id: str | None,
        anonymous_id: str | None,
        delivery_id: str | None,
        answers: dict[str, Any],
        completed: bool,
        locale: str | None = None,
    ) -> Any: ...


_answer_handler: list[AnswerHandler] = []


def answer_handler_register(handler: AnswerHandler) -> None:
    """Let a campaign kind take `answer` frames (engage never imports campaign kinds)."""
    _answer_handler[:] = [handler]


def answer_submit(
    *,
    app: App,
    user_id: str | None,
    anonymous_id: str,
    response_id: str,
    survey_id: int,
    delivery_id: str | None,
    answers: dict[str, Any],
    completed: bool,
    locale: str | None,
) -> None:
    """answer: hand a survey response to the registered handler; the same id updates it."""
    if not _answer_handler:
        raise errors.ServiceUnavailable(
            "This server takes no survey answers (no answer handler is registered).",
            code="answers_unavailable",
        )
    _answer_handler[0](
        app=app,
        survey_id=survey_id,
        response_id=response_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        delivery_id=delivery_id,
        answers=answers,
        completed=completed,
        locale=locale,
    )
