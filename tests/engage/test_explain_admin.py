"""Admin: "Check a person" on campaign pages, the Person panel, previews and App settings."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.urls import reverse

from engage import models
from engage.campaigns import campaign_create, campaign_publish
from engage.targeting import _compiled
from segments.models import Person
from segments.services import person_identify

pytestmark = pytest.mark.django_db

CONTENT = {"en": {"title": "Hello", "body": "Hi", "buttons": []}}


@pytest.fixture(autouse=True)
def _fresh_engine():
    cache.clear()
    _compiled.clear()
    yield
    # Test databases reuse App ids: leave no compiled campaigns behind for the next module.
    cache.clear()
    _compiled.clear()


def message(app: Any, *, publish: bool = True, **fields: Any) -> Any:
    data = {"name": "Try CSV", "kind": "modal", "content": CONTENT, "trigger": {"on": "api"}}
    campaign = campaign_create(kind="message", app=app, data={**data, **fields})
    if publish:
        campaign_publish(campaign=campaign)
    return campaign


def test_message_change_page_links_to_check_a_person_and_preview(admin_client, app_keys):
    m = message(app_keys.app, publish=False)
    page = admin_client.get(reverse("admin:messaging_message_change", args=[m.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert f"/admin/engage/explain/?kind=message&amp;campaign={m.pk}" in html
    assert f"/admin/engage/preview/?kind=message&amp;campaign={m.pk}" in html


def test_survey_change_page_links_too(admin_client, app_keys):
    survey = campaign_create(
        kind="survey",
        app=app_keys.app,
        data={
            "name": "NPS",
            "questions": [{"id": "q", "type": "nps", "text": {"en": "How likely?"}}],
        },
    )
    page = admin_client.get(reverse("admin:surveys_survey_change", args=[survey.pk]))
    assert page.status_code == 200
    assert f"/admin/engage/explain/?kind=survey&amp;campaign={survey.pk}" in page.content.decode()


def test_check_a_person_for_one_campaign(admin_client, app_keys):
    app = app_keys.app
    person_identify(app=app, user_id="u1", attributes={"plan": "free"})
    m = message(app, audience={"condition": {"attribute": "plan", "op": "eq", "value": "pro"}})
    page = admin_client.get(
        reverse("admin:engage_explain"), {"kind": "message", "campaign": m.pk, "user_id": "u1"}
    )
    assert page.status_code == 200
    html = page.content.decode()
    assert "Withheld" in html
    assert "plan is &quot;free&quot;, needs eq &quot;pro&quot;" in html
    empty = admin_client.get(reverse("admin:engage_explain"))
    assert empty.status_code == 200
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert 'href="/admin/engage/explain/"' in index
    # Engage's admin runs under `style-src 'self'`: styles come from a static file only.
    assert "<style" not in html
    assert " style=" not in html
    assert "engage/admin/explain.css" in html


def test_check_an_unknown_person_says_so(admin_client, app_keys):
    message(app_keys.app)
    page = admin_client.get(
        reverse("admin:engage_explain"), {"app": app_keys.app.pk, "user_id": "ghost"}
    )
    html = page.content.decode()
    assert "Unknown person." in html
    assert "anonymous newcomer" in html
    assert not Person.objects.filter(user_id="ghost").exists()


def test_person_page_shows_the_explain_panel(admin_client, app_keys):
    app = app_keys.app
    person = person_identify(app=app, user_id="u7")
    message(app, name="Welcome tour")
    page = admin_client.get(reverse("admin:segments_person_change", args=[person.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Campaigns now" in html
    assert "engage/admin/explain.css" in html
    assert "Welcome tour" in html
    assert "Shown" in html


def test_app_page_shows_test_users_identity_settings_and_failures(admin_client, app_keys):
    app = app_keys.app
    models.TestUser.objects.create(app=app, user_id="qa-1", note="QA phone")
    page = admin_client.get(reverse("admin:engage_app_change", args=[app.pk]))
    assert page.status_code == 200
    html = page.content.decode().lower()
    for text in (
        "qa-1",
        "identity_mode",
        "identity_enforcement",
        "quiet_hours",
        "identity failures",
    ):
        assert text in html


def test_rotate_identity_secret_action(admin_client, app_keys):
    app = app_keys.app
    old = app.identity_secret
    response = admin_client.post(
        reverse("admin:engage_app_changelist"),
        {"action": "rotate_identity_secret", "_selected_action": [app.pk]},
        follow=True,
    )
    assert response.status_code == 200
    app.refresh_from_db()
    assert app.identity_secret != old
    assert app.identity_secret_previous == old
    assert app.identity_secret_previous_until is not None


def test_preview_page_pushes_to_a_test_user_and_makes_links(admin_client, app_keys):
    app = app_keys.app
    draft = message(app, publish=False)
    url = reverse("admin:engage_preview")
    page = admin_client.get(url, {"kind": "message", "campaign": draft.pk})
    assert "no test users yet" in page.content.decode()
    models.TestUser.objects.create(app=app, user_id="qa-1")
    sent = admin_client.post(
        url,
        {"kind": "message", "campaign": draft.pk, "action": "push", "user_id": "qa-1"},
        follow=True,
    )
    assert "Sent to qa-1 on 0 open widgets" in sent.content.decode()
    delivery = models.Delivery.objects.get(person__user_id="qa-1")
    assert delivery.is_test
    refused = admin_client.post(
        url,
        {"kind": "message", "campaign": draft.pk, "action": "push", "user_id": "stranger"},
        follow=True,
    )
    assert "is not a test user of this App" in refused.content.decode()
    link = admin_client.post(
        url,
        {
            "kind": "message",
            "campaign": draft.pk,
            "action": "link",
            "url": "https://host.example/reports",
        },
    )
    assert "https://host.example/reports?engage_preview=" in link.content.decode()
    bad = admin_client.post(
        url,
        {"kind": "message", "campaign": draft.pk, "action": "link", "url": "https://evil.example"},
    )
    assert "allowed origins" in bad.content.decode()
    assert admin_client.get(url, {"kind": "message", "campaign": 999999}).status_code == 404
