"""Content Security Policy in a real browser: the widget under a strict host-page policy, and
Engage's own admin pages under the policy Engage sends (docs/widget.md, docs/deploy.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from tests.live import daphne
from tests.widget.conftest import (
    Engage,
    HostPageHandler,
    make_engage,
    screenshot,
    wait_for_title,
)

pytestmark = [pytest.mark.browser, pytest.mark.live]

MESSAGE_TRIGGER = {"on": "page_view", "url": {"op": "contains", "value": "case=shown"}}
SURVEY_TRIGGER = {"on": "page_view", "url": {"op": "contains", "value": "case=survey"}}
QUESTIONS = [
    {"id": "recommend", "type": "nps", "required": True, "text": {"en": "Recommend us?"}},
    {"id": "why", "type": "open_text", "text": {"en": "Why?"}},
]
# Collects violations before any script of the page runs, and console complaints about CSP.
WATCH = """window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI), true);"""


def strict_policy(engage: Engage, *, websockets: bool = True) -> str:
    """The strict host-page policy of docs/widget.md: the widget's origin for its script and
    its connections, nothing else beyond the page's own origin."""
    ws = engage.url.replace("http://", "ws://")
    connect = f"{engage.url} {ws}" if websockets else engage.url
    return (
        f"default-src 'self'; script-src 'self' {engage.url}; connect-src {connect}; "
        "style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'"
    )


@pytest.fixture
def watched(page: Any) -> Any:
    page.add_init_script(WATCH)
    page.console_csp = []
    page.on(
        "console",
        lambda m: page.console_csp.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return page


def answer_survey(page: Any) -> None:
    """Pick 9 on the NPS scale with the mouse, then go on and submit with the buttons."""
    page.locator("engage-widget [role=dialog]").wait_for()
    page.locator("engage-widget [role=radio]").get_by_text("9", exact=True).click()
    page.locator("engage-widget button", has_text="Next").click()
    wait_for_title(page, "Why?")
    page.locator("engage-widget textarea").fill("Fast exports")
    page.locator("engage-widget button", has_text="Submit").click()
    page.locator("engage-widget [role=dialog]").wait_for(state="detached")


def completed_response(engage: Engage, page: Any, survey_id: int) -> dict[str, Any]:
    for _ in range(100):
        responses = engage.responses(survey_id)
        if responses and responses[0]["completed"]:
            return responses[0]
        page.wait_for_timeout(100)
    raise AssertionError(f"no completed response: {engage.responses(survey_id)}")


def test_message_and_survey_under_a_strict_host_policy(engage: Engage, watched: Any) -> None:
    page = watched
    engage.message("modal", MESSAGE_TRIGGER, buttons=[{"label": "Later", "action": "dismiss"}])
    survey_id = engage.survey(QUESTIONS, SURVEY_TRIGGER)
    HostPageHandler.csp = strict_policy(engage)
    try:
        page.goto(engage.page_url("/csp/host.html", case="shown", user="u_csp"))
        page.locator("engage-widget [role=dialog]").wait_for()
        # Styled although style-src does not name Engage: constructed stylesheets need no CSP.
        box = page.locator("engage-widget .modal")
        assert box.evaluate("e => getComputedStyle(e).borderTopLeftRadius") == "12px"
        screenshot(page, "csp_message")
        page.locator("engage-widget button", has_text="Later").click()
        page.locator("engage-widget [role=dialog]").wait_for(state="detached")

        page.goto(engage.page_url("/csp/host.html", case="survey", user="u_csp"))
        answer_survey(page)
    finally:
        HostPageHandler.csp = ""

    assert completed_response(engage, page, survey_id)["answers"] == {
        "recommend": 9,
        "why": "Fast exports",
    }
    assert page.evaluate("window.__csp") == []
    assert page.console_csp == []
    assert page.errors == []


def test_without_websockets_in_connect_src_the_widget_falls_back_to_http(
    engage: Engage, watched: Any
) -> None:
    page = watched
    survey_id = engage.survey(QUESTIONS, SURVEY_TRIGGER)
    HostPageHandler.csp = strict_policy(engage, websockets=False)
    try:
        page.goto(engage.page_url("/csp/host.html", case="survey", user="u_http"))
        answer_survey(page)
    finally:
        HostPageHandler.csp = ""

    assert completed_response(engage, page, survey_id)["answers"]["recommend"] == 9
    # The only thing the policy stopped is the websocket; everything else went over HTTP.
    violations = page.evaluate("window.__csp")
    assert violations
    assert all(v.startswith("connect-src ws://") for v in violations), violations


@pytest.fixture
def csp_server(transactional_db: Any) -> Iterator[str]:
    """A live Engage that sends its Content Security Policy (as outside DEBUG)."""
    with daphne(extra_env={"ENGAGE_CSP": "true"}) as url:
        yield url


def test_the_admin_works_under_engages_own_policy(
    csp_server: str, watched: Any, django_user_model: Any
) -> None:
    import requests

    page = watched
    user = django_user_model.objects.create_superuser("parker", "parker@example.com")
    # The live server checks passwords with its own (default) hashers, not the tests' fast one.
    user.password = PBKDF2PasswordHasher().encode("pw-parker-1", "cspsalt")
    user.save(update_fields=["password"])
    engage = make_engage(csp_server, "https://host.example", name="Admin CSP")
    survey_id = engage.survey(QUESTIONS, SURVEY_TRIGGER)
    message = engage.message("modal", MESSAGE_TRIGGER)
    policy = requests.get(f"{csp_server}/admin/login/", timeout=10).headers[
        "Content-Security-Policy"
    ]
    assert "script-src 'self'" in policy

    page.goto(f"{csp_server}/admin/login/")
    page.fill("#id_username", "parker")
    page.fill("#id_password", "pw-parker-1")
    page.click("input[type=submit]")
    page.wait_for_url(f"{csp_server}/admin/")
    violations: dict[str, Any] = {}
    # Every list page of the admin, then the pages with scripts of their own.
    from django.contrib import admin
    from django.urls import reverse

    lists = [
        reverse(f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist")
        for m in admin.site._registry
    ]
    for path in (
        *lists,
        f"/admin/messaging/message/{message}/change/",
        f"/admin/messaging/message/{message}/results/",
        "/admin/segments/segment/add/",
        f"/admin/surveys/survey/{survey_id}/results/",
    ):
        response = page.goto(f"{csp_server}{path}")
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
        violations[path] = page.evaluate("window.__csp")
    # Chart.js drew the survey results (a canvas) under script-src 'self'.
    assert page.evaluate("document.querySelectorAll('canvas').length") >= 1
    screenshot(page, "csp_admin_results")
    assert all(v == [] for v in violations.values()), violations
    assert page.console_csp == []
    assert page.errors == []
