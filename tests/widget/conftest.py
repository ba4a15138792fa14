"""Wiring of the widget's browser tests: Chromium, a host page on another origin, a live Engage.

The host page (tests/widget/pages) is served by a small http.server on its own port, so the
widget runs cross-origin exactly as in a customer's app; Engage is a real Daphne process on
the test database (tests.live). Campaigns are made through the management API of that process,
so its compiled-campaign cache sees them at once.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from engage.services import app_create
from tests.conftest import service_missing
from tests.live import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
PAGES = Path(__file__).parent / "pages"
AXE = Path(__file__).resolve().parents[2] / "widget" / "node_modules" / "axe-core" / "axe.min.js"
# ENGAGE_WIDGET_SCREENSHOTS=docs/widget saves a PNG of each state the tests reach.
SCREENSHOTS = os.environ.get("ENGAGE_WIDGET_SCREENSHOTS", "")
WAIT_MS = 15_000
SHADOW = "document.querySelector('engage-widget').shadowRoot"


class HostPageHandler(SimpleHTTPRequestHandler):
    """Serves tests/widget/pages; paths under /csp/ get a strict Content-Security-Policy."""

    csp = ""

    def end_headers(self) -> None:
        if self.path.startswith("/csp/") and self.csp:
            self.send_header("Content-Security-Policy", self.csp)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def translate_path(self, path: str) -> str:
        if path.startswith("/csp/"):
            path = path[4:]
        if path.startswith("/reports/"):
            path = "/host.html"  # the history-navigation target, served as the same page
        return super().translate_path(path)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def host_origin() -> Iterator[str]:
    """The host app's origin (another port than Engage's, so another origin)."""
    port = free_port()
    handler = functools.partial(HostPageHandler, directory=str(PAGES))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module", autouse=True)
def _sync_playwright_beside_django() -> Iterator[None]:
    """Playwright's sync API keeps an event loop set on the main thread while it runs, which
    Django's async-safety check takes for async code and refuses every ORM call (creating Apps,
    flushing the test database). Nothing here runs the ORM inside that loop, so lift the check
    for these tests only."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
        yield


@pytest.fixture(scope="module")
def chromium(_sync_playwright_beside_django: None) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        service_missing("Chromium", f"install it at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_context(chromium: Any) -> Iterator[Any]:
    # Reduced motion: geometry and screenshots see the final state, not an entrance animation
    # (test_isolation checks the animation and its reduced-motion opt-out).
    context = chromium.new_context(viewport={"width": 1000, "height": 720}, reduced_motion="reduce")
    context.set_default_timeout(WAIT_MS)
    yield context
    context.close()


@pytest.fixture
def page(browser_context: Any) -> Any:
    page = browser_context.new_page()
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.errors = []
    return page


@dataclass
class Engage:
    """A live Engage with one App whose allowed origin is the host page's."""

    url: str
    host_origin: str
    public_key: str
    secret_key: str
    app_id: int
    identity_secret: str

    def api(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = requests.request(
            method,
            f"{self.url}/api/v1/{path}",
            json=body,
            params=params or None,
            headers={"Authorization": f"Bearer {self.secret_key}"},
            timeout=10,
        )
        assert response.status_code < 300, (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        return response.json() if response.content else None

    def message(self, kind: str, trigger: dict[str, Any], **content: Any) -> int:
        entry = {"title": f"A {kind} message", "body": "Export **any** report as CSV.", **content}
        created = self.api(
            "POST",
            "messages/",
            {"name": f"{kind} message", "kind": kind, "trigger": trigger, "content": {"en": entry}},
        )
        self.api("POST", f"messages/{created['id']}/publish")
        return int(created["id"])

    def survey(self, questions: list[dict[str, Any]], trigger: dict[str, Any], **extra: Any) -> int:
        created = self.api(
            "POST",
            "surveys/",
            {"name": "Product survey", "trigger": trigger, "questions": questions, **extra},
        )
        self.api("POST", f"surveys/{created['id']}/publish")
        return int(created["id"])

    def page_url(self, path: str = "/host.html", **params: Any) -> str:
        query = {"engage": self.url, "key": self.public_key, **params}
        return f"{self.host_origin}{path}?{urlencode(query)}"

    def person_if_any(self, user_id: str) -> dict[str, Any] | None:
        """The person, or None while Engage does not know them yet."""
        response = requests.get(
            f"{self.url}/api/v1/people/{user_id}",
            headers={"Authorization": f"Bearer {self.secret_key}"},
            timeout=10,
        )
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return,unused-ignore]

    def person(self, user_id: str) -> dict[str, Any]:
        return self.api("GET", f"people/{user_id}")  # type: ignore[no-any-return,unused-ignore]

    def responses(self, survey_id: int) -> list[dict[str, Any]]:
        return self.api("GET", f"surveys/{survey_id}/responses")["results"]  # type: ignore[no-any-return,unused-ignore]


def make_engage(
    url: str, host_origin: str, name: str = "Widget host", identity_verification: bool = False
) -> Engage:
    created = app_create(
        name=name, origins=[host_origin], identity_verification=identity_verification
    )
    return Engage(
        url=url,
        host_origin=host_origin,
        public_key=created.app.public_key,
        secret_key=created.secret_key,
        app_id=created.app.pk,
        identity_secret=created.app.identity_secret,
    )


@pytest.fixture
def engage(live_server_url: str, host_origin: str) -> Engage:
    return make_engage(live_server_url, host_origin)


# --- in-page helpers ---------------------------------------------------------------------------


def widget_focus(page: Any) -> dict[str, Any] | None:
    """What has the keyboard focus inside the widget: tag, role, text and aria-label."""
    return page.evaluate(  # type: ignore[no-any-return,unused-ignore]
        """() => {
        const host = document.querySelector('engage-widget')
        const el = host && document.activeElement === host && host.shadowRoot.activeElement
        return el ? {tag: el.tagName.toLowerCase(), role: el.getAttribute('role'),
                     text: el.textContent.trim(), label: el.getAttribute('aria-label'),
                     dialog: !!el.closest('[role=dialog]')} : null
    }"""
    )


def wait_for_title(page: Any, title: str) -> None:
    """Wait until the widget's (first) heading says `title`."""
    page.wait_for_function(f"t => {SHADOW}.querySelector('h2')?.textContent === t", arg=title)


def outbox(page: Any, key: str) -> list[dict[str, Any]]:
    raw = page.evaluate(f"localStorage.getItem('engage:{key}:o')")
    return json.loads(raw) if raw else []


def axe_audit(page: Any, state: str) -> None:
    """axe-core on the widget: no serious or critical violation in this state."""
    if not AXE.exists():
        service_missing("axe-core", "run `cd widget && npm ci`")
    if not page.evaluate("!!window.axe"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => {
        const r = await axe.run({include: [['engage-widget']]}, {resultTypes: ['violations']})
        return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
          .map(v => ({id: v.id, impact: v.impact, help: v.help,
                      nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}))
    }"""
    )
    assert result == [], f"axe found problems in state {state!r}: {json.dumps(result, indent=1)}"


def screenshot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))
