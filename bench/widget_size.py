"""The widget's weight and speed: gzip size beside PostHog's surveys bundle, and Chromium timings.

    .venv/bin/python bench/widget_size.py [--runs 15] [--posthog-version latest] [--size-only]

1. Size: `gzip -9` of static/engage/widget.js (everything: transport, messages, inbox, every
   question type, styles, texts) next to the same measure of `dist/surveys.js` of the
   posthog-js package from npm (`npm pack` into a temporary directory, in this run).
   Target (issue 8): ≤ 8,192 bytes, about one sixth of PostHog's surveys bundle.
2. Timings, in headless Chromium (/usr/bin/chromium) against a real Daphne on a temporary
   SQLite database, the host page on another origin, both on 127.0.0.1, --runs page loads:
   - page load → widget ready: navigation start to the widget's `ready` event (script fetched,
     websocket open, `hello` answered by `welcome`);
   - push → visible: `POST /api/v1/targeting/push` sent from the page to the pushed modal
     painted (the server's decision and fan-out included);
   - frame received → visible: the `show` frame arriving on the socket to the modal painted
     (the widget's own rendering).
Every wait is bounded; the whole run takes about a minute. Figures go to docs/widget.md and
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import math
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
WIDGET = ROOT / "static" / "engage" / "widget.js"
BUDGET = 8192
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]

# The host page: the snippet, and a WebSocket wrapper that notes when a `show` frame arrives
# (its listener is added before the widget's own onmessage, so it runs first).
HOST_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bench</title>
<script>
  window.marks = {};
  const Native = WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => {
        if (e.data.includes('"type":"show"')) window.marks.frame = performance.now();
      });
    }
  };
  const p = new URLSearchParams(location.search);
  const s = document.createElement('script');
  s.async = true; s.src = p.get('engage') + '/static/engage/widget.js';
  document.head.appendChild(s);
  window.Engage = window.Engage || {q: []};
  ['init', 'identify', 'track', 'page', 'reset', 'on'].forEach(function (m) {
    Engage[m] = Engage[m] || function () {
      Engage.q.push([m].concat([].slice.call(arguments))); }; });
  Engage.init({host: p.get('engage'), key: p.get('key'), userId: p.get('user')});
  Engage.on('ready', () => { window.marks.ready = performance.now(); });
  Engage.on('shown', () => requestAnimationFrame(() => setTimeout(() => {
    window.marks.visible = performance.now();
  })));
</script></head><body><h1>Bench host page</h1></body></html>"""


def log(text: str) -> None:
    print(text, flush=True)


def gzip9(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1] if ordered else math.nan


def ms(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {percentile(values, 50):.1f} ms, p90 {percentile(values, 90):.1f} ms, "
        f"max {max(values):.1f} ms (n={len(values)})"
    )


def posthog_surveys(version: str) -> tuple[str, bytes]:
    """posthog-js's dist/surveys.js from the npm registry, packed in a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        packed = subprocess.run(
            ["npm", "pack", f"posthog-js@{version}", "--json", "--silent"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        )
        info = json.loads(packed.stdout)[0]
        with tarfile.open(Path(tmp) / info["filename"]) as tar:
            member = tar.extractfile("package/dist/surveys.js")
            assert member is not None
            return str(info["version"]), member.read()


def sizes(version: str) -> None:
    ours = WIDGET.read_bytes()
    ours_gz = gzip9(ours)
    log(f"static/engage/widget.js      {len(ours):>8,} bytes, gzip -9 {ours_gz:>7,} bytes")
    try:
        theirs_version, theirs = posthog_surveys(version)
    except (subprocess.SubprocessError, OSError, KeyError, json.JSONDecodeError) as exc:
        log(f"posthog-js dist/surveys.js   unavailable: {exc}")
        theirs_gz = 0
    else:
        theirs_gz = gzip9(theirs)
        log(
            f"posthog-js {theirs_version} surveys.js {len(theirs):>8,} bytes, "
            f"gzip -9 {theirs_gz:>7,} bytes"
        )
    verdict = "within" if ours_gz <= BUDGET else "OVER"
    ratio = f", 1/{theirs_gz / ours_gz:.1f} of PostHog's" if theirs_gz else ""
    log(f"budget {BUDGET:,} bytes: {verdict} ({BUDGET - ours_gz:+,} bytes){ratio}")


# --- timings -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return done.stdout


@contextmanager
def engage_server(tmp: str) -> Iterator[tuple[str, dict[str, str]]]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
        "DJANGO_SETTINGS_MODULE": "engage.settings",
        "DEBUG": "1",
    }
    env.pop("REDIS_URL", None)  # one process: the in-memory channel layer is enough here
    manage(env, "migrate", "--no-input")
    port = free_port()
    daphne = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "engage.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}", env
    finally:
        daphne.terminate()
        try:
            daphne.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daphne.kill()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def host_page(tmp: str) -> Iterator[str]:
    (Path(tmp) / "index.html").write_text(HOST_PAGE, encoding="utf-8")
    port = free_port()
    handler = functools.partial(QuietHandler, directory=tmp)
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def timings(runs: int) -> None:
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory() as tmp,
        host_page(tmp) as page_origin,
        engage_server(tmp) as (engage, env),
    ):
        app = json.loads(
            manage(env, "engage_app", "create", "Bench", "--origin", page_origin, "--json")
        )
        secret = {"Authorization": f"Bearer {app['secret_key']}"}
        created = requests.post(
            f"{engage}/api/v1/messages/",
            json={
                "name": "Bench push",
                "kind": "modal",
                "trigger": {"on": "api"},
                "content": {"en": {"title": "Pushed", "body": "Hello **there**", "buttons": []}},
            },
            headers=secret,
            timeout=10,
        ).json()
        requests.post(
            f"{engage}/api/v1/messages/{created['id']}/publish", headers=secret, timeout=10
        )
        push = json.dumps({"kind": "message", "id": created["id"]})

        ready: list[float] = []
        pushed: list[float] = []
        rendered: list[float] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(reduced_motion="reduce")
            context.set_default_timeout(15_000)
            page = context.new_page()
            for run in range(runs + 1):
                user = f"bench-{run}"  # a new person each time: the push is not deduplicated
                query = f"engage={engage}&key={app['public_key']}&user={user}"
                page.goto(f"{page_origin}/index.html?{query}")
                page.wait_for_function("window.marks.ready")
                started = page.evaluate(
                    """async ([engage, secret, user, push]) => {
                        const t = performance.now()
                        await fetch(engage + '/api/v1/targeting/push', {method: 'POST',
                          headers: {'Authorization': secret, 'Content-Type': 'application/json'},
                          body: JSON.stringify({user_id: user, campaign: JSON.parse(push)})})
                        return t
                    }""",
                    [engage, secret["Authorization"], user, push],
                )
                page.wait_for_function("window.marks.visible")
                marks = page.evaluate("window.marks")
                if run == 0:
                    continue  # warm-up: first imports and queries of the server process
                ready.append(marks["ready"])
                pushed.append(marks["visible"] - started)
                rendered.append(marks["visible"] - marks["frame"])
            browser.close()
    log(f"page load → widget ready     {ms(ready)}")
    log(f"push → visible               {ms(pushed)}")
    log(f"show frame → visible         {ms(rendered)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--posthog-version", default="latest")
    parser.add_argument("--size-only", action="store_true")
    args = parser.parse_args()
    sizes(args.posthog_version)
    if not args.size_only:
        timings(args.runs)


if __name__ == "__main__":
    main()
