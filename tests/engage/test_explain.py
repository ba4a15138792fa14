"""Explain: every reason a campaign can be withheld, in the engine's order, read-only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from engage.campaigns import campaign_create, campaign_publish
from engage.deliveries import delivery_event_record, targeting_evaluate
from engage.explain import targeting_explain
from engage.models import Delivery
from engage.targeting import Moment, _compiled
from segments.conditions import InMemoryFacts, parse_condition
from segments.conditions.explain import condition_explain
from segments.models import AnonymousId, Event, Person
from segments.services import EventInput, events_ingest, person_identify, segment_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_engine():
    """Compiled campaigns are cached per App id, and test databases reuse ids."""
    cache.clear()
    _compiled.clear()
    yield
    # Test databases reuse App ids: leave no compiled campaigns behind for the next module.
    cache.clear()
    _compiled.clear()


CONTENT = {"en": {"title": "Hello", "body": "Try **CSV**", "buttons": []}}
ENGINE_ORDER = [
    "status", "window", "trigger", "audience", "sample", "finished", "caps", "quiet",
    "quiet_hours", "holdout",
]  # fmt: skip


def message(app: Any, *, publish: bool = True, **fields: Any) -> Any:
    data = {"name": "m", "kind": "modal", "content": CONTENT, "trigger": {"on": "api"}, **fields}
    campaign = campaign_create(kind="message", app=app, data=data)
    if publish:
        campaign_publish(campaign=campaign)
    return campaign


def explain_one(app: Any, campaign: Any, user: str = "u1", **kw: Any) -> dict[str, Any]:
    moment = kw.pop("moment", Moment())
    result = targeting_explain(
        app=app,
        user_id=user,
        anonymous_id=None,
        moment=moment,
        campaign=("message", campaign.pk),
        **kw,
    ).as_dict()
    (only,) = result["campaigns"]
    return only


def reason(explained: dict[str, Any], check: str) -> dict[str, Any]:
    return next(r for r in explained["reasons"] if r["check"] == check)


def ingest(app: Any, user: str, name: str, n: int = 1, **props: Any) -> None:
    events_ingest(
        app=app,
        events=[EventInput(name=name, user_id=user, properties=props) for _ in range(n)],
    )


def show_all(app: Any, user: str = "u1") -> None:
    for d in Delivery.objects.filter(person__user_id=user, shown_at__isnull=True, holdout=False):
        delivery_event_record(app=app, delivery_id=d.pk, type="shown")


# --- one test per reason -------------------------------------------------------------------


def test_shown_lists_every_check_in_the_engines_order_then_modal_and_priority(app_keys):
    app = app_keys.app
    person_identify(app=app, user_id="u1")
    m = message(app)
    explained = explain_one(app, m)
    assert explained["decision"] == "shown"
    assert explained["stopped_at"] is None
    checks = [r["check"] for r in explained["reasons"]]
    assert checks == [*ENGINE_ORDER, "modal", "priority"]
    assert all(r["passed"] and r["reached"] for r in explained["reasons"])


def test_a_draft_answers_not_live(app_keys):
    app = app_keys.app
    draft = message(app, publish=False)
    explained = explain_one(app, draft)
    assert explained["decision"] == "withheld"
    assert explained["stopped_at"] == "status"
    status = reason(explained, "status")
    assert not status["passed"]
    assert status["message"] == "not live: status is draft"
    # Later checks are shown, but marked as not reached by the engine.
    assert not reason(explained, "trigger")["reached"]


def test_window_not_started(app_keys):
    app = app_keys.app
    later = message(app, starts_at=timezone.now() + timedelta(hours=2))
    explained = explain_one(app, later)
    assert explained["stopped_at"] == "window"
    assert reason(explained, "status")["passed"]
    window = reason(explained, "window")
    assert not window["passed"]
    assert window["message"].startswith("starts at ")


def test_trigger_mismatch(app_keys):
    app = app_keys.app
    m = message(app, trigger={"on": "event", "event": "export_clicked"})
    explained = explain_one(app, m, moment=Moment(url="https://host.example/reports"))
    assert explained["stopped_at"] == "trigger"
    trigger = reason(explained, "trigger")
    assert trigger["message"] == 'triggered on event "export_clicked", not by a page view'
    assert explain_one(app, m, moment=Moment(event="export_clicked"))["decision"] == "shown"


def test_audience_names_the_failing_node_and_the_actual_value(app_keys):
    app = app_keys.app
    person_identify(app=app, user_id="u1", attributes={"plan": "free"})
    ingest(app, "u1", "export_clicked", 2)
    m = message(
        app,
        audience={
            "condition": {
                "all": [
                    {"attribute": "plan", "op": "eq", "value": "pro"},
                    {"event": "export_clicked", "count": {"op": "gte", "value": 3},
                     "within_days": 30},
                ]
            }
        },
    )  # fmt: skip
    explained = explain_one(app, m)
    assert explained["stopped_at"] == "audience"
    audience = reason(explained, "audience")
    assert not audience["passed"]
    assert audience["message"] == (
        'all[0]: plan is "free", needs eq "pro"; '
        "all[1]: export_clicked count 2, needs gte 3 within 30 days"
    )
    (root,) = audience["details"]["nodes"]
    assert [child["actual"] for child in root["children"]] == ["free", 2]

    person_identify(app=app, user_id="u1", attributes={"plan": "pro"})
    ingest(app, "u1", "export_clicked", 1)
    assert explain_one(app, m)["decision"] == "shown"


def test_audience_segment_failure_is_expanded(app_keys):
    app = app_keys.app
    segment_create(
        app=app,
        name="Power",
        slug="power",
        condition={"attribute": "seats", "op": "gte", "value": 10},
    )
    person_identify(app=app, user_id="u1", attributes={"seats": 3})
    m = message(app, audience={"segments": ["power"]})
    audience = reason(explain_one(app, m), "audience")
    assert audience["message"] == 'segments[0]: not in segment "power"'
    (node,) = audience["details"]["nodes"]
    assert node["children"][0]["text"] == "seats is 3, needs gte 10"


def test_sampling_bucket(app_keys):
    app = app_keys.app
    m = message(app, sample_percent=0)
    explained = explain_one(app, m)
    assert explained["stopped_at"] == "sample"
    assert "outside the 0% sample" in reason(explained, "sample")["message"]


def test_finished_survey_style_answered(app_keys):
    app = app_keys.app
    m = message(app)
    targeting_evaluate(app=app, user_id="u1", anonymous_id=None, moment=Moment())
    Delivery.objects.filter(person__user_id="u1").update(answered_at=timezone.now())
    explained = explain_one(app, m)
    assert explained["stopped_at"] == "finished"
    assert reason(explained, "finished")["message"] == "already answered"


def test_caps(app_keys):
    app = app_keys.app
    m = message(app, max_impressions=1)
    targeting_evaluate(app=app, user_id="u1", anonymous_id=None, moment=Moment())
    show_all(app)
    explained = explain_one(app, m)
    assert explained["stopped_at"] == "caps"
    caps = reason(explained, "caps")
    assert caps["message"] == "shown 1 times, cap is 1"
    assert caps["details"] == {"shown": 1, "max_impressions": 1}


def test_quiet_period_after_any_campaign(app_keys):
    app = app_keys.app
    first = message(app, priority=5, kind="banner")
    targeting_evaluate(app=app, user_id="u1", anonymous_id=None, moment=Moment())
    show_all(app)
    later = message(app, recontact_days=7, name="later")
    explained = explain_one(app, later)
    assert explained["stopped_at"] == "quiet"
    assert "within the 7-day quiet period" in reason(explained, "quiet")["message"]
    assert first.pk != later.pk


def test_quiet_hours_in_the_persons_time_zone(app_keys):
    app = app_keys.app
    app.quiet_hours = {"start": "22:00", "end": "08:00"}
    app.timezone = "UTC"
    app.save()
    m = message(app)
    person_identify(app=app, user_id="u1", attributes={"timezone": "Asia/Tokyo"})
    noon_utc = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # 21:00 in Tokyo
    assert explain_one(app, m, now=noon_utc)["decision"] == "shown"
    late = explain_one(app, m, now=noon_utc + timedelta(hours=2))  # 23:00 in Tokyo
    assert late["stopped_at"] == "quiet_hours"
    assert reason(late, "quiet_hours")["message"] == (
        "it is 23:00 in Asia/Tokyo, inside quiet hours 22:00–08:00"
    )
    # Without a usable timezone attribute the App's zone (UTC: 14:00) applies.
    person_identify(app=app, user_id="u1", attributes={"timezone": "Mars/Olympus"})
    fallback = explain_one(app, m, now=noon_utc + timedelta(hours=2))
    assert fallback["decision"] == "shown"
    assert "(App default)" in reason(fallback, "quiet_hours")["message"]
    # The engine enforces it the same way.
    items = targeting_evaluate(
        app=app,
        user_id="u2",
        anonymous_id=None,
        moment=Moment(),
        attributes={"timezone": "Asia/Tokyo"},
        now=noon_utc + timedelta(hours=2),
        dry_run=True,
    ).items
    assert items == []


def test_holdout(app_keys):
    app = app_keys.app
    m = message(app, holdout_percent="99.99")
    explained = explain_one(app, m)
    assert explained["decision"] == "holdout"
    assert explained["stopped_at"] == "holdout"
    assert "in the 99.99% holdout" in reason(explained, "holdout")["message"]


def test_a_second_modal_loses_the_slot_to_a_higher_priority(app_keys):
    app = app_keys.app
    high = message(app, priority=20, name="Big news")
    low = message(app, priority=5, name="Small news")
    explained = explain_one(app, low)
    assert explained["decision"] == "withheld"
    assert explained["stopped_at"] == "modal"
    modal = reason(explained, "modal")
    assert not modal["passed"]
    assert f'message #{high.pk} "Big news" (priority 20)' in modal["message"]
    assert not reason(explained, "priority")["passed"]
    assert explain_one(app, high)["decision"] == "shown"


# --- the person -----------------------------------------------------------------------------


def test_unknown_person_is_an_anonymous_newcomer_and_nothing_is_written(app_keys):
    app = app_keys.app
    message(app, audience={"condition": {"attribute": "plan", "op": "eq", "value": "pro"}})
    counts = (Person.objects.count(), AnonymousId.objects.count(), Delivery.objects.count())
    result = targeting_explain(
        app=app, user_id="nobody", anonymous_id=None, moment=Moment()
    ).as_dict()
    assert result["person"] is None
    assert "anonymous newcomer" in result["note"]
    (only,) = result["campaigns"]
    assert reason(only, "audience")["message"] == 'plan is not set, needs eq "pro"'
    given = targeting_explain(
        app=app, user_id="nobody", anonymous_id=None, moment=Moment(), attributes={"plan": "pro"}
    ).as_dict()
    assert given["campaigns"][0]["decision"] == "shown"
    assert (Person.objects.count(), AnonymousId.objects.count(), Delivery.objects.count()) == counts


def test_explain_records_nothing_for_a_known_person(app_keys):
    app = app_keys.app
    person_identify(app=app, user_id="u1")
    message(app, holdout_percent=50)
    message(app, name="b", kind="banner")
    before = (Delivery.objects.count(), Event.objects.count(), Person.objects.count())
    result = targeting_explain(app=app, user_id="u1", anonymous_id=None, moment=Moment())
    assert len(result.campaigns) == 2
    assert result.person is not None
    assert result.person["user_id"] == "u1"
    assert (Delivery.objects.count(), Event.objects.count(), Person.objects.count()) == before


def test_an_anonymous_history_keeps_its_impressions_after_identify(app_keys):
    """Caps hold per person across devices: the anonymous device's impressions follow the
    person into the known one when they identify."""
    app = app_keys.app
    m = message(app, max_impressions=1)
    targeting_evaluate(app=app, user_id=None, anonymous_id="device-a", moment=Moment())
    for d in Delivery.objects.filter(shown_at__isnull=True):
        delivery_event_record(app=app, delivery_id=d.pk, type="shown")
    person_identify(app=app, user_id="u9")  # seen on another device first
    person_identify(app=app, user_id="u9", anonymous_id="device-a")
    assert Delivery.objects.filter(person__user_id="u9", shown_at__isnull=False).count() == 1
    explained = explain_one(app, m, user="u9")
    assert explained["stopped_at"] == "caps"
    assert (
        targeting_evaluate(
            app=app, user_id=None, anonymous_id="device-b-of-u9", moment=Moment(), dry_run=True
        ).items
        != []
    )  # another person entirely
    assert targeting_evaluate(app=app, user_id="u9", anonymous_id=None, moment=Moment()).items == []


# --- the node walker ------------------------------------------------------------------------


def test_node_walker_paths_and_not():
    condition = parse_condition(
        {"any": [{"not": {"attribute": "plan", "op": "eq", "value": "pro"}},
                 {"locale": {"op": "eq", "value": "fr"}}]},
        allow_context=True,
    )  # fmt: skip
    facts = InMemoryFacts(attributes={"plan": "pro"}, context={"locale": "en"})
    explained = condition_explain(condition, facts)
    assert not explained.passed
    assert [f.message() for f in explained.failures()] == [
        'any[0]: the negated condition matched (plan is "pro", needs eq "pro"), needs it not to',
        'any[1]: locale is "en", needs eq "fr"',
    ]


# --- the endpoint ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/targeting/explain", "/api/v1/targeting/explain/"])
def test_endpoint_with_and_without_slash(secret_client, app_keys, path):
    m = message(app_keys.app)
    response = secret_client.post(
        path,
        {"user_id": "u1", "campaign": {"kind": "message", "id": m.pk}},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["person"] is None
    assert body["campaigns"][0]["decision"] == "shown"


def test_endpoint_bad_input_and_keys(secret_client, public_client, app_keys, other_app_keys):
    missing = secret_client.post("/api/v1/targeting/explain", {}, format="json")
    assert missing.status_code == 400
    assert "user_id" in missing.json()["error"]["message"]
    bad_kind = secret_client.post(
        "/api/v1/targeting/explain",
        {"user_id": "u1", "campaign": {"kind": "poster", "id": 1}},
        format="json",
    )
    assert bad_kind.status_code == 400
    assert bad_kind.json()["error"]["code"] == "unknown_campaign_kind"
    foreign = message(other_app_keys.app)
    not_ours = secret_client.post(
        "/api/v1/targeting/explain",
        {"user_id": "u1", "campaign": {"kind": "message", "id": foreign.pk}},
        format="json",
    )
    assert not_ours.status_code == 404
    public = public_client.post("/api/v1/targeting/explain", {"user_id": "u1"}, format="json")
    assert public.status_code == 403


def test_quiet_hours_and_timezone_are_validated(app_keys):
    from django.core.exceptions import ValidationError

    app = app_keys.app
    app.quiet_hours = {"start": "22:00", "end": "8am"}
    with pytest.raises(ValidationError) as bad_hours:
        app.full_clean()
    assert "quiet_hours.end" in str(bad_hours.value)
    app.quiet_hours = {"start": "22:00", "end": "08:00"}
    app.timezone = "Mars/Olympus"
    with pytest.raises(ValidationError) as bad_zone:
        app.full_clean()
    assert "timezone" in str(bad_zone.value)
    app.timezone = "Europe/Paris"
    app.full_clean()
