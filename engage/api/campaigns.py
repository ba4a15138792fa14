"""REST plumbing that messages and surveys share: CRUD, publish, pause, archive, results."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from engage.api.authentication import AppKeyAuthentication, SecretKeyRequired, request_app
from engage.campaigns import (
    SHARED_FIELDS,
    campaign_archive,
    campaign_create,
    campaign_delete,
    campaign_kind_get,
    campaign_pause,
    campaign_publish,
    campaign_update,
)
from engage.experiments import campaign_results
from engage.kpis import campaign_kpi_results
from engage.models import Campaign, Kpi

# The experiment set-up every campaign kind has (docs/insights.md).
EXPERIMENT_FIELDS = ("hypothesis", "primary_kpi", "minimum_detectable_effect", "allocation")


class AppKpiField(serializers.PrimaryKeyRelatedField):
    """A KPI id, looked up among the requesting App's KPIs only."""

    def get_queryset(self) -> QuerySet[Kpi]:
        request = self.context.get("request")
        if request is None:
            return Kpi.objects.none()
        return Kpi.objects.filter(app=request_app(request))


class CampaignSerializer(serializers.ModelSerializer):
    """Fields every campaign kind has. Kind serializers add theirs to `Meta.fields`."""

    audience = serializers.JSONField(required=False)
    trigger = serializers.JSONField(required=False)
    sample_percent = serializers.DecimalField(
        max_digits=5, decimal_places=2, required=False, coerce_to_string=False
    )
    holdout_percent = serializers.DecimalField(
        max_digits=5, decimal_places=2, required=False, coerce_to_string=False
    )
    primary_kpi = AppKpiField(
        required=False, allow_null=True, help_text="Id of one of the App's KPIs, or null."
    )
    minimum_detectable_effect = serializers.DecimalField(
        max_digits=6,
        decimal_places=2,
        required=False,
        coerce_to_string=False,
        min_value=Decimal("0.1"),
        max_value=Decimal("1000"),
        help_text="Smallest relative lift worth detecting, in percent.",
    )
    allocation = serializers.ChoiceField(choices=["fixed", "adaptive"], required=False)
    adaptive_weights = serializers.JSONField(read_only=True)

    class Meta:
        fields: ClassVar[list[str]] = [
            "id",
            "status",
            *SHARED_FIELDS,
            *EXPERIMENT_FIELDS,
            "adaptive_weights",
            "adaptive_updated_at",
            "created_at",
            "updated_at",
            "published_at",
        ]
        read_only_fields: ClassVar[list[str]] = [
            "id",
            "status",
            "adaptive_updated_at",
            "created_at",
            "updated_at",
            "published_at",
        ]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        instance = self.instance
        allocation = attrs.get("allocation", getattr(instance, "allocation", "fixed"))
        kpi = attrs.get("primary_kpi", getattr(instance, "primary_kpi", None))
        if allocation == "adaptive" and kpi is None:
            raise serializers.ValidationError(
                {"allocation": "adaptive allocation needs a primary_kpi to optimise"}
            )
        return attrs


class ResultsSerializer(serializers.Serializer):
    holdout = serializers.JSONField()
    variants = serializers.ListField(child=serializers.JSONField())
    experiment = serializers.JSONField(
        help_text="hypothesis, primary_kpi, minimum_detectable_effect, allocation, weights"
    )
    kpis = serializers.ListField(
        child=serializers.JSONField(),
        help_text="Per KPI: holdout, exposed and per-variant rate, lift with its 95% interval, "
        "p-value, verdict, sample size needed per group and a warning while it is too small.",
    )


class CampaignViewSet(viewsets.ModelViewSet):
    """CRUD by id, plus `publish`, `pause`, `archive` and `results`; secret key only.

    The serializer validates shapes; `engage.campaigns` services apply the rules.
    """

    authentication_classes = [AppKeyAuthentication]
    permission_classes = [SecretKeyRequired]
    kind: ClassVar[str]
    lookup_value_regex = r"[0-9]+"
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Any]:
        model = campaign_kind_get(self.kind).model
        return model._default_manager.filter(app=request_app(self.request)).order_by("-id")

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = campaign_create(
            kind=self.kind, app=request_app(self.request), data=serializer.validated_data
        )

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        assert serializer.instance is not None  # noqa: S101 - DRF sets it on update
        serializer.instance = campaign_update(
            campaign=serializer.instance, data=serializer.validated_data
        )

    def perform_destroy(self, instance: Campaign) -> None:
        campaign_delete(campaign=instance)

    def _state(self, campaign: Campaign) -> Response:
        return Response(self.get_serializer(campaign).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        return self._state(campaign_publish(campaign=self.get_object()))

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        return self._state(campaign_pause(campaign=self.get_object()))

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def archive(self, request: Request, pk: str | None = None) -> Response:
        return self._state(campaign_archive(campaign=self.get_object()))

    @extend_schema(responses={200: ResultsSerializer})
    @action(detail=True, methods=["get"])
    def results(self, request: Request, pk: str | None = None) -> Response:
        campaign = self.get_object()
        kind = campaign_kind_get(self.kind)
        variants = [name for name, _ in kind.variants(campaign)]
        results = campaign_results(kind=self.kind, campaign_id=campaign.pk, variants=variants)
        results.update(
            campaign_kpi_results(campaign=campaign, kind=self.kind, variants=variants or [""])
        )
        return Response(results)
