"""Messages in real Chromium: each kind renders, is usable with the keyboard alone, reports what
the person did, and passes an axe-core audit in every state."""

from __future__ import annotations

from typing import Any

import pytest

from tests.widget.conftest import Engage, axe_audit, screenshot, widget_focus

pytestmark = [pytest.mark.browser, pytest.mark.live]

BUTTONS = [
    {"label": "Try it", "action": "event", "event": "try_clicked"},
    {"label": "Later", "action": "dismiss"},
]


def on_page(case: str) -> dict[str, Any]:
    return {"on": "page_view", "url": {"op": "contains", "value": f"case={case}"}}


def tab_into_widget(page: Any, limit: int = 20) -> dict[str, Any]:
    """Press Tab until the keyboard focus is inside the widget."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = widget_focus(page)
        if focused:
            return focused
    raise AssertionError("Tab never reached the widget")


def delivery_of(engage: Engage, user_id: str, campaign_id: int) -> dict[str, Any]:
    deliveries = [
        d for d in engage.person(user_id)["deliveries"] if d["campaign_id"] == campaign_id
    ]
    assert len(deliveries) == 1, deliveries
    return deliveries[0]


def wait_for_delivery(
    engage: Engage, page: Any, user_id: str, campaign_id: int, field: str
) -> dict[str, Any]:
    """Poll the people API (bounded) until the delivery has `field` set."""
    for _ in range(100):
        delivery = delivery_of(engage, user_id, campaign_id)
        if delivery[field]:
            return delivery
        page.wait_for_timeout(100)
    raise AssertionError(f"delivery never got {field}: {delivery}")


def test_event_tracked_in_the_page_shows_a_modal_trapping_focus_and_escape_returns_it(
    engage: Engage, page: Any
) -> None:
    message_id = engage.message(
        "modal", {"on": "event", "event": "export_clicked"}, buttons=BUTTONS
    )
    page.goto(engage.page_url(user="u_1"))
    page.wait_for_function("window.seen.some(e => e[0] === 'ready')")
    assert page.locator("engage-widget [role=dialog]").count() == 0

    page.focus("#track")
    page.keyboard.press("Enter")  # Engage.track('export_clicked') in the host page
    dialog = page.locator("engage-widget [role=dialog]")
    dialog.wait_for()
    assert dialog.get_attribute("aria-modal") == "true"
    title_id = dialog.get_attribute("aria-labelledby")
    assert page.locator(f"engage-widget #{title_id}").text_content() == "A modal message"
    assert dialog.locator(".bd strong").text_content() == "any"  # the server's sanitised HTML
    assert widget_focus(page) == {
        "tag": "button", "role": None, "text": "Try it", "label": None, "dialog": True
    }  # fmt: skip
    screenshot(page, "modal")
    axe_audit(page, "modal")

    # Tab and Shift+Tab cycle inside the dialog: Try it → Later → Close → Try it.
    stops: list[str] = []
    for _ in range(4):
        page.keyboard.press("Tab")
        focused = widget_focus(page)
        assert focused, stops
        assert focused["dialog"], focused
        stops.append(focused["label"] or focused["text"])
    assert stops == ["Later", "Close", "Try it", "Later"]
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert widget_focus(page)["label"] == "Close"  # type: ignore[index]

    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert page.evaluate("document.activeElement.id") == "track"
    wait_for_delivery(engage, page, "u_1", message_id, "dismissed_at")
    assert [e[0] for e in page.evaluate("window.seen")] == ["ready", "shown", "dismissed"]
    assert page.errors == []


def test_modal_button_completes_with_the_keyboard_and_reports_the_click(
    engage: Engage, page: Any
) -> None:
    message_id = engage.message("modal", on_page("modal"), buttons=BUTTONS)
    page.goto(engage.page_url(case="modal", user="u_1"))
    page.locator("engage-widget [role=dialog]").wait_for()
    page.keyboard.press("Enter")  # focus starts on the first button, "Try it"
    page.locator("engage-widget [role=dialog]").wait_for(state="detached")
    delivery = wait_for_delivery(engage, page, "u_1", message_id, "clicked_at")
    assert delivery["clicked_button"] == "Try it"
    assert delivery["dismissed_at"] is None
    for _ in range(100):  # the button's event reaches the person's history
        if any(e["name"] == "try_clicked" for e in engage.person("u_1")["events"]):
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError("try_clicked was not tracked")


def test_banner_is_a_labelled_region_reached_and_dismissed_with_the_keyboard(
    engage: Engage, page: Any
) -> None:
    message_id = engage.message(
        "banner",
        on_page("banner"),
        title="Scheduled maintenance on Sunday",
        body="Exports pause from 02:00 to 03:00 UTC.",
        buttons=[{"label": "Got it", "action": "dismiss"}],
    )
    page.goto(engage.page_url(case="banner", user="u_1"))
    region = page.locator("engage-widget [role=region]")
    region.wait_for()
    title_id = region.get_attribute("aria-labelledby")
    assert page.locator(f"engage-widget #{title_id}").text_content() == (
        "Scheduled maintenance on Sunday"
    )
    box = region.bounding_box()
    assert box
    assert (box["y"], box["width"]) == (0, 1000)  # across the top of the viewport
    assert widget_focus(page) is None  # a banner does not take the focus
    screenshot(page, "banner")
    axe_audit(page, "banner")

    assert tab_into_widget(page)["text"] == "Got it"
    page.keyboard.press("Enter")
    region.wait_for(state="detached")
    wait_for_delivery(engage, page, "u_1", message_id, "dismissed_at")


def test_slide_in_is_a_non_modal_dialog_closed_with_escape(engage: Engage, page: Any) -> None:
    message_id = engage.message(
        "slide_in",
        on_page("slide"),
        title="New: scheduled reports",
        buttons=[{"label": "Show me", "action": "url", "url": "#scheduled"}],
    )
    page.goto(engage.page_url(case="slide", user="u_1"))
    dialog = page.locator("engage-widget [role=dialog]")
    dialog.wait_for()
    assert dialog.get_attribute("aria-modal") is None
    box = dialog.bounding_box()
    assert box
    assert box["x"] > 500  # the inline end…
    assert box["y"] > 400  # …bottom corner
    assert widget_focus(page) is None
    screenshot(page, "slide_in")
    axe_audit(page, "slide_in")

    assert tab_into_widget(page)["text"] == "Show me"
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    wait_for_delivery(engage, page, "u_1", message_id, "dismissed_at")


def test_slide_in_url_button_reports_the_click_and_navigates(engage: Engage, page: Any) -> None:
    target = engage.page_url("/reports/2", user="u_1")
    message_id = engage.message(
        "slide_in",
        on_page("slide"),
        buttons=[{"label": "Open reports", "action": "url", "url": target}],
    )
    page.goto(engage.page_url(case="slide", user="u_1"))
    page.locator("engage-widget [role=dialog]").wait_for()
    tab_into_widget(page)
    page.keyboard.press("Enter")
    page.wait_for_url(target)
    delivery = wait_for_delivery(engage, page, "u_1", message_id, "clicked_at")
    assert delivery["clicked_button"] == "Open reports"


def test_inbox_launcher_counts_unread_and_opens_a_list_with_the_keyboard(
    engage: Engage, page: Any
) -> None:
    first = engage.message("inbox", on_page("inbox"), title="Release notes: March")
    engage.message("inbox", on_page("inbox"), title="Tip: keyboard shortcuts")
    page.goto(engage.page_url(case="inbox", user="u_1"))
    launcher = page.locator("engage-widget button.l")
    launcher.wait_for()
    page.wait_for_function(
        "document.querySelector('engage-widget').shadowRoot.querySelector('.k').textContent === '2'"
    )
    assert launcher.get_attribute("aria-label") == "Messages, 2 unread"
    assert launcher.get_attribute("aria-expanded") == "false"
    screenshot(page, "inbox_launcher")
    axe_audit(page, "inbox launcher")

    assert tab_into_widget(page)["label"] == "Messages, 2 unread"
    page.keyboard.press("Enter")
    panel = page.locator("engage-widget .ib[role=dialog]")
    panel.wait_for()
    assert launcher.get_attribute("aria-expanded") == "true"
    assert widget_focus(page)["text"] == "Release notes: March"  # type: ignore[index]
    page.keyboard.press("Enter")
    item = panel.locator(".it").first
    assert item.locator("button").first.get_attribute("aria-expanded") == "true"
    assert item.locator(".bd").inner_text().strip() == "Export any report as CSV."
    assert launcher.get_attribute("aria-label") == "Messages, 1 unread"
    screenshot(page, "inbox_open")
    axe_audit(page, "inbox open")
    wait_for_delivery(engage, page, "u_1", first, "shown_at")

    page.keyboard.press("Escape")
    panel.wait_for(state="detached")
    assert widget_focus(page)["label"] == "Messages, 1 unread"  # type: ignore[index]

    page.reload()  # read state is kept
    launcher.wait_for()
    page.wait_for_function(
        "document.querySelector('engage-widget').shadowRoot.querySelector('.k').textContent === '1'"
    )


def test_history_navigation_is_a_page_view_that_shows_page_triggered_messages(
    engage: Engage, page: Any
) -> None:
    engage.message(
        "slide_in",
        {"on": "page_view", "url": {"op": "contains", "value": "/reports/2"}},
        title="Reports 2 tips",
    )
    page.goto(engage.page_url(user="u_1"))
    page.wait_for_function("window.seen.some(e => e[0] === 'ready')")
    assert page.locator("engage-widget [role=dialog]").count() == 0
    page.click("#navigate")  # history.pushState to /reports/2
    page.locator("engage-widget [role=dialog]").wait_for()
    assert page.locator("engage-widget h2").text_content() == "Reports 2 tips"
