"""The App overview in the admin: panels from engage and from surveys, on the App's data only."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from django.utils import timezone

from engage.dashboard import dashboard_build, dashboard_panels, dashboard_period
from engage.models import Delivery
from segments.models import EventDailyCount, Person
from surveys.models import SentimentAlert, SentimentAlertRule
from surveys.sentiment import sentiment_pending_score
from surveys.services import response_submit

NEGATIVE = "The export is slow and crashes every time, terrible."


def _data(app, secret_client):
    from tests.surveys.conftest import SURVEY

    created = secret_client.post("/api/v1/surveys/", SURVEY, format="json").json()
    secret_client.post(f"/api/v1/surveys/{created['id']}/publish")
    now = timezone.now()
    response_submit(
        app=app,
        survey_id=created["id"],
        response_id=uuid.uuid4(),
        user_id="u1",
        anonymous_id=None,
        delivery_id=None,
        answers={"recommend": 3, "why": NEGATIVE},
        completed=False,
        locale="en",
        now=now - timedelta(days=1),
    )
    sentiment_pending_score()
    person = Person.objects.get(app=app, user_id="u1")
    EventDailyCount.objects.create(person=person, name="page_view", day=now.date(), count=7)
    Delivery.objects.create(
        app=app,
        person=person,
        kind="survey",
        campaign_id=created["id"],
        decided_at=now,
        shown_at=now,
    )
    rule = SentimentAlertRule.objects.create(app=app, name="Mood", kind="nps_below", threshold=0)
    SentimentAlert.objects.create(
        rule=rule, app=app, period_start=now.date(), value=-100, message="NPS was -100"
    )
    return created


def test_engage_and_surveys_register_their_panels():
    keys = [p.key for p in dashboard_panels()]
    assert keys[:3] == ["active_people", "events", "live_campaigns"]
    assert {"responses", "nps", "sentiment", "negative_terms", "negative_answers"} <= set(keys)


def test_panels_show_the_apps_data(app_keys, secret_client, other_app_keys):
    survey = _data(app_keys.app, secret_client)
    cards = {
        c["key"]: c["data"] for c in dashboard_build(app=app_keys.app, period=dashboard_period())
    }
    assert sum(cards["events"]["series"][0]["data"]) == 7
    assert cards["active_people"]["items"][0]["value"] == 1
    assert cards["live_campaigns"]["rows"] == [[survey["name"], "survey", 1, "–", "–"]]
    assert sum(cards["responses"]["series"][0]["data"]) == 1
    negative = next(s for s in cards["sentiment"]["series"] if s["label"] == "Negative")
    assert sum(negative["data"]) == 1
    assert cards["negative_answers"]["items"][0]["text"] == NEGATIVE
    assert ["export", 1] in cards["negative_terms"]["rows"]
    assert cards["sentiment_alerts"]["rows"][0][2] == "NPS was -100"
    # Another App's overview shows none of it.
    other = {
        c["key"]: c["data"]
        for c in dashboard_build(app=other_app_keys.app, period=dashboard_period())
    }
    assert other["negative_answers"]["items"] == []
    assert other["live_campaigns"]["rows"] == []
    assert sum(other["events"]["series"][0]["data"]) == 0


def test_overview_page_renders_and_is_linked(admin_client, app_keys, secret_client):
    _data(app_keys.app, secret_client)
    url = f"/admin/engage/app/{app_keys.app.pk}/overview/"
    page = admin_client.get(url + "?days=90")
    assert page.status_code == 200
    html = page.content.decode()
    assert "engage/vendor/chart.umd.js" in html
    assert "Recent negative answers" in html
    panels = json.loads(
        html.split('id="overview-data" type="application/json">')[1].split("</script>")[0]
    )
    assert NEGATIVE in [
        i["text"] for p in panels if p["key"] == "negative_answers" for i in p["data"]["items"]
    ]
    assert page.context["period"].interval == "week"
    assert admin_client.get(url + "?days=banana").context["days"] == 30
    # Linked from the App's change page and the admin index.
    assert url in admin_client.get(f"/admin/engage/app/{app_keys.app.pk}/change/").content.decode()
    index = admin_client.get("/admin/").content.decode()
    assert "/admin/engage/app/overview/" in index
    assert admin_client.get("/admin/engage/app/overview/").url == url
    assert admin_client.get("/admin/engage/app/999999/overview/").status_code == 404


def test_overview_needs_staff(client, app_keys):
    response = client.get(f"/admin/engage/app/{app_keys.app.pk}/overview/")
    assert response.status_code == 302
    assert "/admin/login/" in response.url


def test_alert_admin_pages_render(admin_client, app_keys, secret_client):
    _data(app_keys.app, secret_client)
    assert "NPS was -100" in admin_client.get("/admin/surveys/sentimentalert/").content.decode()
    assert admin_client.get("/admin/surveys/sentimentalertrule/add/").status_code == 200
    assert "Mood" in admin_client.get("/admin/surveys/sentimentalertrule/").content.decode()
