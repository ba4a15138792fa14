"""The widget's transport in real Chromium: the queued snippet, offline answers sent exactly
once across reloads, the HTTP fallback when websockets are blocked, reconnection after the
server comes back, and identity changes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from engage.keys import user_hash_compute
from tests.live import daphne, free_port
from tests.widget.conftest import Engage, make_engage, outbox

pytestmark = [pytest.mark.browser, pytest.mark.live]

NPS_ONLY = [{"id": "recommend", "type": "nps", "required": True, "text": {"en": "Recommend us?"}}]
ON_SURVEY_PAGE = {"on": "page_view", "url": {"op": "contains", "value": "case=survey"}}


def poll(page: Any, check: Any, what: str, tries: int = 100) -> Any:
    """Call `check` until it returns something truthy (bounded: about ten seconds)."""
    for _ in range(tries):
        result = check()
        if result:
            return result
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out waiting for {what}")


def answer_nps(page: Any, score: int) -> None:
    page.locator("engage-widget [role=dialog]").wait_for()
    page.keyboard.press("Home")
    for _ in range(score):
        page.keyboard.press("ArrowRight")
    page.locator("engage-widget .bs button").press("Enter")
    page.locator("engage-widget [role=dialog]").wait_for(state="detached")  # no thank-you screen


def test_calls_made_before_the_script_loads_are_replayed(engage: Engage, page: Any) -> None:
    page.goto(engage.page_url(user="u_1", early="signed_up"))

    def signed_up() -> list[dict[str, Any]]:
        person = engage.person_if_any("u_1")
        return [e for e in person["events"] if e["name"] == "signed_up"] if person else []

    event = poll(page, signed_up, "the queued track call")[0]
    assert event["properties"] == {"queued": True}
    assert page.evaluate("window.Engage.v") == 1  # the stub was replaced by the widget


def test_answer_given_offline_reaches_the_server_once_after_reload(
    transactional_db: Any, host_origin: str, page: Any
) -> None:
    port = free_port()
    with daphne(port=port) as url:
        engage = make_engage(url, host_origin)
        survey_id = engage.survey(NPS_ONLY, ON_SURVEY_PAGE)
        page.goto(engage.page_url(case="survey", user="u_1"))
        page.locator("engage-widget [role=dialog]").wait_for()
    # Engage is gone (the socket closes, HTTP fails): the answer waits in localStorage.
    answer_nps(page, 8)
    queued = outbox(page, engage.public_key)
    answers = [e["f"] for e in queued if e["f"]["type"] == "answer"]
    assert [a["response"]["answers"] for a in answers] == [{"recommend": 8}]
    response_id = answers[0]["response"]["id"]

    with daphne(port=port):
        page.reload()
        poll(page, lambda: not outbox(page, engage.public_key), "the outbox to empty")
        responses = engage.responses(survey_id)
        assert [(r["id"], r["answers"], r["completed"]) for r in responses] == [
            (response_id, {"recommend": 8}, True)
        ]
        page.reload()  # nothing is sent twice, and the answered survey is not shown again
        page.wait_for_function("window.seen.some(e => e[0] === 'ready')")
        assert len(engage.responses(survey_id)) == 1
        assert page.locator("engage-widget [role=dialog]").count() == 0


def test_websockets_blocked_fall_back_to_the_http_endpoints(engage: Engage, page: Any) -> None:
    survey_id = engage.survey(NPS_ONLY, ON_SURVEY_PAGE)
    sockets = []

    def refuse(ws: Any) -> None:  # a proxy that kills every websocket
        sockets.append(ws.url)
        ws.close()

    page.route_web_socket(re.compile(r"/ws/v1/widget"), refuse)
    page.goto(engage.page_url(case="survey", user="u_1"))
    answer_nps(page, 10)
    response = poll(page, lambda: engage.responses(survey_id), "the response over HTTP")[0]
    assert (response["answers"], response["completed"]) == ({"recommend": 10}, True)
    assert page.evaluate("window.seen.find(e => e[0] === 'ready')[1]") == {"transport": "http"}
    assert len(sockets) >= 2  # websockets were tried first
    delivery = poll(
        page,
        lambda: [d for d in engage.person("u_1")["deliveries"] if d["shown_at"]],
        "the shown report over HTTP",
    )[0]
    assert delivery["campaign_id"] == survey_id
    assert outbox(page, engage.public_key) == []


def test_reconnects_with_backoff_and_resumes_when_engage_comes_back(
    transactional_db: Any, host_origin: str, page: Any
) -> None:
    port = free_port()
    with daphne(port=port) as url:
        engage = make_engage(url, host_origin)
        message_id = engage.message("modal", {"on": "api"}, title="Pushed to you")
        page.goto(engage.page_url(user="u_1"))
        page.wait_for_function("window.seen.some(e => e[0] === 'ready')")
    opened: list[Any] = []
    page.on("websocket", lambda ws: opened.append(ws))
    with daphne(port=port):
        # Whether the widget is back yet or not, the push reaches it: at once, or as a pending
        # delivery in the snapshot that answers its next hello.
        engage.api(
            "POST",
            "targeting/push",
            {"user_id": "u_1", "campaign": {"kind": "message", "id": message_id}},
        )
        # Backoff: up to 30 s between attempts once Engage has been gone a while.
        page.locator("engage-widget [role=dialog]").wait_for(timeout=45_000)
        assert page.locator("engage-widget h2").text_content() == "Pushed to you"
        assert opened  # a new socket, not the old one
        assert page.evaluate("window.seen.filter(e => e[0] === 'ready').length") == 1


def test_identify_links_the_anonymous_visitor_to_the_user(engage: Engage, page: Any) -> None:
    page.goto(engage.page_url())
    page.wait_for_function("window.seen.some(e => e[0] === 'ready')")
    anonymous_id = page.evaluate(
        f"JSON.parse(localStorage.getItem('engage:{engage.public_key}:a'))"
    )
    page.click("#identify")  # Engage.identify('u_2', {plan: 'pro'})
    person = poll(page, lambda: engage.person_if_any("u_2"), "u_2 to exist")
    assert anonymous_id in person["anonymous_ids"]
    assert person["attributes"]["plan"] == "pro"

    page.evaluate("Engage.reset()")
    assert (
        page.evaluate(f"JSON.parse(localStorage.getItem('engage:{engage.public_key}:a'))")
        != anonymous_id
    )


def test_a_refused_hash_is_not_retried_until_identify_changes_it(
    live_server_url: str, host_origin: str, page: Any
) -> None:
    engage = make_engage(live_server_url, host_origin, identity_verification=True)
    closed: list[int] = []
    page.on("websocket", lambda ws: ws.on("close", lambda _: closed.append(1)))
    page.goto(engage.page_url(user="u_1", hash="0" * 64))
    poll(page, lambda: closed, "the refused socket to close")
    with pytest.raises(PlaywrightTimeout):  # no reconnection storm (the first retry is ≤ 0.5 s)
        page.wait_for_event("websocket", timeout=2_000)
    good = user_hash_compute(identity_secret=engage.identity_secret, user_id="u_1")
    page.evaluate("hash => Engage.identify('u_1', {}, hash)", good)
    page.wait_for_function("window.seen.some(e => e[0] === 'ready')")
