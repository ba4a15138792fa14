"""`/api/v1/insights/` (saved insights, trends, funnels) and `/api/v1/kpis/` (secret key).

- `POST /api/v1/insights/trends` and `POST /api/v1/insights/funnels` answer a definition;
  `GET` of the same paths with `?insight=ID` answers a saved one, as does
  `GET /api/v1/insights/{id}/data`.
- `/api/v1/insights/` and `/api/v1/kpis/`: CRUD by id.
Definitions are validated by `segments.insights` (400 naming the field); a query past the
time budget answers 422 `query_too_expensive`.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from engage import errors
from engage.api.authentication import AppKeyAuthentication, SecretKeyRequired, request_app
from engage.insights import (
    insight_create,
    insight_delete,
    insight_get_for_app,
    insight_run,
    insight_update,
)
from engage.kpis import kpi_create, kpi_delete, kpi_update
from engage.models_insights import Insight, InsightKind, Kpi, KpiKind

# --- request shapes (documentation; the insight parser validates) -------------------------------


class PropertyFilterSerializer(serializers.Serializer):
    property = serializers.CharField()
    op = serializers.CharField()
    value = serializers.JSONField(required=False)


class BreakdownSerializer(serializers.Serializer):
    property = serializers.CharField(required=False, help_text="Trends only.")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=25)
    segments = serializers.ListField(child=serializers.CharField(), required=False)
    campaign = serializers.JSONField(
        required=False, help_text='Funnels only: {"kind": "message"|"survey", "id": N}.'
    )


class TrendRequestSerializer(serializers.Serializer):
    event = serializers.CharField()
    where = PropertyFilterSerializer(many=True, required=False)
    interval = serializers.ChoiceField(choices=["day", "week"], required=False)
    date_from = serializers.CharField(required=False)
    date_to = serializers.CharField(required=False)
    last_days = serializers.IntegerField(required=False, min_value=1)
    breakdown = BreakdownSerializer(required=False)


class StepRequestSerializer(serializers.Serializer):
    event = serializers.CharField()
    where = PropertyFilterSerializer(many=True, required=False)
    label = serializers.CharField(required=False)  # type: ignore[assignment]  # a field named like Field.label


class WindowSerializer(serializers.Serializer):
    value = serializers.IntegerField(min_value=1)
    unit = serializers.ChoiceField(choices=["minute", "hour", "day", "week"], required=False)


class FunnelRequestSerializer(serializers.Serializer):
    steps = StepRequestSerializer(many=True)
    window = WindowSerializer(required=False)
    date_from = serializers.CharField(required=False)
    date_to = serializers.CharField(required=False)
    last_days = serializers.IntegerField(required=False, min_value=1)
    breakdown = BreakdownSerializer(required=False)


# --- response shapes ---------------------------------------------------------------------------


class TrendBucketSerializer(serializers.Serializer):
    start = serializers.DateField()
    count = serializers.IntegerField()
    people = serializers.IntegerField()


class TrendSeriesSerializer(serializers.Serializer):
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.label
    count = serializers.IntegerField()
    buckets = TrendBucketSerializer(many=True)


class TrendSerializer(serializers.Serializer):
    event = serializers.CharField()
    interval = serializers.CharField()
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    series = TrendSeriesSerializer(many=True)


class FunnelStepSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    event = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.label
    people = serializers.IntegerField()
    conversion_rate = serializers.FloatField(allow_null=True)
    step_conversion_rate = serializers.FloatField(allow_null=True)
    drop_off = serializers.IntegerField()
    drop_off_rate = serializers.FloatField(allow_null=True)
    median_seconds_from_previous = serializers.FloatField(allow_null=True)


class FunnelGroupSerializer(serializers.Serializer):
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.label
    members = serializers.IntegerField(allow_null=True)
    steps = FunnelStepSerializer(many=True)


class FunnelSerializer(serializers.Serializer):
    window_seconds = serializers.IntegerField()
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    steps = FunnelStepSerializer(many=True)
    breakdown = FunnelGroupSerializer(many=True, required=False)


class InsightSerializer(serializers.ModelSerializer):
    definition = serializers.JSONField()

    class Meta:
        model = Insight
        fields = ["id", "name", "kind", "definition", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class KpiSerializer(serializers.ModelSerializer):
    definition = serializers.JSONField(
        help_text='Event KPI: {"event", "where"?}; funnel KPI: {"steps", "window"?}.'
    )
    window_days = serializers.IntegerField(required=False, min_value=1, max_value=90)

    class Meta:
        model = Kpi
        fields = [
            "id",
            "name",
            "description",
            "kind",
            "definition",
            "window_days",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        validators: list[Any] = []  # the name's uniqueness is the service's 409


INSIGHT_DATA = PolymorphicProxySerializer(
    component_name="InsightData",
    serializers=[TrendSerializer, FunnelSerializer],
    resource_type_field_name=None,
)
INSIGHT_PARAM = OpenApiParameter(
    "insight", int, description="Id of a saved insight of this kind to compute."
)


class InsightViewSet(viewsets.ModelViewSet):
    """Saved insights (CRUD), and trends and funnels computed on the fly."""

    authentication_classes = [AppKeyAuthentication]
    permission_classes = [SecretKeyRequired]
    serializer_class = InsightSerializer
    lookup_value_regex = r"[0-9]+"
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Insight]:
        return Insight.objects.filter(app=request_app(self.request)).order_by("-id")

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        data = serializer.validated_data
        serializer.instance = insight_create(
            app=request_app(self.request),
            name=data["name"],
            kind=data["kind"],
            definition=data["definition"],
        )

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        assert isinstance(serializer.instance, Insight)  # noqa: S101 - DRF sets it on update
        serializer.instance = insight_update(
            insight=serializer.instance, data=serializer.validated_data
        )

    def perform_destroy(self, instance: Insight) -> None:
        insight_delete(insight=instance)

    def _run(self, request: Request, kind: str) -> Response:
        app = request_app(request)
        if request.method == "GET":
            insight_id = request.query_params.get("insight")
            if not insight_id:
                raise errors.InvalidInput(
                    "insight: give the id of a saved insight, or POST a definition"
                )
            insight = insight_get_for_app(app=app, insight_id=insight_id)
            if insight.kind != kind:
                raise errors.InvalidInput(f"insight: insight {insight.pk} is a {insight.kind}")
            definition = insight.definition
        else:
            definition = request.data
        return Response(insight_run(app=app, kind=kind, definition=definition))

    @extend_schema(
        methods=["POST"], request=TrendRequestSerializer, responses={200: TrendSerializer}
    )
    @extend_schema(methods=["GET"], parameters=[INSIGHT_PARAM], responses={200: TrendSerializer})
    @action(detail=False, methods=["get", "post"])
    def trends(self, request: Request) -> Response:
        return self._run(request, InsightKind.TREND)

    @extend_schema(
        methods=["POST"], request=FunnelRequestSerializer, responses={200: FunnelSerializer}
    )
    @extend_schema(methods=["GET"], parameters=[INSIGHT_PARAM], responses={200: FunnelSerializer})
    @action(detail=False, methods=["get", "post"])
    def funnels(self, request: Request) -> Response:
        return self._run(request, InsightKind.FUNNEL)

    @extend_schema(responses={200: INSIGHT_DATA})
    @action(detail=True, methods=["get"])
    def data(self, request: Request, pk: str | None = None) -> Response:
        insight = self.get_object()
        return Response(
            insight_run(app=insight.app, kind=insight.kind, definition=insight.definition)
        )


class KpiViewSet(viewsets.ModelViewSet):
    """The App's KPIs: shown in every campaign's results (exposed vs holdout, per variant)."""

    authentication_classes = [AppKeyAuthentication]
    permission_classes = [SecretKeyRequired]
    serializer_class = KpiSerializer
    lookup_value_regex = r"[0-9]+"
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Kpi]:
        return Kpi.objects.filter(app=request_app(self.request)).order_by("-id")

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        data = serializer.validated_data
        serializer.instance = kpi_create(
            app=request_app(self.request),
            name=data["name"],
            kind=data.get("kind", KpiKind.EVENT),
            definition=data["definition"],
            window_days=data.get("window_days", 14),
            description=data.get("description", ""),
        )

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        assert isinstance(serializer.instance, Kpi)  # noqa: S101 - DRF sets it on update
        serializer.instance = kpi_update(kpi=serializer.instance, data=serializer.validated_data)

    def perform_destroy(self, instance: Kpi) -> None:
        kpi_delete(kpi=instance)
