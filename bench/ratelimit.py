"""What a rate-limit check costs a request, beside the round trip it cannot beat.

    .venv/bin/python bench/ratelimit.py [--redis redis://127.0.0.1:6379/9] [--calls 20000]

Bounded (a few seconds; 127.0.0.1 only). Measures, in one process and one run:
- baseline: one Redis `PING` round trip on the same client settings;
- the Redis counter: INCR + EXPIRE in one pipeline (what every limited request pays);
- the in-process counter (the embedded default, no REDIS_URL);
- Redis down: the first failure, then the fail-open path while the limiter waits to retry.
Prints the median and p99 per call in microseconds. Keys live under `engage:rl:bench:` in the
chosen database and expire within two seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "engage.settings")

import django

django.setup()

import redis  # noqa: E402

from engage.ratelimit import (  # noqa: E402
    REDIS_TIMEOUT_SECONDS,
    LocalCounter,
    RedisCounter,
)


def timed(call: Callable[[int], object], n: int) -> tuple[float, float]:
    samples = []
    for i in range(n):
        start = time.perf_counter_ns()
        call(i)
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    n = args.calls

    client = redis.Redis.from_url(
        args.redis,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )
    remote = RedisCounter(args.redis)
    local = LocalCounter()
    down = RedisCounter("redis://127.0.0.1:1/0")  # nothing listens there
    now = time.time()

    rows = [
        ("baseline: Redis PING round trip", timed(lambda i: client.ping(), n)),
        (
            "Redis counter (INCR+EXPIRE pipeline)",
            timed(lambda i: remote.incr(f"engage:rl:bench:{i % 500}", 1, now), n),
        ),
        (
            "in-process counter",
            timed(lambda i: local.incr(f"engage:rl:bench:{i % 500}", 1, now), n),
        ),
    ]
    first = time.perf_counter_ns()
    assert down.incr("engage:rl:bench:x", 1, now) is None
    first_us = (time.perf_counter_ns() - first) / 1000
    rows.append(("Redis down: fail open (after 1st)", timed(lambda i: down.incr("k", 1, now), n)))

    print(f"{'per call':<40}{'p50 µs':>10}{'p99 µs':>10}")
    for name, (p50, p99) in rows:
        print(f"{name:<40}{p50:>10.1f}{p99:>10.1f}")
    print(f"{'Redis down: the first failure':<40}{first_us:>10.1f}")
    print(f"({n:,} calls each; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
