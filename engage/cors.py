"""Which browser origins may call the APIs: those some App lists (django-cors-headers signal).

Per-App enforcement (an origin of App A calling with App B's key) is done by the endpoints
that know the App; this only decides whether the browser may read the answer at all.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import SynchronousOnlyOperation
from django.db import InterfaceError, OperationalError

from engage.selectors import origin_allowed_by_last_list, origin_allowed_for_any_app

logger = logging.getLogger(__name__)


def cors_allow_app_origins(sender: Any, request: Any, **kwargs: Any) -> bool:
    origin = request.headers.get("Origin")
    if not origin:
        return False
    try:
        return origin_allowed_for_any_app(origin)
    except SynchronousOnlyOperation:
        # corsheaders runs as async middleware under ASGI; when the cached list has just
        # expired there, the list as last read (seconds old) answers instead of a query.
        return origin_allowed_by_last_list(origin)
    except (OperationalError, InterfaceError):
        # This runs in middleware, outside the view's 503 handling: with the database down,
        # answer without CORS headers and let the view answer 503 (the widget retries).
        logger.warning("database unavailable while checking the CORS origin %r", origin)
        return False
