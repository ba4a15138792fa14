"""`/api/v1/segments/`: CRUD by slug, members and preview (secret key)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from engage.api.authentication import AppKeyAuthentication, SecretKeyRequired, request_app
from engage.api.pagination import CursorPagination
from segments.models import Person, Segment
from segments.selectors import segment_members, segment_preview
from segments.services import segment_create, segment_delete, segment_update


class SegmentSerializer(serializers.ModelSerializer):
    condition = serializers.JSONField()
    readable = serializers.SerializerMethodField(help_text="The condition in plain words.")

    class Meta:
        model = Segment
        fields = [
            "slug",
            "name",
            "description",
            "condition",
            "readable",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        # Uniqueness is the service's job (one message naming the slug), not DRF's validator.
        validators: list[Any] = []

    def get_readable(self, segment: Segment) -> str:
        from segments.conditions import condition_describe, parse_condition

        try:
            return str(condition_describe(parse_condition(segment.condition)))
        except Exception:  # an old condition that no longer parses still lists
            return ""


class PreviewRequestSerializer(serializers.Serializer):
    condition = serializers.JSONField()


class MemberSerializer(serializers.ModelSerializer):
    class Meta:
        model = Person
        fields = ["user_id", "attributes", "first_seen", "last_seen"]


class PreviewSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    sample = MemberSerializer(many=True)
    took_ms = serializers.FloatField()


class MembersPagination(CursorPagination):
    ordering = "-id"


class SegmentViewSet(viewsets.ModelViewSet):
    authentication_classes = [AppKeyAuthentication]
    permission_classes = [SecretKeyRequired]
    serializer_class = SegmentSerializer
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Segment]:
        return Segment.objects.filter(app=request_app(self.request)).order_by("-id")

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        data = serializer.validated_data
        serializer.instance = segment_create(
            app=request_app(self.request),
            slug=data["slug"],
            name=data["name"],
            description=data.get("description", ""),
            condition=data["condition"],
        )

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        data = dict(serializer.validated_data)
        data.pop("slug", None)
        assert isinstance(serializer.instance, Segment)  # noqa: S101 - DRF sets it on update
        serializer.instance = segment_update(segment=serializer.instance, data=data)

    def perform_destroy(self, instance: Segment) -> None:
        segment_delete(segment=instance)

    @extend_schema(responses={200: MemberSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def members(self, request: Request, slug: str | None = None) -> Response:
        people = segment_members(segment=self.get_object())
        paginator = MembersPagination()
        page = paginator.paginate_queryset(people, request, view=self)
        return paginator.get_paginated_response(MemberSerializer(page, many=True).data)

    @extend_schema(request=PreviewRequestSerializer, responses={200: PreviewSerializer})
    @action(detail=False, methods=["post"])
    def preview(self, request: Request) -> Response:
        body = PreviewRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        preview = segment_preview(
            app=request_app(request), condition=body.validated_data["condition"]
        )
        return Response(
            PreviewSerializer(
                {"count": preview.count, "sample": preview.sample, "took_ms": preview.took_ms}
            ).data,
            status=status.HTTP_200_OK,
        )
