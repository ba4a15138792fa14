"""The admin for Parker: authoring with inline errors, lifecycle actions, results, CSV."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.urls import reverse

from segments.models import Segment
from surveys.models import Survey
from tests.surveys.conftest import QUESTIONS, submit

pytestmark = pytest.mark.django_db


def form_data(app_id: int, **changes: Any) -> dict[str, Any]:
    data = {
        "app": app_id,
        "name": "Onboarding",
        "questions": json.dumps(QUESTIONS),
        "thank_you": json.dumps({"en": {"title": "Thanks"}}),
        "variants": "[]",
        "audience": "{}",
        "trigger": json.dumps({"on": "page_view"}),
        "priority": 0,
        "sample_percent": "100",
        "holdout_percent": "0",
        "recontact_days": 0,
        "goal_event": "",
        "goal_window_days": 14,
    }
    data.update(changes)
    return data


def test_author_with_inline_errors_then_publish(admin_client, app_keys):
    add = reverse("admin:surveys_survey_add")
    bad = copy.deepcopy(QUESTIONS)
    bad[3]["logic"] = [{"if": {"op": "eq", "value": "pro"}, "jump_to": "why"}]
    page = admin_client.post(add, form_data(app_keys.app.pk, questions=json.dumps(bad)))
    assert page.status_code == 200
    assert "questions[3].logic[0].jump_to: &quot;why&quot; is not after this question" in (
        page.content.decode()
    )
    page = admin_client.post(add, form_data(app_keys.app.pk, trigger='{"on": "hover"}'))
    assert "trigger.on: must be one of" in page.content.decode()
    page = admin_client.post(add, form_data(app_keys.app.pk, questions="[not json"))
    assert "Enter a valid JSON." in page.content.decode()
    assert Survey.objects.count() == 0

    created = admin_client.post(add, form_data(app_keys.app.pk))
    assert created.status_code == 302
    survey = Survey.objects.get()
    assert survey.status == "draft"
    assert survey.questions[1]["required"] is False  # cleaned like the API does

    change = reverse("admin:surveys_survey_change", args=[survey.pk])
    results = reverse("admin:surveys_survey_results", args=[survey.pk])
    assert results in admin_client.get(change).content.decode()
    edit = form_data(app_keys.app.pk, name="Onboarding v2")
    del edit["app"]  # read-only once created
    assert admin_client.post(change, edit).status_code == 302
    survey.refresh_from_db()
    assert (survey.name, survey.app_id) == ("Onboarding v2", app_keys.app.pk)

    changelist = reverse("admin:surveys_survey_changelist")
    admin_client.post(changelist, {"action": "publish", "_selected_action": [survey.pk]})
    survey.refresh_from_db()
    assert survey.status == "live"
    admin_client.post(changelist, {"action": "pause", "_selected_action": [survey.pk]})
    survey.refresh_from_db()
    assert survey.status == "paused"


def test_results_page_draws_charts_and_searches_answers(
    admin_client, public_client, survey, app_keys
):
    Segment.objects.create(
        app=app_keys.app,
        slug="pro",
        name="Pro",
        condition={"attribute": "plan", "op": "eq", "value": "pro"},
    )
    submit(public_client, survey["id"], {"recommend": 2, "why": "Too <b>slow</b>"}, locale="de")
    submit(public_client, survey["id"], {"recommend": 10, "satisfaction": 5}, completed=True)
    submit(public_client, survey["id"], {"recommend": 5, "why": "Pricing"}, user_id="u2")
    url = reverse("admin:surveys_survey_results", args=[survey["id"]])

    page = admin_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "engage/vendor/chart.umd.js" in html
    for canvas in (
        "chart-timeline",
        "chart-nps",
        "chart-nps-trend",
        "chart-csat-trend",
        "chart-dropoff",
    ):
        assert f'id="{canvas}"' in html
    data = page.context["chart_data"]
    assert data["summary"]["responses"] == 3
    assert data["summary"]["nps"]["score"] == round(100 * (1 - 2) / 3, 1)
    assert sorted(data["latest_texts"]["why"]) == ["Pricing", "Too <b>slow</b>"]
    assert "Too &lt;b&gt;slow&lt;/b&gt;" in html  # answers are escaped, never HTML
    assert '<option value="pro">Pro</option>' in html
    assert '<option value="de">de</option>' in html

    searched = admin_client.get(url, {"question": "why", "search": "pric"})
    assert [a.text for a in searched.context["text_answers"]] == ["Pricing"]
    filtered = admin_client.get(url, {"locale": "de"})
    assert filtered.context["summary"].responses == 1
    wrong = admin_client.get(url, {"from": "soon"})
    assert "from: an ISO 8601 date" in wrong.content.decode()

    export = admin_client.get(
        reverse("admin:surveys_survey_export", args=[survey["id"]]), {"locale": "de"}
    )
    body = b"".join(export.streaming_content).decode()
    assert body.count("\r\n") == 2  # the header and the one German response
    assert "Too <b>slow</b>" in body


def test_results_need_view_permission(client, django_user_model, survey):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(user)
    url = reverse("admin:surveys_survey_results", args=[survey["id"]])
    assert client.get(url).status_code == 403
    missing = reverse("admin:surveys_survey_results", args=[survey["id"] + 1000])
    assert client.get(missing).status_code == 404


def test_responses_are_listed_read_only(admin_client, public_client, survey):
    submit(public_client, survey["id"], {"recommend": 7, "why": "fine"})
    changelist = admin_client.get(reverse("admin:surveys_response_changelist"))
    assert changelist.status_code == 200
    assert "u1" in changelist.content.decode()
    assert admin_client.get(reverse("admin:surveys_response_add")).status_code == 403
