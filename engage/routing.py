"""Channels routes: lean HTTP consumers on hot paths and the websocket endpoints."""

import os
from typing import Any

from django.conf import settings
from django.urls import re_path

from engage.realtime.consumers import EchoConsumer, WidgetConsumer
from segments.api.consumers import CollectorConsumer

http_routes: list[Any] = [
    re_path(r"^(?:i|com\.snowplowanalytics\.snowplow/tp2)/?$", CollectorConsumer.as_asgi()),
]
websocket_routes: list[Any] = [
    re_path(r"^ws/v1/widget/?$", WidgetConsumer.as_asgi()),
]
if settings.DEBUG or os.environ.get("ENGAGE_BENCH_ECHO") == "1":
    # A plain echo socket: the benchmark's baseline round trip (bench/ws_fanout.py).
    websocket_routes.append(re_path(r"^ws/echo/?$", EchoConsumer.as_asgi()))
