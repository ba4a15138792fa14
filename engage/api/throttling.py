"""DRF throttling on the shared limiter (engage.ratelimit).

Runs after authentication: a public key counts per key and client IP
(`ENGAGE_RATE_LIMIT_PUBLIC`), a secret key per App (`ENGAGE_RATE_LIMIT_SECRET`). Requests
without a valid key were already refused with 401 and are not counted.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from engage.api.authentication import AppCredential
from engage.ratelimit import client_ip, rate_limit_hit, rate_limited_error


class AppKeyThrottle(BaseThrottle):
    def allow_request(self, request: Request, view: Any) -> bool:
        credential = request.auth
        if not isinstance(credential, AppCredential):
            return True
        if credential.kind == "secret":
            verdict = rate_limit_hit(scope="secret", identity=f"app{credential.app.pk}")
        else:
            verdict = rate_limit_hit(
                scope="public",
                identity=f"{credential.app.public_key}:{client_ip(request.META)}",
            )
        if not verdict.allowed:
            # Raised rather than returned: the error names the limit and the wait.
            raise rate_limited_error(verdict)
        return True
