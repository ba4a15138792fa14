"""Which browser origins may call the APIs: those some App lists (django-cors-headers signal).

Per-App enforcement (an origin of App A calling with App B's key) is done by the endpoints
that know the App; this only decides whether the browser may read the answer at all.
"""

from __future__ import annotations

from typing import Any

from engage.selectors import origin_allowed_for_any_app


def cors_allow_app_origins(sender: Any, request: Any, **kwargs: Any) -> bool:
    origin = request.headers.get("Origin")
    return bool(origin) and origin_allowed_for_any_app(origin)
