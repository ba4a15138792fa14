"""Turns a database outage into 503 + Retry-After so that trackers and clients retry."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

from engage import errors

logger = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    # MiddlewareMixin serves both sync and async chains: a sync-only middleware among async
    # ones makes every request under Daphne hop event loop -> thread -> event loop -> thread.

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, OperationalError | InterfaceError):
            logger.warning("database unavailable: %s", exception)
            error = errors.ServiceUnavailable("The database is unavailable; retry shortly.")
            response = JsonResponse(error.as_dict(), status=503)
            response["Retry-After"] = "5"
            return response
        return None
