"""Admin for messages: Parker writes, previews, targets, schedules, publishes and reads results.

The change form groups the fields as Parker thinks of them (content, audience, trigger, display
rules, schedule, goal). Beside the content, a live preview shows the message as the widget will
(rendered by the server with `content_render`); beside the audience condition, its words, its
checked tree and the live audience size. Every write goes through `engage.campaigns`:
creating and editing while the form validates (a refusal is a form error, nothing is saved),
and status changes through buttons and list actions (a refused transition is an error message).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_POST

from engage.admin_insights import (
    EXPERIMENT_FIELDS,
    EXPERIMENT_FIELDSET,
    experiment_form_clean,
    experiment_form_init,
    kpi_section,
)
from engage.campaigns import (
    campaign_archive,
    campaign_create,
    campaign_delete,
    campaign_kind_get,
    campaign_pause,
    campaign_publish,
    campaign_update,
)
from engage.errors import EngageError, InvalidInput
from engage.experiments import campaign_results
from engage.models import App, Campaign, CampaignStatus, TriggerOn
from messaging.content import content_render, content_validate, variants_validate
from messaging.models import Message, MessageKind
from segments.admin import (
    ADMIN_CSS,
    CONDITION_JS,
    ConditionReport,
    ConditionWidget,
    app_from,
    condition_answer,
    condition_json_text,
    condition_report,
    error_field,
    json_body,
    text_of,
)
from segments.conditions import (
    ConditionError,
    ConditionInvalid,
    condition_describe,
    condition_people,
    parse_condition,
)
from segments.models import Segment
from segments.selectors import segment_resolver_for_app

KIND = "message"
MESSAGE_JS = "engage/admin/message.js"
RESULTS_JS = "engage/admin/results.js"
CHART_JS = "engage/vendor/chart.umd.js"

URL_OPS = [
    ("", "any page"),
    ("contains", "URL contains"),
    ("eq", "URL is exactly"),
    ("starts_with", "URL starts with"),
    ("ends_with", "URL ends with"),
    ("not_contains", "URL does not contain"),
    ("regex", "URL matches the regex"),
]

# Errors of the campaign services name API fields; these are the form fields that hold them.
ERROR_FIELDS = {
    "audience.segments": "audience_segments",
    "audience.condition": "audience_condition",
    "audience": "audience_condition",
    "trigger.on": "trigger_on",
    "trigger.event": "trigger_event",
    "trigger.url": "trigger_url_value",
    "trigger.delay_seconds": "trigger_delay_seconds",
    "trigger": "trigger_on",
    "status": None,
}

EXAMPLE_CONTENT = {
    "en": {
        "title": "New: CSV export",
        "body": "Export **any** report as CSV.",
        "buttons": [
            {"label": "Try it", "action": "url", "url": "/reports/export"},
            {"label": "Later", "action": "dismiss"},
        ],
    }
}


# --- audience size ------------------------------------------------------------------------------


def audience_people_count(*, app: App, segments: list[str], condition: Any) -> int:
    """How many people of the App a campaign audience (all its segments AND its condition)
    admits now, as the targeting engine combines them. Context leaves (page URL, locale,
    device) are decided at the moment, so they count as true: the number is an upper bound.

    Before: `condition` is valid for campaign audiences. One COUNT query.
    """
    parts: list[Any] = [{"segment": slug} for slug in segments]
    if condition is not None:
        parts.append(condition)
    people = condition_people(
        parse_condition({"all": parts}, allow_context=True),
        app=app,
        now=timezone.now(),
        segment_resolver=segment_resolver_for_app(app),
        context="upper_bound",
    )
    return people.count()


# --- widgets ------------------------------------------------------------------------------------


class SegmentCheckboxes(forms.CheckboxSelectMultiple):
    """Segment checkboxes that know their App, so the form shows only the chosen App's."""

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(*args, **kwargs)
        instance = getattr(option["value"], "instance", None)
        if isinstance(instance, Segment):
            option["attrs"]["data-app"] = str(instance.app_id)
        return option


