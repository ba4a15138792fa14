"""Rate limits: fixed-window counters in Redis (when `REDIS_URL` is set) or in local memory.

One counter per (scope, identity, window): the collector counts per client IP, public-key
endpoints and websocket connects per public key and client IP, management APIs per App (its
secret key). A request over the limit is refused with 429 and `Retry-After` (websockets: close
code 4429); see docs/deploy.md for the settings.

The Redis counter costs one round trip (INCR and EXPIRE in one pipeline) with short socket
timeouts. When Redis fails the limiter fails open: requests pass, ingestion keeps working, and
Redis is not asked again for `REDIS_RETRY_SECONDS`, so an outage does not add a timeout to
every request.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from django.conf import settings

from engage import errors

logger = logging.getLogger(__name__)

KEY_PREFIX = "engage:rl:"
REDIS_TIMEOUT_SECONDS = 0.25
REDIS_RETRY_SECONDS = 5.0
LOCAL_MAX_COUNTERS = 100_000

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])[a-z]*\s*$", re.IGNORECASE)

# Which setting holds the rate of each scope.
SCOPE_SETTINGS = {
    "collector": "ENGAGE_RATE_LIMIT_COLLECTOR",
    "public": "ENGAGE_RATE_LIMIT_PUBLIC",
    "secret": "ENGAGE_RATE_LIMIT_SECRET",
    "ws_connect": "ENGAGE_RATE_LIMIT_WS_CONNECT",
}


def clock() -> float:
    """Wall-clock seconds; windows are aligned to it so that every process agrees."""
    return time.time()


@dataclass(frozen=True)
class Rate:
    """At most `limit` hits per `window` seconds."""

    limit: int
    window: int


@lru_cache(maxsize=64)
def rate_parse(text: str) -> Rate | None:
    """`"600/m"`, `"100/s"`, `"5000/h"`, `"1000/10s"` → Rate; `""`, `"0"` or `"off"` → None
    (no limit). Raises ValueError for anything else, naming the text."""
    value = (text or "").strip().lower()
    if value in ("", "0", "off", "none"):
        return None
    match = _RATE.match(value)
    if not match:
        raise ValueError(f'rate limit "{text}": expected e.g. "600/m", "100/s" or "off"')
    limit, count, unit = int(match[1]), int(match[2] or 1), match[3].lower()
    if limit <= 0 or count <= 0:
        raise ValueError(f'rate limit "{text}": the number of requests and the window must be > 0')
    return Rate(limit=limit, window=count * _UNITS[unit])


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int  # whole seconds until the window ends (≥ 1 when refused)


ALLOWED = Verdict(allowed=True, limit=0, remaining=0, retry_after=0)


class Counter(Protocol):
    def incr(self, key: str, window: int, now: float) -> int | None:
        """Add one hit to `key` in the window containing `now`; the count so far, or None when
        the store is unavailable (the caller lets the request pass)."""


class LocalCounter:
    """Counters in this process's memory (the embedded default, and one process only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[float, int]] = {}

    def incr(self, key: str, window: int, now: float) -> int | None:
        with self._lock:
            expires, count = self._counts.get(key, (0.0, 0))
            if expires <= now:
                count = 0
                expires = (math.floor(now / window) + 1) * window
                if len(self._counts) >= LOCAL_MAX_COUNTERS:
                    self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
            count += 1
            self._counts[key] = (expires, count)
            return count


class RedisCounter:
    """Counters in Redis, shared by every process: INCR + EXPIRE in one round trip."""

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            retry_on_timeout=False,
        )
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._down_until = 0.0

    def incr(self, key: str, window: int, now: float) -> int | None:
        if self._down_until > time.monotonic():
            return None
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, window + 1)
        try:
            count, _ = pipe.execute()
        except self._errors as exc:
            self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
            logger.warning("rate limits off for %.0f s: Redis failed: %s", REDIS_RETRY_SECONDS, exc)
            return None
        return int(count)


_counter_lock = threading.Lock()
_counter: tuple[str, Counter] | None = None


def counter() -> Counter:
    """The counter store of this process: Redis when `REDIS_URL` is set, else local memory."""
    global _counter
    url = getattr(settings, "REDIS_URL", "") or ""
    current = _counter
    if current is not None and current[0] == url:
        return current[1]
    with _counter_lock:
        if _counter is None or _counter[0] != url:
            _counter = (url, RedisCounter(url) if url else LocalCounter())
        return _counter[1]


def counter_set(store: Counter | None) -> None:
    """Use `store` from now on (None: choose again from the settings). For tests."""
    global _counter
    with _counter_lock:
        _counter = None if store is None else (getattr(settings, "REDIS_URL", "") or "", store)


def rate_for(scope: str) -> Rate | None:
    return rate_parse(str(getattr(settings, SCOPE_SETTINGS[scope], "") or ""))


def rate_limit_hit(*, scope: str, identity: str) -> Verdict:
    """Count one request of `identity` (a client IP, a key and IP, an App) in `scope`.

    Before: `scope` is one of SCOPE_SETTINGS. After: the counter of the current window is one
    higher (unless the scope has no limit or the store is down: then the request is allowed
    and nothing is counted).
    """
    rate = rate_for(scope)
    if rate is None:
        return ALLOWED
    now = clock()
    window_index = math.floor(now / rate.window)
    key = f"{KEY_PREFIX}{scope}:{rate.window}:{identity}:{window_index}"
    count = counter().incr(key, rate.window, now)
    if count is None:
        return ALLOWED
    retry_after = max(1, math.ceil((window_index + 1) * rate.window - now))
    return Verdict(
        allowed=count <= rate.limit,
        limit=rate.limit,
        remaining=max(0, rate.limit - count),
        retry_after=retry_after,
    )


def rate_limited_error(verdict: Verdict) -> errors.RateLimited:
    """The error a refused request answers with (429; `Retry-After` is `details.retry_after`)."""
    return errors.RateLimited(
        f"Too many requests: at most {verdict.limit} in this window; retry in "
        f"{verdict.retry_after} s.",
        details={"retry_after": verdict.retry_after},
    )


def client_ip(meta_or_scope: Any) -> str:
    """The client address Daphne reports (behind a proxy: run Daphne with --proxy-headers)."""
    if isinstance(meta_or_scope, dict) and "type" in meta_or_scope:
        client = meta_or_scope.get("client") or ("", 0)
        return str(client[0] or "unknown")
    return str(meta_or_scope.get("REMOTE_ADDR") or "unknown")
