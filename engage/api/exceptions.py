"""The one exception handler: every error is `{"error": {"code", "message", "details"?}}`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response

from engage import errors


def _first_message(detail: Any, path: str = "") -> tuple[str, str]:
    """The first (field path, message) in a DRF error detail, for a message that names it."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            sub = f"{path}.{key}" if path else str(key)
            if key == "non_field_errors":
                sub = path
            return _first_message(value, sub)
    if isinstance(detail, list) and detail:
        if all(isinstance(d, str) for d in detail):
            return path, str(detail[0])
        for i, value in enumerate(detail):
            if value:
                return _first_message(value, f"{path}[{i}]")
    return path, str(detail)


def error_response(error: errors.EngageError, headers: dict[str, str] | None = None) -> Response:
    return Response(error.as_dict(), status=error.status, headers=headers)


def to_engage_error(exc: Exception) -> tuple[errors.EngageError, dict[str, str]] | None:
    headers: dict[str, str] = {}
    if isinstance(exc, errors.EngageError):
        if isinstance(exc, errors.RateLimited) and isinstance(exc.details, dict):
            headers["Retry-After"] = str(exc.details.get("retry_after", 1))
        return exc, headers
    if isinstance(exc, drf.ValidationError):
        path, message = _first_message(exc.detail)
        text = f"{path}: {message}" if path else message
        return errors.InvalidInput(text, details=exc.detail), headers
    if isinstance(exc, drf.ParseError):
        return errors.InvalidInput(
            f"Malformed request body: {exc.detail}", code="malformed_body"
        ), headers
    if isinstance(exc, RequestDataTooBig):
        return errors.PayloadTooLarge("Request body is larger than the limit."), headers
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return errors.NotAuthenticated(str(exc.detail)), headers
    if isinstance(exc, drf.PermissionDenied):
        return errors.PermissionDenied(str(exc.detail)), headers
    if isinstance(exc, Http404 | drf.NotFound):
        return errors.NotFound("Not found."), headers
    if isinstance(exc, drf.MethodNotAllowed):
        return errors.EngageError(str(exc.detail), code="method_not_allowed", status=405), headers
    if isinstance(exc, drf.UnsupportedMediaType):
        return errors.EngageError(
            str(exc.detail), code="unsupported_media_type", status=415
        ), headers
    if isinstance(exc, drf.NotAcceptable):
        return errors.EngageError(str(exc.detail), code="not_acceptable", status=406), headers
    if isinstance(exc, drf.Throttled):
        wait = int(getattr(exc, "wait", None) or 1)
        headers["Retry-After"] = str(max(wait, 1))
        return errors.EngageError(
            "Too many requests.", code="rate_limited", status=429, details={"retry_after": wait}
        ), headers
    if isinstance(exc, OperationalError | InterfaceError) or type(exc) is DatabaseError:
        headers["Retry-After"] = "5"
        return errors.ServiceUnavailable("The database is unavailable; retry shortly."), headers
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    converted = to_engage_error(exc)
    if converted is None:
        return None
    error, headers = converted
    return error_response(error, headers)
