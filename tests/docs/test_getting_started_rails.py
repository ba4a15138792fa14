"""docs/getting-started-rails.md: every sample that is not Ruby runs against Engage.

The fenced blocks are read from the document itself, so the guide cannot drift from what the
server accepts: the `engage_app` command runs, each `curl` goes through DRF's client (shell
variables and `VAR=$(curl … | jq -r .id)` captures resolved as a shell would), the JavaScript
tracker's collector URL and app id carry a page view through the collector, and the widget embed
is the documented loader with an identity hash the server accepts.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from engage.models import App, Delivery
from segments.models import Event
from segments.services import EventInput, events_ingest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "getting-started-rails.md"
HOST = "https://engage.example.com"
ORIGIN = "https://app.acme.example"

pytestmark = pytest.mark.django_db


def blocks(language: str) -> list[str]:
    text = GUIDE.read_text()
    return [m.group(1) for m in re.finditer(rf"```{language}\n(.*?)```", text, flags=re.S)]


def commands(block: str) -> list[str]:
    """Shell commands of a block, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    out, current = [], ""
    for line in joined.splitlines():
        if current:  # inside a quoted string spanning lines
            current += "\n" + line
        else:
            current = line.strip()
        if current.count("'") % 2 == 0 and current.count('"') % 2 == 0:
            if current and not current.startswith("#"):
                out.append(current)
            current = ""
    return out


def expand(command: str, env: dict[str, str]) -> str:
    """$VAR and ${VAR} outside single quotes, as the shell does."""
    parts = re.split(r"('[^']*')", command)
    for i, part in enumerate(parts):
        if not part.startswith("'"):
            parts[i] = re.sub(
                r"\$(?:\{([A-Z_]+)\}|([A-Z_]+))",
                lambda m: env.get(m.group(1) or m.group(2), m.group(0)),
                part,
            )
    return "".join(parts)


def curl(client: APIClient, command: str) -> Any:
    args = shlex.split(command)
    assert args[0] == "curl", command
    method, data, headers, url = "GET", None, {}, None
    i = 1
    while i < len(args):
        arg = args[i]
        if arg == "-X":
            method = args[i + 1]
            i += 1
        elif arg == "-H":
            name, value = args[i + 1].split(":", 1)
            headers[name.strip().lower()] = value.strip()
            i += 1
        elif arg in ("-d", "--data"):
            data = json.loads(args[i + 1])
            i += 1
        elif not arg.startswith("-"):
            url = arg
        i += 1
    assert url is not None, command
    assert url.startswith(HOST), command
    if data is not None and method == "GET":
        method = "POST"
    client.credentials(HTTP_AUTHORIZATION=headers["authorization"])
    response = getattr(client, method.lower())(url.removeprefix(HOST), data, format="json")
    assert 200 <= response.status_code < 300, (command, response.status_code, response.content)
    return response.json() if response.content else None


@pytest.fixture
def created() -> dict[str, Any]:
    """Step 1 as written: the App, from the guide's `engage_app create` line."""
    (line,) = [c for c in commands(blocks("bash")[0]) if "engage_app" in c]
    args = shlex.split(line)
    assert args[:3] == ["python", "manage.py", "engage_app"]
    out = io.StringIO()
    call_command(*args[2:], stdout=out)
    return json.loads(out.getvalue())


def test_the_app_is_created_as_written(created) -> None:
    app = App.objects.get(pk=created["id"])
    assert app.identity_verification is True
    assert ORIGIN in app.allowed_origins
    assert {"acme-web", "acme-server"} <= set(app.snowplow_app_ids.values_list("aid", flat=True))
    exports = blocks("bash")[1]
    for name in ("ENGAGE", "ENGAGE_PUBLIC_KEY", "ENGAGE_SECRET_KEY", "ENGAGE_IDENTITY_SECRET"):
        assert f"{name}=" in exports


