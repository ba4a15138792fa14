"""Shapes of the survey endpoints."""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework import serializers

from engage.api.campaigns import CampaignSerializer
from segments.api.serializers import IdField
from surveys.models import Answer, Response, Survey
from surveys.services import survey_definition_validate


class SurveySerializer(CampaignSerializer):
    questions = serializers.JSONField()
    thank_you = serializers.JSONField(required=False)
    variants = serializers.JSONField(required=False)

    class Meta(CampaignSerializer.Meta):
        model = Survey
        fields: ClassVar[list[str]] = [
            *CampaignSerializer.Meta.fields,
            "questions",
            "thank_you",
            "variants",
        ]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Questions, thank-you screen and variants are checked together (variants name
        questions); the service raises InvalidInput naming the path, rendered as a 400."""
        if not {"questions", "thank_you", "variants"} & set(attrs):
            return attrs
        instance: Survey | None = self.instance if isinstance(self.instance, Survey) else None
        definition = survey_definition_validate(
            survey=instance,
            questions=attrs.get("questions", instance.questions if instance else None),
            thank_you=attrs.get("thank_you", instance.thank_you if instance else {}),
            variants=attrs.get("variants", instance.variants if instance else []),
        )
        attrs["questions"] = definition.questions
        attrs["thank_you"] = definition.thank_you
        attrs["variants"] = definition.variants
        return attrs


class ResponseSubmitSerializer(serializers.Serializer):
    """`POST /api/v1/responses`: shapes only; `response_submit` checks the rest."""

    id = serializers.CharField(max_length=64)
    survey_id = serializers.IntegerField()
    delivery_id = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    user_id = IdField()
    anonymous_id = IdField()
    answers = serializers.JSONField(required=False, default=dict)
    completed = serializers.BooleanField(required=False, default=False)
    locale = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=35)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("user_id") and not attrs.get("anonymous_id"):
            raise serializers.ValidationError({"user_id": "give a user_id or an anonymous_id"})
        return attrs


def response_as_dict(response: Response) -> dict[str, Any]:
    """A response as the APIs show it (`person` must be loaded with it)."""
    return {
        "id": str(response.pk),
        "survey_id": response.survey_id,
        "delivery_id": str(response.delivery_id) if response.delivery_id else None,
        "user_id": response.person.user_id,
        "variant": response.variant,
        "locale": response.locale,
        "answers": response.answers,
        "completed": response.completed,
        "created_at": response.created_at,
        "updated_at": response.updated_at,
        "completed_at": response.completed_at,
    }


class ResponseOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    survey_id = serializers.IntegerField()
    delivery_id = serializers.UUIDField(allow_null=True)
    user_id = serializers.CharField(allow_null=True)
    variant = serializers.CharField(allow_blank=True)
    locale = serializers.CharField(allow_blank=True)
    answers = serializers.JSONField()
    completed = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)


def text_answer_as_dict(answer: Answer) -> dict[str, Any]:
    return {
        "response_id": str(answer.response_id),
        "question_id": answer.question_id,
        "choice": answer.choice,
        "text": answer.text,
        "user_id": answer.person.user_id,
        "locale": answer.locale,
        "variant": answer.variant,
        "created_at": answer.created_at,
    }


class TextAnswerSerializer(serializers.Serializer):
    response_id = serializers.UUIDField()
    question_id = serializers.CharField()
    choice = serializers.CharField(allow_null=True)
    text = serializers.CharField()
    user_id = serializers.CharField(allow_null=True)
    locale = serializers.CharField(allow_blank=True)
    variant = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class SummarySerializer(serializers.Serializer):
    responses = serializers.IntegerField()
    completed = serializers.IntegerField()
    completion_rate = serializers.FloatField(allow_null=True)
    nps = serializers.JSONField(allow_null=True)
    csat = serializers.JSONField(allow_null=True)
    questions = serializers.JSONField()
    timeline = serializers.JSONField()
    filters = serializers.JSONField()
