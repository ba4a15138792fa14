"""Fault runs: nothing lost and nothing doubled under load and when a dependency fails.

    .venv/bin/python bench/faults.py [--runs a,b,c,d] [--events 100000]

Everything runs on 127.0.0.1 against throwaway services this script starts and stops itself,
so that the shared PostgreSQL, Redis and RabbitMQ of the machine are never stopped:
- a PostgreSQL cluster made with `initdb` in a temporary directory, on port 5544;
- a `redis-server` on port 6399 without persistence;
- a RabbitMQ virtual host of its own on the local broker (deleted at the end);
- Daphne (`engage.asgi:application`, DEBUG off) and Celery workers on those.
All of them are stopped and removed on exit (try/finally and atexit), whatever happens.

The runs (each prints accepted / stored / bad / lost / duplicated; the exit status is 1 when
any run lost or doubled anything, or answered a 500):
  a) `--events` events at full speed through the collector, in batches of 10 as a tracker
     sends them (1 in 100 unusable, kept as bad events): stored + bad = accepted, by `eid`.
  b) a Celery worker killed with SIGKILL while it delivers webhooks: after a new worker
     starts, every message is delivered and recorded once (acks late, idempotent tasks).
  c) PostgreSQL stopped for 10 s while trackers, an events-API client and a widget poll send:
     503s while it is down (never a 500), the clients' retries fill the gap, nothing lost.
  d) Redis (channel layer, cache, presence) stopped for 10 s: the collector keeps storing,
     `GET /api/v1/widget/campaigns` keeps answering, open websockets are closed, and a new
     websocket gets its snapshot once Redis is back.
Bounded: about 3 to 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PG_PORT = 5544
REDIS_PORT = 6399
DB_NAME = "engage_faults"
DATABASE_URL = f"postgres://postgres@{HOST}:{PG_PORT}/{DB_NAME}"
ORIGIN = "https://faults.example"
AID = "faults-web"
TP2 = "/com.snowplowanalytics.snowplow/tp2"
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
PG_BIN = (
    sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    if Path("/usr/lib/postgresql").exists()
    else Path("/usr/bin")
)

_cleanups: list[Callable[[], None]] = []


def log(text: str) -> None:
    print(text, flush=True)


def cleanup() -> None:
    """Stop everything this script started, newest first (runs once)."""
    while _cleanups:
        step = _cleanups.pop()
        try:
            step()
        except Exception as exc:
            log(f"cleanup step failed: {exc!r}")


atexit.register(cleanup)


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(
    port: int, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"process on port {port} exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {HOST}:{port} after {timeout:.0f} s")


def stop_process(process: subprocess.Popen[bytes], *, group: bool = False) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
        process.wait(timeout=10)


# --- throwaway services -----------------------------------------------------------------------


class Postgres:
    """A PostgreSQL cluster of this script's own, in a temporary directory."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="engage-faults-pg-"))
        self.data = self.dir / "data"
        as_postgres = os.geteuid() == 0
        self.prefix = ["runuser", "-u", "postgres", "--"] if as_postgres else []
        if as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        _cleanups.append(self.remove)
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = (
            f"-c port={PG_PORT} -c listen_addresses={HOST} -c unix_socket_directories={self.dir} "
            "-c max_connections=100 -c shared_buffers=64MB"
        )
        self.options = options
        _cleanups.append(self.stop)
        self.start()

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, *args], capture_output=True, text=True, timeout=120, check=check
        )

    def start(self) -> None:
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            self.options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )
        wait_port(PG_PORT)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "fast",
                "-w",
                "stop",
                check=False,
            )

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def sql(self, query: str, database: str = DB_NAME) -> str:
        done = subprocess.run(
            [
                "psql",
                "-h",
                HOST,
                "-p",
                str(PG_PORT),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-qtA",
                "-c",
                query,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"psql failed ({query[:80]!r}): {done.stderr.strip()}")
        return done.stdout.strip()


class Redis:
    """A redis-server of this script's own, without persistence."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        _cleanups.append(self.stop)
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(REDIS_PORT),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(REDIS_PORT, process=self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


class RabbitVhost:
    """A virtual host of this script's own on the local RabbitMQ (the broker keeps running)."""

    def __init__(self) -> None:
        self.name = f"engage-faults-{os.getpid()}"
        subprocess.run(
            ["rabbitmqctl", "add_vhost", self.name], capture_output=True, check=True, timeout=60
        )
        _cleanups.append(self.delete)
        subprocess.run(
            ["rabbitmqctl", "set_permissions", "-p", self.name, "guest", ".*", ".*", ".*"],
            capture_output=True,
            check=True,
            timeout=60,
        )
        self.url = f"amqp://guest:guest@{HOST}:5672/{self.name}"

    def delete(self) -> None:
        subprocess.run(
            ["rabbitmqctl", "delete_vhost", self.name], capture_output=True, check=False, timeout=60
        )


def engage_env(*, redis: bool = False, broker: str = "") -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "DJANGO_SETTINGS_MODULE": "engage.settings",
        "DEBUG": "0",
        "SECRET_KEY": "faults-only-not-secret",  # a throwaway local server
        "ALLOWED_HOSTS": f"{HOST},localhost",
        "LOG_LEVEL": "ERROR",
        "REDIS_URL": f"redis://{HOST}:{REDIS_PORT}/0" if redis else "",
        "CELERY_BROKER_URL": broker,
        "PYTHONUNBUFFERED": "1",
    }


