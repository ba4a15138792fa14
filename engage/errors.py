"""One error type with stable, machine-readable codes.

Services raise `EngageError` (or a subclass); the DRF exception handler and the websocket
consumer's error frame render it as `{"error": {"code", "message", "details"?}}`.
"""

from __future__ import annotations

from typing import Any


class EngageError(Exception):
    """An error a client can act on. `code` is stable; `message` is for people."""

    code = "error"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class InvalidInput(EngageError):
    code = "invalid_input"
    status = 400


class NotAuthenticated(EngageError):
    code = "not_authenticated"
    status = 401


class IdentityVerificationFailed(EngageError):
    code = "identity_verification_failed"
    status = 401


class PermissionDenied(EngageError):
    code = "permission_denied"
    status = 403


class NotFound(EngageError):
    code = "not_found"
    status = 404


class Conflict(EngageError):
    code = "conflict"
    status = 409


class PayloadTooLarge(EngageError):
    code = "payload_too_large"
    status = 413


class RateLimited(EngageError):
    """429: answered with `Retry-After` (seconds, also in `details.retry_after`)."""

    code = "rate_limited"
    status = 429


class ServiceUnavailable(EngageError):
    code = "service_unavailable"
    status = 503
