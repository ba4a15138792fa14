"""Key material for Apps: generation, hashing and identity verification."""

from __future__ import annotations

import hashlib
import hmac
import secrets

PUBLIC_PREFIX = "pk_"
SECRET_PREFIX = "sk_"  # noqa: S105 - a prefix, not a secret


def public_key_generate() -> str:
    return PUBLIC_PREFIX + secrets.token_urlsafe(18)


def secret_key_generate() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(24)


def identity_secret_generate() -> str:
    return secrets.token_hex(32)


def secret_key_hash(secret_key: str) -> str:
    """SHA-256 of a secret key; keys are random 192-bit tokens, so no slow hash is needed."""
    return hashlib.sha256(secret_key.encode()).hexdigest()


def user_hash_compute(*, identity_secret: str, user_id: str) -> str:
    """hex(HMAC-SHA256(identity_secret, user_id)): what the host app's back end computes."""
    return hmac.new(identity_secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def user_hash_valid(*, identity_secret: str, user_id: str, user_hash: str | None) -> bool:
    if not user_hash:
        return False
    expected = user_hash_compute(identity_secret=identity_secret, user_id=user_id)
    return hmac.compare_digest(expected, user_hash.strip().lower())
