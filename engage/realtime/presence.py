"""Who has an open widget connection right now, shared by every process of the deployment.

Push paths ask presence before doing any work: an event for someone without an open widget is
not evaluated at all, so ingesting many events for offline people costs one lookup per batch.

Presence follows the channel layer: with the Redis layer it lives in the same Redis (sorted
sets scored by expiry, so a crashed process's entries age out within `TTL_SECONDS`); with the
in-memory layer, which cannot cross processes anyway, it lives in this process.

Keys (Redis): `engage:presence:p:<app>:<person>` holds the person's connection channel names,
`engage:presence:a:<app>` holds `<person>:<channel>` for the whole App (publish pushes read it).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any, Protocol

import redis
import redis.asyncio as aredis
from django.conf import settings

# A connection's entry lives this long unless refreshed; consumers refresh it on client
# frames (clients ping every heartbeat) and the server closes connections silent for two
# heartbeats, so a live connection never ages out.
TTL_SECONDS = 65
PREFIX = "engage:presence"


class Presence(Protocol):
    async def connection_add(self, *, app_id: int, person_id: int, channel: str) -> None:
        """Record (or refresh) an open connection of the person."""

    async def connection_remove(self, *, app_id: int, person_id: int, channel: str) -> None:
        """Forget a connection (closed, or moved to another person on identify)."""

    def people_present(self, *, app_id: int, person_ids: Iterable[int]) -> set[int]:
        """Those of `person_ids` with at least one open connection."""

    def connections_count(self, *, app_id: int, person_id: int) -> int:
        """How many open connections the person has."""

    def app_people(self, *, app_id: int) -> list[int]:
        """Every person of the App with an open connection, in ascending id order."""


class LocalPresence:
    """Presence in this process (the in-memory channel layer's companion, development only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_person: dict[tuple[int, int], dict[str, float]] = {}

    def reset(self) -> None:
        with self._lock:
            self._by_person.clear()

    async def connection_add(self, *, app_id: int, person_id: int, channel: str) -> None:
        with self._lock:
            self._by_person.setdefault((app_id, person_id), {})[channel] = time.time() + TTL_SECONDS

    async def connection_remove(self, *, app_id: int, person_id: int, channel: str) -> None:
        with self._lock:
            channels = self._by_person.get((app_id, person_id))
            if channels is not None:
                channels.pop(channel, None)
                if not channels:
                    del self._by_person[(app_id, person_id)]

    def _count(self, key: tuple[int, int], now: float) -> int:
        return sum(1 for expires in self._by_person.get(key, {}).values() if expires > now)

    def people_present(self, *, app_id: int, person_ids: Iterable[int]) -> set[int]:
        now = time.time()
        with self._lock:
            return {p for p in set(person_ids) if self._count((app_id, p), now)}

    def connections_count(self, *, app_id: int, person_id: int) -> int:
        with self._lock:
            return self._count((app_id, person_id), time.time())

    def app_people(self, *, app_id: int) -> list[int]:
        now = time.time()
        with self._lock:
            return sorted(
                p for (a, p) in self._by_person if a == app_id and self._count((a, p), now)
            )


class RedisPresence:
    """Presence in Redis, visible to every Daphne process, HTTP process and Celery worker."""

    def __init__(self, url: str) -> None:
        self.url = url
        # Short commands only (no blocking reads), so a socket timeout is wanted here: a dead
        # Redis fails the push quickly instead of hanging the request that triggered it.
        self._sync = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aredis.Redis] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> aredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            # Bounded: thousands of connections refreshing at once share a few sockets.
            pool = aredis.BlockingConnectionPool.from_url(
                self.url, max_connections=32, timeout=5, socket_timeout=5, socket_connect_timeout=5
            )
            client = aredis.Redis(connection_pool=pool)
            self._async[loop] = client
        return client

    @staticmethod
    def _person_key(app_id: int, person_id: int) -> str:
        return f"{PREFIX}:p:{app_id}:{person_id}"

    @staticmethod
    def _app_key(app_id: int) -> str:
        return f"{PREFIX}:a:{app_id}"

    async def connection_add(self, *, app_id: int, person_id: int, channel: str) -> None:
        expires = time.time() + TTL_SECONDS
        person_key = self._person_key(app_id, person_id)
        app_key = self._app_key(app_id)
        pipe = self._client().pipeline(transaction=False)
        pipe.zadd(person_key, {channel: expires})
        pipe.expire(person_key, TTL_SECONDS)
        pipe.zadd(app_key, {f"{person_id}:{channel}": expires})
        pipe.expire(app_key, TTL_SECONDS)
        await pipe.execute()

    async def connection_remove(self, *, app_id: int, person_id: int, channel: str) -> None:
        pipe = self._client().pipeline(transaction=False)
        pipe.zrem(self._person_key(app_id, person_id), channel)
        pipe.zrem(self._app_key(app_id), f"{person_id}:{channel}")
        await pipe.execute()

    def people_present(self, *, app_id: int, person_ids: Iterable[int]) -> set[int]:
        ids = sorted(set(person_ids))
        if not ids:
            return set()
        now = time.time()
        pipe = self._sync.pipeline(transaction=False)
        for person_id in ids:
            pipe.zcount(self._person_key(app_id, person_id), now, "+inf")
        counts: list[Any] = pipe.execute()
        return {p for p, n in zip(ids, counts, strict=True) if n}

    def connections_count(self, *, app_id: int, person_id: int) -> int:
        return int(self._sync.zcount(self._person_key(app_id, person_id), time.time(), "+inf"))

    def app_people(self, *, app_id: int) -> list[int]:
        now = time.time()
        key = self._app_key(app_id)
        pipe = self._sync.pipeline(transaction=False)
        pipe.zremrangebyscore(key, "-inf", now)  # entries of crashed processes
        pipe.zrangebyscore(key, now, "+inf")
        _, members = pipe.execute()
        people = {int(m.split(b":", 1)[0]) for m in members}
        return sorted(people)


_local = LocalPresence()
_redis: dict[str, RedisPresence] = {}
_redis_lock = threading.Lock()


def presence() -> Presence:
    """The presence store matching the channel layer in use."""
    layer = settings.CHANNEL_LAYERS.get("default", {})
    url = getattr(settings, "REDIS_URL", "")
    if "InMemoryChannelLayer" in layer.get("BACKEND", "") or not url:
        return _local
    hit = _redis.get(url)
    if hit is None:
        with _redis_lock:
            hit = _redis.setdefault(url, RedisPresence(url))
    return hit


def presence_reset() -> None:
    """Forget this process's presence (tests)."""
    _local.reset()
