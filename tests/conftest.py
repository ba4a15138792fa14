"""Wiring shared by all tests: services, API clients and Apps."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from engage.models import App
from engage.selectors import app_cache_clear
from engage.services import app_create
from engage.targeting import _compiled

REQUIRE_SERVICES = os.environ.get("ENGAGE_REQUIRE_SERVICES") == "1"


def service_missing(name: str, reason: str) -> None:
    """Skip when a real service is absent; fail instead in CI (ENGAGE_REQUIRE_SERVICES=1)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{name} is required (ENGAGE_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(f"{name} not configured: {reason}")


@pytest.fixture
def postgres(settings):  # type: ignore[no-untyped-def]
    """Use in tests whose behaviour depends on PostgreSQL."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        service_missing("PostgreSQL", "set DATABASE_URL=postgres://…")


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        service_missing("Redis", "set REDIS_URL=redis://…")
    return url


@pytest.fixture(autouse=True)
def _clear_app_cache() -> None:
    """Per-process caches keyed by App id: test databases reuse ids, so start each test clean."""
    app_cache_clear()
    _compiled.clear()


@dataclass
class AppKeys:
    app: App
    public_key: str
    secret_key: str


def _make_app(name: str) -> AppKeys:
    created = app_create(
        name=name,
        origins=["https://host.example"],
        snowplow_app_ids=[f"{name.lower()}-web"],
    )
    return AppKeys(
        app=created.app, public_key=created.app.public_key, secret_key=created.secret_key
    )


@pytest.fixture
def app_keys(db) -> AppKeys:  # type: ignore[no-untyped-def]
    return _make_app("Acme")


@pytest.fixture
def other_app_keys(db) -> AppKeys:  # type: ignore[no-untyped-def]
    return _make_app("Other")


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def secret_client(app_keys: AppKeys) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {app_keys.secret_key}")
    return client


@pytest.fixture
def public_client(app_keys: AppKeys) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_ENGAGE_KEY=app_keys.public_key)
    return client


@pytest.fixture
def live_server_url(transactional_db):  # type: ignore[no-untyped-def]
    """A real Daphne process serving Engage on the test database."""
    from tests.live import daphne

    with daphne() as url:
        yield url


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):  # type: ignore[no-untyped-def]
    """Admin logins in tests need no slow, production-strength password hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
