"""Admin pages for "why did (or didn't) this person see it?" and for previews.

- "Check a person" (`admin/engage/explain/`): the explain of one person for one campaign (any
  kind, any status) or for every live campaign, with each check's verdict. Linked from the
  message and survey change pages; the Person change page shows the same panel inline.
- "Preview" (`admin/engage/preview/`): show a campaign now on a test user's open widgets, or
  make a one-time preview link for the host app.
- App admin pieces: test users and identity failures as inlines, and the identity secret
  rotation action (engage/admin.py lists them).
Each page is a door: it validates the form and calls one service.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from engage import errors
from engage.campaigns import campaign_kind_get
from engage.explain import Explanation, targeting_explain
from engage.identity import identity_secret_rotate
from engage.models import App, Campaign, IdentityFailure, TestUser
from engage.preview import campaign_preview, preview_link_create
from engage.targeting import Moment
from segments.admin import ADMIN_CSS, PersonAdmin
from segments.models import Person

EXPLAIN_URL = "engage_explain"
PREVIEW_URL = "engage_preview"
IDENTITY_GRACE = timedelta(days=7)


# --- App admin pieces -------------------------------------------------------------------------


class TestUserInline(admin.TabularInline):
    """Team members' user ids: drafts can be previewed on their open widgets."""

    model = TestUser
    extra = 1
    fields = ["user_id", "note"]
    verbose_name = "test user"


class IdentityFailureInline(admin.TabularInline):
    """Failed identity proofs by day and cause, with the latest examples (read-only)."""

    model = IdentityFailure
    extra = 0
    max_num = 0
    can_delete = False
    fields = ["day", "cause", "count", "allowed", "last_at", "latest_examples"]
    readonly_fields = ["day", "cause", "count", "allowed", "last_at", "latest_examples"]
    verbose_name = "identity failure"
    verbose_name_plural = "identity failures (latest 30 days)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[IdentityFailure]:
        from django.utils import timezone

        since = timezone.now().date() - timedelta(days=30)
        return super().get_queryset(request).filter(day__gte=since)

    @admin.display(description="latest examples")
    def latest_examples(self, obj: IdentityFailure) -> SafeString:
        rows = [
            format_html(
                "<li><code>{}</code> via {} at {}{}</li>",
                e.get("user_id", ""),
                e.get("door", ""),
                str(e.get("at", ""))[:19].replace("T", " "),
                " (let through)" if e.get("allowed") else "",
            )
            for e in (obj.examples or [])[:5]
        ]
        return format_html("<ul class='engage-examples'>{}</ul>", mark_safe("".join(rows)))  # noqa: S308 - each row escaped above


@admin.action(description="Rotate the identity secret (the old one works 7 days more)")
def rotate_identity_secret(
    modeladmin: admin.ModelAdmin[App], request: HttpRequest, queryset: QuerySet[App]
) -> None:
    for app in queryset:
        app = identity_secret_rotate(app=app, grace=IDENTITY_GRACE)
        until = app.identity_secret_previous_until
        modeladmin.log_change(request, app, "Rotated the identity secret.")
        messages.warning(
            request,
            f"New identity secret of {app.name}: {app.identity_secret}; hashes and tokens made "
            f"with the previous one work until {until:%Y-%m-%d %H:%M} UTC.",
        )


# --- check a person ---------------------------------------------------------------------------


class ExplainForm(forms.Form):
    app = forms.ModelChoiceField(queryset=App.objects.order_by("name"), required=False)
    kind = forms.CharField(required=False, widget=forms.HiddenInput)
    campaign = forms.IntegerField(required=False, widget=forms.HiddenInput)
    user_id = forms.CharField(required=False, max_length=255, label="User id")
    anonymous_id = forms.CharField(required=False, max_length=255, label="or anonymous id")
    url = forms.CharField(required=False, max_length=4096, label="Page URL")
    event = forms.CharField(required=False, max_length=255, label="Event")
    locale = forms.CharField(required=False, max_length=35)


