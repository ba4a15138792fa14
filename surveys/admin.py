"""Admin for Parker: author surveys as JSON with inline validation, publish or pause them,
and read their results (charts drawn by the vendored Chart.js)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from engage import errors
from engage.admin_insights import (
    EXPERIMENT_FIELDS,
    EXPERIMENT_FIELDSET,
    experiment_form_clean,
    experiment_form_init,
    kpi_section,
)
from engage.campaigns import (
    SHARED_FIELDS,
    audience_validate,
    campaign_archive,
    campaign_create,
    campaign_pause,
    campaign_publish,
    campaign_update,
    display_rules_validate,
    trigger_validate,
)
from segments.models import Segment
from surveys.definition import localized
from surveys.exports import csv_response
from surveys.models import Response, ResponseTally, Survey
from surveys.selectors import (
    ResponseFilters,
    filters_from_params,
    survey_responses_csv,
    survey_summary,
    survey_text_answers,
)
from surveys.services import survey_definition_validate

SURVEY_FIELDS = ("questions", "thank_you", "variants")
TEXT_ANSWERS_PER_PAGE = 25
LATEST_TEXTS = 4


class PrettyJSONField(forms.JSONField):
    """A JSON textarea shown indented, so that questions are readable and editable."""

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2)


def _json_field(rows: int, required: bool = False) -> PrettyJSONField:
    return PrettyJSONField(
        required=required,
        widget=forms.Textarea(
            attrs={"rows": rows, "cols": 100, "spellcheck": "false", "class": "vLargeTextField"}
        ),
    )


class SurveyAdminForm(forms.ModelForm):
    """Validates with the same rules as the API and shows each error at its field, with the
    path inside the JSON (`questions[1].logic[0].jump_to: …`)."""

    questions = _json_field(28, required=True)
    thank_you = _json_field(6)
    variants = _json_field(6)
    audience = _json_field(5)
    trigger = _json_field(4)

    class Meta:
        model = Survey
        fields = ["app", "name", *SHARED_FIELDS, *SURVEY_FIELDS, *EXPERIMENT_FIELDS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        experiment_form_init(self, self.instance.app_id if self.instance.pk else None)

    def _check(self, field: str, run: Any) -> Any:
        try:
            return run()
        except errors.InvalidInput as exc:
            self.add_error(field if field in self.fields else None, exc.message)
            return None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        app = data.get("app") or getattr(self.instance, "app", None)
        if app is not None and "audience" in data:
            clean = self._check(
                "audience", lambda: audience_validate(app=app, audience=data["audience"])
            )
            if clean is not None:
                data["audience"] = clean
        if "trigger" in data:
            clean = self._check("trigger", lambda: trigger_validate(data["trigger"]))
            if clean is not None:
                data["trigger"] = clean
        self._check(
            "sample_percent",
            lambda: display_rules_validate(
                sample_percent=data.get("sample_percent") or 0,
                holdout_percent=data.get("holdout_percent") or 0,
                starts_at=data.get("starts_at"),
                ends_at=data.get("ends_at"),
            ),
        )
        if "questions" in data:
            try:
                definition = survey_definition_validate(
                    survey=self.instance if self.instance.pk else None,
                    questions=data.get("questions"),
                    thank_you=data.get("thank_you") or {},
                    variants=data.get("variants") or [],
                )
            except errors.InvalidInput as exc:
                field = exc.message.split(":")[0].split(".")[0].split("[")[0]
                self.add_error(field if field in SURVEY_FIELDS else "questions", exc.message)
            else:
                data["questions"] = definition.questions
                data["thank_you"] = definition.thank_you
                data["variants"] = definition.variants
        experiment_form_clean(self, data)
        return data

    def _post_clean(self) -> None:
        # Survey.clean() repeats the definition checks; errors were already shown above.
        if not self.errors:
            super()._post_clean()  # type: ignore[misc]


@admin.register(Survey)
class SurveyAdmin(admin.ModelAdmin):
    form = SurveyAdminForm
    change_form_template = "admin/surveys/survey/change_form.html"
    list_display = ["name", "app", "status", "priority", "published_at", "results_link"]
    list_filter = ["status", "app"]
    search_fields = ["name"]
    readonly_fields = ["status", "published_at", "created_at", "updated_at"]
    actions = ["publish", "pause", "archive"]
    fieldsets = [
        (None, {"fields": ["app", "name", "status", "published_at"]}),
        (
            "Questions",
            {
                "fields": ["questions", "thank_you", "variants"],
                "description": (
                    "Question types: nps, rating, csat, single_choice, multiple_choice, "
                    "open_text, yes_no, cta. Logic jumps only forward, to a later question id "
                    'or "end". See docs/surveys.md.'
                ),
            },
        ),
        ("Audience and trigger", {"fields": ["audience", "trigger"]}),
        (
            "Display rules",
            {
                "fields": [
                    "priority",
                    ("starts_at", "ends_at"),
                    ("sample_percent", "holdout_percent"),
                    ("max_impressions", "recontact_days"),
                    ("goal_event", "goal_window_days"),
                ]
            },
        ),
        EXPERIMENT_FIELDSET,
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        # A survey's responses belong to its App: it never moves to another one.
        return [*fields, "app"] if obj is not None else fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Survey]:
        return super().get_queryset(request).select_related("app")

    @admin.display(description="Results")
    def results_link(self, obj: Survey) -> str:
        url = reverse("admin:surveys_survey_results", args=[obj.pk])
        return format_html('<a href="{}">Results</a>', url)

    def save_model(self, request: HttpRequest, obj: Survey, form: Any, change: bool) -> None:
        data = {name: getattr(obj, name) for name in (*SHARED_FIELDS, *SURVEY_FIELDS)}
        if change:
            campaign_update(campaign=obj, data=data)
            return
        created = campaign_create(kind="survey", app=obj.app, data=data)
        obj.pk = created.pk
        obj._state.adding = False
        obj._state.db = created._state.db

    def _lifecycle(
        self, request: HttpRequest, queryset: QuerySet[Survey], run: Any, verb: str
    ) -> None:
        done = 0
        for survey in queryset:
            try:
                run(campaign=survey)
                # Actions bypass the change form: record them in the admin log as Django would.
                self.log_change(request, survey, f"{verb} (list action).")
                done += 1
            except errors.EngageError as exc:
                messages.error(request, f"{survey.name}: {exc.message}")
        if done:
            messages.success(request, f"{verb} {done} survey(s).")

    @admin.action(description="Publish (live now, or scheduled)")
    def publish(self, request: HttpRequest, queryset: QuerySet[Survey]) -> None:
        self._lifecycle(request, queryset, campaign_publish, "Published")

    @admin.action(description="Pause")
    def pause(self, request: HttpRequest, queryset: QuerySet[Survey]) -> None:
        self._lifecycle(request, queryset, campaign_pause, "Paused")

    @admin.action(description="Archive (for good)")
    def archive(self, request: HttpRequest, queryset: QuerySet[Survey]) -> None:
        self._lifecycle(request, queryset, campaign_archive, "Archived")

    def get_urls(self) -> list[URLPattern]:
        results = path(
            "<path:object_id>/results/",
            self.admin_site.admin_view(self.results_view),
            name="surveys_survey_results",
        )
        export = path(
            "<path:object_id>/results/export.csv",
            self.admin_site.admin_view(self.export_view),
            name="surveys_survey_export",
        )
        return [results, export, *super().get_urls()]

    def _survey_for(self, request: HttpRequest, object_id: str) -> Survey:
        survey = get_object_or_404(Survey.objects.select_related("app"), pk=object_id)
        if not self.has_view_permission(request, survey):
            raise PermissionDenied
        return survey

    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        """The CSV of the responses the results page shows (same filters), streamed."""
        survey = self._survey_for(request, object_id)
        try:
            filters = filters_from_params(request.GET)
        except errors.InvalidInput as exc:
            return HttpResponse(exc.message, status=400, content_type="text/plain")
        return csv_response(
            request,
            survey_responses_csv(survey=survey, filters=filters),
            filename=f"survey-{survey.pk}-responses.csv",
            bom=request.GET.get("bom") in ("1", "true"),
        )

    def results_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The results page: filters, KPI tiles, charts and searchable open-text answers."""
        survey = self._survey_for(request, object_id)
        params = request.GET
        error = None
        try:
            filters = filters_from_params(params)
            summary = survey_summary(
                survey=survey, filters=filters, interval=params.get("interval") or "day"
            )
        except errors.InvalidInput as exc:
            error = exc.message
            filters = ResponseFilters()
            summary = survey_summary(survey=survey, filters=filters)
        default_locale = survey.app.default_locale
        text_questions = [
            q
            for q in survey.questions
            if q["type"] == "open_text"
            or (q["type"] in ("single_choice", "multiple_choice") and q.get("other"))
        ]
        question_id = params.get("question") or ""
        search = (params.get("search") or "").strip()
        try:
            page = max(int(params.get("page") or 1), 1)
        except ValueError:
            page = 1
        offset = (page - 1) * TEXT_ANSWERS_PER_PAGE
        answers = list(
            survey_text_answers(
                survey=survey,
                filters=filters,
                question_id=question_id or None,
                search=search or None,
            )[offset : offset + TEXT_ANSWERS_PER_PAGE + 1]
        )
        query = params.copy()
        query.pop("page", None)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Results: {survey.name}",
            "survey": survey,
            "original": survey,
            "summary": summary,
            "chart_data": {
                "summary": summary.as_dict(),
                "questions": [
                    {
                        "id": q["id"],
                        "type": q["type"],
                        "text": localized(q["text"], default_locale, default_locale),
                    }
                    for q in survey.questions
                ],
                "latest_texts": {
                    q["id"]: list(
                        survey_text_answers(
                            survey=survey, filters=filters, question_id=q["id"]
                        ).values_list("text", flat=True)[:LATEST_TEXTS]
                    )
                    for q in survey.questions
                    if q["type"] == "open_text"
                },
            },
            "error": error,
            "params": params,
            "segments": Segment.objects.filter(app=survey.app).order_by("name"),
            "locales": sorted(
                set(
                    ResponseTally.objects.filter(survey=survey)
                    .exclude(locale="")
                    .values_list("locale", flat=True)
                    .distinct()
                )
            ),
            "variants": [v["key"] for v in survey.variants],
            "text_questions": [
                {"id": q["id"], "text": localized(q["text"], default_locale, default_locale)}
                for q in text_questions
            ],
            "question_id": question_id,
            "search": search,
            "text_answers": answers[:TEXT_ANSWERS_PER_PAGE],
            "page": page,
            "has_next": len(answers) > TEXT_ANSWERS_PER_PAGE,
            "query": query.urlencode(),
            "csv_url": reverse("admin:surveys_survey_export", args=[survey.pk]),
            "question_types": {q["id"]: q["type"] for q in survey.questions},
            "experiment": kpi_section(
                campaign=survey, kind="survey", variants=[v["key"] for v in survey.variants]
            ),
        }
        return TemplateResponse(request, "admin/surveys/survey/results.html", context)


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    """Responses as stored, read-only: answers arrive through `response_submit` only."""

    list_display = ["id", "survey", "person", "completed", "locale", "variant", "created_at"]
    list_filter = ["completed", "survey"]
    search_fields = ["=id", "person__user_id"]
    list_select_related = ["survey", "person"]
    show_full_result_count = False  # no count(*) over millions of rows on every page
    readonly_fields = [
        "id",
        "app",
        "survey",
        "person",
        "delivery",
        "variant",
        "locale",
        "answers",
        "completed",
        "last_question",
        "created_at",
        "updated_at",
        "completed_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


import surveys.admin_sentiment  # noqa: E402,F401 - registers the sentiment alert admins
