"""Writes for tenancy: creating Apps and rotating their keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from engage import errors, keys
from engage.models import App, SnowplowAppId
from engage.selectors import app_cache_clear


@dataclass(frozen=True)
class AppCreated:
    """An App with the secret key in clear text, which is shown only this once."""

    app: App
    secret_key: str


def _origin_normalise(origin: str) -> str:
    return origin.strip().rstrip("/")


@transaction.atomic
def app_create(
    *,
    name: str,
    origins: list[str] | None = None,
    snowplow_app_ids: list[str] | None = None,
    identity_verification: bool = False,
    default_locale: str = "en",
) -> AppCreated:
    """Create an App with fresh keys.

    After: the App exists with a public key, a hashed secret key, an identity secret and its
    Snowplow `aid` values (each unique across Apps). Returns the clear secret key once.
    """
    secret = keys.secret_key_generate()
    app = App(
        name=name,
        public_key=keys.public_key_generate(),
        secret_key_hash=keys.secret_key_hash(secret),
        secret_key_prefix=secret[:10],
        identity_secret=keys.identity_secret_generate(),
        identity_verification=identity_verification,
        allowed_origins=[_origin_normalise(o) for o in origins or []],
        default_locale=default_locale,
    )
    app.full_clean()
    app.save()
    for aid in snowplow_app_ids or []:
        row = SnowplowAppId(app=app, aid=aid)
        row.full_clean()
        row.save()
    transaction.on_commit(app_cache_clear)
    return AppCreated(app=app, secret_key=secret)


@dataclass(frozen=True)
class SecretKeyRotated:
    """The new secret key in clear text (shown only this once), and until when the previous
    key still works (None: it stopped at once)."""

    app: App
    secret_key: str
    previous_until: datetime | None


@transaction.atomic
def app_secret_key_rotate(*, app: App, grace_hours: float = 0) -> SecretKeyRotated:
    """Give the App a new secret key, keeping the current one valid for `grace_hours`.

    Before: `grace_hours` ≥ 0. After: the new key works at once; the key that was current
    works until now + `grace_hours` (with 0 it stops at once), so servers can switch keys
    without downtime. A key older than the current one stops at once: only one previous key
    is kept. Other processes see the change within engage.selectors.APP_CACHE_SECONDS.
    """
    if grace_hours < 0:
        raise errors.InvalidInput("grace_hours: must be 0 or more")
    secret = keys.secret_key_generate()
    if grace_hours > 0:
        app.secret_key_hash_previous = app.secret_key_hash
        app.secret_key_previous_until = timezone.now() + timedelta(hours=grace_hours)
    else:
        app.secret_key_hash_previous = ""
        app.secret_key_previous_until = None
    app.secret_key_hash = keys.secret_key_hash(secret)
    app.secret_key_prefix = secret[:10]
    app.full_clean()
    app.save(
        update_fields=[
            "secret_key_hash",
            "secret_key_prefix",
            "secret_key_hash_previous",
            "secret_key_previous_until",
        ]
    )
    transaction.on_commit(app_cache_clear)
    return SecretKeyRotated(
        app=app, secret_key=secret, previous_until=app.secret_key_previous_until
    )
