"""Plain views of the engage app: health check and JSON 404/500 for API paths."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found, server_error

from engage import errors


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: answers without touching the database (also the benchmarks' baseline)."""
    return JsonResponse({"ok": True})


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/ws/"))


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(errors.NotFound("Not found.").as_dict(), status=404)
    return page_not_found(request, exception or Exception("not found"))


def server_failure(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    if _is_api(request):
        error = errors.EngageError("Internal error.", code="internal_error", status=500)
        return JsonResponse(error.as_dict(), status=500)
    return server_error(request)
