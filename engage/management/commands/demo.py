"""`manage.py demo`: a demo App with data and live campaigns, Engage and a host page, one command.

Run by `make demo` after `migrate`. Idempotent: a second run finds the demo App (by its
Snowplow app id `demo-web`), adds what is missing and rotates its secret key so that the key
can be printed again (only its hash is stored). Then it serves Engage with Daphne on --port
and, from another origin (--host-page-port), a small page embedding the widget with the demo's
key filled in. Both stop on Ctrl-C.
"""

from __future__ import annotations

import functools
import html
import json
import shlex
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from engage.campaigns import campaign_create, campaign_kind_get, campaign_kinds, campaign_publish
from engage.models import App, CampaignStatus, SnowplowAppId
from engage.selectors import app_cache_clear
from engage.services import app_create, app_secret_key_rotate
from segments.models import Segment
from segments.services import EventInput, events_ingest, person_identify, segment_create

PAGES = Path(__file__).resolve().parents[2] / "demo"
AID = "demo-web"
APP_NAME = "Engage demo"

SEGMENTS: list[dict[str, Any]] = [
    {
        "slug": "power-users",
        "name": "Power users",
        "description": "Exported at least three times in the last 30 days.",
        "condition": {
            "event": "export_clicked",
            "count": {"op": "gte", "value": 3},
            "within_days": 30,
        },
    },
    {
        "slug": "pro-plan",
        "name": "Pro plan",
        "description": "People on the pro plan.",
        "condition": {"attribute": "plan", "op": "eq", "value": "pro"},
    },
]

PEOPLE = [
    ("demo-ada", "pro", 5),
    ("demo-grace", "pro", 1),
    ("demo-linus", "free", 4),
    ("demo-margaret", "free", 0),
    ("demo-alan", "team", 3),
    ("demo-barbara", "free", 2),
]


def _message(kind: str, title: str, body: str, buttons: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": kind, "content": {"en": {"title": title, "body": body, "buttons": buttons}}}


MESSAGES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "Demo: welcome banner",
        {"trigger": {"on": "page_view"}, "max_impressions": 20},
        _message(
            "banner",
            "Welcome to the Engage demo",
            "This banner came over a websocket from Engage, another origin.",
            [{"label": "Got it", "action": "dismiss"}],
        ),
    ),
    (
        "Demo: export ready",
        {"trigger": {"on": "event", "event": "export_clicked"}, "priority": 10},
        _message(
            "modal",
            "Your CSV export is ready",
            "Shown because this page tracked **export_clicked**. Power users see it too when "
            "the event comes from the events API or a Snowplow tracker.",
            [
                {"label": "Schedule exports", "action": "event", "event": "schedule_clicked"},
                {"label": "Later", "action": "dismiss"},
            ],
        ),
    ),
    (
        "Demo: pricing tip",
        {"trigger": {"on": "page_view", "url": {"op": "contains", "value": "/pricing"}}},
        _message(
            "slide_in",
            "Questions about plans?",
            "A page view of `/pricing` (a history navigation) triggered this slide-in.",
            [{"label": "Talk to us", "action": "event", "event": "contact_requested"}],
        ),
    ),
    (
        "Demo: release notes",
        {"trigger": {"on": "session_start"}},
        _message(
            "inbox",
            "What's new: scheduled exports",
            "- Schedule any report daily or weekly\n- CSV and XLSX\n- Sent to your team",
            [{"label": "Try it", "action": "url", "url": "/reports"}],
        ),
    ),
]

SURVEY_NAME = "Demo: product feedback"
SURVEY: dict[str, Any] = {
    "trigger": {"on": "event", "event": "feedback_requested"},
    "questions": [
        {
            "id": "recommend",
            "type": "nps",
            "required": True,
            "text": {"en": "How likely are you to recommend Acme Reports to a colleague?"},
            "logic": [
                {"if": {"op": "lte", "value": 6}, "jump_to": "improve"},
                {"if": {"op": "gte", "value": 7}, "jump_to": "export"},
            ],
        },
        {"id": "improve", "type": "open_text", "text": {"en": "What should we improve first?"}},
        {
            "id": "export",
            "type": "rating",
            "scale": 5,
            "display": "stars",
            "text": {"en": "How do you rate the CSV export?"},
        },
        {
            "id": "role",
            "type": "single_choice",
            "text": {"en": "What is your role?"},
            "choices": [
                {"id": "dev", "label": {"en": "Developer"}},
                {"id": "pm", "label": {"en": "Product manager"}},
                {"id": "analyst", "label": {"en": "Analyst"}},
            ],
            "other": True,
            "shuffle": True,
        },
        {
            "id": "beta",
            "type": "yes_no",
            "text": {"en": "Would you join the scheduled-exports beta?"},
        },
    ],
    "thank_you": {"en": {"title": "Thank you!", "body": "We read **every** answer."}},
}


