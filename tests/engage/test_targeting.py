"""The targeting engine's display rules, through the services and the HTTP endpoints."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from engage.campaigns import campaign_create, campaign_pause, campaign_publish
from engage.deliveries import delivery_event_record, targeting_evaluate
from engage.models import Delivery
from engage.targeting import Moment
from segments.models import Segment
from segments.services import EventInput, events_ingest

pytestmark = pytest.mark.django_db

CONTENT = {"en": {"title": "Hello", "body": "Try **CSV**", "buttons": []}}


def message(app: Any, *, publish: bool = True, **fields: Any) -> Any:
    data = {"name": "m", "kind": "modal", "content": CONTENT, "trigger": {"on": "api"}, **fields}
    campaign = campaign_create(kind="message", app=app, data=data)
    if publish:
        campaign_publish(campaign=campaign)
    return campaign


def shown_ids(app: Any, user: str = "u1", moment: Moment | None = None, **kw: Any) -> list[int]:
    evaluation = targeting_evaluate(
        app=app, user_id=user, anonymous_id=None, moment=moment or Moment(), **kw
    )
    return [item.id for item in evaluation.items]


def show_all(app: Any, user: str = "u1") -> None:
    """Report every pending delivery of the user as shown (what the widget does)."""
    for d in Delivery.objects.filter(person__user_id=user, shown_at__isnull=True, holdout=False):
        delivery_event_record(app=app, delivery_id=d.pk, type="shown")


def test_draft_and_paused_campaigns_reach_nobody(app_keys):
    app = app_keys.app
    draft = message(app, publish=False)
    assert shown_ids(app) == []
    campaign_publish(campaign=draft)
    assert shown_ids(app) == [draft.pk]
    campaign_pause(campaign=draft)
    assert shown_ids(app) == []


def test_window_starts_and_ends(app_keys):
    app = app_keys.app
    now = timezone.now()
    later = message(app, starts_at=now + timedelta(hours=1))
    assert later.status == "scheduled"
    ended = message(app, publish=False, ends_at=now + timedelta(minutes=1))
    campaign_publish(campaign=ended)
    assert shown_ids(app) == [ended.pk]
    assert shown_ids(app, now=now + timedelta(minutes=2)) == []
    assert shown_ids(app, user="u2", now=now + timedelta(hours=2)) == [later.pk]


def test_trigger_moments(app_keys):
    app = app_keys.app
    on_event = message(app, kind="banner", trigger={"on": "event", "event": "export_clicked"})
    on_page = message(
        app,
        kind="banner",
        trigger={"on": "page_view", "url": {"op": "contains", "value": "/reports"}},
    )
    on_api = message(app, kind="banner")
    assert shown_ids(app, moment=Moment(event="export_clicked")) == [on_event.pk]
    assert shown_ids(app, moment=Moment(event="other")) == []
    assert shown_ids(app, moment=Moment(url="https://x.test/reports/1")) == [on_page.pk]
    assert shown_ids(app, moment=Moment(url="https://x.test/home")) == []
    assert shown_ids(app, moment=Moment()) == [on_api.pk]


def test_audience_condition_and_segments(app_keys):
    app = app_keys.app
    Segment.objects.create(
        app=app,
        slug="exporters",
        name="Exporters",
        condition={"event": "export_clicked", "count": {"op": "gte", "value": 2}},
    )
    campaign = message(
        app,
        audience={
            "segments": ["exporters"],
            "condition": {"attribute": "plan", "op": "eq", "value": "pro"},
        },
    )
    events_ingest(app=app, events=[EventInput(name="export_clicked", user_id="u1")] * 2)
    assert shown_ids(app, attributes={"plan": "free"}, dry_run=True) == []
    assert shown_ids(app, attributes={"plan": "pro"}) == [campaign.pk]
    assert shown_ids(app, user="u2", attributes={"plan": "pro"}) == []


def test_an_event_changes_the_very_next_decision(app_keys):
    app = app_keys.app
    campaign = message(app, audience={"condition": {"event": "export_clicked"}})
    assert shown_ids(app) == []
    events_ingest(app=app, events=[EventInput(name="export_clicked", user_id="u1")])
    assert shown_ids(app) == [campaign.pk]


def test_sampling_is_stable_and_close_to_the_percentage(app_keys):
    app = app_keys.app
    campaign = message(app, sample_percent=30)
    first = {u: bool(shown_ids(app, user=u, dry_run=True)) for u in map(str, range(400))}
    again = {u: bool(shown_ids(app, user=u, dry_run=True)) for u in map(str, range(400))}
    assert first == again
    share = sum(first.values()) / len(first)
    assert 0.22 < share < 0.38, share
    assert campaign.pk


def test_max_impressions_counts_only_shown_deliveries(app_keys):
    app = app_keys.app
    campaign = message(app, max_impressions=2)
    assert shown_ids(app) == [campaign.pk]
    assert shown_ids(app) == [campaign.pk]  # not shown yet: same pending delivery
    assert Delivery.objects.count() == 1
    show_all(app)
    assert shown_ids(app) == [campaign.pk]
    show_all(app)
    assert shown_ids(app) == []
    assert Delivery.objects.filter(shown_at__isnull=False).count() == 2


def test_dry_run_records_nothing_and_spends_nothing(app_keys):
    app = app_keys.app
    message(app, max_impressions=1)
    evaluation = targeting_evaluate(
        app=app, user_id="new", anonymous_id=None, moment=Moment(), dry_run=True
    )
    assert [i.delivery_id for i in evaluation.items] == [None]
    assert Delivery.objects.count() == 0
    assert evaluation.person is None


def test_quiet_period_after_any_campaign_was_shown(app_keys):
    app = app_keys.app
    first = message(app, kind="banner", priority=5)
    assert shown_ids(app) == [first.pk]
    show_all(app)
    second = message(app, kind="banner", recontact_days=7)
    assert second.pk not in shown_ids(app)
    later = timezone.now() + timedelta(days=8)
    assert second.pk in shown_ids(app, now=later)


def test_priority_order_and_one_modal_at_a_time(app_keys):
    app = app_keys.app
    low_modal = message(app, kind="modal", priority=1)
    high_modal = message(app, kind="modal", priority=10)
    banner = message(app, kind="banner", priority=5)
    assert shown_ids(app) == [high_modal.pk, banner.pk]
    campaign_pause(campaign=high_modal)
    assert shown_ids(app, user="u2") == [banner.pk, low_modal.pk]


def test_holdout_people_get_a_holdout_delivery_and_never_see_it(app_keys):
    app = app_keys.app
    campaign = message(app, holdout_percent=50)
    held = []
    for user in map(str, range(200)):
        ids = shown_ids(app, user=user)
        if not ids:
            held.append(user)
    assert 60 < len(held) < 140
    holdouts = Delivery.objects.filter(holdout=True)
    assert sorted(d.person.user_id for d in holdouts) == sorted(held)
    # Asking again neither shows it nor records a second holdout delivery.
    assert shown_ids(app, user=held[0]) == []
    assert Delivery.objects.filter(holdout=True, person__user_id=held[0]).count() == 1
    holdout_delivery = holdouts.first()
    from engage import errors

    with pytest.raises(errors.InvalidInput):
        delivery_event_record(app=app, delivery_id=holdout_delivery.pk, type="shown")
    assert campaign.pk


def test_goal_conversion_counted_once_and_only_after_exposure(
    app_keys, django_capture_on_commit_callbacks
):
    app = app_keys.app

    def ingest_goal() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            events_ingest(app=app, events=[EventInput(name="export_completed", user_id="u1")])

    campaign = message(app, goal_event="export_completed")
    ingest_goal()
    shown_ids(app)
    delivery = Delivery.objects.get()
    ingest_goal()
    delivery.refresh_from_db()
    assert delivery.converted_at is None  # decided but not shown: no exposure yet
    show_all(app)
    ingest_goal()
    delivery.refresh_from_db()
    first = delivery.converted_at
    assert first is not None
    ingest_goal()
    delivery.refresh_from_db()
    assert delivery.converted_at == first
    assert campaign.pk


def test_repeated_acks_count_once(app_keys):
    app = app_keys.app
    message(app)
    shown_ids(app)
    delivery = Delivery.objects.get()
    delivery_event_record(app=app, delivery_id=delivery.pk, type="shown")
    first = Delivery.objects.get().shown_at
    delivery_event_record(app=app, delivery_id=delivery.pk, type="shown")
    delivery_event_record(app=app, delivery_id=delivery.pk, type="clicked", button="Try it")
    delivery_event_record(app=app, delivery_id=delivery.pk, type="clicked", button="Other")
    delivery.refresh_from_db()
    assert delivery.shown_at == first
    assert delivery.clicked_button == "Try it"


def test_variants_split_by_weight_and_stay_put(app_keys):
    app = app_keys.app
    message(
        app,
        variants=[
            {"key": "A", "weight": 50},
            {"key": "B", "weight": 50, "content": {"en": {"title": "B title"}}},
        ],
    )
    seen = {}
    for user in map(str, range(200)):
        item = targeting_evaluate(app=app, user_id=user, anonymous_id=None, moment=Moment()).items[
            0
        ]
        seen[user] = item.variant
        if item.variant == "B":
            assert item.content["title"] == "B title"
    assert 60 < list(seen.values()).count("A") < 140
    again = targeting_evaluate(app=app, user_id="7", anonymous_id=None, moment=Moment()).items[0]
    assert again.variant == seen["7"]


def test_scheduled_campaign_goes_live_and_ends_by_itself(app_keys):
    from engage.campaigns import campaigns_schedule_tick
    from messaging.models import Message

    app = app_keys.app
    now = timezone.now()
    campaign = message(
        app, starts_at=now + timedelta(minutes=5), ends_at=now + timedelta(minutes=30)
    )
    assert campaign.status == "scheduled"
    assert campaigns_schedule_tick(now=now) == 0
    assert campaigns_schedule_tick(now=now + timedelta(minutes=6)) == 1
    assert Message.objects.get(pk=campaign.pk).status == "live"
    assert campaigns_schedule_tick(now=now + timedelta(minutes=31)) == 1
    assert Message.objects.get(pk=campaign.pk).status == "archived"