def manage(*args: str, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed: {done.stderr[-3000:]}")
    return done.stdout


class Daphne:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - open while the server runs
        self.reported = 0
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                HOST,
                "-p",
                str(self.port),
                "engage.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        _cleanups.append(self.stop)
        wait_port(self.port, process=self.process)

    def stop(self) -> None:
        stop_process(self.process)

    def report_errors(self) -> None:
        """Print the server's error log since the last report: the last of each kind."""
        self.log.seek(self.reported)
        text = self.log.read().decode(errors="replace")
        self.reported = self.log.tell()
        kinds: Counter[str] = Counter()
        for block in text.split("Traceback (most recent call last):")[1:]:
            lines = [line.strip() for line in block.strip().splitlines() if line.strip()]
            ours = [
                line.split(", in ")[0].replace(f'File "{ROOT}/', "").replace('", line ', ":")
                + " "
                + line.split(", in ")[-1]
                for line in lines
                if line.startswith(f'File "{ROOT}/') and "/.venv/" not in line
            ]
            kinds[" <- ".join(reversed(ours[-4:])) + " | " + lines[-1][:200]] += 1
        for kind, n in kinds.most_common(6):
            log(f"  server error ×{n}: {kind}")
        if kinds:
            path = Path(tempfile.gettempdir()) / f"engage-faults-daphne-{self.port}.log"
            path.write_text(text)
            log(f"  whole server log: {path}")


# --- clients ------------------------------------------------------------------------------------


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0][9:12])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            body += (await reader.readexactly(size + 2))[:size]
            if size == 0:
                return status, headers, body
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return status, headers, body


