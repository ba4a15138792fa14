"""Isolation in real Chromium: host-page CSS does not change the widget, the widget does not
change the host page, theming goes through the documented custom properties, a strict CSP
needs no style-src for the widget, and reduced motion turns the entrance animation off."""

from __future__ import annotations

from typing import Any

import pytest

from tests.widget.conftest import Engage, HostPageHandler, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.live]

TRIGGER = {"on": "page_view", "url": {"op": "contains", "value": "case=shown"}}
BUTTONS = [
    {"label": "Try it", "action": "event", "event": "try_clicked"},
    {"label": "Later", "action": "dismiss"},
]
PROPS = [
    "display", "position", "font-family", "font-size", "font-weight", "line-height", "color",
    "background-color", "border-top-width", "border-top-style", "border-top-color",
    "border-top-left-radius", "padding-top", "padding-left", "margin-top", "margin-left",
    "letter-spacing", "text-transform", "opacity", "visibility", "filter", "transform",
    "box-sizing", "outline-style", "z-index",
]  # fmt: skip

WIDGET_STYLES = """props => {
    const root = document.querySelector('engage-widget').shadowRoot
    return [...root.querySelectorAll('*')].map(e => {
        const s = getComputedStyle(e), r = e.getBoundingClientRect()
        return [e.tagName, e.className, [r.x, r.y, r.width, r.height].map(Math.round),
                props.map(p => s.getPropertyValue(p))]
    })
}"""
HOST_STYLES = """props => [...document.querySelectorAll('body *:not(engage-widget)')].map(e => {
    const s = getComputedStyle(e), r = e.getBoundingClientRect()
    return [e.tagName, e.id, [r.x, r.y, r.width, r.height], props.map(p => s.getPropertyValue(p))]
}).concat([[document.documentElement.scrollWidth, document.documentElement.scrollHeight,
            getComputedStyle(document.body).overflow]])"""


def show_everything(engage: Engage) -> None:
    engage.message("modal", TRIGGER, buttons=BUTTONS)
    engage.message("banner", TRIGGER, title="A banner", buttons=BUTTONS[:1])


def open_with(page: Any, engage: Engage, **params: Any) -> None:
    page.goto(engage.page_url(case="shown", user="u_1", **params))
    page.locator("engage-widget [role=dialog]").wait_for()
    page.locator("engage-widget [role=region]").wait_for()


def test_host_page_css_does_not_reach_the_widget(engage: Engage, page: Any) -> None:
    show_everything(engage)
    open_with(page, engage)
    plain = page.evaluate(WIDGET_STYLES, PROPS)
    open_with(page, engage, css="hostile")
    assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith('"Comic Sans')
    screenshot(page, "hostile_host_css")
    hostile = page.evaluate(WIDGET_STYLES, PROPS)
    assert len(plain) > 10
    assert hostile == plain


def test_the_widget_does_not_change_the_host_page(engage: Engage, page: Any) -> None:
    show_everything(engage)
    page.goto(engage.page_url(case="shown", nowidget=1))
    page.wait_for_load_state("load")
    without = page.evaluate(HOST_STYLES, PROPS)
    open_with(page, engage)
    with_widget = page.evaluate(HOST_STYLES, PROPS)
    assert with_widget == without
    # Nothing but the widget's own element was added to the document.
    assert page.evaluate("[...document.body.children].at(-1).tagName") == "ENGAGE-WIDGET"
    assert page.evaluate("document.querySelectorAll('style, link[href*=engage]').length") == 0


def test_theming_through_the_documented_custom_properties(engage: Engage, page: Any) -> None:
    show_everything(engage)
    open_with(page, engage, css="theme")
    primary = page.locator("engage-widget .modal .p").first
    assert primary.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(11, 110, 79)"
    assert page.locator("engage-widget .modal").evaluate(
        "e => [getComputedStyle(e).borderTopLeftRadius, getComputedStyle(e).fontFamily]"
    ) == ["4px", "Georgia, serif"]
    screenshot(page, "themed")


def test_strict_content_security_policy_needs_no_style_src_for_the_widget(
    engage: Engage, page: Any
) -> None:
    show_everything(engage)
    ws = engage.url.replace("http://", "ws://")
    HostPageHandler.csp = (
        f"default-src 'none'; script-src 'self' {engage.url}; connect-src {engage.url} {ws}; "
        "style-src 'self'"
    )
    try:
        page.goto(engage.page_url("/csp/host.html", case="shown", user="u_1"))
        page.locator("engage-widget [role=dialog]").wait_for()
    finally:
        HostPageHandler.csp = ""
    box = page.locator("engage-widget .modal")
    assert box.evaluate("e => getComputedStyle(e).borderTopLeftRadius") == "12px"
    assert box.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(255, 255, 255)"
    assert page.evaluate("window.violations") == []


def test_entrance_animation_respects_prefers_reduced_motion(engage: Engage, chromium: Any) -> None:
    show_everything(engage)
    names = {}
    for motion in ("no-preference", "reduce"):
        context = chromium.new_context(reduced_motion=motion)
        try:
            page = context.new_page()
            open_with(page, engage)
            names[motion] = page.locator("engage-widget .modal").evaluate(
                "e => getComputedStyle(e).animationName"
            )
        finally:
            context.close()
    assert names == {"no-preference": "i", "reduce": "none"}
