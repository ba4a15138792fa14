"""Admin page "Incoming events": data debugging for staff, in the spirit of Snowplow Micro.

Good and bad events as received, newest first, filterable by App, status, source and reason,
each with its raw payload. Bad events that could not be tied to any App (an unknown `aid` or
key) are only visible here. The page is added to the default admin site's URLs and listed
under "People, events and segments" on the admin index (it has no model of its own).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from engage import errors
from engage.models import App
from segments.admin import ADMIN_CSS, json_pretty
from segments.models import EventSource
from segments.selectors import (
    DebugEvent,
    debug_cursor_decode,
    debug_cursor_encode,
    debug_events_list,
)

PAGE_SIZE = 50
NO_APP = "none"
URL_NAME = "incoming_events"
PERMISSIONS = ("segments.view_event", "segments.view_badevent")
STATUSES = [("", "Good and bad"), ("good", "Good"), ("bad", "Bad")]


@dataclass(frozen=True)
class IncomingFilters:
    """What Parker or Sasha filtered by. `app` is an App id, NO_APP, or "" for all."""

    app: str = ""
    status: str = ""
    source: str = ""
    reason: str = ""

    @classmethod
    def from_query(cls, query: Any) -> IncomingFilters:
        app = str(query.get("app", "")).strip()
        status = str(query.get("status", "")).strip()
        source = str(query.get("source", "")).strip()
        return cls(
            app=app if app == NO_APP or app.isdigit() else "",
            status=status if status in ("good", "bad") else "",
            source=source if source in EventSource.values else "",
            reason=str(query.get("reason", "")).strip()[:200],
        )

    def as_query(self, **changes: str) -> str:
        values = {
            "app": self.app,
            "status": self.status,
            "source": self.source,
            "reason": self.reason,
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v})

    @property
    def active(self) -> bool:
        return bool(self.app or self.status or self.source or self.reason)


def _glimpse(properties: Any, *, keys: int = 3, width: int = 40) -> str:
    """A few properties on one line, to scan a list: `format: csv · rows: 120`."""
    if not isinstance(properties, dict) or not properties:
        return ""
    parts = []
    for key, value in list(properties.items())[:keys]:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}: {text[:width]}{'…' if len(text) > width else ''}")
    more = len(properties) - keys
    return " · ".join(parts) + (f" · +{more} more" if more > 0 else "")


def _row(event: DebugEvent) -> dict[str, Any]:
    """What the template shows of one event."""
    parsed = event.event or {}
    return {
        "status": event.status,
        "source": EventSource(event.source).label
        if event.source in EventSource.values
        else event.source,
        "received_at": event.received_at,
        "app": event.app_name,
        "name": parsed.get("name"),
        "who": parsed.get("user_id") or (f"anonymous #{parsed['person_id']}" if parsed else ""),
        "reason": event.reason,
        "glimpse": _glimpse(parsed.get("properties")),
        "parsed": json_pretty(parsed) if event.status == "good" else "",
        "raw": json_pretty(event.raw),
    }


def incoming_events_view(request: HttpRequest) -> HttpResponse:
    """The "Incoming events" page (staff with view permission on events and bad events)."""
    if not request.user.has_perms(PERMISSIONS):
        raise PermissionDenied
    filters = IncomingFilters.from_query(request.GET)
    cursor = None
    cursor_text = request.GET.get("cursor", "")
    cursor_error = ""
    if cursor_text:
        try:
            cursor = debug_cursor_decode(cursor_text)
        except errors.InvalidInput:
            cursor_error = "That page link is no longer valid; showing the newest events."
    events = debug_events_list(
        app_id=int(filters.app) if filters.app.isdigit() else None,
        no_app=filters.app == NO_APP,
        status=filters.status or None,
        source=filters.source or None,
        reason=filters.reason or None,
        limit=PAGE_SIZE + 1,
        cursor=cursor,
    )
    more = len(events) > PAGE_SIZE
    events = events[:PAGE_SIZE]
    base = reverse(f"admin:{URL_NAME}")
    older = (
        f"{base}?{filters.as_query(cursor=debug_cursor_encode(events[-1].sort_key))}"
        if more
        else ""
    )
    context = {
        **admin.site.each_context(request),
        "title": "Incoming events",
        "subtitle": None,
        "admin_css": ADMIN_CSS,
        "rows": [_row(e) for e in events],
        "filters": filters,
        "apps": list(App.objects.order_by("name").values_list("pk", "name")),
        "no_app": NO_APP,
        "statuses": STATUSES,
        "sources": EventSource.choices,
        "older_url": older,
        "newest_url": f"{base}?{filters.as_query()}" if cursor is not None else "",
        "reset_url": base,
        "cursor_error": cursor_error,
        "page_size": PAGE_SIZE,
    }
    return TemplateResponse(request, "admin/engage/incoming_events.html", context)


def _install(site: admin.AdminSite) -> None:
    """Add the page to the site's URLs and to the "People, events and segments" list."""
    if getattr(site, "_engage_incoming_events", False):
        return
    site_urls = site.get_urls
    site_app_list = site.get_app_list

    def get_urls() -> list[URLPattern | Any]:
        page = path(
            "segments/incoming-events/",
            site.admin_view(incoming_events_view),
            name=URL_NAME,
        )
        return [page, *site_urls()]

    def get_app_list(request: HttpRequest, app_label: str | None = None) -> list[Any]:
        app_list = site_app_list(request, app_label)
        if not request.user.has_perms(PERMISSIONS):
            return app_list
        for entry in app_list:
            if entry["app_label"] == "segments":
                entry["models"].insert(
                    0,
                    {
                        "name": "Incoming events",
                        "object_name": "IncomingEvents",
                        "perms": {"add": False, "change": False, "delete": False, "view": True},
                        "admin_url": reverse(f"admin:{URL_NAME}", current_app=site.name),
                        "add_url": None,
                        "view_only": True,
                    },
                )
        return app_list

    site.get_urls = get_urls  # type: ignore[method-assign]
    site.get_app_list = get_app_list  # type: ignore[method-assign]
    site._engage_incoming_events = True  # type: ignore[attr-defined]


_install(admin.site)
