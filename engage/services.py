"""Writes for tenancy: creating Apps and rotating their keys."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from engage import keys
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


@transaction.atomic
def app_secret_key_rotate(*, app: App) -> str:
    """Give the App a new secret key; the old one stops working. Returns the new key once."""
    secret = keys.secret_key_generate()
    app.secret_key_hash = keys.secret_key_hash(secret)
    app.secret_key_prefix = secret[:10]
    app.full_clean()
    app.save(update_fields=["secret_key_hash", "secret_key_prefix"])
    transaction.on_commit(app_cache_clear)
    return secret
