"""Preview in real Chromium: the admin previews a draft message on a test user's open page, and
a one-time link previews it for a tester who is not signed in. Deliveries are tests, absent from
results."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from engage.models import TestUser
from tests.widget.conftest import Engage, wait_for_title

pytestmark = [pytest.mark.browser, pytest.mark.live]

PASSWORD = "preview-pass-123"


def draft_message(engage: Engage) -> int:
    created = engage.api(
        "POST",
        "messages/",
        {
            "name": "Coming soon",
            "kind": "modal",
            "trigger": {"on": "event", "event": "never_happens"},
            "audience": {"condition": {"attribute": "plan", "op": "eq", "value": "enterprise"}},
            "content": {"en": {"title": "Draft news", "body": "Not **live** yet.", "buttons": []}},
        },
    )
    assert created["status"] == "draft"
    return int(created["id"])


def admin_page(browser_context: Any, engage: Engage, path: str) -> Any:
    user = get_user_model().objects.create_superuser("parker", "parker@example.com")
    # The live server hashes with its own (default) hashers, not the tests' fast one.
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, "previewsalt")
    user.save(update_fields=["password"])
    page = browser_context.new_page()
    page.goto(f"{engage.url}/admin/login/?{urlencode({'next': path})}")
    page.fill("#id_username", "parker")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{path.split('?')[0]}*")
    return page


def test_admin_previews_a_draft_on_a_test_users_open_page(
    engage: Engage, page: Any, chromium: Any, browser_context: Any
) -> None:
    message_id = draft_message(engage)
    TestUser.objects.create(app_id=engage.app_id, user_id="qa_1", note="Parker's laptop")

    page.goto(engage.page_url(user="qa_1"))
    page.wait_for_function("window.seen.some(e => e[0] === 'ready')")
    assert page.locator("engage-widget [role=dialog]").count() == 0

    admin = admin_page(
        browser_context, engage, f"/admin/engage/preview/?kind=message&campaign={message_id}"
    )
    admin.select_option("#preview-user", "qa_1")
    admin.click("input[value='Preview on test user']")
    admin.wait_for_selector("text=Sent to qa_1 on 1 open widget")

    wait_for_title(page, "Draft news")  # rendered in the host page, over the websocket
    page.wait_for_function("window.seen.some(e => e[0] === 'shown')")
    delivery = None
    for _ in range(100):
        deliveries = engage.person("qa_1")["deliveries"]
        if deliveries and deliveries[0]["shown_at"]:
            delivery = deliveries[0]
            break
        page.wait_for_timeout(100)
    assert delivery is not None, "the widget never reported the preview shown"
    assert delivery["is_test"] is True
    assert delivery["campaign_id"] == message_id

    results = engage.api("GET", f"messages/{message_id}/results")
    assert [(v["eligible"], v["shown"]) for v in results["variants"]] == [(0, 0)]
    assert page.errors == []

    # A one-time link for a tester who is not signed in.
    admin.fill("#preview-url", engage.page_url())
    admin.click("input[value='Make preview link']")
    link = admin.input_value("#preview-link")
    assert "engage_preview=" in link

    stranger_context = chromium.new_context(reduced_motion="reduce")
    try:
        stranger = stranger_context.new_page()
        stranger.goto(link)
        stranger.wait_for_function(
            "document.querySelector('engage-widget')?.shadowRoot.querySelector('h2')"
            "?.textContent === 'Draft news'"
        )
        assert "engage_preview" not in stranger.url  # the token left the address bar
        again = stranger_context.new_page()
        again.goto(link)
        again.wait_for_function("window.seen.some(e => e[0] === 'ready')")
        again.wait_for_timeout(500)
        assert again.locator("engage-widget [role=dialog]").count() == 0  # used once
    finally:
        stranger_context.close()
    results = engage.api("GET", f"messages/{message_id}/results")
    assert [(v["eligible"], v["shown"]) for v in results["variants"]] == [(0, 0)]


def test_check_a_person_page_in_chromium(
    engage: Engage, browser_context: Any, chromium: Any
) -> None:
    """The explain panel as Parker sees it; ENGAGE_ADMIN_SCREENSHOTS=DIR saves explain.png."""
    engage.api("POST", "identify", {"user_id": "sam", "attributes": {"plan": "free"}})
    engage.api("POST", "events", {"events": [{"name": "export_clicked", "user_id": "sam"}] * 2})
    shown = engage.api(
        "POST",
        "messages/",
        {
            "name": "Welcome tour",
            "kind": "banner",
            "trigger": {"on": "api"},
            "content": {"en": {"title": "Welcome", "body": "Hi", "buttons": []}},
        },
    )
    withheld = engage.api(
        "POST",
        "messages/",
        {
            "name": "Try CSV export",
            "kind": "modal",
            "priority": 10,
            "trigger": {"on": "api"},
            "audience": {
                "condition": {
                    "all": [
                        {"attribute": "plan", "op": "eq", "value": "pro"},
                        {
                            "event": "export_clicked",
                            "count": {"op": "gte", "value": 3},
                            "within_days": 30,
                        },
                    ]
                }
            },
            "content": {"en": {"title": "CSV", "body": "Export", "buttons": []}},
        },
    )
    for created in (shown, withheld):
        engage.api("POST", f"messages/{created['id']}/publish")
    page = admin_page(
        browser_context,
        engage,
        f"/admin/engage/explain/?app={engage.app_id}&user_id=sam",
    )
    panel = page.locator(".engage-explain")
    panel.wait_for()
    text = panel.inner_text()
    assert "Try CSV export" in text
    assert 'all[0]: plan is "free", needs eq "pro"' in text
    assert "all[1]: export_clicked count 2, needs gte 3 within 30 days" in text
    assert "Welcome tour" in text
    directory = os.environ.get("ENGAGE_ADMIN_SCREENSHOTS", "")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": 1000})
        page.screenshot(path=str(Path(directory) / "explain.png"), full_page=True)
