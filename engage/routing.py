"""Channels routes: lean HTTP consumers on hot paths and the websocket endpoints."""

from typing import Any

from django.urls import re_path

from segments.api.consumers import CollectorConsumer

http_routes: list[Any] = [
    re_path(r"^(?:i|com\.snowplowanalytics\.snowplow/tp2)/?$", CollectorConsumer.as_asgi()),
]
websocket_routes: list[Any] = []
