"""Django's Redis cache with connection pools shared by every thread of the process.

Django keeps one cache object per thread, and its Redis client one connection pool per cache
object. Daphne runs each request's sync code in a thread of its own, so with the stock backend
every request opened a new TCP connection to Redis (and a health check) for its first cache
read: the compiled-campaigns version that every decision and every events request reads cost
more than the read itself. redis-py's pools are thread-safe; here there is one per server URL
for the whole process.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_pools: dict[str, Any] = {}
_pools_lock = threading.Lock()


class SharedPoolRedisCacheClient(RedisCacheClient):
    def _get_connection_pool(self, write: bool) -> Any:
        client: Any = self  # the stubs leave out the stock client's private attributes
        url = client._servers[client._get_connection_pool_index(write)]
        pool = _pools.get(url)
        if pool is None:
            with _pools_lock:
                pool = _pools.get(url)
                if pool is None:
                    pool = _pools[url] = client._pool_class.from_url(url, **client._pool_options)
        return pool


class SharedPoolRedisCache(RedisCache):
    """`django.core.cache.backends.redis.RedisCache`, its pools shared across threads."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedPoolRedisCacheClient
