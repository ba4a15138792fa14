"""Plain views of the engage app: health check and JSON 404/500 for API paths."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found, server_error

from engage import errors

# Redoc (the API docs page) comes from its CDN, styles itself inline and searches in a worker.
API_DOCS_CSP = {
    "script-src": ["https://cdn.jsdelivr.net"],
    "style-src": ["'unsafe-inline'", "https://fonts.googleapis.com"],
    "font-src": ["https://fonts.gstatic.com"],
    "worker-src": ["blob:"],
}


def api_docs_csp(view: Any) -> Any:
    """The docs view with the CSP additions Redoc needs (django-csp's csp_update)."""
    from csp.decorators import csp_update

    return csp_update(API_DOCS_CSP)(view)


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
