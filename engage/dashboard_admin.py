"""Admin page "Overview": the App's home for Parker, built from the registered panels.

`/admin/engage/app/<id>/overview/` shows one App; `/admin/engage/app/overview/` opens the
first App's. The page is added to the default admin site's URLs, listed under "Engage" on the
admin index, and linked from each App's change page (object tools).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from engage.dashboard import DEFAULT_PERIOD, PERIODS, dashboard_build, dashboard_period
from engage.models import App

URL_NAME = "engage_app_overview"
INDEX_URL_NAME = "engage_overview"
PERMISSION = "engage.view_app"


def _days(request: HttpRequest) -> int:
    try:
        days = int(request.GET.get("days") or DEFAULT_PERIOD)
    except ValueError:
        return DEFAULT_PERIOD
    return days if days in PERIODS else DEFAULT_PERIOD


def overview_view(request: HttpRequest, app_id: int) -> HttpResponse:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    app = get_object_or_404(App, pk=app_id)
    days = _days(request)
    period = dashboard_period(days=days)
    context = {
        **admin.site.each_context(request),
        "title": f"{app.name}: overview",
        "subtitle": None,
        "app": app,
        "apps": list(App.objects.order_by("name").values_list("pk", "name")),
        "days": days,
        "periods": PERIODS,
        "period": period,
        "panels": dashboard_build(app=app, period=period),
        "opts": App._meta,
    }
    return TemplateResponse(request, "admin/engage/app/overview.html", context)


def overview_index_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    first = App.objects.order_by("name").values_list("pk", flat=True).first()
    if first is None:
        return HttpResponseRedirect(reverse("admin:engage_app_changelist"))
    return HttpResponseRedirect(reverse(f"admin:{URL_NAME}", args=[first]))


def _install(site: admin.AdminSite) -> None:
    """Add the pages to the site's URLs and an "Overview" entry to the Engage list."""
    if getattr(site, "_engage_overview", False):
        return
    site_urls = site.get_urls
    site_app_list = site.get_app_list

    def get_urls() -> list[URLPattern | Any]:
        return [
            path(
                "engage/app/overview/",
                site.admin_view(overview_index_view),
                name=INDEX_URL_NAME,
            ),
            path(
                "engage/app/<int:app_id>/overview/",
                site.admin_view(overview_view),
                name=URL_NAME,
            ),
            *site_urls(),
        ]

    def get_app_list(request: HttpRequest, app_label: str | None = None) -> list[Any]:
        app_list = site_app_list(request, app_label)
        if not request.user.has_perm(PERMISSION):
            return app_list
        for entry in app_list:
            if entry["app_label"] == "engage":
                entry["models"].insert(
                    0,
                    {
                        "name": "Overview",
                        "object_name": "Overview",
                        "perms": {"add": False, "change": False, "delete": False, "view": True},
                        "admin_url": reverse(f"admin:{INDEX_URL_NAME}", current_app=site.name),
                        "add_url": None,
                        "view_only": True,
                    },
                )
        return app_list

    site.get_urls = get_urls  # type: ignore[method-assign]
    site.get_app_list = get_app_list  # type: ignore[method-assign]
    site._engage_overview = True  # type: ignore[attr-defined]


_install(admin.site)
