"""`POST /api/v1/targeting/explain` (secret key): why a person would or would not see each
campaign now. Read-only (docs/explain.md)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engage.api.authentication import AppKeyAuthentication, SecretKeyRequired, request_app
from engage.api.push import CampaignRefSerializer
from engage.api.serializers import EvaluateSerializer
from engage.explain import targeting_explain
from engage.targeting import Moment


class ExplainSerializer(EvaluateSerializer):
    campaign = CampaignRefSerializer(required=False)


class ReasonSerializer(serializers.Serializer):
    check = serializers.CharField()
    passed = serializers.BooleanField()
    message = serializers.CharField()
    reached = serializers.BooleanField()
    details = serializers.JSONField(required=False)


class CampaignExplanationSerializer(serializers.Serializer):
    kind = serializers.CharField()
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    decision = serializers.ChoiceField(choices=["shown", "withheld", "holdout"])
    stopped_at = serializers.CharField(allow_null=True)
    reasons = ReasonSerializer(many=True)


class ExplanationSerializer(serializers.Serializer):
    person = serializers.JSONField(allow_null=True)
    note = serializers.CharField(required=False)
    moment = serializers.JSONField()
    campaigns = CampaignExplanationSerializer(many=True)


def moment_of(data: dict[str, Any]) -> Moment:
    return Moment(
        event=data.get("event") or None,
        url=data.get("url") or None,
        locale=data.get("locale") or None,
        device=data.get("device") or None,
        session_start=bool(data.get("session_start")),
    )


class ExplainView(APIView):
    """Each live campaign's decision for the person now (or one campaign's, any status), with
    every check in the engine's order. Records nothing."""

    authentication_classes = [AppKeyAuthentication]
    permission_classes = [SecretKeyRequired]

    @extend_schema(request=ExplainSerializer, responses={200: ExplanationSerializer})
    def post(self, request: Request) -> Response:
        serializer = ExplainSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        ref = data.get("campaign")
        explanation = targeting_explain(
            app=request_app(request),
            user_id=data.get("user_id") or None,
            anonymous_id=data.get("anonymous_id") or None,
            attributes=data.get("attributes") or None,
            moment=moment_of(data),
            campaign=(ref["kind"], ref["id"]) if ref else None,
        )
        return Response(explanation.as_dict())
