"""`/api/v1/messages/`: CRUD, publish, pause, archive and results of messages."""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework import serializers

from engage.api.campaigns import CampaignSerializer, CampaignViewSet
from messaging.content import content_validate, variants_validate
from messaging.models import Message


class MessageSerializer(CampaignSerializer):
    content = serializers.JSONField()
    variants = serializers.JSONField(required=False)

    class Meta(CampaignSerializer.Meta):
        model = Message
        fields: ClassVar[list[str]] = [
            *CampaignSerializer.Meta.fields,
            "kind",
            "content",
            "variants",
        ]

    # The validators raise InvalidInput whose message names the full path
    # ("content.en.buttons[0].url: …"); the exception handler renders it as a 400.
    def validate_content(self, value: Any) -> dict[str, Any]:
        return content_validate(value)

    def validate_variants(self, value: Any) -> list[dict[str, Any]]:
        return variants_validate(value)


class MessageViewSet(CampaignViewSet):
    serializer_class = MessageSerializer
    kind = "message"
