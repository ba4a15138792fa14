"""Targeting benchmark: one decision with 100 live campaigns over 100k people / 1M events.

Prints p50/p99 of one decision in-process and through `POST /api/v1/targeting/evaluate` on a
real Daphne, and beside it, in the same run, the trivial authenticated endpoint
`GET /api/v1/me` of the same server (the stack's own cost per request).

    .venv/bin/python bench/targeting.py [--people 100000] [--events 1000000] [--decisions 2000]
        [--reuse]

Needs PostgreSQL on 127.0.0.1 (trust auth, user postgres); makes database engage_bench_targeting.
`--reuse` keeps the people and events of an earlier run of the same size (building them takes
a minute or two), migrates, and starts over from no deliveries, segments or campaigns, so a
rerun decides exactly what a fresh run would.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dataset import EVENT_NAMES, ROOT, database_url, django_setup, percentile, prepare

DB = "engage_bench_targeting"


def reuse(db: str, *, people: int, events: int):  # type: ignore[no-untyped-def]
    """The App and a fresh secret key of an earlier run's data set, or None when the
    database does not hold one of this size. Deliveries, segments and campaigns are deleted."""
    found = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc",
         f"SELECT 1 FROM pg_database WHERE datname = '{db}'"],  # noqa: S608 - a constant
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if found.stdout.strip() != "1":
        return None
    django_setup(db)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.db import connection

    from engage.campaigns import campaign_kinds
    from engage.models import App, Delivery
    from engage.services import app_secret_key_rotate
    from segments.models import Event, Person, Segment

    app = App.objects.filter(name="Bench").first()
    if app is None:
        return None
    if (
        Person.objects.filter(app=app).count() != people
        or Event.objects.filter(app=app).count() != events
    ):
        return None
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Delivery._meta.db_table}")  # noqa: S608 - a model's table
    for kind in campaign_kinds():
        kind.model._default_manager.filter(app=app).delete()
    Segment.objects.filter(app=app).delete()
    print(f"data set: reusing {people:,} people, {events:,} events in {db}")
    return app, app_secret_key_rotate(app=app).secret_key


def campaigns(app, rng: random.Random, count: int = 100) -> None:  # type: ignore[no-untyped-def]
    """`count` live messages of mixed rules, plus a few segments they use."""
    from engage.campaigns import campaign_create, campaign_publish
    from segments.services import segment_create

    segment_create(
        app=app,
        slug="power-users",
        name="Power users",
        condition={
            "event": "export_clicked",
            "count": {"op": "gte", "value": 3},
            "within_days": 30,
        },
    )
    segment_create(
        app=app,
        slug="paying",
        name="Paying",
        condition={"attribute": "plan", "op": "in", "value": ["starter", "pro", "enterprise"]},
    )
    segment_create(
        app=app,
        slug="engaged-paying",
        name="Engaged paying",
        condition={"all": [{"segment": "paying"}, {"event": "report_viewed", "within_days": 14}]},
    )
    kinds = ["modal", "banner", "slide_in", "inbox"]
    for i in range(count):
        shape = i % 5
        if shape == 0:
            trigger = {
                "on": "page_view",
                "url": {"op": "contains", "value": f"/{rng.choice(EVENT_NAMES)}/"},
            }
        elif shape == 1:
            trigger = {"on": "event", "event": rng.choice(EVENT_NAMES)}
        else:
            trigger = {"on": "page_view"}
        leaves = [
            {"attribute": "plan", "op": "eq", "value": rng.choice(["free", "pro", "starter"])},
            {"attribute": "seats", "op": "gte", "value": rng.randint(1, 150)},
            {"attribute": "country", "op": "in", "value": rng.sample(["US", "DE", "FR", "GB", "BR"], 2)},
            {"attribute": "email", "op": "regex", "value": r"^user\d+@example\.(com|io)$"},
            {"event": rng.choice(EVENT_NAMES), "count": {"op": "gte", "value": rng.randint(1, 3)},
             "within_days": rng.choice([7, 30, 90])},
            {"event": "export_clicked", "where": [{"property": "format", "op": "eq", "value": "csv"}],
             "within_days": 30},
            {"attribute": "signed_up", "op": "within_last_days", "value": 365},
            {"page_url": {"op": "starts_with", "value": "https://app.example/"}},
        ]  # fmt: skip
        condition = {
            "any" if i % 3 == 0 else "all": rng.sample(leaves, rng.randint(1, 3)),
        }
        audience: dict[str, object] = {"condition": condition}
        if i % 7 == 0:
            audience["segments"] = [rng.choice(["power-users", "paying", "engaged-paying"])]
        message = campaign_create(
            kind="message",
            app=app,
            data={
                "name": f"Campaign {i}",
                "kind": kinds[i % 4],
                "content": {"en": {"title": f"Title {i}", "body": "Try **this** now."}},
                "trigger": trigger,
                "audience": audience,
                "priority": rng.randint(0, 100),
                "sample_percent": rng.choice([100, 100, 50, 20]),
                "holdout_percent": rng.choice([0, 0, 10]),
                "max_impressions": rng.choice([None, 1, 3]),
                "recontact_days": rng.choice([0, 0, 1, 7]),
                "goal_event": rng.choice(["", "order_completed", "export_clicked"]),
            },
        )
        campaign_publish(campaign=message)


def moments(rng: random.Random, n: int, people: int) -> list[dict[str, object]]:
    out = []
    for _ in range(n):
        body: dict[str, object] = {"user_id": f"u{rng.randint(1, people)}", "locale": "en"}
        if rng.random() < 0.3:
            body["event"] = rng.choice(EVENT_NAMES)
        else:
            body["url"] = f"https://app.example/{rng.choice(EVENT_NAMES)}/{rng.randint(1, 50)}"
        out.append(body)
    return out


def in_process(app, asks: list[dict[str, object]]) -> list[float]:  # type: ignore[no-untyped-def]
    from engage.deliveries import targeting_evaluate
    from engage.targeting import Moment

    timings = []
    shown = 0
    cpu = time.process_time()
    for ask in asks:
        started = time.perf_counter()
        evaluation = targeting_evaluate(
            app=app,
            user_id=str(ask["user_id"]),
            anonymous_id=None,
            moment=Moment(
                event=ask.get("event"),  # type: ignore[arg-type]
                url=ask.get("url"),  # type: ignore[arg-type]
                locale="en",
            ),
        )
        timings.append((time.perf_counter() - started) * 1000)
        shown += len(evaluation.items)
    cpu_ms = (time.process_time() - cpu) * 1000 / len(asks)
    print(f"  ({shown} items shown over {len(asks)} decisions; {cpu_ms:.2f} ms CPU per decision)")
    return timings


def over_http(port: int, secret: str, method: str, path: str, bodies: list[object]) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    timings = []
    for body in bodies:
        payload = json.dumps(body) if body is not None else None
        started = time.perf_counter()
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        response.read()
        timings.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise SystemExit(f"{path} answered {response.status}")
    conn.close()
    return timings


def line(label: str, timings: list[float]) -> str:
    return (
        f"{label:<44} p50 {percentile(timings, 50):7.2f} ms   p99 {percentile(timings, 99):7.2f} ms"
        f"   ({len(timings)} calls)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--reuse", action="store_true", help="keep the data set of an earlier run of this size"
    )
    args = parser.parse_args()
    rng = random.Random(11)
    found = reuse(DB, people=args.people, events=args.events) if args.reuse else None
    app, secret = found or prepare(DB, people=args.people, events=args.events)
    campaigns(app, rng)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    asks = moments(rng, args.decisions, args.people)
    warm = moments(random.Random(3), 200, args.people)
    in_process(app, warm)
    print("in-process decisions (targeting_evaluate, deliveries recorded):")
    local = in_process(app, asks)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(DB),
        "DJANGO_SETTINGS_MODULE": "engage.settings",
        # As production runs: DEBUG off (it records every query), the settings it then needs.
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-not-secret",  # a throwaway local server
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(args.port),
            "engage.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                http.client.HTTPConnection("127.0.0.1", args.port, timeout=1).connect()
                break
            except OSError:
                time.sleep(0.1)
        over_http(args.port, secret, "GET", "/api/v1/me", [None] * 200)
        over_http(
            args.port,
            secret,
            "POST",
            "/api/v1/targeting/evaluate",
            moments(random.Random(5), 200, args.people),
        )
        trivial = over_http(args.port, secret, "GET", "/api/v1/me", [None] * len(asks))
        http_asks = moments(random.Random(13), len(asks), args.people)
        remote = over_http(args.port, secret, "POST", "/api/v1/targeting/evaluate", http_asks)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print()
    print(
        f"Targeting: 100 live campaigns, {args.people:,} people, {args.events:,} events (PostgreSQL)"
    )
    print(line("one decision, in-process", local))
    print(line("POST /api/v1/targeting/evaluate (Daphne)", remote))
    print(line("GET /api/v1/me, trivial authenticated (same)", trivial))
    ratio = percentile(remote, 99) / percentile(trivial, 99)
    print(
        f"HTTP p99 / trivial p99 = {ratio:.2f}x   (target: in-process p99 < 5 ms, HTTP within 2x)"
    )


if __name__ == "__main__":
    main()
