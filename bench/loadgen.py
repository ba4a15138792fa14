"""A small, bounded HTTP/1.1 keep-alive load generator on raw asyncio streams.

Benchmarks share the machine (2 cores) with the server and its database, so the generator is
kept cheap: each of N connections sends a pre-built request, reads the answer with nothing
more than a header scan, and records the latency and the status. No HTTP library, no TLS,
and only 127.0.0.1: this measures our server, not someone else's.

Every run is bounded by a duration and/or a request count, and each request by
`request_timeout`.

Use it from a benchmark:

    result = asyncio.run(run_load(
        name="healthz", port=8000, connections=16, duration=5.0,
        make_request=lambda n: http_request("GET", "/healthz"),
    ))
    print(result.summary())

or from the shell: `python bench/loadgen.py --port 8000 --path /healthz -c 16 -d 5`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

HOST = "127.0.0.1"

# Sequence number of the request (unique across the run) -> the request's bytes.
RequestMaker = Callable[[int], bytes]


def http_request(
    method: str,
    path: str,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    host: str = HOST,
) -> bytes:
    """The bytes of one keep-alive HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class LoadResult:
    """What one bounded run measured. Latencies are in seconds, of completed requests."""

    name: str
    connections: int
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    client_cpu: float = 0.0

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def ok(self) -> int:
        """Answers with a 2xx status."""
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    def rate(self) -> float:
        """Completed requests per second."""
        return self.completed / self.elapsed if self.elapsed else 0.0

    def ok_rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        """The p-th percentile latency in seconds (nearest rank), or NaN without data."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1]

    def summary(self) -> str:
        statuses = ", ".join(f"{s}×{n}" for s, n in sorted(self.statuses.items()))
        errors = ", ".join(f"{e}×{n}" for e, n in self.errors.most_common())
        return (
            f"{self.name}: {self.completed} requests in {self.elapsed:.1f}s = "
            f"{self.rate():.0f} req/s; p50 {self.percentile(50) * 1000:.1f} ms, "
            f"p99 {self.percentile(99) * 1000:.1f} ms; status {statuses or '-'}"
            + (f"; errors {errors}" if errors else "")
        )


class _Closed(Exception):
    """The server closed the connection, or asked to."""


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one answer; returns (status, whether the server keeps the connection open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lowered = head.lower()
    keep_alive = b"\r\nconnection: close" not in lowered
    start = lowered.find(b"\r\ncontent-length:")
    if start >= 0:
        end = lowered.index(b"\r\n", start + 2)
        length = int(lowered[start + 17 : end])
        if length:
            await reader.readexactly(length)
    elif b"\r\ntransfer-encoding: chunked" in lowered:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.read()  # the body ends when the connection does
        keep_alive = False
    return status, keep_alive


async def run_load(
    *,
    name: str,
    port: int | Sequence[int],
    make_request: RequestMaker,
    connections: int,
    duration: float | None = None,
    total: int | None = None,
    request_timeout: float = 10.0,
    first_number: int = 0,
) -> LoadResult:
    """Send requests over `connections` keep-alive connections until `duration` seconds have
    passed or `total` requests were sent, whichever comes first (at least one must be set).

    Request numbers start at `first_number` and are unique across the run, so a request maker
    can derive unique ids (event ids) from them. With several ports (one server process each),
    connections are spread over them in turn.
    """
    if duration is None and total is None:
        raise ValueError("a load run needs a duration or a request count")
    result = LoadResult(name=name, connections=connections)
    numbers = itertools.count(first_number)
    last = first_number + total if total is not None else None
    cpu_before = os.times()
    started = time.perf_counter()
    deadline = started + duration if duration is not None else math.inf

    ports = [port] if isinstance(port, int) else list(port)

    async def connection(port: int) -> None:
        reader = writer = None
        try:
            while time.perf_counter() < deadline:
                number = next(numbers)
                if last is not None and number >= last:
                    return
                data = make_request(number)
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(HOST, port), request_timeout
                    )
                assert reader is not None
                sent = time.perf_counter()
                try:
                    writer.write(data)
                    answer = _read_response(reader)
                    status, keep_alive = await asyncio.wait_for(answer, request_timeout)
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                    result.errors[type(exc).__name__] += 1
                    writer.close()
                    reader = writer = None
                    continue
                result.latencies.append(time.perf_counter() - sent)
                result.statuses[status] += 1
                if not keep_alive:
                    writer.close()
                    reader = writer = None
        except (OSError, TimeoutError) as exc:
            result.errors[f"connect: {type(exc).__name__}"] += 1
        finally:
            if writer is not None:
                writer.close()

    await asyncio.gather(*(connection(ports[i % len(ports)]) for i in range(connections)))
    result.elapsed = time.perf_counter() - started
    cpu_after = os.times()
    result.client_cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default="", help="request body (text)")
    parser.add_argument("--header", action="append", default=[], help="Name: value")
    parser.add_argument("-c", "--connections", type=int, default=16)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("-n", "--total", type=int, default=None)
    args = parser.parse_args()
    if not 0 < args.duration <= 120:
        parser.error("--duration must be between 0 and 120 seconds")
    headers = [tuple(h.split(":", 1)) for h in args.header]
    request = http_request(
        args.method, args.path, args.body.encode(), [(k.strip(), v.strip()) for k, v in headers]
    )
    result = asyncio.run(
        run_load(
            name=f"{args.method} {args.path}",
            port=args.port,
            make_request=lambda _n: request,
            connections=args.connections,
            duration=args.duration,
            total=args.total,
        )
    )
    print(result.summary())


if __name__ == "__main__":
    main()
