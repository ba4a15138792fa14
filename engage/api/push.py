"""`POST /api/v1/targeting/push` (secret key): show a campaign to one person now."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engage.api.authentication import AppKeyAuthentication, SecretKeyRequired, request_app
from engage.realtime.push import campaign_push


class CampaignRefSerializer(serializers.Serializer):
    kind = serializers.CharField(max_length=32)
    id = serializers.IntegerField(min_value=1)


class PushSerializer(serializers.Serializer):
    user_id = serializers.CharField(max_length=255)
    campaign = CampaignRefSerializer()


class PushedSerializer(serializers.Serializer):
    connections = serializers.IntegerField(help_text="Open widget connections it was sent to.")
    delivery_id = serializers.CharField()


class PushView(APIView):
    """Shows a live campaign now on every open widget of the user (trigger, audience and
    display rules are not applied; the delivery waits in the next snapshot when none is open)."""

    authentication_classes = [AppKeyAuthentication]
    permission_classes = [SecretKeyRequired]

    @extend_schema(request=PushSerializer, responses={200: PushedSerializer})
    def post(self, request: Request) -> Response:
        serializer = PushSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        pushed = campaign_push(
            app=request_app(request),
            user_id=data["user_id"],
            kind=data["campaign"]["kind"],
            campaign_id=data["campaign"]["id"],
        )
        return Response({"connections": pushed.connections, "delivery_id": pushed.item.delivery_id})
