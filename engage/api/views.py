"""Targeting API (secret key) and the widget's HTTP endpoints (public key)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engage import errors
from engage.api.authentication import (
    AnyAppKey,
    AppCredential,
    AppKeyAuthentication,
    SecretKeyRequired,
    request_app,
)
from engage.api.identity import request_identity_check
from engage.api.serializers import (
    DeliveryEventSerializer,
    DeliveryStateSerializer,
    EvaluateSerializer,
    ItemsSerializer,
    KeyCheckSerializer,
)
from engage.deliveries import delivery_event_record, targeting_evaluate
from engage.preview import preview_token_redeem
from engage.selectors import origin_allowed_for_app
from engage.targeting import Moment
from segments.api.serializers import IdField
from segments.services import person_resolve


def _validated(serializer_class: Any, data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _moment(data: dict[str, Any]) -> Moment:
    return Moment(
        event=data.get("event") or None,
        url=data.get("url") or None,
        locale=data.get("locale") or None,
        device=data.get("device") or None,
        session_start=bool(data.get("session_start")),
    )


def widget_request_check(request: Request, *, user_id: str | None) -> AppCredential:
    """Public-key requests: the Origin must be the App's, and a named user needs its hash."""
    credential: AppCredential = request.auth  # type: ignore[assignment]
    if credential.kind == "public":
        origin = request.headers.get("Origin")
        if not origin_allowed_for_app(credential.app, origin):
            raise errors.PermissionDenied(
                f'Origin "{origin}" is not an allowed origin of this App.',
                code="origin_not_allowed",
            )
        request_identity_check(
            request, app=credential.app, user_id=user_id, data=request.data, door="widget"
        )
    return credential


class EvaluateView(APIView):
    authentication_classes = [AppKeyAuthentication]
    permission_classes = [SecretKeyRequired]

    @extend_schema(request=EvaluateSerializer, responses={200: ItemsSerializer})
    def post(self, request: Request) -> Response:
        data = _validated(EvaluateSerializer, request.data)
        evaluation = targeting_evaluate(
            app=request_app(request),
            user_id=data.get("user_id") or None,
            anonymous_id=data.get("anonymous_id") or None,
            attributes=data.get("attributes") or None,
            moment=_moment(data),
            dry_run=data["dry_run"],
        )
        return Response({"items": [i.as_dict() for i in evaluation.items]})


class WidgetCampaignsView(APIView):
    authentication_classes = [AppKeyAuthentication]
    permission_classes = [AnyAppKey]

    @extend_schema(
        parameters=[
            OpenApiParameter("user_id", str, required=False),
            OpenApiParameter("anonymous_id", str, required=False),
            OpenApiParameter("url", str, required=False),
            OpenApiParameter("event", str, required=False),
            OpenApiParameter("locale", str, required=False),
        ],
        responses={200: ItemsSerializer},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params.dict()
        params.pop("dry_run", None)
        data = _validated(EvaluateSerializer, params)
        credential = widget_request_check(request, user_id=data.get("user_id"))
        evaluation = targeting_evaluate(
            app=credential.app,
            user_id=data.get("user_id") or None,
            anonymous_id=data.get("anonymous_id") or None,
            moment=_moment(data),
        )
        return Response({"items": [i.as_dict() for i in evaluation.items]})


class DeliveryEventsView(APIView):
    authentication_classes = [AppKeyAuthentication]
    permission_classes = [AnyAppKey]

    @extend_schema(request=DeliveryEventSerializer, responses={200: DeliveryStateSerializer})
    def post(self, request: Request, delivery_id: str) -> Response:
        data = _validated(DeliveryEventSerializer, request.data)
        credential = widget_request_check(request, user_id=data.get("user_id"))
        person = None
        if data.get("user_id") or data.get("anonymous_id"):
            person = person_resolve(
                app=credential.app,
                user_id=data.get("user_id"),
                anonymous_id=data.get("anonymous_id"),
                create=False,
            )
            if person is None:
                raise errors.NotFound("No such delivery for this person.")
        delivery = delivery_event_record(
            app=credential.app,
            delivery_id=delivery_id,
            type=data["type"],
            button=data.get("button"),
            person=person,
        )
        return Response(
            {
                "id": str(delivery.pk),
                "shown_at": delivery.shown_at,
                "clicked_at": delivery.clicked_at,
                "clicked_button": delivery.clicked_button,
                "dismissed_at": delivery.dismissed_at,
            }
        )


class PreviewRedeemSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=1024)
    user_id = IdField()
    anonymous_id = IdField()
    locale = serializers.CharField(required=False, allow_blank=True, max_length=35)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("user_id") and not attrs.get("anonymous_id"):
            raise serializers.ValidationError({"anonymous_id": "give a user_id or an anonymous_id"})
        return attrs


class WidgetPreviewView(APIView):
    """`POST /api/v1/widget/preview`: the campaign of a one-time preview link, as a test."""

    authentication_classes = [AppKeyAuthentication]
    permission_classes = [AnyAppKey]

    @extend_schema(request=PreviewRedeemSerializer, responses={200: ItemsSerializer})
    def post(self, request: Request) -> Response:
        data = _validated(PreviewRedeemSerializer, request.data)
        credential = widget_request_check(request, user_id=data.get("user_id"))
        item = preview_token_redeem(
            app=credential.app,
            token=data["token"],
            user_id=data.get("user_id") or None,
            anonymous_id=data.get("anonymous_id") or None,
            locale=data.get("locale") or None,
        )
        return Response({"items": [item.as_dict()]})


class KeyCheckView(APIView):
    """`GET /api/v1/me`: which App and kind of key this is (Sasha's first call)."""

    authentication_classes = [AppKeyAuthentication]
    permission_classes = [AnyAppKey]

    @extend_schema(responses={200: KeyCheckSerializer})
    def get(self, request: Request) -> Response:
        credential: AppCredential = request.auth  # type: ignore[assignment]
        app = credential.app
        return Response(
            {
                "app": {"id": app.pk, "name": app.name},
                "key": credential.kind,
                "identity_verification": app.identity_verification,
            }
        )
