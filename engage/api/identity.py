"""Identity verification for public-key requests that name a user id."""

from __future__ import annotations

from engage import errors, keys
from engage.models import App


def user_hash_check(*, app: App, user_id: str, user_hash: str | None) -> None:
    """Raise 401 `identity_verification_failed` when the App requires a hash and it is wrong.

    The hash is hex(HMAC-SHA256(identity_secret, user_id)), computed by the host app's back end.
    """
    if not app.identity_verification:
        return
    if not keys.user_hash_valid(
        identity_secret=app.identity_secret, user_id=user_id, user_hash=user_hash
    ):
        reason = "missing" if not user_hash else "wrong"
        raise errors.IdentityVerificationFailed(
            f"user_hash: {reason} identity hash for user_id; this App requires "
            "hex(HMAC-SHA256(identity_secret, user_id)).",
        )
