"""`/api/v1/surveys/` (secret key) and `POST /api/v1/responses` (public or secret key)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.decorators import action
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engage.api.authentication import (
    AnyAppKey,
    AppKeyAuthentication,
    SecretKeyRequired,
    request_app,
)
from engage.api.campaigns import CampaignViewSet
from engage.api.pagination import CursorPagination
from engage.api.views import widget_request_check
from surveys.api.serializers import (
    ResponseOutSerializer,
    ResponseSubmitSerializer,
    SummarySerializer,
    SurveySerializer,
    TextAnswerSerializer,
    response_as_dict,
    text_answer_as_dict,
)
from surveys.exports import csv_response
from surveys.selectors import (
    filters_from_params,
    survey_responses,
    survey_responses_csv,
    survey_summary,
    survey_text_answers,
)
from surveys.sentiment_selectors import (
    SentimentQuery,
    sentiment_query_from_params,
    sentiment_trend,
    sentiment_trend_csv,
)
from surveys.services import response_submit

FILTER_PARAMETERS = [
    OpenApiParameter("from", str, description="ISO date or date-time (inclusive)."),
    OpenApiParameter("to", str, description="ISO date (inclusive) or date-time (exclusive)."),
    OpenApiParameter("segment", str, description="Segment slug: people in it now."),
    OpenApiParameter("locale", str, description="Locale tag; `de` also covers `de-AT`."),
    OpenApiParameter("variant", str, description="A/B variant key."),
]


class FormatIsNotARenderer(DefaultContentNegotiation):
    """Always render with the view's first renderer (JSON), so errors stay JSON.

    DRF reads `?format=` to pick a renderer and answers 404 for one it does not have; here
    `?format=csv` selects the CSV export of `responses`, which the view streams itself.
    """

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class NewestFirst(CursorPagination):
    ordering = "-created_at"  # ties (same microsecond) are kept apart by the cursor's offset


def _wants_csv(request: Request) -> bool:
    if request.query_params.get("format") == "csv":
        return True
    return "text/csv" in request.headers.get("Accept", "") and not request.query_params.get(
        "format"
    )


SENTIMENT_PARAMETERS = [
    OpenApiParameter("interval", str, enum=["day", "week"], description="UTC days or ISO weeks."),
    OpenApiParameter("from", str, description="ISO date or date-time (inclusive)."),
    OpenApiParameter("to", str, description="ISO date (inclusive) or date-time (exclusive)."),
    OpenApiParameter("segment", str, description="Segment slug: people in it now."),
    OpenApiParameter("locale", str, description="Locale tag; `de` also covers `de-AT`."),
    OpenApiParameter("terms", int, description="Negative terms per bucket, 0–50 (10)."),
    OpenApiParameter("format", str, enum=["json", "csv"], description="csv: one row per bucket."),
]
SENTIMENT_RESPONSES = {
    200: OpenApiResponse(
        response=OpenApiTypes.OBJECT,
        description='{"interval", "survey_id", "filters", "totals", "buckets": [{"start", '
        '"responses", "scored", "mean_score", "positive", "neutral", "negative", '
        '"unsupported", "nps", "nps_responses", "top_negative_terms": [{"term", "count"}]}]}',
    ),
    (200, "text/csv"): OpenApiResponse(
        response=OpenApiTypes.STR, description="One row per bucket."
    ),
}


def _sentiment_answer(request: Request, query: SentimentQuery, survey: Any, filename: str) -> Any:
    trend = sentiment_trend(app=request_app(request), survey=survey, query=query)
    if query.format == "csv":
        return csv_response(request._request, sentiment_trend_csv(trend), filename=filename)
    return Response(trend.as_dict())


class SurveyViewSet(CampaignViewSet):
    """Surveys: CRUD, publish, pause, archive, results, plus responses, CSV and summary."""

    serializer_class = SurveySerializer
    kind = "survey"
    content_negotiation_class = FormatIsNotARenderer

    @extend_schema(
        parameters=[
            *FILTER_PARAMETERS,
            OpenApiParameter(
                "format", str, enum=["json", "csv"], description="csv streams all rows."
            ),
            OpenApiParameter("limit", int, description="Page size (JSON), at most 500."),
        ],
        responses={
            200: ResponseOutSerializer(many=True),
            (200, "text/csv"): OpenApiResponse(
                response=OpenApiTypes.STR, description="One row per response (RFC 4180)."
            ),
        },
    )
    @action(detail=True, methods=["get"])
    def responses(self, request: Request, pk: str | None = None) -> Any:
        survey = self.get_object()
        filters = filters_from_params(request.query_params)
        if _wants_csv(request):
            return csv_response(
                request._request,
                survey_responses_csv(survey=survey, filters=filters),
                filename=f"survey-{survey.pk}-responses.csv",
                bom=request.query_params.get("bom") in ("1", "true"),
            )
        paginator = NewestFirst()
        page = paginator.paginate_queryset(
            survey_responses(survey=survey, filters=filters), request, view=self
        )
        return paginator.get_paginated_response([response_as_dict(r) for r in page or []])

    @extend_schema(
        parameters=[
            *FILTER_PARAMETERS,
            OpenApiParameter("interval", str, enum=["day", "week"], description="Trend buckets."),
        ],
        responses={200: SummarySerializer},
    )
    @action(detail=True, methods=["get"])
    def summary(self, request: Request, pk: str | None = None) -> Response:
        survey = self.get_object()
        summary = survey_summary(
            survey=survey,
            filters=filters_from_params(request.query_params),
            interval=request.query_params.get("interval") or "day",
        )
        return Response(summary.as_dict())

    @extend_schema(parameters=SENTIMENT_PARAMETERS, responses=SENTIMENT_RESPONSES)
    @action(detail=True, methods=["get"])
    def sentiment(self, request: Request, pk: str | None = None) -> Any:
        """Sentiment of the survey's free-text answers per day or week, with NPS and the
        most frequent terms of negative answers."""
        survey = self.get_object()
        query = sentiment_query_from_params(request.query_params)
        return _sentiment_answer(request, query, survey, f"survey-{survey.pk}-sentiment.csv")

    @extend_schema(
        parameters=[
            *FILTER_PARAMETERS,
            OpenApiParameter("question", str, description="Only this question's answers."),
            OpenApiParameter("search", str, description="Text contained (case-insensitive)."),
        ],
        responses={200: TextAnswerSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], url_path="text-answers")
    def text_answers(self, request: Request, pk: str | None = None) -> Response:
        survey = self.get_object()
        queryset = survey_text_answers(
            survey=survey,
            filters=filters_from_params(request.query_params),
            question_id=request.query_params.get("question") or None,
            search=request.query_params.get("search") or None,
        )
        paginator = NewestFirst()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([text_answer_as_dict(a) for a in page or []])


class ResponseSubmitView(APIView):
    """Create or update a survey response; the same `id` again merges, never duplicates."""

    authentication_classes = [AppKeyAuthentication]
    permission_classes = [AnyAppKey]

    @extend_schema(request=ResponseSubmitSerializer, responses={200: ResponseOutSerializer})
    def post(self, request: Request) -> Response:
        serializer = ResponseSubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        credential = widget_request_check(request, user_id=data.get("user_id") or None)
        response = response_submit(
            app=credential.app,
            survey_id=data["survey_id"],
            response_id=data["id"],
            user_id=data.get("user_id") or None,
            anonymous_id=data.get("anonymous_id") or None,
            delivery_id=data.get("delivery_id") or None,
            answers=data.get("answers"),
            completed=data["completed"],
            locale=data.get("locale") or None,
        )
        return Response(response_as_dict(response))


class SentimentView(APIView):
    """`GET /api/v1/sentiment`: the App-wide trend over all its surveys (secret key)."""

    authentication_classes = [AppKeyAuthentication]
    permission_classes = [SecretKeyRequired]
    content_negotiation_class = FormatIsNotARenderer

    @extend_schema(parameters=SENTIMENT_PARAMETERS, responses=SENTIMENT_RESPONSES)
    def get(self, request: Request) -> Any:
        query = sentiment_query_from_params(request.query_params)
        return _sentiment_answer(request, query, None, "sentiment.csv")