def _campaign_of(kind: str, campaign_id: int | None) -> Campaign | None:
    if not kind or not campaign_id:
        return None
    model = campaign_kind_get(kind).model
    found: Campaign | None = (
        model._default_manager.select_related("app").filter(pk=campaign_id).first()
    )
    return found


def explain_panel(explanation: Explanation) -> str:
    """The explanation as HTML (the explain page and the Person page share it)."""
    return render_to_string("admin/engage/explain_panel.html", {"explanation": explanation})


def _admin_context(request: HttpRequest, title: str) -> dict[str, Any]:
    return {**admin.site.each_context(request), "title": title, "admin_css": ADMIN_CSS}


def explain_view(request: HttpRequest) -> HttpResponse:
    """Check a person: explain one campaign (from its change page) or every live one."""
    if not request.user.has_perm("engage.view_app"):
        raise PermissionDenied
    form = ExplainForm(request.GET or None)
    explanation = None
    error = ""
    campaign = None
    if form.is_valid():
        data = form.cleaned_data
        try:
            campaign = _campaign_of(data["kind"], data["campaign"])
        except errors.EngageError as exc:
            error = exc.message
        app = campaign.app if campaign is not None else data["app"]
        if data["campaign"] and campaign is None and not error:
            error = "No such campaign."
        elif app is None:
            error = "Choose an App."
        elif not data["user_id"] and not data["anonymous_id"]:
            error = ""  # the empty form
        else:
            try:
                explanation = targeting_explain(
                    app=app,
                    user_id=data["user_id"] or None,
                    anonymous_id=data["anonymous_id"] or None,
                    moment=Moment(
                        url=data["url"] or None,
                        event=data["event"] or None,
                        locale=data["locale"] or None,
                    ),
                    campaign=(data["kind"], campaign.pk) if campaign is not None else None,
                )
            except errors.EngageError as exc:
                error = exc.message
    context = {
        **_admin_context(request, "Check a person"),
        "form": form,
        "campaign": campaign,
        "campaign_kind": form.data.get("kind", ""),
        "explanation": explanation,
        "panel": mark_safe(explain_panel(explanation)) if explanation else "",  # noqa: S308 - rendered by a template
        "error": error,
    }
    return TemplateResponse(request, "admin/engage/explain.html", context)


# --- preview ----------------------------------------------------------------------------------


def preview_view(request: HttpRequest) -> HttpResponse:
    """Preview a campaign on a test user's open widgets, or make a one-time preview link."""
    if not request.user.has_perm("engage.view_app"):
        raise PermissionDenied
    params = request.POST if request.method == "POST" else request.GET
    kind = params.get("kind", "")
    try:
        campaign = _campaign_of(kind, int(params.get("campaign") or 0))
    except (ValueError, errors.EngageError):
        campaign = None
    if campaign is None:
        raise Http404("No such campaign.")
    app = campaign.app
    link = ""
    if request.method == "POST":
        if not request.user.has_perm(f"{campaign._meta.app_label}.change_{kind}"):
            raise PermissionDenied
        try:
            if params.get("action") == "link":
                link = preview_link_create(
                    app=app, kind=kind, campaign_id=campaign.pk, url=params.get("url", "")
                )
                messages.success(request, "Preview link made: it works once, for 30 minutes.")
            else:
                previewed = campaign_preview(
                    app=app,
                    kind=kind,
                    campaign_id=campaign.pk,
                    user_id=params.get("user_id", ""),
                )
                messages.success(
                    request,
                    f"Sent to {params.get('user_id')} on {previewed.connections} open "
                    f"widget{'s' if previewed.connections != 1 else ''}; the delivery is a test "
                    "and never counts in results.",
                )
                url = reverse(f"admin:{PREVIEW_URL}")
                return HttpResponseRedirect(f"{url}?kind={kind}&campaign={campaign.pk}")
        except errors.EngageError as exc:
            messages.error(request, exc.message)
    context = {
        **_admin_context(request, f"Preview “{campaign.name}”"),
        "campaign": campaign,
        "kind": kind,
        "test_users": list(TestUser.objects.filter(app=app)),
        "origins": app.allowed_origins,
        "link": link,
        "url_value": params.get("url", app.allowed_origins[0] if app.allowed_origins else ""),
        "app_url": reverse("admin:engage_app_change", args=[app.pk]),
        "change_url": reverse(
            f"admin:{campaign._meta.app_label}_{campaign._meta.model_name}_change",
            args=[campaign.pk],
        ),
    }
    return TemplateResponse(request, "admin/engage/preview.html", context)


