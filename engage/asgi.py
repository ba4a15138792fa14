"""ASGI entry point: HTTP (Django), static files and websockets from one Daphne process."""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "engage.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from engage.routing import http_routes, websocket_routes  # noqa: E402


def _http_app() -> Any:
    # One process serves static files too (the widget), as DESIGN.md promises.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    app = ASGIStaticFilesHandler(django_asgi_app)
    if http_routes:
        return URLRouter([*http_routes, *_fallback(app)])
    return app


def _fallback(app: Any) -> list[Any]:
    from django.urls import re_path

    return [re_path(r"", app)]


application = ProtocolTypeRouter(
    {
        "http": _http_app(),
        "websocket": URLRouter(websocket_routes),
    }
)
