"""Websocket fan-out benchmark: Daphne + Redis channel layer + PostgreSQL, all on 127.0.0.1.

    .venv/bin/python bench/ws_fanout.py [--widgets 1000] [--events 2000] [--rate 50]
        [--senders 4] [--idle 5000] [--idle-seconds 150] [--skip-idle] [--skip-fanout]
        [--redis-db 2]

What it does, bounded (a few minutes; every wait has a timeout, opening idle widgets stops
after --idle-seconds, and the whole run is cancelled after --budget seconds, 600 by default):
1. (Re)creates the PostgreSQL database `engage_bench_ws` (user postgres, trust auth), migrates it
   and creates an App; empties Redis databases 2 (channel layer, presence, cache) and 3 (Celery
   broker) on 127.0.0.1:6379, or --redis-db and the next one. The servers' stderr goes to /tmp/engage-bench-ws/.
2. Starts, as production would: one Daphne process for websockets, another for HTTP (events API,
   management API), both on the Redis layer, and one Celery worker (2 processes) for the
   publish fan-out. DEBUG is off; the echo route is on (ENGAGE_BENCH_ECHO=1).
3. Baseline: round trips of a plain websocket echo (`/ws/echo`) and of widget `ping`→`pong`
   on the websocket process, idle.
4. (1) Connects --widgets widgets (`hello` each), then posts --events events through
   `POST /api/v1/events`, paced at --rate per second over --senders keep-alive connections,
   each for a random connected person with no event in flight; the event triggers a live
   banner. Measures event posted → `show` received on that person's widget, and posted →
   2xx; echo round trips are sampled during the load.
5. (3) Publishes a session-start banner to the same connected widgets (a Celery task decides
   in batches of 100 and pushes): time from the publish request to the first, median and last
   widget having it.
6. (2) Closes those, then opens up to --idle idle widgets (hello, then a ping every 20 s) on
   the one websocket process: how many it holds, connects/s, and its resident memory per
   connection; then checks 200 random ones still answer a ping. These are returning people
   (the --widgets people of (1), several tabs each): their hello reads, it creates nobody;
   (1) measures connects of new people.
Targets (issue 6): (1) p99 < 100 ms; (2) ≥ 5,000 connections. Figures go to docs/benchmarks.md.
The machine's load average is printed with the figures: other work on it skews them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DB_NAME = "engage_bench_ws"
LOGS = Path("/tmp/engage-bench-ws")  # noqa: S108 - the servers' stderr, local only
DATABASE_URL = f"postgres://postgres@{HOST}:5432/{DB_NAME}"
# Redis databases: the channel layer, presence and cache in one, the Celery broker in the next
# (--redis-db moves both, for running beside other work on the same Redis).
REDIS_URL = f"redis://{HOST}:6379/2"
BROKER_URL = f"redis://{HOST}:6379/3"
PG = ["psql", "-h", HOST, "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qtA"]
EVENT = "bench_checkout"
CONTENT = {"en": {"title": "Bench", "body": "Hello **there**", "buttons": []}}


def log(text: str) -> None:
    if text.startswith("\n=="):
        text += f"   [load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores]"
    print(text, flush=True)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def ms(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {percentile(values, 50) * 1000:.1f} ms, p99 {percentile(values, 99) * 1000:.1f} ms, "
        f"max {max(values) * 1000:.1f} ms (n={len(values)})"
    )


# --- the servers ------------------------------------------------------------------------------


def server_env() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "DJANGO_SETTINGS_MODULE": "engage.settings",
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-not-secret",  # a throwaway local server
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "REDIS_URL": REDIS_URL,
        "CELERY_BROKER_URL": BROKER_URL,
        "ENGAGE_BENCH_ECHO": "1",
        "PYTHONUNBUFFERED": "1",
    }


def psql(sql: str, database: str = "postgres") -> str:
    done = subprocess.run(
        [*PG, "-d", database, "-c", sql], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"psql failed ({sql!r}): {done.stderr.strip()}")
    return done.stdout.strip()


def redis_flush() -> None:
    import redis

    for url in (REDIS_URL, BROKER_URL):
        client = redis.Redis.from_url(url, socket_timeout=5)
        client.flushdb()
        client.close()


def database_create() -> dict[str, str]:
    psql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    psql(f"CREATE DATABASE {DB_NAME}")
    manage = [sys.executable, "manage.py"]
    env = server_env()
    subprocess.run(
        [*manage, "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=180
    )
    created = subprocess.run(
        [*manage, "engage_app", "create", "Bench", "--origin", "https://bench.example", "--json"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    return json.loads(created.stdout)  # type: ignore[no-any-return]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(process: subprocess.Popen[bytes], port: int, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited; see {LOGS}")
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{what} did not start within 30 s")


@contextlib.contextmanager
def servers() -> Iterator[tuple[int, int, int]]:
    """Websocket Daphne, HTTP Daphne, Celery worker; yields (ws port, http port, ws pid)."""
    ws_port, http_port = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    LOGS.mkdir(exist_ok=True)
    try:
        for name, port in (("websockets", ws_port), ("http", http_port)):
            process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port),
                 "engage.asgi:application"],
                cwd=ROOT, env=server_env(), stdout=subprocess.DEVNULL,
                stderr=(LOGS / f"{name}.log").open("wb"),
            )  # fmt: skip
            processes.append(process)
            wait_port(process, port, f"daphne ({name})")
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "engage", "worker", "-c", "2", "-l", "WARNING",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=server_env(), stdout=subprocess.DEVNULL,
            stderr=(LOGS / "worker.log").open("wb"),
        )  # fmt: skip
        processes.append(worker)
        yield ws_port, http_port, processes[0].pid
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- HTTP (keep-alive, raw asyncio: no client library between us and the server) --------------


class Http:
    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.headers = headers
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        try:
            return await self._request(method, path, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close()  # the server closed an idle keep-alive connection: once more
            return await self._request(method, path, body)

    async def _request(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        data = json.dumps(body).encode() if body is not None else b""
        head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", f"Content-Length: {len(data)}"]
        head += [
            f"{k}: {v}" for k, v in {"Content-Type": "application/json", **self.headers}.items()
        ]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 30)
        status = int(raw[9:12])
        length = 0
        for line in raw.decode("latin-1").split("\r\n"):
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        payload = await self.reader.readexactly(length) if length else b""
        if b"connection: close" in raw.lower():
            self.close()
        return status, json.loads(payload) if payload.startswith((b"{", b"[")) else payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# --- widgets ----------------------------------------------------------------------------------


@dataclass
class Widget:
    number: int
    ws: Any = None
    shows: dict[int, float] = field(default_factory=dict)  # campaign id -> first arrival
    waiting: float | None = None  # when the event for this widget was posted
    latencies: list[float] | None = None
    people: int = 0  # > 0: the widget is a tab of one of this many returning people
    pongs: dict[int, asyncio.Future[float]] = field(default_factory=dict)
    pinged: int = 0
    task: asyncio.Task[None] | None = None

    async def open(self, port: int, key: str, *, user: bool, heartbeat: bool = False) -> None:
        self.ws = await websockets.connect(
            f"ws://{HOST}:{port}/ws/v1/widget?key={key}",
            ping_interval=None,
            open_timeout=30,
            max_queue=64,
        )
        person = self.number % self.people if self.people else self.number
        hello: dict[str, Any] = {"type": "hello", "v": 1, "anonymous_id": f"anon-{person}"}
        if user:
            hello["user_id"] = f"bench-u{person}"
        await self.ws.send(json.dumps(hello))
        for expected in ("welcome", "snapshot"):
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if frame["type"] != expected:
                raise RuntimeError(f"expected {expected}, got {frame}")
        self.task = asyncio.create_task(self._read(heartbeat))

    async def _read(self, heartbeat: bool) -> None:
        last_ping = time.monotonic()
        try:
            while True:
                try:
                    text = await asyncio.wait_for(self.ws.recv(), 20 if heartbeat else None)
                except TimeoutError:
                    text = None
                now = time.perf_counter()
                if heartbeat and time.monotonic() - last_ping >= 20:
                    last_ping = time.monotonic()
                    await self.ws.send('{"type":"ping"}')
                if text is None:
                    continue
                frame = json.loads(text)
                if frame["type"] == "show":
                    campaign = frame["item"]["id"]
                    self.shows.setdefault(campaign, now)
                    if self.waiting is not None and self.latencies is not None:
                        self.latencies.append(now - self.waiting)
                        self.waiting = None
                elif frame["type"] == "pong" and frame.get("id") in self.pongs:
                    self.pongs.pop(frame["id"]).set_result(now)
        except (websockets.ConnectionClosed, asyncio.CancelledError):
            return

    async def ping(self) -> float:
        self.pinged += 1
        answered = self.pongs[self.pinged] = asyncio.get_running_loop().create_future()
        sent = time.perf_counter()
        await self.ws.send(json.dumps({"type": "ping", "id": self.pinged}))
        return await asyncio.wait_for(answered, 10) - sent

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)


async def connect_many(
    port: int,
    key: str,
    numbers: range,
    *,
    user: bool,
    heartbeat: bool,
    parallel: int = 64,
    seconds: float = math.inf,
    people: int = 0,
) -> tuple[list[Widget], int, float]:
    """Open widgets (hello each), `parallel` at a time, starting none after `seconds`."""
    gate = asyncio.Semaphore(parallel)
    widgets: list[Widget] = []
    failures = 0
    deadline = time.perf_counter() + seconds

    async def one(number: int) -> None:
        nonlocal failures
        widget = Widget(number, people=people)
        async with gate:
            if time.perf_counter() > deadline:
                return
            try:
                await widget.open(port, key, user=user, heartbeat=heartbeat)
                widgets.append(widget)
            except Exception:
                failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in numbers))
    return widgets, failures, time.perf_counter() - started


async def echo_connects(port: int, count: int, parallel: int = 64) -> float:
    """Plain websocket connects per second (open, one echo, close): the baseline of hellos."""
    gate = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with (
            gate,
            websockets.connect(f"ws://{HOST}:{port}/ws/echo", ping_interval=None) as ws,
        ):
            await ws.send("{}")
            await asyncio.wait_for(ws.recv(), 30)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return count / (time.perf_counter() - started)


async def echo_round_trips(port: int, count: int, pause: float = 0.0) -> list[float]:
    times = []
    async with websockets.connect(f"ws://{HOST}:{port}/ws/echo", ping_interval=None) as ws:
        for i in range(count):
            sent = time.perf_counter()
            await ws.send(f'{{"n":{i}}}')
            await asyncio.wait_for(ws.recv(), 10)
            times.append(time.perf_counter() - sent)
            if pause:
                await asyncio.sleep(pause)
    return times


# --- the run ----------------------------------------------------------------------------------


async def message_publish(admin: Http, **fields: Any) -> tuple[int, float]:
    status, body = await admin.request(
        "POST",
        "/api/v1/messages/",
        {"name": fields.pop("name"), "kind": "banner", "content": CONTENT, **fields},
    )
    if status != 201:
        raise SystemExit(f"creating a message failed: {status} {body}")
    started = time.perf_counter()
    status, answer = await admin.request("POST", f"/api/v1/messages/{body['id']}/publish")
    if status != 200:
        raise SystemExit(f"publishing failed: {status} {answer}")
    return int(body["id"]), time.perf_counter() - started


async def run(args: argparse.Namespace, keys: dict[str, str]) -> None:
    with servers() as (ws_port, http_port, ws_pid):
        admin = Http(http_port, {"Authorization": f"Bearer {keys['secret_key']}"})
        key = keys["public_key"]
        log(f"servers: websockets on :{ws_port} (pid {ws_pid}), HTTP on :{http_port}")

        log("\n== baseline, idle server")
        echo = await echo_round_trips(ws_port, 300)
        log(f"websocket echo round trip:        {ms(echo)}")
        (probe,), _, _ = await connect_many(ws_port, key, range(10**6, 10**6 + 1), user=False,
                                            heartbeat=False)  # fmt: skip
        pings = [await probe.ping() for _ in range(300)]
        log(f"widget ping -> pong round trip:   {ms(pings)}")
        rate = await echo_connects(ws_port, 300)
        log(f"plain websocket connects:         {rate:.0f}/s (open, echo, close; 64 at a time)")

        if not args.skip_fanout:
            await fanout(args, ws_port, http_port, ws_pid, key, admin)
        if not args.skip_idle:
            await idle_connections(args, ws_port, ws_pid, key)
        await probe.close()


async def fanout(
    args: argparse.Namespace, ws_port: int, http_port: int, ws_pid: int, key: str, admin: Http
) -> None:
    log(f"\n== (1) {args.widgets} widgets, {args.events} events at {args.rate}/s")
    await message_publish(admin, name="on checkout", trigger={"on": "event", "event": EVENT})
    widgets, failures, took = await connect_many(
        ws_port, key, range(args.widgets), user=True, heartbeat=True
    )
    log(f"connected {len(widgets)} widgets ({failures} failed) in {took:.1f} s "
        f"= {len(widgets) / took:.0f}/s")  # fmt: skip
    latencies: list[float] = []
    accepted: list[float] = []
    statuses: dict[int, int] = {}
    for w in widgets:
        w.latencies = latencies
    started = time.perf_counter()
    sequence = iter(range(args.events))
    cpu_before = (cpu_seconds(ws_pid), time.perf_counter())

    async def sender() -> None:
        http = Http(http_port, {"X-Engage-Key": key})
        for n in sequence:
            delay = started + n / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            widget = random.choice([w for w in widgets if w.waiting is None] or widgets)
            widget.waiting = sent = time.perf_counter()
            status, _ = await http.request(
                "POST",
                "/api/v1/events",
                {"events": [{"name": EVENT, "user_id": f"bench-u{widget.number}"}]},
            )
            accepted.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1
        http.close()

    async def echo_during() -> list[float]:
        return await echo_round_trips(ws_port, int(args.events / args.rate * 20), 0.05)

    echo_task = asyncio.create_task(echo_during())
    await asyncio.gather(*(sender() for _ in range(args.senders)))
    await asyncio.sleep(1.0)  # the last shows in flight
    elapsed = time.perf_counter() - started
    echo_load = await echo_task
    ws_cpu = (cpu_seconds(ws_pid) - cpu_before[0]) / (time.perf_counter() - cpu_before[1])
    missing = sum(1 for w in widgets if w.waiting is not None)
    log(f"events: {sum(statuses.values())} posted in {elapsed:.1f} s, statuses {statuses}")
    log(f"event posted -> show received:    {ms(latencies)}; missing {missing}")
    log(f"event posted -> 2xx answered:     {ms(accepted)}")
    log(f"websocket echo during the load:   {ms(echo_load)}")
    log(f"websocket process CPU during it:  {ws_cpu * 100:.0f}% of one core")

    log(f"\n== (3) publish to {len(widgets)} connected widgets")
    t0 = time.perf_counter()
    banner, request_time = await message_publish(
        admin, name="announcement", trigger={"on": "session_start"}
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(banner in w.shows for w in widgets):  # noqa: ASYNC110 - polling many widgets
        await asyncio.sleep(0.01)
    arrivals = sorted(w.shows[banner] - t0 for w in widgets if banner in w.shows)
    log(f"publish request answered in {request_time * 1000:.0f} ms")
    if arrivals:
        log(f"widgets with the banner: {len(arrivals)}/{len(widgets)}; first "
            f"{arrivals[0] * 1000:.0f} ms, median {percentile(arrivals, 50) * 1000:.0f} ms, "
            f"last {arrivals[-1] * 1000:.0f} ms after the publish request")  # fmt: skip
    else:
        log("no widget got the banner within 60 s")
    await asyncio.gather(*(w.close() for w in widgets))
    await asyncio.sleep(2)


async def idle_connections(args: argparse.Namespace, ws_port: int, ws_pid: int, key: str) -> None:
    log(f"\n== (2) idle connections on one websocket process (up to {args.idle})")
    before = rss_kib(ws_pid)
    cpu = cpu_seconds(ws_pid), os.times()
    idle, failures, took = await connect_many(
        ws_port, key, range(args.idle), user=True, heartbeat=True, parallel=128,
        seconds=args.idle_seconds, people=args.widgets,
    )  # fmt: skip
    ws_cpu = (cpu_seconds(ws_pid) - cpu[0]) / took
    client_cpu = (os.times().user + os.times().system - cpu[1].user - cpu[1].system) / took
    await asyncio.sleep(3)
    after = rss_kib(ws_pid)
    log(f"held {len(idle)} idle widgets ({failures} failed) after {took:.1f} s of connecting "
        f"= {len(idle) / took:.0f} connects/s (each with a hello); CPU meanwhile: websocket "
        f"process {ws_cpu * 100:.0f}%, this client {client_cpu * 100:.0f}% of a core; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    if idle:
        log(f"websocket process RSS {before / 1024:.0f} MiB -> {after / 1024:.0f} MiB: "
            f"{(after - before) / len(idle):.1f} KiB per connection")  # fmt: skip
        sample = random.sample(idle, min(200, len(idle)))
        answered = await asyncio.gather(*(w.ping() for w in sample), return_exceptions=True)
        alive = [a for a in answered if isinstance(a, float)]
        log(f"{len(alive)}/{len(sample)} sampled idle widgets answer a ping: {ms(alive)}")
        echo_idle = await echo_round_trips(ws_port, 200)
        log(f"websocket echo with them open:    {ms(echo_idle)}")
    await asyncio.gather(*(w.close() for w in idle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widgets", type=int, default=1000)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second, offered")
    parser.add_argument("--senders", type=int, default=4, help="HTTP connections posting them")
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument(
        "--idle-seconds", type=float, default=150.0, help="stop opening idle widgets after this"
    )
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--skip-fanout", action="store_true", help="only the idle phase")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds before giving up")
    parser.add_argument(
        "--redis-db", type=int, default=2, help="Redis database of the layer (broker: the next)"
    )
    args = parser.parse_args()
    if not (1 <= args.widgets <= 5000 and 1 <= args.events <= 20000 and 1 <= args.idle <= 15000):
        parser.error("bounded: --widgets ≤ 5000, --events ≤ 20000, --idle ≤ 15000")
    if not 1 <= args.rate <= 2000 or not 1 <= args.senders <= 64:
        parser.error("--rate must be between 1 and 2000, --senders between 1 and 64")
    if not 1 <= args.idle_seconds <= 300 or not 10 <= args.budget <= 900:
        parser.error("--idle-seconds must be 1..300, --budget 10..900")
    if not 0 <= args.redis_db <= 14:
        parser.error("--redis-db must be 0..14 (the broker uses the next one)")
    global REDIS_URL, BROKER_URL
    REDIS_URL = f"redis://{HOST}:6379/{args.redis_db}"
    BROKER_URL = f"redis://{HOST}:6379/{args.redis_db + 1}"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    log(f"open files limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]} (inherited by servers)")
    redis_flush()
    keys = database_create()
    asyncio.run(asyncio.wait_for(run(args, keys), args.budget))


if __name__ == "__main__":
    main()
