"""Admin page "Incoming events": data debugging for staff, in the spirit of Snowplow Micro.

Good and bad events as received, newest first, filterable by App, status, source and reason,
each with its raw payload. Bad events that could not be tied to any App (an unknown `aid` or
key) are only visible here. The page is added to the default admin site's URLs and listed
under "People, events and segments" on the admin index (it has no model of its own).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from engage import errors
from engage.models import App
from segments.admin import ADMIN_CSS, json_pretty
from segments.models import BadEvent, Event, EventSource
from segments.selectors import DebugEvent, debug_cursor_decode, debug_cursor_encode

PAGE_SIZE = 50
NO_APP = "none"
URL_NAME = "incoming_events"
PERMISSIONS = ("segments.view_event", "segments.view_badevent")
STATUSES = [("", "Good and bad"), ("good", "Good"), ("bad", "Bad")]

# Good and bad events form one stream ordered by (received_at, rank, id), newest first, as in
# `segments.selectors.debug_events_list`; a cursor is the sort key of the last row shown.
_RANK = {"good": 1, "bad": 0}


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


def _after(rank: int, cursor: tuple[datetime, int, int] | None) -> Q:
    if cursor is None:
        return Q()
    at, cursor_rank, cursor_id = cursor
    if rank < cursor_rank:
        tail = Q(received_at=at)
    elif rank == cursor_rank:
        tail = Q(received_at=at, id__lt=cursor_id)
    else:
        tail = Q(pk__in=[])
    return Q(received_at__lt=at) | tail


def incoming_events_list(
    *, filters: IncomingFilters, limit: int, cursor: tuple[datetime, int, int] | None
) -> list[DebugEvent]:
    """Good and bad events as received, newest first, for staff: any App or none.

    Same rows and order as `debug_events_list` (which answers one App's secret key), plus
    the filters of the admin page. A reason filter keeps only bad events (good ones have none).
    Two queries at most; each good row's person and every row's App come with it.
    """
    rows: list[DebugEvent] = []
    want_good = filters.status in ("", "good") and not filters.reason and filters.app != NO_APP
    if want_good:
        good: QuerySet[Event] = Event.objects.filter(_after(_RANK["good"], cursor))
        if filters.app:
            good = good.filter(app_id=int(filters.app))
        if filters.source:
            good = good.filter(source=filters.source)
        for e in good.select_related("person", "app").order_by("-received_at", "-id")[:limit]:
            rows.append(
                DebugEvent(
                    status="good",
                    source=e.source,
                    received_at=e.received_at,
                    raw=e.raw,
                    event={
                        "app": e.app.name,
                        "name": e.name,
                        "user_id": e.person.user_id,
                        "person_id": e.person_id,
                        "properties": e.properties,
                        "contexts": e.contexts,
                        "timestamp": e.timestamp,
                        "dedup_id": e.dedup_id,
                    },
                    reason=None,
                    sort_key=(e.received_at, _RANK["good"], e.pk),
                )
            )
    if filters.status in ("", "bad"):
        bad: QuerySet[BadEvent] = BadEvent.objects.filter(_after(_RANK["bad"], cursor))
        if filters.app == NO_APP:
            bad = bad.filter(app__isnull=True)
        elif filters.app:
            bad = bad.filter(app_id=int(filters.app))
        if filters.source:
            bad = bad.filter(source=filters.source)
        if filters.reason:
            bad = bad.filter(reason__icontains=filters.reason)
        for b in bad.select_related("app").order_by("-received_at", "-id")[:limit]:
            rows.append(
                DebugEvent(
                    status="bad",
                    source=b.source,
                    received_at=b.received_at,
                    raw=b.raw,
                    event={"app": b.app.name if b.app else None},
                    reason=b.reason,
                    sort_key=(b.received_at, _RANK["bad"], b.pk),
                )
            )
    rows.sort(key=lambda r: r.sort_key, reverse=True)
    return rows[:limit]


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
    parsed = dict(event.event or {})
    app_name = parsed.pop("app", None)
    return {
        "status": event.status,
        "source": EventSource(event.source).label
        if event.source in EventSource.values
        else event.source,
        "received_at": event.received_at,
        "app": app_name,
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
    events = incoming_events_list(filters=filters, limit=PAGE_SIZE + 1, cursor=cursor)
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
