"""DRF authentication for App keys.

`request.auth` becomes an `AppCredential`: which App, and whether a public or a secret key
was used. Public keys come in `X-Engage-Key` or `Authorization: Bearer pk_…`; secret keys in
`Authorization: Bearer sk_…`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, permissions
from rest_framework.request import Request

from engage import errors, keys
from engage.models import App
from engage.selectors import (
    app_get_by_public_key,
    app_get_by_secret_key,
    origin_allowed_for_app,
)


@dataclass(frozen=True)
class AppCredential:
    app: App
    kind: Literal["public", "secret"]


def key_from_headers(headers: Any) -> str | None:
    header = headers.get("Authorization") or ""
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return (headers.get("X-Engage-Key") or "").strip() or None


def credential_for_key(key: str | None) -> AppCredential:
    """The App a key belongs to; raises NotAuthenticated for a missing or unknown key."""
    if not key:
        raise errors.NotAuthenticated(
            "Missing API key: send Authorization: Bearer <key> or X-Engage-Key.",
            code="missing_key",
        )
    if key.startswith(keys.SECRET_PREFIX):
        app = app_get_by_secret_key(key)
        if app is not None:
            return AppCredential(app=app, kind="secret")
    elif key.startswith(keys.PUBLIC_PREFIX):
        app = app_get_by_public_key(key)
        if app is not None:
            return AppCredential(app=app, kind="public")
    raise errors.NotAuthenticated("Unknown API key.", code="unknown_key")


class AppKeyAuthentication(authentication.BaseAuthentication):
    """Accepts public or secret keys; permissions decide which kind an endpoint needs."""

    def authenticate(self, request: Request) -> tuple[None, AppCredential]:
        return (None, credential_for_key(key_from_headers(request.headers)))

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="engage"'


class AppKeyScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema documents App keys (drf-spectacular finds it by target_class)."""

    target_class = "engage.api.authentication.AppKeyAuthentication"
    name = "appKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The App's secret key (sk_…) for management and targeting; its "
            "public key (pk_…, also accepted in X-Engage-Key) for events, identify and the "
            "widget endpoints.",
        }


class SecretKeyRequired(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        credential = request.auth
        if not isinstance(credential, AppCredential):
            raise errors.NotAuthenticated("Missing API key.", code="missing_key")
        if credential.kind != "secret":
            raise errors.PermissionDenied(
                "This endpoint needs the App's secret key; a public key may not use it.",
                code="secret_key_required",
            )
        return True


class AnyAppKey(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        if not isinstance(request.auth, AppCredential):
            raise errors.NotAuthenticated("Missing API key.", code="missing_key")
        return True


def public_origin_check(request: Request, credential: AppCredential) -> None:
    """A browser using a public key must be on one of the App's origins (403 otherwise).

    Requests without an Origin (servers, mobile apps) pass: only browsers send one, and this
    keeps another site's pages from using the App's key. Secret keys are never checked.
    """
    if credential.kind != "public":
        return
    origin = request.headers.get("Origin")
    if not origin_allowed_for_app(credential.app, origin):
        raise errors.PermissionDenied(
            f'Origin "{origin}" is not an allowed origin of this App.',
            code="origin_not_allowed",
        )


def request_app(request: Request) -> App:
    credential = request.auth
    assert isinstance(credential, AppCredential)  # noqa: S101 - guaranteed by the permission
    return credential.app
