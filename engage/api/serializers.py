"""Shapes of the targeting and widget endpoints."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from segments.api.serializers import IdField


class EvaluateSerializer(serializers.Serializer):
    user_id = IdField()
    anonymous_id = IdField()
    attributes = serializers.DictField(required=False, default=dict)
    event = serializers.CharField(required=False, allow_blank=True, max_length=255)
    url = serializers.CharField(required=False, allow_blank=True, max_length=4096)
    locale = serializers.CharField(required=False, allow_blank=True, max_length=35)
    device = serializers.CharField(required=False, allow_blank=True, max_length=32)
    session_start = serializers.BooleanField(required=False, default=False)
    dry_run = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("user_id") and not attrs.get("anonymous_id"):
            raise serializers.ValidationError({"user_id": "give a user_id or an anonymous_id"})
        return attrs


class ItemSerializer(serializers.Serializer):
    kind = serializers.CharField()
    id = serializers.IntegerField()
    delivery_id = serializers.CharField(allow_null=True)
    variant = serializers.CharField(allow_blank=True)
    display = serializers.CharField()
    priority = serializers.IntegerField()
    delay_seconds = serializers.IntegerField()
    content = serializers.JSONField()


class ItemsSerializer(serializers.Serializer):
    items = ItemSerializer(many=True)


class DeliveryEventSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["shown", "clicked", "dismissed"])
    button = serializers.CharField(required=False, allow_blank=True, max_length=200)
    user_id = IdField()
    anonymous_id = IdField()


class DeliveryStateSerializer(serializers.Serializer):
    id = serializers.CharField()
    shown_at = serializers.DateTimeField(allow_null=True)
    clicked_at = serializers.DateTimeField(allow_null=True)
    clicked_button = serializers.CharField(allow_blank=True)
    dismissed_at = serializers.DateTimeField(allow_null=True)


class KeyCheckSerializer(serializers.Serializer):
    app = serializers.JSONField()
    key = serializers.ChoiceField(choices=["public", "secret"])
    identity_verification = serializers.BooleanField()
