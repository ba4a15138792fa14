"""Answers to a previewed survey: validated and acknowledged, never stored or counted."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

from engage import models
from engage.preview import campaign_preview
from surveys.models import Answer, Response, ResponseTally
from tests.conftest import AppKeys
from tests.surveys.conftest import submit, survey_create


@pytest.fixture
def previewed(secret_client: APIClient, app_keys: AppKeys) -> tuple[dict[str, Any], str]:
    draft = survey_create(secret_client)
    models.TestUser.objects.create(app=app_keys.app, user_id="qa")
    shown = campaign_preview(app=app_keys.app, kind="survey", campaign_id=draft["id"], user_id="qa")
    return draft, str(shown.delivery.pk)


@pytest.mark.django_db
def test_a_preview_of_a_draft_survey_can_be_answered_and_nothing_is_kept(
    public_client: APIClient, secret_client: APIClient, previewed: tuple[dict[str, Any], str]
) -> None:
    draft, delivery_id = previewed
    response_id = str(uuid.uuid4())
    answered = submit(
        public_client,
        draft["id"],
        {"recommend": 9},
        response_id=response_id,
        completed=True,
        user_id="qa",
        delivery_id=delivery_id,
    )
    assert answered.status_code == 200, answered.content
    body = answered.json()
    assert body["id"] == response_id
    assert body["answers"] == {"recommend": 9}
    assert body["completed"] is True
    assert not Response.objects.exists()
    assert not Answer.objects.exists()
    assert not ResponseTally.objects.exists()
    assert models.Delivery.objects.get(pk=delivery_id).answered_at is not None
    summary = secret_client.get(f"/api/v1/surveys/{draft['id']}/summary").json()
    assert summary["responses"] == 0


@pytest.mark.django_db
def test_preview_answers_are_validated_like_real_ones(
    public_client: APIClient, previewed: tuple[dict[str, Any], str]
) -> None:
    draft, delivery_id = previewed
    refused = submit(
        public_client, draft["id"], {"recommend": 11}, user_id="qa", delivery_id=delivery_id
    )
    assert refused.status_code == 400
    assert "recommend" in refused.json()["error"]["message"]


@pytest.mark.django_db
def test_a_preview_delivery_answers_only_for_its_person_and_survey(
    public_client: APIClient, secret_client: APIClient, previewed: tuple[dict[str, Any], str]
) -> None:
    draft, delivery_id = previewed
    stranger = submit(
        public_client, draft["id"], {"recommend": 5}, user_id="someone", delivery_id=delivery_id
    )
    assert stranger.status_code == 404
    other = survey_create(secret_client, name="Other")
    wrong = submit(
        public_client, other["id"], {"recommend": 5}, user_id="qa", delivery_id=delivery_id
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "wrong_delivery"
    assert not Response.objects.exists()
