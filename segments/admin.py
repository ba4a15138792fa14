"""Admin for people, events, bad events and segments.

Segments are authored by Parker: the condition is JSON in a textarea with, beside it, the
condition in words, a tree of its nodes with every problem shown at the node it belongs to,
and a live audience count. Saving goes through `segments.services`; what they refuse is shown
as form errors and nothing is saved.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from engage.errors import EngageError, InvalidInput
from engage.models import App
from segments.conditions import (
    Condition,
    ConditionError,
    ConditionInvalid,
    Op,
    condition_describe,
    parse_condition,
)
from segments.models import AnonymousId, BadEvent, Event, Person, Segment
from segments.selectors import segment_preview
from segments.services import segment_create, segment_delete, segment_update

ADMIN_CSS = "engage/admin/admin.css"
CONDITION_JS = "engage/admin/condition.js"
SAMPLE_SHOWN = 5

# --- people and events ------------------------------------------------------------------------


class AnonymousIdInline(admin.TabularInline):
    model = AnonymousId
    extra = 0
    fields = ["anonymous_id", "created_at"]
    readonly_fields = ["anonymous_id", "created_at"]
    can_delete = False


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["__str__", "app", "first_seen", "last_seen"]
    list_filter = ["app"]
    search_fields = ["user_id", "anonymous_ids__anonymous_id"]
    readonly_fields = ["app", "first_seen", "last_seen"]
    inlines = [AnonymousIdInline]
    list_select_related = ["app"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["name", "person", "app", "source", "timestamp", "received_at"]
    list_filter = ["app", "source", "name"]
    search_fields = ["name", "person__user_id", "dedup_id"]
    date_hierarchy = "received_at"
    list_select_related = ["person", "app"]
    readonly_fields = [f.name for f in Event._meta.fields]
    show_full_result_count = False


class ReasonFilter(admin.SimpleListFilter):
    """Bad events grouped by the field their reason names (`ue_px`, `aid`, `name`…)."""

    title = "reason"
    parameter_name = "reason"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        fields = set()
        for reason in BadEvent.objects.values_list("reason", flat=True).distinct()[:500]:
            fields.add(reason.split(":", 1)[0])
        return sorted((f, f) for f in fields)

    def queryset(self, request: HttpRequest, queryset: QuerySet[BadEvent]) -> QuerySet[BadEvent]:
        value = self.value()
        return queryset.filter(reason__startswith=value) if value else queryset


@admin.register(BadEvent)
class BadEventAdmin(admin.ModelAdmin):
    list_display = ["reason", "app", "source", "received_at"]
    list_filter = ["app", "source", ReasonFilter]
    search_fields = ["reason"]
    date_hierarchy = "received_at"
    readonly_fields = ["app", "source", "received_at", "reason", "raw"]
    list_select_related = ["app"]


# --- conditions, for people ---------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionReport:
    """What the admin shows of a condition typed by hand: its JSON (when it parses), the tree
    (when valid), every error with its path, and the condition in words."""

    data: Any
    condition: Condition | None
    errors: tuple[ConditionError, ...]

    @property
    def empty(self) -> bool:
        return self.data is None and not self.errors

    @property
    def description(self) -> str | None:
        return condition_describe(self.condition) if self.condition is not None else None

    def tree_html(self) -> SafeString:
        return condition_tree_html(self.data, self.errors)

    def error_list(self) -> list[dict[str, str]]:
        return [{"path": e.path, "message": e.message} for e in self.errors]


def condition_report(
    text: str | None,
    *,
    allow_context: bool = False,
    required: bool = True,
    known_segments: Iterable[str] | None = None,
    extra_errors: Sequence[ConditionError] = (),
) -> ConditionReport:
    """Parse a condition typed in the admin; never raises.

    `known_segments` (the App's slugs) adds an error at each `{"segment": …}` leaf naming a
    segment that does not exist, as saving would refuse it.
    """
    text = (text or "").strip()
    if not text:
        if required:
            return ConditionReport(None, None, (ConditionError("", "a condition is required"),))
        return ConditionReport(None, None, tuple(extra_errors))
    try:
        data = json.loads(text)
    except ValueError as exc:
        where = (
            f" (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        return ConditionReport(None, None, (ConditionError("", f"not valid JSON: {msg}{where}"),))
    errors: list[ConditionError] = []
    condition: Condition | None = None
    try:
        condition = parse_condition(data, allow_context=allow_context)
    except ConditionInvalid as exc:
        errors.extend(exc.errors)
    if known_segments is not None:
        known = set(known_segments)
        for node_path, node in _nodes(data, ""):
            slug = node.get("segment") if isinstance(node, dict) else None
            if isinstance(slug, str) and slug not in known:
                errors.append(
                    ConditionError(_join(node_path, "segment"), f'no segment "{slug}" in this App')
                )
    errors.extend(extra_errors)
    return ConditionReport(data, condition if not errors else None, tuple(errors))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _nodes(data: Any, node_path: str) -> list[tuple[str, Any]]:
    """Every node of a (possibly invalid) JSON condition with its path, depth first."""
    found = [(node_path, data)]
    if not isinstance(data, dict):
        return found
    for key in ("all", "any"):
        if isinstance(data.get(key), list):
            for index, child in enumerate(data[key]):
                found.extend(_nodes(child, f"{_join(node_path, key)}[{index}]"))
            return found
    if "not" in data:
        found.extend(_nodes(data["not"], _join(node_path, "not")))
    return found


def _owner(error_path: str, node_paths: Sequence[str]) -> str:
    """The deepest node an error path lies in (`all[1].count.op` → `all[1]`)."""
    best = ""
    for candidate in node_paths:
        if not candidate or len(candidate) <= len(best):
            continue
        if error_path == candidate or error_path.startswith((f"{candidate}.", f"{candidate}[")):
            best = candidate
    return best


_CONTEXT_KEYS = ("page_url", "locale", "device")
_GROUP_WORDS = {
    "all": ("All of these", "everyone (an empty “all” matches everyone)"),
    "any": ("At least one of these", "no one (an empty “any” matches no one)"),
}


def condition_tree_html(data: Any, errors: Sequence[ConditionError] = ()) -> SafeString:
    """The condition as a tree of readable nodes, each problem shown at its node, in red."""
    if data is None:
        if not errors:
            return format_html('<p class="engage-tree-empty">{}</p>', "No condition.")
        return _errors_html(errors, "")
    node_paths = [p for p, _ in _nodes(data, "")]
    by_node: dict[str, list[ConditionError]] = {}
    for error in errors:
        by_node.setdefault(_owner(error.path, node_paths), []).append(error)
    return format_html('<ul class="engage-tree">{}</ul>', _node_html(data, "", by_node))


_UNKNOWN_OPERATOR = re.compile(r'^unknown operator "(.*)"$')


def _hint(message: str) -> str:
    """A nudge for a misspelt operator: `unknown operator "eqq"` → did you mean "eq"?"""
    found = _UNKNOWN_OPERATOR.match(message)
    if found:
        close = difflib.get_close_matches(found.group(1), [str(op) for op in Op], n=1)
        if close:
            return f'. Did you mean "{close[0]}"?'
    return ""


def _errors_html(errors: Sequence[ConditionError], node_path: str) -> SafeString:
    return format_html(
        '<ul class="engage-tree-errors">{}</ul>',
        format_html_join(
            "",
            '<li title="{}">{}{}{}</li>',
            (
                (
                    f"at {error.path}" if error.path else "the whole condition",
                    format_html("<code>{}</code>: ", rest) if rest else "",
                    error.message,
                    _hint(error.message),
                )
                for error in errors
                for rest in [error.path[len(node_path) :].lstrip(".") if node_path else error.path]
            ),
        ),
    )


def _json_html(value: Any, value_path: str, bad: set[str]) -> SafeString:
    """JSON of a leaf with the parts that errors name marked, so the wrong key stands out."""

    def pair(key: str, item: Any, item_path: str) -> SafeString:
        text = format_html(
            "{}: {}", json.dumps(key, ensure_ascii=False), _json_html(item, item_path, bad)
        )
        return (
            format_html('<mark class="engage-json-bad">{}</mark>', text)
            if item_path in bad
            else text
        )

    if isinstance(value, dict):
        parts = [pair(str(k), v, _join(value_path, str(k))) for k, v in value.items()]
        return format_html("{{{}}}", SafeString(", ".join(parts)))
    if isinstance(value, list):
        items = [_json_html(v, f"{value_path}[{i}]", bad) for i, v in enumerate(value)]
        return format_html("[{}]", SafeString(", ".join(items)))
    return format_html("{}", json.dumps(value, ensure_ascii=False))


def _leaf_words(data: Any) -> str | None:
    try:
        return condition_describe(parse_condition(data, allow_context=True))
    except InvalidInput:
        return None


def _node_html(data: Any, node_path: str, by_node: dict[str, list[ConditionError]]) -> SafeString:
    errors = by_node.get(node_path, [])
    label = format_html('<span class="engage-tree-path">{}</span>', node_path or "condition")
    children = SafeString("")
    group = None
    if isinstance(data, dict):
        group = next((k for k in ("all", "any") if isinstance(data.get(k), list)), None)
    if group is not None:
        items = data[group]
        heading, empty = _GROUP_WORDS[group]
        body = format_html("{}:", heading) if items else format_html("{}", empty)
        children = format_html_join(
            "",
            "{}",
            (
                (_node_html(child, f"{_join(node_path, group)}[{i}]", by_node),)
                for i, child in enumerate(items)
            ),
        )
    elif (
        isinstance(data, dict)
        and "not" in data
        and not any(k in data for k in ("attribute", "event", "segment", *_CONTEXT_KEYS))
    ):
        body = format_html("{}", "None of this is true:")
        children = _node_html(data["not"], _join(node_path, "not"), by_node)
    else:
        words = _leaf_words(data) if not errors else None
        body = (
            format_html('<span class="engage-tree-words">{}</span>', words)
            if words
            else format_html(
                '<code class="engage-tree-raw">{}</code>',
                _json_html(data, node_path, {e.path for e in errors}),
            )
        )
    return format_html(
        '<li class="engage-tree-node{}" data-path="{}">{} {}{}{}</li>',
        " engage-tree-bad" if errors else "",
        node_path,
        label,
        body,
        _errors_html(errors, node_path) if errors else "",
        format_html('<ul class="engage-tree">{}</ul>', children) if children else "",
    )


class ConditionWidget(forms.Textarea):
    """The condition's JSON with, beside it, the condition in words, its tree with problems at
    their node, and the live audience count (updated by `condition.js`)."""

    template_name = "admin/segments/widgets/condition.html"

    def __init__(
        self,
        *,
        allow_context: bool = False,
        required: bool = True,
        count_label: str = "People matching now",
        extra_fields: Sequence[str] = ("app",),
        rows: int = 18,
    ) -> None:
        super().__init__(attrs={"rows": rows, "cols": 60, "spellcheck": "false"})
        self.allow_context = allow_context
        self.required = required
        self.count_label = count_label
        self.extra_fields = list(extra_fields)
        self.preview_url = ""
        self.object_id: int | None = None
        # Set by the form after validation, so the tree shows what saving refused.
        self.report: ConditionReport | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> ConditionWidget:
        copied = super().__deepcopy__(memo)
        copied.report = None
        return copied

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        report = self.report or condition_report(
            value, allow_context=self.allow_context, required=self.required
        )
        context["panel"] = {
            "preview_url": self.preview_url,
            "object_id": self.object_id or "",
            "extra_fields": json.dumps(self.extra_fields),
            "count_label": self.count_label,
            "description": report.description
            or ("Everyone" if report.empty and not self.required else None),
            "tree_html": report.tree_html(),
            "has_errors": bool(report.errors),
            "keep_tree": self.report is not None and bool(report.errors),
        }
        return context


def condition_json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) if value not in (None, "") else ""


def error_field(
    message: str, fields: Iterable[str], aliases: Mapping[str, str | None] | None = None
) -> str | None:
    """The form field a service's error names by its prefix (`slug: …` → `slug`,
    `trigger.url: …` → an alias such as `trigger_url_value`); None when it names none."""
    head = message.split(":", 1)[0].strip()
    for prefix in sorted(aliases or {}, key=len, reverse=True):
        if head == prefix or head.startswith((f"{prefix}.", f"{prefix}[")):
            return (aliases or {})[prefix]
    name = head.split(".", 1)[0].split("[", 1)[0]
    return name if name in fields else None


# --- segments -----------------------------------------------------------------------------------


class SegmentForm(forms.ModelForm):
    """Validates what a person can see in the form; `segments.services` validate the rest and
    save. The service runs when the form is validated, inside the admin's transaction, so a
    refusal becomes a form error and nothing is half-saved."""

    condition = forms.CharField(
        widget=ConditionWidget(),
        help_text=(
            'JSON, e.g. {"all": [{"attribute": "plan", "op": "eq", "value": "pro"}, '
            '{"event": "export_clicked", "count": {"op": "gte", "value": 3}, '
            '"within_days": 30}]}. Groups: all, any, not. Leaves: attribute, event, segment.'
        ),
    )

    class Meta:
        model = Segment
        fields = ["app", "name", "slug", "description", "condition"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and not self.is_bound:
            self.initial["condition"] = condition_json_text(self.instance.condition)
        widget = self.fields["condition"].widget
        if isinstance(widget, ConditionWidget):
            widget.preview_url = reverse("admin:segments_segment_preview")
            widget.object_id = self.instance.pk
            widget.extra_fields = ["app", "slug"] if self.instance.pk is None else []
        if "slug" in self.fields:
            self.fields[
                "slug"
            ].help_text = "How APIs and other segments refer to it; cannot be changed later."

    @property
    def _app(self) -> App | None:
        if self.instance.pk is not None:
            return self.instance.app
        app = self.cleaned_data.get("app")
        return app if isinstance(app, App) else None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        app = self._app
        known = None
        if app is not None:
            known = set(Segment.objects.filter(app=app).values_list("slug", flat=True))
            if self.instance.pk is None and cleaned.get("slug"):
                known.add(cleaned["slug"])  # referring to itself is a cycle, said on save
        report = condition_report(self.data.get("condition"), known_segments=known)
        if report.errors:
            self._condition_refused(report)
        else:
            cleaned["condition"] = report.data
        return cleaned

    def _condition_refused(self, report: ConditionReport) -> None:
        widget = self.fields["condition"].widget
        assert isinstance(widget, ConditionWidget)  # noqa: S101 - declared above
        widget.report = report
        if "condition" in self.errors:
            return
        for error in report.errors:
            self.add_error("condition", str(error))

    def _post_clean(self) -> None:
        # Not Django's model validation: the services validate and save in one step.
        if self.errors:
            return
        data = self.cleaned_data
        try:
            if self.instance.pk is None:
                self.instance = segment_create(
                    app=data["app"],
                    slug=data["slug"],
                    name=data["name"],
                    description=data.get("description") or "",
                    condition=data["condition"],
                )
            else:
                self.instance = segment_update(
                    segment=self.instance,
                    data={
                        "name": data["name"],
                        "description": data.get("description") or "",
                        "condition": data["condition"],
                    },
                )
        except ConditionInvalid as exc:
            self._condition_refused(
                condition_report(self.data.get("condition"), extra_errors=exc.errors)
            )
        except InvalidInput as exc:
            field = error_field(exc.message, self.fields)
            if field == "condition":
                message = exc.message.split(":", 1)[1].strip()
                self._condition_refused(
                    condition_report(
                        self.data.get("condition"), extra_errors=[ConditionError("", message)]
                    )
                )
            else:
                self.add_error(field, exc.message)
        except ValidationError as exc:
            self.add_error(None, exc)


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    list_display = ["name", "slug", "app", "readable_condition", "updated_at"]
    list_filter = ["app"]
    list_select_related = ["app"]
    search_fields = ["name", "slug", "description"]
    save_as = False
    fieldsets = [
        (None, {"fields": ["app", "name", "slug", "description"]}),
        (
            "Who is in it",
            {
                "fields": ["condition"],
                "classes": ["wide"],
                "description": (
                    "Edit the condition on the left; on the right you see it in words, "
                    "each part checked, and how many people match right now."
                ),
            },
        ),
    ]

    class Media:
        css = {"all": [ADMIN_CSS]}
        js = [CONDITION_JS]

    @admin.display(description="condition")
    def readable_condition(self, obj: Segment) -> str:
        try:
            return condition_describe(parse_condition(obj.condition))
        except InvalidInput as exc:
            return f"(invalid: {exc.message})"

    def get_readonly_fields(self, request: HttpRequest, obj: Segment | None = None) -> list[str]:
        # The slug is the segment's identity: campaigns and segments refer to it.
        return ["app", "slug", "updated_at"] if obj is not None else []

    def get_fieldsets(self, request: HttpRequest, obj: Segment | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None:
            fieldsets = [
                (None, {"fields": ["app", "slug", "name", "description", "updated_at"]}),
                *fieldsets[1:],
            ]
        return fieldsets

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial: dict[str, Any] = dict(super().get_changeform_initial_data(request))
        if "app" not in initial:
            only = list(App.objects.values_list("pk", flat=True)[:2])
            if len(only) == 1:
                initial["app"] = only[0]
        initial.setdefault(
            "condition",
            condition_json_text({"all": [{"attribute": "plan", "op": "eq", "value": "pro"}]}),
        )
        return initial

    def save_model(self, request: HttpRequest, obj: Segment, form: Any, change: bool) -> None:
        """Saved by the service while the form was validated (see SegmentForm)."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """A segment has no related rows to save."""

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # A bulk delete would skip the service's check of what still uses a segment.
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request: HttpRequest, obj: Segment) -> None:
        segment_delete(segment=obj)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except EngageError as exc:
            messages.error(request, f"Not deleted: {exc.message}")
            return HttpResponseRedirect(reverse("admin:segments_segment_change", args=[object_id]))

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "preview/",
                self.admin_site.admin_view(require_POST(self.preview_view)),
                name="segments_segment_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """JSON for the live panel: the condition in words, its tree, errors and the count."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            body = json_body(request)
        except InvalidInput as exc:
            return JsonResponse(exc.as_dict(), status=400)
        app = app_from(body) or _segment_app(body)
        known = set(Segment.objects.filter(app=app).values_list("slug", flat=True)) if app else None
        if known is not None and isinstance(body.get("slug"), str):
            known.add(body["slug"])
        report = condition_report(text_of(body.get("condition")), known_segments=known)
        answer = condition_answer(report)
        if app is None:
            answer["message"] = "choose an App to count its people"
        elif report.condition is not None:
            preview = segment_preview(app=app, condition=report.data, sample_size=SAMPLE_SHOWN)
            answer.update(
                count=preview.count,
                sample=[str(person) for person in preview.sample],
                took_ms=round(preview.took_ms, 1),
            )
        return JsonResponse(answer)