class Command(BaseCommand):
    help = "Create the demo App, data and campaigns, then serve Engage and a demo host page."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface (and host name) to use")
        parser.add_argument("--port", type=int, default=8000, help="Engage's port")
        parser.add_argument("--host-page-port", type=int, default=8001, help="The demo page's port")
        parser.add_argument(
            "--no-serve", action="store_true", help="Only create the demo data and print the keys"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port, page_port = options["host"], options["port"], options["host_page_port"]
        engage_url = f"http://{host}:{port}"
        page_origins = [f"http://{host}:{page_port}"]
        if host in ("127.0.0.1", "localhost"):
            page_origins = [f"http://127.0.0.1:{page_port}", f"http://localhost:{page_port}"]
        app, secret_key = demo_app(origins=page_origins)
        campaigns = demo_data(app)
        curl = curl_examples(engage_url, app.public_key, secret_key, campaigns)
        self._print(engage_url, page_origins[0], app, secret_key, campaigns, curl)
        if not options["no_serve"]:
            serve(host, port, page_port, engage_url, app.public_key, curl, self.stdout)

    def _print(
        self,
        engage_url: str,
        page_url: str,
        app: App,
        secret_key: str,
        campaigns: dict[str, int],
        curl: str,
    ) -> None:
        lines = [
            "",
            "Engage demo",
            f"  demo host page  {page_url}/   (another origin, embeds the widget)",
            f"  Engage          {engage_url}/   (admin: {engage_url}/admin/, "
            f"API docs: {engage_url}/api/docs/)",
            f"  public key      {app.public_key}",
            f"  secret key      {secret_key}   (rotated on every run of `make demo`)",
            "  campaigns       " + ", ".join(f"{name} (#{i})" for name, i in campaigns.items()),
            "",
            "Try it from a terminal:",
            curl,
            "",
            "Ctrl-C stops both servers.",
            "",
        ]
        self.stdout.write("\n".join(lines))


@transaction.atomic
def demo_app(*, origins: list[str]) -> tuple[App, str]:
    """The demo App (created once) allowing `origins`, and a fresh secret key for it."""
    row = SnowplowAppId.objects.select_related("app").filter(aid=AID).first()
    if row is None:
        created = app_create(name=APP_NAME, origins=origins, snowplow_app_ids=[AID])
        return created.app, created.secret_key
    app = row.app
    missing = [o for o in origins if o not in app.allowed_origins]
    if missing:
        # No service edits an App's origins yet; the demo only ever adds its own page's.
        app.allowed_origins = [*app.allowed_origins, *missing]
        app.full_clean()
        app.save(update_fields=["allowed_origins"])
        transaction.on_commit(app_cache_clear)
    return app, app_secret_key_rotate(app=app).secret_key


def demo_data(app: App) -> dict[str, int]:
    """Sample people, events and segments, and live campaigns; what exists is kept."""
    now = timezone.now()
    events = []
    for person_index, (user_id, plan, exports) in enumerate(PEOPLE):
        person_identify(app=app, user_id=user_id, attributes={"plan": plan, "demo": True})
        names = ["page_view", "report_viewed"] + ["export_clicked"] * exports
        for event_index, name in enumerate(names):
            events.append(
                EventInput(
                    name=name,
                    user_id=user_id,
                    properties={"format": "csv"} if name == "export_clicked" else {},
                    timestamp=now - timedelta(days=event_index + person_index, minutes=5),
                    dedup_id=f"demo-{user_id}-{event_index}",
                )
            )
    events_ingest(app=app, events=events)
    for segment in SEGMENTS:
        if not Segment.objects.filter(app=app, slug=segment["slug"]).exists():
            segment_create(app=app, **segment)

    campaigns: dict[str, int] = {}
    for name, shared, specific in MESSAGES:
        campaigns[name] = _live_campaign(app, "message", name, {**shared, **specific})
    if "survey" in {kind.name for kind in campaign_kinds()}:
        campaigns[SURVEY_NAME] = _live_campaign(app, "survey", SURVEY_NAME, SURVEY)
        _demo_answers(app, campaigns[SURVEY_NAME])
    return campaigns


# Sample answers, so that results, sentiment and the App overview have something to show. Fixed
# response ids: a second run sends the same answers again, which changes nothing.
DEMO_ANSWERS = (
    (3, "The CSV export is slow and times out on big reports."),
    (9, "Love the new dashboards, they are clear and fast!"),
    (5, "Too expensive for a small team, and the export keeps failing."),
    (10, "Great support, they answered within an hour."),
    (6, "Scheduling reports is confusing and the emails arrive late."),
    (8, "Does what we need."),
    (2, "Terrible update: my saved filters are gone and the export crashes."),
    (7, "Der Export ist zu langsam."),
)


def _demo_answers(app: App, survey_id: int) -> None:
    import uuid

    from engage.realtime.services import answer_submit

    for i, (score, text) in enumerate(DEMO_ANSWERS):
        user_id = PEOPLE[i % len(PEOPLE)][0]
        answer_submit(
            app=app,
            user_id=user_id,
            anonymous_id="",
            response_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"engage-demo-response-{i}")),
            survey_id=survey_id,
            delivery_id=None,
            answers={"recommend": score, "improve": text},
            completed=True,
            locale="de" if text.startswith("Der ") else "en",
        )


def _live_campaign(app: App, kind: str, name: str, data: dict[str, Any]) -> int:
    model: Any = campaign_kind_get(kind).model  # a concrete Campaign subclass (Message, Survey)
    campaign = model.objects.filter(app=app, name=name).first()
    if campaign is None:
        campaign = campaign_create(kind=kind, app=app, data={"name": name, **data})
    if campaign.status != CampaignStatus.LIVE:
        campaign_publish(campaign=campaign)
    return int(campaign.pk)


def curl_examples(
    engage_url: str, public_key: str, secret_key: str, campaigns: dict[str, int]
) -> str:
    event = {"events": [{"name": "export_clicked", "user_id": "demo-user"}]}
    push = {
        "user_id": "demo-user",
        "campaign": {"kind": "message", "id": campaigns["Demo: export ready"]},
    }
    return "\n".join(
        [
            "# an event through the events API: the page, logged in as demo-user, shows a modal",
            f"curl -X POST {engage_url}/api/v1/events -H 'X-Engage-Key: {public_key}' "
            f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(event))}",
            "# push a campaign to demo-user's open widgets",
            f"curl -X POST {engage_url}/api/v1/targeting/push "
            f"-H 'Authorization: Bearer {secret_key}' "
            f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(push))}",
            "# the newest events as Engage received them",
            f"curl {engage_url}/api/v1/debug/events -H 'Authorization: Bearer {secret_key}'",
        ]
    )


class DemoPageHandler(SimpleHTTPRequestHandler):
    """Serves engage/demo: the page itself (filled in) for any path, so that history
    navigations (/pricing) survive a reload, and its script and stylesheet."""

    page = b""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/demo.js", "/demo.css"):
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.page)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def host_page(engage_url: str, public_key: str, curl: str) -> bytes:
    template = Template((PAGES / "index.html").read_text(encoding="utf-8"))
    return template.safe_substitute(
        engage_url=engage_url, public_key=public_key, curl=html.escape(curl)
    ).encode()


def serve(
    host: str, port: int, page_port: int, engage_url: str, public_key: str, curl: str, out: Any
) -> None:
    """Daphne (a child process) and the host page (a thread) until Ctrl-C or Daphne exits."""
    handler = type("Page", (DemoPageHandler,), {"page": host_page(engage_url, public_key, curl)})
    pages = ThreadingHTTPServer((host, page_port), functools.partial(handler, directory=str(PAGES)))
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    daphne = subprocess.Popen(  # noqa: S603 - our own interpreter, arguments from the CLI
        [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), "engage.asgi:application"],
        cwd=settings.BASE_DIR,
    )

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Also when started with SIGINT ignored (a background job) or stopped with SIGTERM.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        daphne.wait()
    except KeyboardInterrupt:
        out.write("\nstopping\n")
    finally:
        pages.shutdown()
        pages.server_close()
        if daphne.poll() is None:
            daphne.terminate()
            try:
                daphne.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daphne.kill()
