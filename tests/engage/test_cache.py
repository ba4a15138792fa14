"""The Redis cache backend shares its connection pool across the process's threads."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from engage.cache import SharedPoolRedisCache


@pytest.mark.redis
def test_cache_objects_of_different_threads_share_one_pool(redis_url: str) -> None:
    seen: list[tuple[Any, Any]] = []

    def use() -> None:
        # What django.core.cache.caches does: one backend object per thread.
        cache = SharedPoolRedisCache(redis_url, {"KEY_PREFIX": "engage-test-cache"})
        cache.set("shared", threading.get_ident(), timeout=30)
        seen.append((cache._cache._get_connection_pool(True), cache.get("shared")))

    threads = [threading.Thread(target=use) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(seen) == 3
    pools = {id(pool) for pool, _ in seen}
    assert len(pools) == 1
    assert all(isinstance(value, int) for _, value in seen)
