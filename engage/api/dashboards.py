"""`/api/v1/dashboards/`: custom dashboards (CRUD with their tiles) and
`GET /api/v1/dashboards/{id}/data` computing every tile (secret key)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from engage.api.authentication import AppKeyAuthentication, SecretKeyRequired, request_app
from engage.dashboard_tiles import (
    dashboard_create,
    dashboard_data,
    dashboard_delete,
    dashboard_update,
)
from engage.models_insights import Dashboard, DashboardTile


class DashboardTileSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(
        help_text="trend, funnel, campaign_results, survey_nps, sentiment (registered types)."
    )
    config = serializers.JSONField(
        required=False,
        help_text='{"insight": ID} (trend, funnel); {"kind", "id"} (campaign_results); '
        '{"survey_id", "last_days"?} (survey_nps, sentiment).',
    )
    width = serializers.IntegerField(required=False, min_value=1, max_value=2)

    class Meta:
        model = DashboardTile
        fields = ["id", "kind", "title", "config", "width", "position"]
        read_only_fields = ["id", "position"]


class DashboardSerializer(serializers.ModelSerializer):
    tiles = DashboardTileSerializer(many=True, required=False)

    class Meta:
        model = Dashboard
        fields = ["id", "name", "description", "tiles", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def to_internal_value(self, data: Any) -> Any:
        # Tiles are checked by the service, whose messages name `tiles[i].config.…`.
        if not isinstance(data, dict) or "tiles" not in data:
            return super().to_internal_value(data)
        tiles = data["tiles"]
        value = super().to_internal_value({k: v for k, v in data.items() if k != "tiles"})
        value["tiles"] = tiles
        return value


class TileErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class TileDataSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    title = serializers.CharField(allow_blank=True)
    width = serializers.IntegerField()
    position = serializers.IntegerField()
    data = serializers.JSONField(  # type: ignore[assignment]  # a field named like .data
        required=False,
        help_text='Chart-ready: {"type": "line"|"bar"|"numbers"|"table", "labels"?, '
        '"series"?, "columns"?, "rows"?, "note"?}.',
    )
    error = TileErrorSerializer(required=False)


class DashboardDataSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    tiles = TileDataSerializer(many=True)


class DashboardViewSet(viewsets.ModelViewSet):
    authentication_classes = [AppKeyAuthentication]
    permission_classes = [SecretKeyRequired]
    serializer_class = DashboardSerializer
    lookup_value_regex = r"[0-9]+"
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Dashboard]:
        return (
            Dashboard.objects.filter(app=request_app(self.request))
            .prefetch_related("tiles")
            .order_by("-id")
        )

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        data = serializer.validated_data
        serializer.instance = dashboard_create(
            app=request_app(self.request),
            name=data["name"],
            description=data.get("description", ""),
            tiles=data.get("tiles") or [],
        )

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        assert isinstance(serializer.instance, Dashboard)  # noqa: S101 - DRF sets it on update
        data: dict[str, Any] = {
            k: v for k, v in serializer.validated_data.items() if k in ("name", "description")
        }
        if "tiles" in serializer.validated_data:
            data["tiles"] = serializer.validated_data["tiles"]
        serializer.instance = dashboard_update(dashboard=serializer.instance, data=data)

    def perform_destroy(self, instance: Dashboard) -> None:
        dashboard_delete(dashboard=instance)

    @extend_schema(responses={200: DashboardDataSerializer})
    @action(detail=True, methods=["get"])
    def data(self, request: Request, pk: str | None = None) -> Response:
        return Response(dashboard_data(dashboard=self.get_object()))