class SegmentChoices(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.slug})"


class ContentWidget(forms.Textarea):
    """The content's JSON with, beside it, the live preview of the message as the widget
    renders it (updated by `message.js`)."""

    template_name = "admin/messaging/widgets/content.html"

    def __init__(self) -> None:
        super().__init__(attrs={"rows": 22, "cols": 60, "spellcheck": "false"})
        self.preview_url = ""
        self.object_id: int | None = None

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["preview"] = {"url": self.preview_url, "object_id": self.object_id or ""}
        return context


def _json_field(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{name}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc


# --- the form -----------------------------------------------------------------------------------


class MessageForm(forms.ModelForm):
    """Fields as Parker thinks of them, composed into the campaign services' data on save.

    The service runs when the form is validated, inside the admin's transaction, so whatever
    it refuses becomes a form error at the field it names and nothing is half-saved.
    """

    content = forms.CharField(
        widget=ContentWidget(),
        help_text=(
            "One entry per language: "
            '{"en": {"title": …, "body": "markdown", "buttons": [{"label": "Try it", '
            '"action": "url", "url": "/reports"}, {"label": "Later", "action": "dismiss"}]}}. '
            "Button actions: url, dismiss, event (with an event name)."
        ),
    )
    variants = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 60, "spellcheck": "false"}),
        help_text=(
            "Optional A/B test: "
            '[{"key": "A", "weight": 50}, {"key": "B", "weight": 50, "content": {"en": {…}}}]. '
            "Weights sum to 100; a variant without content shows the content above."
        ),
    )
    audience_segments = SegmentChoices(
        queryset=Segment.objects.select_related("app").order_by("name"),
        required=False,
        widget=SegmentCheckboxes,
        label="Segments",
        help_text="People must be in every ticked segment. None ticked: no segment needed.",
    )
    audience_condition = forms.CharField(
        required=False,
        label="And also",
        widget=ConditionWidget(
            allow_context=True,
            required=False,
            count_label="Audience now",
            extra_fields=["app", "audience_segments", "sample_percent", "holdout_percent"],
            rows=10,
        ),
        help_text=(
            "Optional condition, in the segments' language, plus the moment's "
            '{"page_url"|"locale"|"device": {"op", "value"}}. Empty: everyone in the segments.'
        ),
    )
    trigger_on = forms.ChoiceField(
        choices=TriggerOn.choices, label="Show it on", initial=TriggerOn.PAGE_VIEW
    )
    trigger_event = forms.CharField(
        required=False,
        label="Event name",
        help_text="For “Event”: the event that shows it, e.g. export_clicked.",
    )
    trigger_url_op = forms.ChoiceField(choices=URL_OPS, required=False, label="Which pages")
    trigger_url_value = forms.CharField(
        required=False, label="URL text", help_text="e.g. /reports (matched on the full URL)."
    )
    trigger_delay_seconds = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=86_400,
        label="Delay (seconds)",
        help_text="Wait this long after the trigger before showing it.",
    )

    class Meta:
        model = Message
        fields = [
            "app",
            "name",
            "kind",
            "priority",
            "sample_percent",
            "holdout_percent",
            "max_impressions",
            "recontact_days",
            "starts_at",
            "ends_at",
            "goal_event",
            "goal_window_days",
            *EXPERIMENT_FIELDS,
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        message: Message = self.instance
        experiment_form_init(self, message.app_id if message.pk is not None else None)
        content_widget = self.fields["content"].widget
        if isinstance(content_widget, ContentWidget):
            content_widget.preview_url = reverse("admin:messaging_message_preview")
            content_widget.object_id = message.pk
        audience_widget = self.fields["audience_condition"].widget
        if isinstance(audience_widget, ConditionWidget):
            audience_widget.preview_url = reverse("admin:messaging_message_audience")
            audience_widget.object_id = message.pk
        segments_field = self.fields["audience_segments"]
        assert isinstance(segments_field, forms.ModelMultipleChoiceField)  # noqa: S101
        if message.pk is not None:
            segments_field.queryset = Segment.objects.filter(app=message.app_id).order_by("name")
        if message.pk is not None and not self.is_bound:
            audience = message.audience or {}
            trigger = message.trigger or {}
            url = trigger.get("url") or {}
            self.initial.update(
                content=condition_json_text(message.content),
                variants=condition_json_text(message.variants or None),
                audience_segments=list(
                    Segment.objects.filter(
                        app=message.app_id, slug__in=audience.get("segments") or []
                    )
                ),
                audience_condition=condition_json_text(audience.get("condition")),
                trigger_on=trigger.get("on", TriggerOn.API),
                trigger_event=trigger.get("event", ""),
                trigger_url_op=url.get("op", ""),
                trigger_url_value=url.get("value", ""),
                trigger_delay_seconds=trigger.get("delay_seconds"),
            )

    @property
    def _app(self) -> App | None:
        if self.instance.pk is not None:
            return self.instance.app
        app = self.cleaned_data.get("app")
        return app if isinstance(app, App) else None

    def clean_content(self) -> dict[str, Any]:
        try:
            return content_validate(_json_field(self.cleaned_data["content"], "content"))
        except InvalidInput as exc:
            raise ValidationError(exc.message) from exc

    def clean_variants(self) -> list[dict[str, Any]]:
        text = (self.cleaned_data.get("variants") or "").strip()
        if not text:
            return []
        try:
            return variants_validate(_json_field(text, "variants"))
        except InvalidInput as exc:
            raise ValidationError(exc.message) from exc

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        app = self._app
        chosen = cleaned.get("audience_segments") or []
        if app is not None:
            strangers = [s for s in chosen if s.app_id != app.pk]
            if strangers:
                self.add_error(
                    "audience_segments",
                    f'"{strangers[0].name}" belongs to another App ({strangers[0].app.name}).',
                )
        report = condition_report(
            self.data.get("audience_condition"), allow_context=True, required=False
        )
        if report.errors:
            self._condition_refused(report)
        else:
            cleaned["audience_condition"] = report.data
        url_op, url_value = cleaned.get("trigger_url_op"), cleaned.get("trigger_url_value")
        if url_op and not url_value:
            self.add_error("trigger_url_value", "Type the URL text to match, or pick “any page”.")
        experiment_form_clean(self, cleaned)
        return cleaned

    def _condition_refused(self, report: ConditionReport) -> None:
        widget = self.fields["audience_condition"].widget
        assert isinstance(widget, ConditionWidget)  # noqa: S101 - declared above
        widget.report = report
        if "audience_condition" not in self.errors:
            for error in report.errors:
                self.add_error("audience_condition", str(error))

    def campaign_data(self) -> dict[str, Any]:
        """The services' data (the API's shape) from the form's fields."""
        data = self.cleaned_data
        audience: dict[str, Any] = {}
        if data.get("audience_segments"):
            audience["segments"] = [s.slug for s in data["audience_segments"]]
        if data.get("audience_condition") is not None:
            audience["condition"] = data["audience_condition"]
        trigger: dict[str, Any] = {"on": data["trigger_on"]}
        if data.get("trigger_event"):
            trigger["event"] = data["trigger_event"]
        if data.get("trigger_url_op") and data.get("trigger_url_value"):
            trigger["url"] = {"op": data["trigger_url_op"], "value": data["trigger_url_value"]}
        if data.get("trigger_delay_seconds"):
            trigger["delay_seconds"] = data["trigger_delay_seconds"]
        fields = {name: data[name] for name in self._meta.fields or [] if name in data}
        fields.pop("app", None)
        return {
            **fields,
            "content": data["content"],
            "variants": data.get("variants") or [],
            "audience": audience,
            "trigger": trigger,
        }

    def _post_clean(self) -> None:
        # Not Django's model validation: the campaign services validate and save in one step.
        if self.errors:
            return
        try:
            if self.instance.pk is None:
                self.instance = campaign_create(
                    kind=KIND, app=self.cleaned_data["app"], data=self.campaign_data()
                )
            else:
                self.instance = campaign_update(campaign=self.instance, data=self.campaign_data())
        except ConditionInvalid as exc:
            self._condition_refused(
                condition_report(
                    self.data.get("audience_condition"),
                    allow_context=True,
                    required=False,
                    extra_errors=exc.errors,
                )
            )
        except InvalidInput as exc:
            field = error_field(exc.message, self.fields, ERROR_FIELDS)
            if field == "audience_condition" and isinstance(exc.details, list):
                prefix = "audience.condition."
                found = [
                    ConditionError(str(d["path"]).removeprefix(prefix), str(d["message"]))
                    for d in exc.details
                    if isinstance(d, dict)
                ]
                self._condition_refused(
                    condition_report(
                        self.data.get("audience_condition"),
                        allow_context=True,
                        required=False,
                        extra_errors=found,
                    )
                )
            else:
                self.add_error(field, exc.message)
        except ValidationError as exc:
            self.add_error(None, exc)


# --- the admin ----------------------------------------------------------------------------------

STATUS_COLOURS: dict[str, str] = {
    CampaignStatus.DRAFT: "draft",
    CampaignStatus.SCHEDULED: "scheduled",
    CampaignStatus.LIVE: "live",
    CampaignStatus.PAUSED: "paused",
    CampaignStatus.ARCHIVED: "archived",
}


def status_badge(status: str) -> SafeString:
    return format_html(
        '<span class="engage-status engage-status-{}">{}</span>',
        STATUS_COLOURS.get(status, "draft"),
        CampaignStatus(status).label if status in CampaignStatus.values else status,
    )


StatusChange = Callable[..., Campaign]
STATUS_ACTIONS: dict[str, tuple[StatusChange, str]] = {
    "publish": (campaign_publish, "published"),
    "pause": (campaign_pause, "paused"),
    "archive": (campaign_archive, "archived"),
}


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    form = MessageForm
    change_form_template = "admin/messaging/message/change_form.html"
    list_display = [
        "name",
        "status_display",
        "kind",
        "app",
        "audience_display",
        "priority",
        "starts_at",
        "results_link",
    ]
    list_display_links = ["name"]
    list_filter = ["status", "kind", "app"]
    list_select_related = ["app"]
    search_fields = ["name", "goal_event"]
    save_as = False
    save_on_top = True
    actions = ["publish_selected", "pause_selected", "archive_selected"]
    fieldsets = [
        (None, {"fields": ["app", "name", "kind"]}),
        (
            "Content",
            {
                "fields": ["content", "variants"],
                "classes": ["wide"],
                "description": (
                    "What people see. The preview on the right updates as you type; pick a "
                    "language or an A/B variant above it."
                ),
            },
        ),
        (
            "Audience",
            {
                "fields": ["audience_segments", "audience_condition"],
                "classes": ["wide"],
                "description": "Who may see it: everyone in the ticked segments who also "
                "matches the condition.",
            },
        ),
        (
            "Trigger",
            {
                "fields": [
                    "trigger_on",
                    "trigger_event",
                    ("trigger_url_op", "trigger_url_value"),
                    "trigger_delay_seconds",
                ],
                "description": "When it shows.",
            },
        ),
        (
            "Display rules",
            {
                "fields": [
                    "priority",
                    ("sample_percent", "holdout_percent"),
                    ("max_impressions", "recontact_days"),
                ],
            },
        ),
        (
            "Schedule",
            {
                "fields": ["starts_at", "ends_at"],
                "description": "Optional window. With a start in the future, publishing "
                "schedules it; it goes live and ends by itself.",
            },
        ),
        ("Goal", {"fields": ["goal_event", "goal_window_days"]}),
        EXPERIMENT_FIELDSET,
    ]

    class Media:
        css = {"all": [ADMIN_CSS]}
        js = [CONDITION_JS, MESSAGE_JS]

    # --- list ---

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: Message) -> SafeString:
        return status_badge(obj.status)

    @admin.display(description="audience")
    def audience_display(self, obj: Message) -> str:
        return audience_words(obj.audience or {})

    @admin.display(description="results")
    def results_link(self, obj: Message) -> SafeString:
        return format_html(
            '<a href="{}">Results</a>', reverse("admin:messaging_message_results", args=[obj.pk])
        )

    # --- form ---

    def get_readonly_fields(self, request: HttpRequest, obj: Message | None = None) -> list[str]:
        return ["app"] if obj is not None else []

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial: dict[str, Any] = dict(super().get_changeform_initial_data(request))
        if "app" not in initial:
            apps = list(App.objects.values_list("pk", flat=True)[:2])
            if len(apps) == 1:
                initial["app"] = apps[0]
        initial.setdefault("content", condition_json_text(EXAMPLE_CONTENT))
        return initial

    def save_model(self, request: HttpRequest, obj: Message, form: Any, change: bool) -> None:
        """Saved by the campaign service while the form was validated (see MessageForm)."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """A message has no related rows to save."""

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Message | None = None,
    ) -> HttpResponse:
        if obj is not None:
            buttons = [
                {**b, "url": reverse("admin:messaging_message_status", args=[obj.pk, b["action"]])}
                for b in status_buttons(obj)
            ]
            context.update(
                status_badge=status_badge(obj.status),
                status_buttons=buttons,
                can_schedule=obj.status
                in (CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.SCHEDULED),
                schedule_url=reverse("admin:messaging_message_status", args=[obj.pk, "schedule"]),
                starts_at_local=_local_input(obj.starts_at),
                timezone_name=timezone.get_current_timezone_name(),
                results_url=reverse("admin:messaging_message_results", args=[obj.pk]),
                audience_words=audience_words(obj.audience or {}),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- delete: only drafts, through the service ---

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        # Only drafts can be deleted; published messages are archived so results stay.
        if obj is not None and obj.status != CampaignStatus.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Message) -> None:
        campaign_delete(campaign=obj)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except EngageError as exc:
            messages.error(request, f"Not deleted: {exc.message}")
            return HttpResponseRedirect(reverse("admin:messaging_message_change", args=[object_id]))

    # --- status changes ---

    def _status_many(self, request: HttpRequest, queryset: QuerySet[Message], action: str) -> None:
        change, done = STATUS_ACTIONS[action]
        changed = []
        for message in queryset:
            try:
                with transaction.atomic():
                    change(campaign=message)
                self.log_change(request, message, f"{done.capitalize()} (list action).")
                changed.append(message.name)
            except EngageError as exc:
                messages.error(request, f"“{message.name}” was not {done}: {exc.message}")
        if changed:
            messages.success(request, f"{done.capitalize()}: {', '.join(changed)}.")

    @admin.action(description="Publish selected messages", permissions=["change"])
    def publish_selected(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        self._status_many(request, queryset, "publish")

    @admin.action(description="Pause selected messages", permissions=["change"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        self._status_many(request, queryset, "pause")

    @admin.action(description="Archive selected messages", permissions=["change"])
    def archive_selected(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        self._status_many(request, queryset, "archive")

    def status_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        """A status button of the change page: publish, pause, archive or schedule."""
        message = self.get_object(request, object_id)
        if message is None:
            raise Http404(f"No message with id {object_id}.")
        if not self.has_change_permission(request, message):
            raise PermissionDenied
        back = HttpResponseRedirect(reverse("admin:messaging_message_change", args=[message.pk]))
        try:
            if action == "schedule":
                starts_at = _parse_local(request.POST.get("starts_at", ""))
                message = message_schedule(message=message, starts_at=starts_at)
                self.log_change(
                    request, message, f"Scheduled to go live at {starts_at:%Y-%m-%d %H:%M %Z}."
                )
                messages.success(
                    request,
                    f"“{message.name}” is scheduled: it goes live on "
                    f"{timezone.localtime(starts_at):%Y-%m-%d %H:%M} "
                    f"({timezone.get_current_timezone_name()}).",
                )
                return back
            if action not in STATUS_ACTIONS:
                raise InvalidInput(f"status: unknown action {action!r}")
            change, _ = STATUS_ACTIONS[action]
            message = change(campaign=message)
        except EngageError as exc:
            messages.error(request, f"Not changed: {exc.message}")
            return back
        # Status buttons bypass the change form: record them in the admin log as Django would.
        self.log_change(request, message, f"Status changed to {message.status}.")
        messages.success(request, f"“{message.name}” is now {message.status}.")
        return back

    # --- JSON endpoints of the change form ---

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """The message rendered as the widget will show it, for the live preview."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            body = json_body(request)
        except InvalidInput as exc:
            return JsonResponse(exc.as_dict(), status=400)
        app = app_from(body) or self._app_of(body)
        return JsonResponse(
            message_preview(body, default_locale=app.default_locale if app else "en")
        )

    def audience_view(self, request: HttpRequest) -> HttpResponse:
        """Words, checked tree and live size of an audience (segments AND condition)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            body = json_body(request)
        except InvalidInput as exc:
            return JsonResponse(exc.as_dict(), status=400)
        app = app_from(body) or self._app_of(body)
        report = condition_report(
            text_of(body.get("condition")), allow_context=True, required=False
        )
        answer = condition_answer(report)
        if app is None:
            answer["message"] = "choose an App to count its people"
            return JsonResponse(answer)
        ids = body.get("audience_segments") or []
        ids = [int(i) for i in ids if str(i).isdigit()] if isinstance(ids, list) else []
        slugs = list(
            Segment.objects.filter(app=app, pk__in=ids)
            .order_by("name")
            .values_list("slug", flat=True)
        )
        if len(slugs) != len(ids):
            answer["message"] = "a ticked segment belongs to another App"
            return JsonResponse(answer)
        if not answer["valid"]:
            return JsonResponse(answer)
        audience = {"segments": slugs, "condition": report.data}
        answer["description"] = audience_words(audience)
        count = audience_people_count(app=app, segments=slugs, condition=report.data)
        answer.update(
            count=count,
            note=audience_note(
                count=count,
                has_context=_has_context(report),
                sample_percent=body.get("sample_percent"),
                holdout_percent=body.get("holdout_percent"),
            ),
        )
        return JsonResponse(answer)

    def _app_of(self, body: dict[str, Any]) -> App | None:
        raw = body.get("object_id")
        if raw in (None, "") or not str(raw).isdigit():
            return None
        message = Message.objects.select_related("app").filter(pk=int(str(raw))).first()
        return message.app if message else None

    # --- results ---

    def results_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        message = self.get_object(request, object_id)
        if message is None:
            raise Http404(f"No message with id {object_id}.")
        if not self.has_view_permission(request, message):
            raise PermissionDenied
        variants = [key for key, _ in campaign_kind_get(KIND).variants(message)]
        results = campaign_results(kind=KIND, campaign_id=message.pk, variants=variants)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Results: {message.name}",
            "message": message,
            "status_badge": status_badge(message.status),
            "rows": results_rows(results),
            "holdout": holdout_row(results["holdout"]),
            "chart": results_chart(results),
            "has_holdout": results["holdout"]["eligible"] > 0,
            "holdout_percent": message.holdout_percent,
            "goal_event": message.goal_event,
            "goal_window_days": message.goal_window_days,
            "change_url": reverse("admin:messaging_message_change", args=[message.pk]),
            "chart_js": CHART_JS,
            "results_js": RESULTS_JS,
            "admin_css": ADMIN_CSS,
            "experiment": kpi_section(campaign=message, kind=KIND, variants=variants),
        }
        return TemplateResponse(request, "admin/messaging/message/results.html", context)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "preview/", view(require_POST(self.preview_view)), name="messaging_message_preview"
            ),
            path(
                "audience/",
                view(require_POST(self.audience_view)),
                name="messaging_message_audience",
            ),
            path(
                "<path:object_id>/status/<slug:action>/",
                view(require_POST(self.status_view)),
                name="messaging_message_status",
            ),
            path(
                "<path:object_id>/results/",
                view(self.results_view),
                name="messaging_message_results",
            ),
            *super().get_urls(),
        ]


# --- helpers of the views -----------------------------------------------------------------------


@transaction.atomic
def message_schedule(*, message: Message, starts_at: datetime) -> Campaign:
    """Set the start of the window and publish, which schedules it (both through the services).

    Refused before anything changes when the time is not in the future.
    """
    if starts_at <= timezone.now():
        raise InvalidInput(
            "starts_at: pick a time in the future to schedule; use Publish to go live now"
        )
    if message.starts_at != starts_at:
        campaign_update(campaign=message, data={"starts_at": starts_at})
    return campaign_publish(campaign=message)


def status_buttons(message: Message) -> list[dict[str, str]]:
    """The status buttons that make sense for the message's status now."""
    status = message.status
    buttons = []
    if status in (CampaignStatus.DRAFT, CampaignStatus.PAUSED):
        label = "Publish now" if status == CampaignStatus.DRAFT else "Resume (publish)"
        if message.starts_at and message.starts_at > timezone.now():
            label = "Publish (scheduled for its start)"
        buttons.append({"action": "publish", "label": label, "style": "primary"})
    if status in (CampaignStatus.LIVE, CampaignStatus.SCHEDULED):
        buttons.append({"action": "pause", "label": "Pause", "style": "secondary"})
    if status != CampaignStatus.ARCHIVED:
        buttons.append({"action": "archive", "label": "Archive", "style": "danger"})
    return buttons