def test_the_javascript_tracker_reaches_the_app(created, client) -> None:
    (snippet,) = blocks("js")
    url, app_id = re.search(
        r'"newTracker",\s*"\w+",\s*"([^"]+)",\s*\{\s*appId:\s*"([^"]+)"', snippet
    ).groups()
    user_id = re.search(r'"setUserId",\s*"([^"]+)"', snippet).group(1)
    assert url == HOST
    # What the tracker posts for trackPageView with eventMethod "post".
    payload = {
        "schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
        "data": [
            {
                "e": "pv",
                "aid": app_id,
                "p": "web",
                "uid": user_id,
                "url": f"{ORIGIN}/reports",
                "eid": "5b1f0c1e-9d0c-4f57-9a7e-0a4cbd3f1a11",
                "dtm": "1764000000000",
                "tv": "js-3.24.0",
                "duid": "0f9a7b4e-1111-4c2b-9f27-5b1d3b6f2a10",
            }
        ],
    }
    response = client.post(
        "/com.snowplowanalytics.snowplow/tp2",
        json.dumps(payload),
        content_type="application/json",
        HTTP_ORIGIN=ORIGIN,
    )
    assert response.status_code == 200
    event = Event.objects.get(app_id=created["id"])
    assert (event.name, event.person.user_id) == ("page_view", user_id)


def test_the_widget_embed_is_the_documented_loader_with_a_valid_hash(created) -> None:
    (embed,) = blocks("html")
    widget_doc = (ROOT / "docs" / "widget.md").read_text()
    loader = '["init","identify","track","page","reset","on"].forEach(function (m) {'
    stub = (
        "Engage[m] = Engage[m] || function () { "
        "Engage.q.push([m].concat([].slice.call(arguments))); }; });"
    )
    for line in (loader, stub, "window.Engage = window.Engage || {q: []};"):
        assert line in embed, line
        assert line in widget_doc, line
    assert f'<script src="{HOST}/static/engage/widget.js" async></script>' in embed
    # The helper's OpenSSL::HMAC.hexdigest("SHA256", secret, user_id): the hash Engage expects.
    (helper,) = [b for b in blocks("ruby") if "OpenSSL::HMAC.hexdigest" in b]
    assert (
        'OpenSSL::HMAC.hexdigest("SHA256", ENV.fetch("ENGAGE_IDENTITY_SECRET"), user.id.to_s)'
        in helper
    )
    user_hash = hmac.new(created["identity_secret"].encode(), b"42", hashlib.sha256).hexdigest()
    widget = APIClient()
    headers = {"HTTP_X_ENGAGE_KEY": created["public_key"], "HTTP_ORIGIN": ORIGIN}
    ok = widget.get(
        "/api/v1/widget/campaigns", {"user_id": "42"}, HTTP_X_ENGAGE_USER_HASH=user_hash, **headers
    )
    assert ok.status_code == 200, ok.content
    refused = widget.get(
        "/api/v1/widget/campaigns", {"user_id": "42"}, HTTP_X_ENGAGE_USER_HASH="0" * 64, **headers
    )
    assert refused.status_code == 401


def test_kpi_funnel_campaign_and_its_effect_as_written(created) -> None:
    app = App.objects.get(pk=created["id"])
    events_ingest(
        app=app,
        events=[
            EventInput(name=name, user_id=f"u{i}")
            for i in range(3)
            for name in ("signup", "report_created", "upgraded")
        ],
    )
    env = {
        "ENGAGE": HOST,
        "ENGAGE_SECRET_KEY": created["secret_key"],
        "ENGAGE_PUBLIC_KEY": created["public_key"],
        "ENGAGE_IDENTITY_SECRET": created["identity_secret"],
    }
    client = APIClient()
    answers = []
    ran = 0
    for block in blocks("bash")[2:]:
        for command in commands(block):
            capture = re.fullmatch(r"([A-Z_]+)=\$\((curl .*) \| jq -r \.id\)", command, flags=re.S)
            if capture:
                body = curl(client, expand(capture.group(2), env))
                env[capture.group(1)] = str(body["id"])
            else:
                answers.append(curl(client, expand(command, env)))
            ran += 1
    assert ran == 7
    funnel, saved, patched, published, results = answers
    assert [s["people"] for s in funnel["steps"]] == [3, 3, 3]
    assert saved["kind"] == "funnel"
    assert patched["primary_kpi"] == int(env["KPI_ID"])
    assert published["status"] == "live"
    assert results["experiment"]["primary_kpi"] == int(env["KPI_ID"])
    assert results["kpis"][0]["kpi"]["name"] == "Upgrades"
    assert set(results["kpis"][0]) >= {"holdout", "exposed", "warning", "sample_size_per_group"}
    assert Delivery.objects.filter(app=app).count() == 0
