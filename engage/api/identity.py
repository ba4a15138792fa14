"""Identity verification for public-key requests that name a user id (docs/identity.md)."""

from __future__ import annotations

from typing import Any

from engage.identity import identity_verify
from engage.models import App


def user_hash_check(
    *,
    app: App,
    user_id: str,
    user_hash: str | None,
    user_token: str | None = None,
    door: str = "api",
) -> dict[str, Any] | None:
    """Raise 401 when the App requires an identity proof and this one fails (enforce mode).

    The proof is the hash hex(HMAC-SHA256(identity_secret, user_id)) or a signed token, as the
    App's identity mode allows. Returns the token's trusted attributes (None without a token);
    in monitor mode a failure is counted and None is returned.
    """
    proof = identity_verify(
        app=app, user_id=user_id, user_hash=user_hash, user_token=user_token, door=door
    )
    return proof.attributes if proof.verified else None


def request_identity_check(
    request: Any, *, app: App, user_id: str | None, data: Any = None, door: str = "api"
) -> dict[str, Any] | None:
    """`user_hash_check` with the proofs read from a request: the body's `user_hash` /
    `user_token`, the `X-Engage-User-Hash` / `X-Engage-User-Token` headers, or the query."""
    if not user_id:
        return None
    body = data if isinstance(data, dict) else {}
    query = getattr(request, "query_params", None) or getattr(request, "GET", {})
    user_hash = (
        body.get("user_hash") or request.headers.get("X-Engage-User-Hash") or query.get("user_hash")
    )
    user_token = (
        body.get("user_token")
        or request.headers.get("X-Engage-User-Token")
        or query.get("user_token")
    )
    return user_hash_check(
        app=app, user_id=user_id, user_hash=user_hash, user_token=user_token, door=door
    )