def _local_input(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M")


def _parse_local(text: str) -> datetime:
    try:
        naive = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput("starts_at: pick the date and time to go live") from None
    if timezone.is_aware(naive):
        return naive
    return timezone.make_aware(naive, timezone.get_current_timezone())


def audience_words(audience: dict[str, Any]) -> str:
    parts: list[Any] = [{"segment": slug} for slug in audience.get("segments") or []]
    if audience.get("condition") is not None:
        parts.append(audience["condition"])
    if not parts:
        return "everyone in the App"
    try:
        return condition_describe(parse_condition({"all": parts}, allow_context=True))
    except InvalidInput:
        return "(invalid audience)"


def _has_context(report: ConditionReport) -> bool:
    return bool(report.data) and any(
        key in json.dumps(report.data) for key in ('"page_url"', '"locale"', '"device"')
    )


def _percent(value: Any, default: Decimal) -> Decimal:
    try:
        number = Decimal(str(value)) if value not in (None, "") else default
    except InvalidOperation:
        return default
    return min(max(number, Decimal(0)), Decimal(100))


def audience_note(
    *, count: int, has_context: bool, sample_percent: Any, holdout_percent: Any
) -> str:
    """What the count means for who will see the message, in plain words."""
    sample = _percent(sample_percent, Decimal(100))
    holdout = _percent(holdout_percent, Decimal(0))
    parts = []
    if has_context:
        parts.append("at most, as page, language and device are checked when it shows")
    if sample < 100 or holdout > 0:
        shown = round(count * float(sample) / 100 * (1 - float(holdout) / 100))
        parts.append(
            f"about {shown:,} would see it (sample {sample.normalize():f}%, "
            f"holdout {holdout.normalize():f}%)"
        )
    return "; ".join(parts)


def message_preview(body: dict[str, Any], *, default_locale: str) -> dict[str, Any]:
    """Render the content typed in the form as the widget will, for the chosen language and
    variant; errors name the field."""
    answer: dict[str, Any] = {"ok": False, "locales": [], "variants": [], "error": None}
    try:
        content = content_validate(_loads(body.get("content"), "content"))
    except InvalidInput as exc:
        answer["error"] = exc.message
        return answer
    variants: list[dict[str, Any]] = []
    variants_text = body.get("variants")
    if isinstance(variants_text, str) and variants_text.strip():
        try:
            variants = variants_validate(_loads(variants_text, "variants"))
        except InvalidInput as exc:
            answer["variant_error"] = exc.message
    variant = body.get("variant") or ""
    source = content
    for entry in variants:
        if entry["key"] == variant and entry.get("content"):
            source = entry["content"]
    if variant not in [v["key"] for v in variants]:
        variant = ""
    locale = body.get("locale") or None
    kind = body.get("kind") if body.get("kind") in MessageKind.values else MessageKind.MODAL
    rendered = content_render(source, locale=locale, default_locale=default_locale)
    html = render_to_string(
        "admin/messaging/message/preview_card.html",
        {
            "kind": kind,
            "title": rendered["title"],
            # Sanitised by content_render (markdown-it without HTML, then nh3).
            "body_html": mark_safe(rendered["body_html"]),  # noqa: S308
            "buttons": rendered["buttons"],
        },
    )
    answer.update(
        ok=True,
        html=html,
        kind=kind,
        locale=rendered["locale"],
        locales=list(source),
        variant=variant,
        variants=[v["key"] for v in variants],
        title=rendered["title"],
        body_html=rendered["body_html"],
        buttons=rendered["buttons"],
    )
    return answer


def _loads(text: Any, name: str) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{name}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc


def _p_value(value: float | None) -> str:
    # Written as the verdict writes it, so the card and the table agree.
    if value is None:
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.2g}"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def results_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One table row per variant, numbers formatted for people."""
    rows = []
    for v in results["variants"]:
        low, high = v["conversion_interval"]
        rows.append(
            {
                "label": v["variant"] or "Message",
                "card_label": f"Variant {v['variant']}" if v["variant"] else "Message",
                "eligible": v["eligible"],
                "shown": v["shown"],
                "clicked": v["clicked"],
                "dismissed": v["dismissed"],
                "converted": v["converted"],
                "rate": _rate(v["conversion_rate"]),
                "interval": f"{low * 100:.1f}% – {high * 100:.1f}%" if v["shown"] else "—",
                "click_rate": _rate(v["click_rate"]),
                "lift": "—" if v["lift"] is None else f"{v['lift'] * 100:+.1f}%",
                "p_value": _p_value(v["p_value"]),
                "p_text": "p: —"
                if v["p_value"] is None
                else ("p < 0.001" if v["p_value"] < 0.001 else f"p = {v['p_value']:.2g}"),
                "significant": v["significant"],
                "better": v["significant"] and (v["difference"] or 0) > 0,
                "worse": v["significant"] and (v["difference"] or 0) < 0,
                "verdict": v["verdict"],
            }
        )
    return rows


