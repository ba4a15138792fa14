"""Reads for tenancy, with a short in-process cache for the hot ingestion path.

Apps change rarely and every ingest request needs its App: a lookup cached for a few seconds
saves a query per request. Changes clear this process's cache at once; other processes see
them within `APP_CACHE_SECONDS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.utils import timezone

from engage import keys
from engage.models import App, SnowplowAppId

APP_CACHE_SECONDS = 5.0

_cache: dict[tuple[str, str], tuple[float, App | None]] = {}


def app_cache_clear() -> None:
    _cache.clear()


def _cached(kind: str, value: str, load: Callable[[], App | None]) -> App | None:
    if "\x00" in value:  # no App has it (PostgreSQL text cannot hold NUL): no query
        return None
    now = time.monotonic()
    hit = _cache.get((kind, value))
    if hit is not None and hit[0] > now:
        return hit[1]
    app = load()
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[(kind, value)] = (now + APP_CACHE_SECONDS, app)
    return app


def app_get_by_public_key(public_key: str) -> App | None:
    return _cached("pk", public_key, lambda: App.objects.filter(public_key=public_key).first())


def app_get_by_secret_key(secret_key: str) -> App | None:
    """The App whose current secret key this is, or whose previous one (after a rotation)
    while its grace period lasts."""
    digest = keys.secret_key_hash(secret_key)
    app = _cached("sk", digest, lambda: _app_by_secret_digest(digest))
    if app is None or app.secret_key_hash == digest:
        return app
    # The previous key: checked on every call, so that it stops exactly when its time is up.
    until = app.secret_key_previous_until
    return app if until is not None and until > timezone.now() else None


def _app_by_secret_digest(digest: str) -> App | None:
    app = App.objects.filter(secret_key_hash=digest).first()
    if app is None:
        app = App.objects.filter(
            secret_key_hash_previous=digest, secret_key_previous_until__gt=timezone.now()
        ).first()
    return app


def app_get_by_snowplow_aid(aid: str) -> App | None:
    return _cached(
        "aid",
        aid,
        lambda: App.objects.filter(
            pk__in=SnowplowAppId.objects.filter(aid=aid).values("app_id")
        ).first(),
    )


def origin_allowed_for_any_app(origin: str) -> bool:
    """Whether some App lists this origin (preflights of the collector name no App)."""
    now = time.monotonic()
    hit = _cache.get(("origins", ""))
    if hit is None or hit[0] <= now:
        origins: set[str] = set()
        for allowed in App.objects.values_list("allowed_origins", flat=True):
            origins.update(allowed or [])
        _cache[("origins", "")] = (now + APP_CACHE_SECONDS, None)
        _origins_cache.clear()
        _origins_cache.update(origins)
    return origin.rstrip("/") in _origins_cache or "*" in _origins_cache


_origins_cache: set[str] = set()


def origin_allowed_by_last_list(origin: str) -> bool:
    """`origin_allowed_for_any_app` on the list as last read, without a query (for callers
    in an async context, where the ORM may not run)."""
    return origin.rstrip("/") in _origins_cache or "*" in _origins_cache


def origin_allowed_for_app(app: App, origin: str | None) -> bool:
    """Requests without an Origin (servers, trackers outside browsers) pass; browsers need the
    origin on the App's list ("*" allows any)."""
    if not origin:
        return True
    allowed = app.allowed_origins or []
    return "*" in allowed or origin.rstrip("/") in allowed
