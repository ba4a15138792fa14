"""Message authoring in the admin: services on save, live preview and audience, status
buttons and actions, and the results page."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from engage.campaigns import campaign_archive, campaign_create, campaign_publish
from engage.models import CampaignStatus, Delivery
from messaging.models import Message
from segments.services import person_identify, segment_create

pytestmark = pytest.mark.django_db

ADD = "/admin/messaging/message/add/"
PREVIEW = "/admin/messaging/message/preview/"
AUDIENCE = "/admin/messaging/message/audience/"
CONTENT = {
    "en": {
        "title": "New: CSV export",
        "body": "Export **any** report.",
        "buttons": [
            {"label": "Try it", "action": "url", "url": "/reports/export"},
            {"label": "Later", "action": "dismiss"},
        ],
    },
    "de": {"title": "Neu: CSV-Export", "body": "Jeden Bericht exportieren."},
}


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # admin_client logs in a user whose password is hashed; the default hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def form(app_id: int, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "app": app_id,
        "name": "Try CSV export",
        "kind": "modal",
        "priority": "10",
        "content": json.dumps(CONTENT),
        "variants": "",
        "audience_condition": json.dumps({"attribute": "plan", "op": "eq", "value": "pro"}),
        "trigger_on": "page_view",
        "trigger_event": "",
        "trigger_url_op": "contains",
        "trigger_url_value": "/reports",
        "trigger_delay_seconds": "",
        "sample_percent": "100",
        "holdout_percent": "10",
        "max_impressions": "3",
        "recontact_days": "7",
        "starts_at_0": "",
        "starts_at_1": "",
        "ends_at_0": "",
        "ends_at_1": "",
        "goal_event": "export_completed",
        "goal_window_days": "14",
    }
    data.update(overrides)
    return data


def message_make(app: Any, **data: Any) -> Message:
    body: dict[str, Any] = {"name": "Hello", "kind": "modal", "content": CONTENT, **data}
    campaign = campaign_create(kind="message", app=app, data=body)
    assert isinstance(campaign, Message)
    return campaign


def post_json(client: Client, url: str, **body: Any) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json")


def errors_of(response: Any) -> dict[str, list[str]]:
    return dict(response.context["adminform"].form.errors)


def test_pages_render(admin_client, app_keys):
    message = message_make(app_keys.app, goal_event="export_completed")
    assert admin_client.get("/admin/messaging/message/").status_code == 200
    assert admin_client.get(ADD).status_code == 200
    change = admin_client.get(f"/admin/messaging/message/{message.pk}/change/")
    assert change.status_code == 200
    html = change.content.decode()
    assert f"/admin/messaging/message/{message.pk}/results/" in html
    assert f"/admin/messaging/message/{message.pk}/status/publish/" in html
    results = admin_client.get(f"/admin/messaging/message/{message.pk}/results/")
    assert results.status_code == 200
    assert "engage/vendor/chart.umd.js" in results.content.decode()


def test_a_message_is_created_from_grouped_fields_through_the_service(admin_client, app_keys):
    segment_create(app=app_keys.app, slug="power-users", name="Power", condition={"all": []})
    segment = app_keys.app.segments.get()
    response = admin_client.post(ADD, form(app_keys.app.pk, audience_segments=[segment.pk]))

    assert response.status_code == 302, errors_of(response)
    message = Message.objects.get()
    assert message.status == CampaignStatus.DRAFT
    assert message.audience == {
        "segments": ["power-users"],
        "condition": {"attribute": "plan", "op": "eq", "value": "pro"},
    }
    assert message.trigger == {"on": "page_view", "url": {"op": "contains", "value": "/reports"}}
    assert message.content["en"]["buttons"][0]["url"] == "/reports/export"
    assert (message.priority, message.max_impressions, message.goal_event) == (
        10,
        3,
        "export_completed",
    )


@pytest.mark.parametrize(
    ("overrides", "field", "expected"),
    [
        (
            {
                "content": json.dumps(
                    {
                        "en": {
                            "title": "x",
                            "buttons": [
                                {"label": "Go", "action": "url", "url": "javascript:alert(1)"}
                            ],
                        }
                    }
                )
            },
            "content",
            "content.en.buttons[0].url",
        ),
        ({"content": '{"en": {"title": "x"'}, "content", "not valid JSON"),
        (
            {"variants": json.dumps([{"key": "A", "weight": 50}, {"key": "B", "weight": 40}])},
            "variants",
            "weights must sum to 100, not 90",
        ),
        (
            {"audience_condition": json.dumps({"all": [{"attribute": "plan", "op": "eqq"}]})},
            "audience_condition",
            'all[0].op: unknown operator "eqq"',
        ),
        (
            {"trigger_on": "event", "trigger_event": ""},
            "trigger_event",
            "trigger.event: an event trigger needs the event name",
        ),
        ({"holdout_percent": "100"}, "holdout_percent", "below 100"),
    ],
)
def test_invalid_input_is_a_form_error_at_its_field_and_nothing_is_saved(
    admin_client, app_keys, overrides, field, expected
):
    response = admin_client.post(ADD, form(app_keys.app.pk, **overrides))
    assert response.status_code == 200
    assert expected in " ".join(errors_of(response).get(field, [])), errors_of(response)
    assert not Message.objects.exists()


def test_a_segment_of_another_app_is_refused(admin_client, app_keys, other_app_keys):
    stranger = segment_create(app=other_app_keys.app, slug="s", name="S", condition={"all": []})
    response = admin_client.post(ADD, form(app_keys.app.pk, audience_segments=[stranger.pk]))
    assert "belongs to another App" in " ".join(errors_of(response)["audience_segments"])
    assert not Message.objects.exists()


def test_editing_keeps_what_is_not_on_the_form_and_uses_the_service(admin_client, app_keys):
    message = message_make(app_keys.app, trigger={"on": "event", "event": "signed_up"})
    response = admin_client.get(f"/admin/messaging/message/{message.pk}/change/")
    initial = response.context["adminform"].form.initial
    assert initial["trigger_on"] == "event"
    assert initial["trigger_event"] == "signed_up"
    data = form(
        app_keys.app.pk,
        name="Renamed",
        trigger_on="event",
        trigger_event="signed_up",
        trigger_url_op="",
        trigger_url_value="",
    )
    response = admin_client.post(f"/admin/messaging/message/{message.pk}/change/", data)
    assert response.status_code == 302, errors_of(response)
    message.refresh_from_db()
    assert message.name == "Renamed"
    assert message.trigger == {"on": "event", "event": "signed_up"}


def test_preview_renders_the_card_the_widget_will_show(admin_client, app_keys):
    body = post_json(
        admin_client, PREVIEW, app=app_keys.app.pk, content=json.dumps(CONTENT), kind="banner"
    ).json()
    assert body["ok"] is True
    assert body["title"] == "New: CSV export"
    assert body["body_html"] == "<p>Export <strong>any</strong> report.</p>\n"
    assert [b["label"] for b in body["buttons"]] == ["Try it", "Later"]
    assert body["locales"] == ["en", "de"]
    assert "engage-w-banner" in body["html"]
    assert "<strong>any</strong>" in body["html"]

    german = post_json(
        admin_client, PREVIEW, app=app_keys.app.pk, content=json.dumps(CONTENT), locale="de"
    ).json()
    assert (german["locale"], german["title"]) == ("de", "Neu: CSV-Export")


def test_preview_shows_the_chosen_variant_and_sanitises(admin_client, app_keys):
    variants = [
        {"key": "A", "weight": 50},
        {
            "key": "B",
            "weight": 50,
            "content": {
                "en": {
                    "title": "<b>B</b>",
                    "body": "<script>alert(1)</script> [x](javascript:alert(1))",
                }
            },
        },
    ]
    body = post_json(
        admin_client,
        PREVIEW,
        app=app_keys.app.pk,
        content=json.dumps(CONTENT),
        variants=json.dumps(variants),
        variant="B",
    ).json()
    assert (body["variant"], body["variants"]) == ("B", ["A", "B"])
    assert "<script>" not in body["html"]
    assert 'href="javascript' not in body["html"]
    assert "&lt;b&gt;B&lt;/b&gt;" in body["html"]


def test_preview_of_invalid_content_names_the_field(admin_client, app_keys):
    body = post_json(admin_client, PREVIEW, app=app_keys.app.pk, content='{"en": {}}').json()
    assert body["ok"] is False
    assert body["error"] == "content.en: needs a title or a body"


def test_audience_size_is_all_segments_and_the_condition(admin_client, app_keys):
    for user_id, plan, country in (
        ("u1", "pro", "DE"),
        ("u2", "pro", "FR"),
        ("u3", "free", "DE"),
        ("u4", "pro", "DE"),
    ):
        person_identify(
            app=app_keys.app, user_id=user_id, attributes={"plan": plan, "country": country}
        )
    pro = segment_create(
        app=app_keys.app,
        slug="pro",
        name="Pro",
        condition={"attribute": "plan", "op": "eq", "value": "pro"},
    )

    body = post_json(
        admin_client,
        AUDIENCE,
        app=app_keys.app.pk,
        audience_segments=[str(pro.pk)],
        condition=json.dumps({"attribute": "country", "op": "eq", "value": "DE"}),
        holdout_percent="50",
    ).json()
    assert body["count"] == 2
    assert body["description"] == "is in segment pro and country is DE"
    assert "holdout 50%" in body["note"]

    # A condition on the moment (page URL) is decided when it shows: counted as true.
    body = post_json(
        admin_client,
        AUDIENCE,
        app=app_keys.app.pk,
        audience_segments=[str(pro.pk)],
        condition=json.dumps({"not": {"page_url": {"op": "contains", "value": "/admin"}}}),
    ).json()
    assert body["count"] == 3
    assert "at most" in body["note"]

    everyone = post_json(admin_client, AUDIENCE, app=app_keys.app.pk, condition="").json()
    assert everyone["count"] == 4


def test_status_buttons_publish_pause_and_refuse_invalid_transitions(admin_client, app_keys):
    message = message_make(app_keys.app)
    url = f"/admin/messaging/message/{message.pk}/status/"

    response = admin_client.post(url + "publish/", follow=True)
    message.refresh_from_db()
    assert message.status == CampaignStatus.LIVE
    assert "is now live" in " ".join(str(m) for m in response.context["messages"])

    admin_client.post(url + "pause/")
    message.refresh_from_db()
    assert message.status == CampaignStatus.PAUSED

    admin_client.post(url + "archive/")
    response = admin_client.post(url + "publish/", follow=True)
    message.refresh_from_db()
    assert message.status == CampaignStatus.ARCHIVED
    errors = [str(m) for m in response.context["messages"] if m.level_tag == "error"]
    assert len(errors) == 1
    assert errors[0].startswith("Not changed: status:")
    assert "cannot become live" in errors[0]


def test_status_buttons_are_posts(admin_client, app_keys):
    message = message_make(app_keys.app)
    response = admin_client.get(f"/admin/messaging/message/{message.pk}/status/publish/")
    assert response.status_code == 405
    message.refresh_from_db()
    assert message.status == CampaignStatus.DRAFT


def test_schedule_sets_the_start_and_schedules(admin_client, app_keys):
    message = message_make(app_keys.app)
    url = f"/admin/messaging/message/{message.pk}/status/schedule/"
    later = timezone.localtime(timezone.now() + timedelta(days=2)).replace(second=0, microsecond=0)

    admin_client.post(url, {"starts_at": later.strftime("%Y-%m-%dT%H:%M")})
    message.refresh_from_db()
    assert message.status == CampaignStatus.SCHEDULED
    assert message.starts_at == later

    other = message_make(app_keys.app, name="Other")
    response = admin_client.post(
        f"/admin/messaging/message/{other.pk}/status/schedule/",
        {"starts_at": "2001-01-01T10:00"},
        follow=True,
    )
    other.refresh_from_db()
    assert (other.status, other.starts_at) == (CampaignStatus.DRAFT, None)
    assert "pick a time in the future" in " ".join(str(m) for m in response.context["messages"])


def test_list_actions_change_status_through_the_services(admin_client, app_keys):
    draft = message_make(app_keys.app, name="Draft")
    archived = message_make(app_keys.app, name="Gone")
    campaign_archive(campaign=archived)
    response = admin_client.post(
        "/admin/messaging/message/",
        {"action": "publish_selected", "_selected_action": [draft.pk, archived.pk]},
        follow=True,
    )
    draft.refresh_from_db()
    archived.refresh_from_db()
    assert (draft.status, archived.status) == (CampaignStatus.LIVE, CampaignStatus.ARCHIVED)
    notes = " ".join(str(m) for m in response.context["messages"])
    assert "Published: Draft." in notes
    assert "“Gone” was not published" in notes

    admin_client.post(
        "/admin/messaging/message/", {"action": "pause_selected", "_selected_action": [draft.pk]}
    )
    draft.refresh_from_db()
    assert draft.status == CampaignStatus.PAUSED


def test_only_drafts_can_be_deleted(admin_client, app_keys):
    live = message_make(app_keys.app)
    campaign_publish(campaign=live)
    assert admin_client.get(f"/admin/messaging/message/{live.pk}/delete/").status_code == 403
    draft = message_make(app_keys.app, name="Draft")
    response = admin_client.post(f"/admin/messaging/message/{draft.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Message.objects.filter(pk=draft.pk).exists()


def test_results_page_shows_counts_intervals_lift_and_verdict(admin_client, app_keys):
    message = message_make(
        app_keys.app,
        variants=[{"key": "A", "weight": 50}, {"key": "B", "weight": 50}],
        holdout_percent=20,
        goal_event="export_completed",
    )
    now = timezone.now()
    rows = []
    for i in range(120):
        person = person_identify(app=app_keys.app, user_id=f"u{i}")
        holdout, variant, converted = (
            (True, "", i < 4)
            if i < 40
            else (False, "B", i < 70)
            if i < 80
            else (False, "A", i < 86)
        )
        rows.append(
            Delivery(
                app=app_keys.app,
                person=person,
                kind="message",
                campaign_id=message.pk,
                variant=variant,
                holdout=holdout,
                decided_at=now,
                shown_at=None if holdout else now,
                converted_at=now if converted else None,
            )
        )
    Delivery.objects.bulk_create(rows)

    response = admin_client.get(f"/admin/messaging/message/{message.pk}/results/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "B beats control, p &lt; 0.001." in html
    by_label = {row["label"]: row for row in response.context["rows"]}
    assert (by_label["B"]["shown"], by_label["B"]["converted"], by_label["B"]["rate"]) == (
        40,
        30,
        "75.0%",
    )
    assert by_label["B"]["better"] is True
    assert by_label["A"]["rate"] == "15.0%"
    assert response.context["holdout"]["rate"] == "10.0%"
    chart = json.loads(
        html.split('id="engage-results-data" type="application/json">')[1].split("<")[0]
    )
    assert chart["labels"] == ["Holdout (control)", "A", "B"]
    assert chart["rates"] == [10.0, 15.0, 75.0]
    low, high = chart["intervals"][2]
    assert low < 75.0 < high


def test_staff_only(app_keys):
    message = message_make(app_keys.app)
    member = get_user_model().objects.create_user("parker", "p@example.com", "pw-12345678")
    client = Client()
    client.force_login(member)
    for url in (
        "/admin/messaging/message/",
        f"/admin/messaging/message/{message.pk}/results/",
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]
    response = post_json(client, PREVIEW, content=json.dumps(CONTENT))
    assert response.status_code == 302
    client.post(f"/admin/messaging/message/{message.pk}/status/publish/")
    message.refresh_from_db()
    assert message.status == CampaignStatus.DRAFT


def test_endpoints_need_the_csrf_token(app_keys):
    staff = get_user_model().objects.create_superuser("boss", "b@example.com", "pw-12345678")
    message = message_make(app_keys.app)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff)
    assert post_json(strict, PREVIEW, content="{}").status_code == 403
    assert post_json(strict, AUDIENCE, condition="").status_code == 403
    response = strict.post(f"/admin/messaging/message/{message.pk}/status/publish/")
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.status == CampaignStatus.DRAFT
