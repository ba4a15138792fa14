"""Writes around deliveries: deciding for a person now, what they did, and conversions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from engage import errors
from engage.models import App, Delivery
from engage.targeting import (
    Item,
    Moment,
    compiled_app,
    decide,
    items_for,
    situation_build,
    situation_for_user,
)
from segments.models import Person
from segments.services import MAX_ID_LENGTH, StoredEvent, person_resolve

logger = logging.getLogger(__name__)

DELIVERY_EVENT_TYPES = ("shown", "clicked", "dismissed")


@dataclass(frozen=True)
class Evaluation:
    person: Person | None
    items: list[Item]


def targeting_evaluate(
    *,
    app: App,
    user_id: str | None,
    anonymous_id: str | None,
    moment: Moment,
    attributes: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Evaluation:
    """The campaigns this person should see now, highest priority first.

    After (unless `dry_run`): the person exists; a delivery is recorded for each item (a
    pending one is reused, so asking twice does not double-count) and for each holdout
    decision; no impression is spent until the delivery is reported `shown`. With `dry_run`
    nothing is written and `delivery_id` is null for new decisions.
    `attributes` count for this decision; they are stored on the person unless `dry_run`.

    No transaction is opened around the decision: each write (the person, their attributes,
    the deliveries in one INSERT) is atomic on its own, and a decision that writes nothing
    costs no BEGIN and COMMIT round trips.
    """
    if not user_id and not anonymous_id:
        raise errors.InvalidInput("user_id: give a user_id or an anonymous_id")
    compiled = compiled_app(app.pk)
    situation = None
    if user_id and not anonymous_id and _plain_id(user_id) and connection.vendor == "postgresql":
        # Someone known by user id (the common case): the person and their history in one
        # query. Whom it finds is whom `person_resolve` finds; anyone else takes that path.
        situation = situation_for_user(
            app=app,
            user_id=user_id,
            moment=moment,
            now=now or timezone.now(),
            attributes=attributes,
            compiled=compiled,
        )
    if situation is not None:
        person = situation.person
        if person is not None and attributes and not dry_run:
            person.attributes = {**person.attributes, **attributes}
            person.save(update_fields=["attributes"])
    else:
        person = person_resolve(
            app=app, user_id=user_id, anonymous_id=anonymous_id, create=not dry_run
        )
        if person is not None and attributes and not dry_run:
            person.attributes = {**person.attributes, **attributes}
            person.save(update_fields=["attributes"])
        situation = situation_build(
            app=app,
            person=person,
            moment=moment,
            now=now,
            attributes=attributes,
            user_id=user_id,
            anonymous_id=anonymous_id,
            compiled=compiled,
        )
    # Only the campaigns the moment can trigger: the others could not show or be held out.
    decisions = decide(situation, compiled.campaigns_for(moment))
    items = items_for(situation, decisions, dry_run=dry_run, locale=moment.locale)
    return Evaluation(person=person, items=items)


def _plain_id(user_id: str) -> bool:
    """Whether `person_resolve` looks this user id up as given (it cleans others first)."""
    return len(user_id) <= MAX_ID_LENGTH and "\x00" not in user_id and user_id.strip() == user_id


# Told after commit when a delivery is shown, clicked, dismissed or converted (webhooks,
# analytics): (delivery, type).
DeliveryListener = Callable[[Delivery, str], object]
_delivery_listeners: list[DeliveryListener] = []


def delivery_listener_register(listener: DeliveryListener) -> None:
    if listener not in _delivery_listeners:
        _delivery_listeners.append(listener)


def _tell(delivery: Delivery, type_: str) -> None:
    for listener in list(_delivery_listeners):
        transaction.on_commit(partial(listener, delivery, type_))


def delivery_get_for_app(*, app: App, delivery_id: Any) -> Delivery:
    try:
        delivery = Delivery.objects.filter(app=app, pk=str(delivery_id)).first()
    except Exception:  # a malformed UUID
        delivery = None
    if delivery is None:
        raise errors.NotFound("No such delivery in this App.")
    return delivery


@transaction.atomic
def delivery_event_record(
    *,
    app: App,
    delivery_id: Any,
    type: str,
    button: str | None = None,
    person: Person | None = None,
    at: datetime | None = None,
) -> Delivery:
    """Record that a delivery was shown, clicked or dismissed; repeats count once.

    Before: the delivery belongs to `app` (and to `person`, when the caller knows who is
    asking). After: the first `shown` spends an impression (shown_at set); the first click sets
    clicked_at and the button; the first dismiss sets dismissed_at. A click or dismiss implies
    it was shown. Holdout deliveries cannot be shown (400).
    """
    if type not in DELIVERY_EVENT_TYPES:
        raise errors.InvalidInput(
            f"type: must be one of {', '.join(DELIVERY_EVENT_TYPES)}", code="invalid_type"
        )
    delivery = delivery_get_for_app(app=app, delivery_id=delivery_id)
    delivery = Delivery.objects.select_for_update().get(pk=delivery.pk)
    if person is not None and delivery.person_id != person.pk:
        raise errors.NotFound("No such delivery for this person.")
    if delivery.holdout:
        raise errors.InvalidInput(
            "delivery_id: a holdout delivery is never shown", code="holdout_delivery"
        )
    at = at or timezone.now()
    changed: list[str] = []
    if delivery.shown_at is None:
        delivery.shown_at = at
        changed.append("shown_at")
        _tell(delivery, "shown")
    if type == "clicked" and delivery.clicked_at is None:
        delivery.clicked_at = at
        delivery.clicked_button = (button or "")[:200]
        changed += ["clicked_at", "clicked_button"]
        _tell(delivery, "clicked")
    if type == "dismissed" and delivery.dismissed_at is None:
        delivery.dismissed_at = at
        changed.append("dismissed_at")
        _tell(delivery, "dismissed")
    if changed:
        delivery.save(update_fields=changed)
    return delivery


@transaction.atomic
def delivery_answered(*, delivery: Delivery, at: datetime | None = None) -> None:
    """Mark a delivery answered (a survey response completed for it); once."""
    if delivery.answered_at is None:
        at = at or timezone.now()
        Delivery.objects.filter(pk=delivery.pk, answered_at__isnull=True).update(
            answered_at=at, shown_at=delivery.shown_at or at
        )


def deliveries_convert(app: App, stored: list[StoredEvent]) -> int:
    """Mark conversions for goal events just stored; each delivery converts at most once.

    A goal event converts a delivery of the same person when it happened after the exposure
    (shown, or decided for holdout) and within the campaign's goal window.
    """
    compiled = compiled_app(app.pk)
    if not compiled.goal_events:
        return 0
    by_goal: dict[str, list[Any]] = {}
    for c in compiled.campaigns:
        if c.goal_event:
            by_goal.setdefault(c.goal_event, []).append(c)
    converted = 0
    for event in stored:
        for c in by_goal.get(event.name, []):
            window_start = event.timestamp - timedelta(days=c.goal_window_days)
            exposed = Q(
                holdout=False,
                shown_at__isnull=False,
                shown_at__lte=event.timestamp,
                shown_at__gte=window_start,
            ) | Q(holdout=True, decided_at__lte=event.timestamp, decided_at__gte=window_start)
            deliveries = Delivery.objects.filter(
                exposed,
                person_id=event.person_id,
                kind=c.kind,
                campaign_id=c.id,
                converted_at__isnull=True,
                is_test=False,
            )
            for delivery in deliveries:
                delivery.converted_at = event.timestamp
                delivery.save(update_fields=["converted_at"])
                _tell(delivery, "converted")
                converted += 1
    return converted


def person_deliveries(person: Person) -> list[dict[str, Any]]:
    """The people API's `deliveries` section: the newest 50 of the person."""
    return [
        {
            "id": str(d.pk),
            "kind": d.kind,
            "campaign_id": d.campaign_id,
            "variant": d.variant,
            "holdout": d.holdout,
            "is_test": d.is_test,
            "decided_at": d.decided_at,
            "shown_at": d.shown_at,
            "clicked_at": d.clicked_at,
            "clicked_button": d.clicked_button,
            "dismissed_at": d.dismissed_at,
            "converted_at": d.converted_at,
            "answered_at": d.answered_at,
        }
        for d in Delivery.objects.filter(person=person).order_by("-decided_at")[:50]
    ]
