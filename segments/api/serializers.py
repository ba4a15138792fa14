"""Input and output shapes of the events, identify, people and debug endpoints."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from engage import errors


class IdField(serializers.CharField):
    """User and anonymous ids: strings, or numbers sent by loosely typed clients."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 255)
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("allow_blank", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool) or not isinstance(data, str | int):
            raise serializers.ValidationError("must be a string")
        return super().to_internal_value(str(data))


class EventInSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    user_id = IdField()
    anonymous_id = IdField()
    user_hash = serializers.CharField(required=False, allow_blank=True, max_length=128)
    user_token = serializers.CharField(required=False, allow_blank=True, max_length=8192)
    properties = serializers.DictField(required=False, default=dict)
    timestamp = serializers.DateTimeField(required=False, allow_null=True)
    message_id = serializers.CharField(required=False, allow_null=True, max_length=255)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("user_id") and not attrs.get("anonymous_id"):
            raise serializers.ValidationError(
                {"user_id": "an event needs a user_id or an anonymous_id"}
            )
        return attrs


class EventsBatchSerializer(serializers.Serializer):
    events = serializers.ListField(child=serializers.JSONField(), allow_empty=False)

    def validate_events(self, value: list[Any]) -> list[Any]:
        limit = settings.ENGAGE_MAX_BATCH_EVENTS
        if len(value) > limit:
            # 413 like a body over the limit: the same request can never succeed; split it.
            raise errors.PayloadTooLarge(
                f"events: at most {limit} events in one batch", code="batch_too_large"
            )
        return value


class EventsAcceptedSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Events stored by this request.")
    duplicates = serializers.IntegerField(help_text="Events already stored (same message_id).")


class IdentifySerializer(serializers.Serializer):
    user_id = IdField(required=True, allow_null=False, allow_blank=False)
    anonymous_id = IdField()
    user_hash = serializers.CharField(required=False, allow_blank=True, max_length=128)
    user_token = serializers.CharField(required=False, allow_blank=True, max_length=8192)
    attributes = serializers.DictField(required=False, default=dict)


class PersonEventSerializer(serializers.Serializer):
    name = serializers.CharField()
    properties = serializers.JSONField()
    contexts = serializers.JSONField()
    timestamp = serializers.DateTimeField()
    source = serializers.CharField()  # type: ignore[assignment]  # a field named "source"


class PersonSerializer(serializers.Serializer):
    user_id = serializers.CharField(allow_null=True)
    anonymous_ids = serializers.ListField(child=serializers.CharField())
    attributes = serializers.JSONField()
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    events = PersonEventSerializer(many=True)
    segments = serializers.ListField(child=serializers.CharField())
    deliveries = serializers.ListField(child=serializers.JSONField())


class DebugEventSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["good", "bad"])
    source = serializers.CharField()  # type: ignore[assignment]  # a field named "source"
    received_at = serializers.DateTimeField()
    raw = serializers.JSONField()
    event = serializers.JSONField(required=False)
    reason = serializers.CharField(required=False)


class DebugEventsPageSerializer(serializers.Serializer):
    results = DebugEventSerializer(many=True)
    next = serializers.CharField(allow_null=True)
