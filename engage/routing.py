"""Channels routes: lean HTTP consumers on hot paths and the websocket endpoints."""

from typing import Any

http_routes: list[Any] = []
websocket_routes: list[Any] = []