def holdout_row(holdout: dict[str, Any]) -> dict[str, Any]:
    low, high = holdout["conversion_interval"]
    return {
        **holdout,
        "rate": _rate(holdout["conversion_rate"]),
        "interval": f"{low * 100:.1f}% – {high * 100:.1f}%" if holdout["eligible"] else "—",
    }


def results_chart(results: dict[str, Any]) -> dict[str, Any]:
    """Data for the charts: conversion rate with its 95% interval per group, and counts."""
    labels: list[str] = []
    rates: list[float | None] = []
    intervals: list[list[float | None] | None] = []
    holdout = results["holdout"]
    if holdout["eligible"]:
        labels.append("Holdout (control)")
        rates.append(_pct(holdout["conversion_rate"]))
        intervals.append([_pct(x) for x in holdout["conversion_interval"]])
    for v in results["variants"]:
        labels.append(v["variant"] or "Message")
        rates.append(_pct(v["conversion_rate"]))
        intervals.append([_pct(x) for x in v["conversion_interval"]] if v["shown"] else None)
    funnel_labels = [v["variant"] or "Message" for v in results["variants"]]
    funnel = {
        key: [v[key] for v in results["variants"]]
        for key in ("eligible", "shown", "clicked", "dismissed", "converted")
    }
    return {
        "labels": labels,
        "rates": rates,
        "intervals": intervals,
        "control": bool(holdout["eligible"]),
        "funnel_labels": funnel_labels,
        "funnel": funnel,
    }


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 2)