def _request(
    method: str, path: str, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Tally:
    """What the clients of one run saw."""

    accepted: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    gave_up: int = 0
    retried: int = 0

    def status_line(self) -> str:
        parts = [f"{s}×{n}" for s, n in sorted(self.statuses.items())]
        parts += [f"{e}×{n}" for e, n in self.errors.most_common()]
        return ", ".join(parts) or "-"


class Client:
    """A keep-alive HTTP client that retries like a Snowplow tracker: it keeps the batch and
    sends it again with exponential backoff (0.25 s doubling to 4 s, or Retry-After if sooner)
    until it is accepted (2xx), giving up only on an answer a retry cannot change (4xx)."""

    def __init__(self, port: int, tally: Tally, *, deadline: float) -> None:
        self.port = port
        self.tally = tally
        self.deadline = deadline
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def once(self, data: bytes) -> tuple[int, dict[str, str], bytes] | None:
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.wait_for(
                    asyncio.open_connection(HOST, self.port), 5
                )
            assert self.reader is not None
            self.writer.write(data)
            return await asyncio.wait_for(_read_answer(self.reader), 15)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            self.tally.errors[type(exc).__name__] += 1
            await self.close()
            return None

    async def deliver(self, data: bytes, ids: list[str]) -> bool:
        """Send until accepted; True when it was (the ids count as accepted)."""
        backoff = 0.25
        while time.monotonic() < self.deadline:
            answer = await self.once(data)
            if answer is not None:
                status, headers, _ = answer
                self.tally.statuses[status] += 1
                if 200 <= status < 300:
                    self.tally.accepted.update(ids)
                    return True
                if 400 <= status < 500 and status not in (408, 429):
                    self.tally.gave_up += len(ids)
                    return False
                if headers.get("connection", "").lower() == "close":
                    await self.close()
                retry_after = float(headers.get("retry-after", backoff))
                await asyncio.sleep(min(backoff, retry_after))
            else:
                await asyncio.sleep(backoff)
            self.tally.retried += 1
            backoff = min(backoff * 2, 4.0)
        self.tally.gave_up += len(ids)
        return False


def tracker_event(run: str, n: int, i: int, *, bad: bool) -> tuple[str, dict[str, str]]:
    eid = f"{run}tp{n:08x}-0000-4000-8000-{i:012x}"
    visitor = n * 7919 % 3000
    event = {
        "aid": AID,
        "p": "web",
        "tv": "js-3.24.0",
        "eid": eid,
        "dtm": str(int(time.time() * 1000)),
        "duid": f"anon-{visitor:05d}",
        "url": "https://faults.example/reports",
    }
    if visitor % 2 == 0:
        event["uid"] = f"user-{visitor:05d}"
    if bad:
        event["e"] = "zz"  # not a Snowplow event type: kept as a bad event with its payload
    elif (n + i) % 3 == 0:
        event.update({"e": "se", "se_ca": "reports", "se_ac": "export_clicked", "se_la": "csv"})
    else:
        event["e"] = "pv"
    return eid, event


def tp2_batch(run: str, n: int, size: int, *, bad_every: int = 0) -> tuple[bytes, list[str]]:
    ids, events = [], []
    for i in range(size):
        bad = bool(bad_every) and (n * size + i) % bad_every == bad_every - 1
        eid, event = tracker_event(run, n, i, bad=bad)
        ids.append(eid)
        events.append(event)
    body = json.dumps({"schema": PAYLOAD_DATA, "data": events}).encode()
    headers = (("Content-Type", "application/json; charset=UTF-8"), ("Origin", ORIGIN))
    return _request("POST", TP2, body, headers), ids


# --- counting -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    accepted: int
    stored: int
    bad: int
    lost: int
    duplicated: int
    server_errors: int
    extra: str = ""

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.server_errors == 0

    def line(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"[{verdict}] {self.name}: accepted {self.accepted:,} / stored {self.stored:,} / "
            f"bad {self.bad:,} / lost {self.lost:,} / duplicated {self.duplicated:,}"
            f" / 5xx other than 503: {self.server_errors}"
            + (f"; {self.extra}" if self.extra else "")
        )


def count_events(pg: Postgres, run: str, tally: Tally, name: str, extra: str = "") -> Outcome:
    """Compare what the clients had accepted with what is stored, by event id."""
    rows = pg.sql(
        f"SELECT 'e', dedup_id FROM segments_event WHERE dedup_id LIKE '{run}%' "  # noqa: S608
        f"UNION ALL SELECT 'b', raw->>'eid' FROM segments_badevent WHERE raw->>'eid' LIKE '{run}%' "
        f"UNION ALL SELECT 'b', raw->>'message_id' FROM segments_badevent "
        f"WHERE raw->>'message_id' LIKE '{run}%'"
    )
    good: Counter[str] = Counter()
    bad: Counter[str] = Counter()
    for line in rows.splitlines():
        kind, eid = line.split("|", 1)
        (good if kind == "e" else bad)[eid] += 1
    kept = set(good) | set(bad)
    lost = len(tally.accepted - kept)
    duplicated = sum(n - 1 for n in good.values()) + sum(n - 1 for n in bad.values())
    duplicated += len(set(good) & set(bad))
    server_errors = sum(n for s, n in tally.statuses.items() if s >= 500 and s != 503)
    unaccepted = len(kept - tally.accepted)
    notes = [f"answers {tally.status_line()}", f"retries {tally.retried:,}"]
    if unaccepted:
        notes.append(f"{unaccepted} stored that no client saw accepted")
    if tally.gave_up:
        notes.append(f"{tally.gave_up} given up by clients")
    if extra:
        notes.append(extra)
    return Outcome(
        name=name,
        accepted=len(tally.accepted),
        stored=len(good),
        bad=len(bad),
        lost=lost + tally.gave_up,
        duplicated=duplicated,
        server_errors=server_errors,
        extra="; ".join(notes),
    )


# --- run a: full speed ----------------------------------------------------------------------------


async def _pump(
    port: int,
    tally: Tally,
    batches: Iterator[tuple[bytes, list[str]]],
    *,
    clients: int,
    deadline: float,
    pause: float = 0.0,
) -> None:
    lock = asyncio.Lock()

    async def worker() -> None:
        client = Client(port, tally, deadline=deadline)
        try:
            while True:
                async with lock:
                    item = next(batches, None)
                if item is None:
                    return
                await client.deliver(*item)
                if pause:
                    await asyncio.sleep(pause)
        finally:
            await client.close()

    await asyncio.gather(*(worker() for _ in range(clients)))


def run_full_speed(pg: Postgres, daphne: Daphne, events: int) -> Outcome:
    run, size = "a", 10
    tally = Tally()
    batches = (tp2_batch(run, n, size, bad_every=100) for n in range(events // size))
    started = time.monotonic()
    asyncio.run(_pump(daphne.port, tally, batches, clients=16, deadline=started + 300))
    took = time.monotonic() - started
    return count_events(
        pg,
        f"{run}tp",
        tally,
        f"a) {events:,} events at full speed",
        f"{took:.1f} s, {len(tally.accepted) / took:,.0f} events/s",
    )


# --- run c: PostgreSQL down -------------------------------------------------------------------


async def _outage_load(
    port: int,
    public_key: str,
    *,
    run: str,
    seconds: float,
    outage: Callable[[], None],
    outage_at: float,
    widget_tally: Tally,
    api_tally: Tally,
    tally: Tally,
) -> None:
    """Trackers, an events-API client and a widget poll for `seconds`; `outage` runs in a
    thread at `outage_at` s. Clients then drain what they hold (bounded)."""
    started = time.monotonic()
    load_end = started + seconds
    drain_deadline = load_end + 90
    counter = iter(range(10**9))

    def batches() -> Iterator[tuple[bytes, list[str]]]:
        while time.monotonic() < load_end:
            yield tp2_batch(run, next(counter), 10)

    async def api_client() -> None:
        client = Client(port, api_tally, deadline=drain_deadline)
        n = 0
        while time.monotonic() < load_end:
            ids = [f"{run}api-{n:06d}-{i}" for i in range(5)]
            body = json.dumps(
                {
                    "events": [
                        {"name": "api_event", "anonymous_id": f"api-{n % 50}", "message_id": m}
                        for m in ids
                    ]
                }
            ).encode()
            headers = (("Content-Type", "application/json"), ("X-Engage-Key", public_key))
            await client.deliver(_request("POST", "/api/v1/events", body, headers), ids)
            n += 1
            await asyncio.sleep(0.05)
        await client.close()

    async def widget_poll() -> None:
        client = Client(port, widget_tally, deadline=load_end)
        query = urlencode({"anonymous_id": "widget-1", "url": "https://faults.example/reports"})
        data = _request(
            "GET",
            f"/api/v1/widget/campaigns?{query}",
            b"",
            (("X-Engage-Key", public_key), ("Origin", ORIGIN)),
        )
        while time.monotonic() < load_end:
            answer = await client.once(data)
            if answer is not None:
                widget_tally.statuses[answer[0]] += 1
            await asyncio.sleep(0.1)
        await client.close()

    async def trigger() -> None:
        await asyncio.sleep(outage_at)
        await asyncio.to_thread(outage)

    source = batches()
    await asyncio.gather(
        _pump(port, tally, source, clients=8, deadline=drain_deadline, pause=0.02),
        api_client(),
        widget_poll(),
        trigger(),
    )


def run_postgres_down(pg: Postgres, daphne: Daphne, public_key: str) -> list[Outcome]:
    run = "c"
    tally, api_tally, widget_tally = Tally(), Tally(), Tally()
    marks: dict[str, float] = {}

    def outage() -> None:
        marks["stop"] = time.monotonic()
        pg.stop()
        log("  PostgreSQL stopped")
        time.sleep(10)
        pg.start()
        marks["start"] = time.monotonic()
        log(f"  PostgreSQL started again after {marks['start'] - marks['stop']:.1f} s")

    asyncio.run(
        _outage_load(
            daphne.port,
            public_key,
            run=run,
            seconds=30,
            outage=outage,
            outage_at=8,
            widget_tally=widget_tally,
            api_tally=api_tally,
            tally=tally,
        )
    )
    widget_errors = sum(n for s, n in widget_tally.statuses.items() if s >= 500 and s != 503)
    return [
        count_events(pg, f"{run}tp", tally, "c) collector, PostgreSQL down 10 s"),
        count_events(pg, f"{run}api-", api_tally, "c) events API, PostgreSQL down 10 s"),
        Outcome(
            "c) widget HTTP while PostgreSQL down",
            0,
            0,
            0,
            0,
            0,
            widget_errors,
            f"answers {widget_tally.status_line()}",
        ),
    ]


# --- run d: Redis down ------------------------------------------------------------------------


async def _ws_session(port: int, public_key: str, anonymous_id: str) -> Any:
    from websockets.asyncio.client import connect

    ws = await connect(
        f"ws://{HOST}:{port}/ws/v1/widget?key={public_key}",
        origin=ORIGIN,  # type: ignore[arg-type]
        open_timeout=10,
    )
    await ws.send(
        json.dumps(
            {
                "type": "hello",
                "v": 1,
                "id": "h",
                "anonymous_id": anonymous_id,
                "url": "https://faults.example/reports",
            }
        )
    )
    kinds = []
    while "snapshot" not in kinds:
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        except TimeoutError:
            await ws.close()
            raise TimeoutError(f"no snapshot within 10 s (frames: {kinds})") from None
        kinds.append(frame["type"])
    return ws


def run_redis_down(pg: Postgres, redis: Redis, daphne: Daphne, public_key: str) -> list[Outcome]:
    run = "d"
    tally, api_tally, widget_tally = Tally(), Tally(), Tally()
    sockets: dict[str, Any] = {}
    marks: dict[str, Any] = {}

    async def main() -> None:
        sockets["open"] = [await _ws_session(daphne.port, public_key, f"ws-{i}") for i in range(5)]

        def outage() -> None:
            redis.stop()
            log("  Redis stopped")
            time.sleep(10)
            redis.start()
            log("  Redis started again")

        async def watch_sockets() -> None:
            closed = 0
            for ws in sockets["open"]:
                try:
                    await asyncio.wait_for(ws.wait_closed(), 14)
                    closed += 1
                except TimeoutError:
                    await ws.close()
            marks["closed"] = closed

        await asyncio.gather(
            _outage_load(
                daphne.port,
                public_key,
                run=run,
                seconds=22,
                outage=outage,
                outage_at=4,
                widget_tally=widget_tally,
                api_tally=api_tally,
                tally=tally,
            ),
            watch_sockets(),
        )
        # Redis is back: a widget reconnects and gets its snapshot.
        try:
            ws = await _ws_session(daphne.port, public_key, "ws-after")
            await ws.close()
            marks["reconnected"] = True
        except Exception as exc:
            marks["reconnected"] = f"{type(exc).__name__}: {exc}"

    asyncio.run(main())
    widget_errors = sum(n for s, n in widget_tally.statuses.items() if s != 200)
    reconnect_failed = 0 if marks.get("reconnected") is True else 1
    return [
        count_events(pg, f"{run}tp", tally, "d) collector, Redis down 10 s"),
        count_events(pg, f"{run}api-", api_tally, "d) events API, Redis down 10 s"),
        Outcome(
            "d) widgets, Redis down 10 s",
            0,
            0,
            0,
            reconnect_failed,
            0,
            widget_errors,
            f"HTTP campaigns answered {widget_tally.status_line()}; "
            f"{marks.get('closed', 0)} of 5 open websockets closed by the server; "
            f"new websocket after Redis returned: "
            f"{'snapshot received' if marks.get('reconnected') is True else marks.get('reconnected')}",
        ),
    ]


# --- run b: a Celery worker killed ------------------------------------------------------------


class Receiver:
    """A webhook receiver on 127.0.0.1 that counts every POST by its `webhook-id`."""

    def __init__(self, delay: float) -> None:
        self.seen: Counter[str] = Counter()
        lock = threading.Lock()
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(delay)
                with lock:
                    seen[self.headers.get("webhook-id", "")] += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        _cleanups.append(self.server.shutdown)


def worker_start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "engage",
            "worker",
            "-c",
            "2",
            "-P",
            "prefork",
            "--prefetch-multiplier",
            "1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "ERROR",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _cleanups.append(lambda: stop_process(process, group=True))
    return process


_EMIT = """
from engage.models import App
from engage.webhooks import webhook_endpoint_create, webhook_emit
app = App.objects.get(public_key={key!r})
webhook_endpoint_create(app=app, url={url!r}, event_types=["delivery.shown"])
for n in range({count}):
    webhook_emit(app=app, type="delivery.shown", payload={{"n": n}})
"""


def run_worker_killed(pg: Postgres, public_key: str, messages: int) -> Outcome:
    vhost = RabbitVhost()
    env = engage_env(broker=vhost.url)
    receiver = Receiver(delay=0.03)
    url = f"http://{HOST}:{receiver.port}/hook"
    manage("shell", "-c", _EMIT.format(key=public_key, url=url, count=messages), env=env)
    log(f"  {messages} webhook messages queued on RabbitMQ vhost {vhost.name}")
    worker = worker_start(env)
    deadline = time.monotonic() + 60
    while sum(receiver.seen.values()) < messages // 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    at_kill = len(receiver.seen)
    log(f"  worker killed (SIGKILL) after {at_kill} messages were received; starting another")
    worker = worker_start(env)
    # A message whose try was cut short stays leased for its timeout (30 s), then is sent.
    deadline = time.monotonic() + 120
    delivered = 0
    while time.monotonic() < deadline:
        delivered = int(
            pg.sql("SELECT count(*) FROM engage_webhookmessage WHERE status = 'delivered'")
        )
        if delivered >= messages:
            break
        time.sleep(1)
    stop_process(worker, group=True)
    doubled = int(
        pg.sql(
            "SELECT count(*) FROM (SELECT message_id FROM engage_webhookattempt "
            "WHERE status_code BETWEEN 200 AND 299 GROUP BY message_id HAVING count(*) > 1) d"
        )
    )
    resent = sum(n - 1 for n in receiver.seen.values())
    return Outcome(
        "b) Celery worker killed mid-run",
        accepted=messages,
        stored=delivered,
        bad=0,
        lost=messages - delivered,
        duplicated=doubled,
        server_errors=0,
        extra=(
            f"receiver got {len(receiver.seen)} distinct webhook-ids; {resent} sent again with "
            "the same webhook-id (cut off between the POST and its record: receivers dedupe)"
        ),
    )


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="a,b,c,d", help="which runs, comma-separated")
    parser.add_argument("--events", type=int, default=100_000, help="events of run a")
    parser.add_argument("--messages", type=int, default=300, help="webhook messages of run b")
    args = parser.parse_args()
    runs = set(args.runs.split(","))
    signal.signal(signal.SIGTERM, _on_signal)
    started = time.monotonic()
    log(f"engage fault runs: 2 CPUs shared, load average {os.getloadavg()[0]:.1f} before starting")
    outcomes: list[Outcome] = []
    try:
        pg = Postgres()
        pg.sql(f"CREATE DATABASE {DB_NAME}", database="postgres")
        redis = Redis()
        manage("migrate", "--no-input", "-v", "0", env=engage_env())
        created = json.loads(
            manage(
                "engage_app",
                "create",
                "Faults",
                "--origin",
                ORIGIN,
                "--aid",
                AID,
                "--json",
                env=engage_env(),
            )
        )
        key = created["public_key"]
        log(f"own PostgreSQL on {PG_PORT}, own Redis on {REDIS_PORT}; App {AID} created")

        if runs & {"a", "c"}:
            daphne = Daphne(engage_env())
            if "a" in runs:
                log(f"run a: {args.events:,} events through the collector")
                outcomes.append(run_full_speed(pg, daphne, args.events))
                log(outcomes[-1].line())
            if "c" in runs:
                log("run c: PostgreSQL stopped for 10 s during load")
                for outcome in run_postgres_down(pg, daphne, key):
                    outcomes.append(outcome)
                    log(outcome.line())
                daphne.report_errors()
            daphne.stop()
        if "d" in runs:
            log("run d: Redis stopped for 10 s during load, with open websockets")
            daphne = Daphne(engage_env(redis=True))
            for outcome in run_redis_down(pg, redis, daphne, key):
                outcomes.append(outcome)
                log(outcome.line())
            daphne.report_errors()
            daphne.stop()
        if "b" in runs:
            log("run b: a Celery worker killed with SIGKILL while it sends webhooks")
            outcomes.append(run_worker_killed(pg, key, args.messages))
            log(outcomes[-1].line())
    finally:
        cleanup()
    log("\nsummary")
    for outcome in outcomes:
        log(outcome.line())
    log(f"total time {time.monotonic() - started:.0f} s; load average {os.getloadavg()[0]:.1f}")
    return 0 if outcomes and all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