def campaign_admin_links(kind: str, campaign: Campaign) -> dict[str, str]:
    """The "Check a person" and "Preview" URLs of a campaign's change page."""
    query = f"?kind={kind}&campaign={campaign.pk}"
    return {
        "explain_url": reverse(f"admin:{EXPLAIN_URL}") + query,
        "preview_url": reverse(f"admin:{PREVIEW_URL}") + query,
    }


# --- the Person page --------------------------------------------------------------------------


class PersonExplainAdmin(PersonAdmin):
    """The Person admin with a panel explaining every live campaign for this person now."""

    readonly_fields = [*PersonAdmin.readonly_fields, "campaigns_now"]

    class Media:
        css = {"all": ["engage/admin/explain.css"]}

    @admin.display(description="Campaigns now")
    def campaigns_now(self, obj: Person) -> SafeString:
        if obj.pk is None:
            return mark_safe("")
        explanation = targeting_explain(
            app=obj.app,
            user_id=obj.user_id or None,
            anonymous_id=None if obj.user_id else _first_anonymous_id(obj),
            moment=Moment(),
        )
        query = f"?app={obj.app_id}&user_id={obj.user_id or ''}"
        if not obj.user_id:
            query = f"?app={obj.app_id}&anonymous_id={_first_anonymous_id(obj) or ''}"
        link = format_html(
            '<p><a href="{}{}">Check this person for a page, an event or one campaign…</a></p>',
            reverse(f"admin:{EXPLAIN_URL}"),
            query,
        )
        return mark_safe(link + explain_panel(explanation))  # noqa: S308 - both rendered safely


def _first_anonymous_id(person: Person) -> str | None:
    found: str | None = (
        person.anonymous_ids.order_by("id").values_list("anonymous_id", flat=True).first()
    )
    return found


def _install(site: admin.AdminSite) -> None:
    if getattr(site, "_engage_explain", False):
        return
    site_urls = site.get_urls

    def get_urls() -> list[URLPattern | Any]:
        pages = [
            path("engage/explain/", site.admin_view(explain_view), name=EXPLAIN_URL),
            path("engage/preview/", site.admin_view(preview_view), name=PREVIEW_URL),
        ]
        return [*pages, *site_urls()]

    site_app_list = site.get_app_list

    def get_app_list(request: HttpRequest, app_label: str | None = None) -> list[Any]:
        app_list = site_app_list(request, app_label)
        if not request.user.has_perm("engage.view_app"):
            return app_list
        for entry in app_list:
            if entry["app_label"] == "engage":
                entry["models"].append(
                    {
                        "name": "Check a person",
                        "object_name": "CheckAPerson",
                        "perms": {"add": False, "change": False, "delete": False, "view": True},
                        "admin_url": reverse(f"admin:{EXPLAIN_URL}", current_app=site.name),
                        "add_url": None,
                        "view_only": True,
                    }
                )
        return app_list

    site.get_urls = get_urls  # type: ignore[method-assign]
    site.get_app_list = get_app_list  # type: ignore[method-assign]
    if site.is_registered(Person):
        site.unregister(Person)
    site.register(Person, PersonExplainAdmin)
    site._engage_explain = True  # type: ignore[attr-defined]


_install(admin.site)