def condition_answer(report: ConditionReport) -> dict[str, Any]:
    """The JSON `condition.js` renders: words, tree, errors; the count is added by the view."""
    return {
        "valid": report.condition is not None or (report.empty and not report.errors),
        "description": report.description,
        "tree_html": str(report.tree_html()),
        "errors": report.error_list(),
        "count": None,
    }


def json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise InvalidInput("body: must be a JSON object")
    return body


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value) if value is not None else ""


def app_from(body: dict[str, Any]) -> App | None:
    raw = body.get("app")
    if raw in (None, ""):
        return None
    try:
        return App.objects.filter(pk=int(str(raw))).first()
    except (TypeError, ValueError):
        return None


def _segment_app(body: dict[str, Any]) -> App | None:
    raw = body.get("object_id")
    if raw in (None, ""):
        return None
    try:
        segment = Segment.objects.select_related("app").filter(pk=int(str(raw))).first()
    except (TypeError, ValueError):
        return None
    return segment.app if segment else None


def json_pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def admin_page(
    request: HttpRequest, template: str, context: dict[str, Any], *, site: admin.AdminSite
) -> TemplateResponse:
    """A custom admin page with the admin's chrome (nav sidebar, user tools)."""
    return TemplateResponse(request, template, {**site.each_context(request), **context})
