"""Identity verification: proving that a browser speaks for a user id (docs/identity.md).

An App with identity verification on accepts, per its `identity_mode`:
- `hash`: `hex(HMAC-SHA256(identity_secret, user_id))`;
- `token`: a JWT signed HS256 with the identity secret, `sub` = the user id, `exp` required, an
  optional `attributes` object the server trusts over attributes the client sends;
- `hash_or_token`: either.
After a rotation, the previous secret is accepted until `identity_secret_previous_until`.

Every failure is counted per App, day and cause with the latest examples (`IdentityFailure`).
With `identity_enforcement = enforce` it is refused (401, or close 4401 on the websocket); with
`monitor` it is let through, unverified, so an App can see who would break before enforcing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from django.db import IntegrityError, transaction
from django.utils import timezone

from engage import errors, keys
from engage.models import (
    App,
    IdentityEnforcement,
    IdentityFailure,
    IdentityFailureCause,
    IdentityMode,
)

logger = logging.getLogger(__name__)

EXAMPLES_KEPT = 10
DEFAULT_GRACE = timedelta(days=7)
# What a client is told, per cause: the error code and a message naming the field.
_REFUSALS = {
    IdentityFailureCause.MISSING: (
        "identity_verification_failed",
        "missing identity proof for user_id; this App requires {needs}",
    ),
    IdentityFailureCause.BAD_SIGNATURE: (
        "bad_signature",
        "{field}: not signed with this App's identity secret",
    ),
    IdentityFailureCause.TOKEN_EXPIRED: ("token_expired", "user_token: the token has expired"),
    IdentityFailureCause.TOKEN_INVALID: ("token_invalid", "user_token: {detail}"),
    IdentityFailureCause.SUB_MISMATCH: (
        "sub_mismatch",
        "user_token: its sub is another user than user_id",
    ),
}


@dataclass(frozen=True)
class IdentityProof:
    """The outcome for one request: `verified` False means monitor mode let it through."""

    verified: bool
    attributes: dict[str, Any] | None = None  # from a valid token: trusted
    cause: str | None = None


@dataclass(frozen=True)
class _Failure(Exception):
    cause: str
    field: str = "user_hash"
    detail: str = ""


def _secrets(app: App, now: datetime) -> list[str]:
    found = [app.identity_secret]
    until = app.identity_secret_previous_until
    if app.identity_secret_previous and until is not None and until > now:
        found.append(app.identity_secret_previous)
    return found


def _hash_check(app: App, user_id: str, user_hash: str, now: datetime) -> None:
    for secret in _secrets(app, now):
        if keys.user_hash_valid(identity_secret=secret, user_id=user_id, user_hash=user_hash):
            return
    raise _Failure(IdentityFailureCause.BAD_SIGNATURE, "user_hash")


def token_decode(app: App, token: str, *, now: datetime | None = None) -> dict[str, Any]:
    """The claims of an identity token signed with one of the App's current secrets.

    Raises `_Failure` with the cause: token_invalid (malformed, wrong algorithm, missing `exp`
    or `sub`, `attributes` not an object), bad_signature, token_expired.
    """
    now = now or timezone.now()
    expired = False
    for secret in _secrets(app, now):
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                options={"require": ["exp", "sub"]},
                leeway=5,
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            expired = True  # signed with this secret, but too late
            break
        except jwt.MissingRequiredClaimError as exc:
            raise _Failure(
                IdentityFailureCause.TOKEN_INVALID,
                "user_token",
                f"the {exc.claim} claim is required",
            ) from None
        except jwt.InvalidAlgorithmError:
            raise _Failure(
                IdentityFailureCause.TOKEN_INVALID, "user_token", "must be signed with HS256"
            ) from None
        except jwt.InvalidTokenError as exc:
            raise _Failure(
                IdentityFailureCause.TOKEN_INVALID, "user_token", f"not a valid JWT ({exc})"[:200]
            ) from None
        attributes = claims.get("attributes")
        if attributes is not None and not isinstance(attributes, dict):
            raise _Failure(
                IdentityFailureCause.TOKEN_INVALID,
                "user_token",
                "the attributes claim must be an object",
            )
        return claims
    if expired:
        raise _Failure(IdentityFailureCause.TOKEN_EXPIRED, "user_token")
    raise _Failure(IdentityFailureCause.BAD_SIGNATURE, "user_token")


def _prove(
    app: App, user_id: str, user_hash: str | None, user_token: str | None, now: datetime
) -> dict[str, Any] | None:
    mode = app.identity_mode
    if user_token and mode in (IdentityMode.TOKEN, IdentityMode.HASH_OR_TOKEN):
        claims = token_decode(app, user_token, now=now)
        if str(claims.get("sub")) != user_id:
            raise _Failure(IdentityFailureCause.SUB_MISMATCH, "user_token")
        trusted: dict[str, Any] = claims.get("attributes") or {}
        return trusted
    if user_hash and mode in (IdentityMode.HASH, IdentityMode.HASH_OR_TOKEN):
        _hash_check(app, user_id, user_hash, now)
        return None
    raise _Failure(IdentityFailureCause.MISSING, "user_id")


_NEEDS: dict[str, str] = {
    IdentityMode.HASH: "user_hash = hex(HMAC-SHA256(identity_secret, user_id))",
    IdentityMode.TOKEN: "user_token, a JWT (HS256, identity secret, sub = user_id, exp)",
    IdentityMode.HASH_OR_TOKEN: "user_hash or user_token",
}


def _needs(app: App) -> str:
    return _NEEDS.get(str(app.identity_mode), "an identity proof")


def identity_verify(
    *,
    app: App,
    user_id: str | None,
    user_hash: str | None = None,
    user_token: str | None = None,
    door: str = "api",
    now: datetime | None = None,
) -> IdentityProof:
    """Check the proof that the caller speaks for `user_id`.

    Before: the request used the App's public key. After: when the App has identity
    verification off, or no user id is named, nothing is checked. Otherwise a valid proof
    returns verified (with the token's trusted attributes, if any); a failed one is counted
    (`IdentityFailure`) and then raises `IdentityVerificationFailed` (code per cause) under
    `enforce`, or returns unverified under `monitor`.
    """
    if not app.identity_verification or not user_id:
        return IdentityProof(verified=True)
    now = now or timezone.now()
    try:
        trusted = _prove(app, user_id, user_hash, user_token, now)
    except _Failure as failure:
        monitor = app.identity_enforcement == IdentityEnforcement.MONITOR
        identity_failure_record(
            app=app, cause=failure.cause, user_id=user_id, door=door, allowed=monitor, now=now
        )
        if monitor:
            return IdentityProof(verified=False, cause=failure.cause)
        code, template = _REFUSALS[IdentityFailureCause(failure.cause)]
        if failure.field == "user_hash":
            # A wrong hash has always answered `identity_verification_failed` (DESIGN.md).
            code = "identity_verification_failed"
        raise errors.IdentityVerificationFailed(
            template.format(field=failure.field, detail=failure.detail, needs=_needs(app)),
            code=code,
        ) from None
    return IdentityProof(verified=True, attributes=trusted)


def identity_failure_record(
    *,
    app: App,
    cause: str,
    user_id: str,
    door: str,
    allowed: bool,
    now: datetime | None = None,
) -> None:
    """Count one failed identity proof for (App, day, cause) and keep it as the latest example.

    Runs in its own transaction (a refused request must still be counted). Never raises: a
    failure to count is logged and does not change the answer the client gets.
    """
    now = now or timezone.now()
    example = {"user_id": user_id[:255], "door": door, "at": now.isoformat(), "allowed": allowed}
    for _attempt in range(2):
        try:
            with transaction.atomic():
                row, _created = IdentityFailure.objects.select_for_update().get_or_create(
                    app=app, day=now.date(), cause=cause, defaults={"last_at": now}
                )
                row.count += 1
                row.allowed += int(allowed)
                row.examples = [example, *(row.examples or [])][:EXAMPLES_KEPT]
                row.last_at = now
                row.save(update_fields=["count", "allowed", "examples", "last_at"])
                return
        except IntegrityError:
            continue  # another request created the day's row first: update it
        except Exception:
            logger.exception("counting an identity failure failed")
            return


@transaction.atomic
def identity_secret_rotate(
    *, app: App, grace: timedelta = DEFAULT_GRACE, now: datetime | None = None
) -> App:
    """Give the App a new identity secret; the old one keeps working for `grace`.

    After: `identity_secret` is new; hashes and tokens made with the old one are accepted
    until now + grace (a zero grace cuts them off at once). Returns the App.
    """
    now = now or timezone.now()
    app.identity_secret_previous = app.identity_secret
    app.identity_secret_previous_until = now + grace if grace > timedelta(0) else now
    app.identity_secret = keys.identity_secret_generate()
    app.save(
        update_fields=[
            "identity_secret",
            "identity_secret_previous",
            "identity_secret_previous_until",
        ]
    )
    return app


def identity_token_make(
    *,
    identity_secret: str,
    user_id: str,
    expires_in: timedelta = timedelta(minutes=10),
    attributes: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> str:
    """A token as the host app's back end makes it (tests and the demo; docs/identity.md)."""
    now = now or timezone.now()
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + expires_in}
    if attributes is not None:
        claims["attributes"] = attributes
    return jwt.encode(claims, identity_secret, algorithm="HS256")
