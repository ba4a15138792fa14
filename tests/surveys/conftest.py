"""Wiring for survey tests: a live survey of the Acme App and a helper to answer it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.conftest import AppKeys

ORIGIN = "https://host.example"

QUESTIONS: list[dict[str, Any]] = [
    {
        "id": "recommend",
        "type": "nps",
        "required": True,
        "text": {"en": "How likely are you to recommend us?", "de": "Wie wahrscheinlich …?"},
        "logic": [
            {"if": {"op": "lte", "value": 6}, "jump_to": "why"},
            {"if": {"op": "gte", "value": 9}, "jump_to": "satisfaction"},
        ],
    },
    {"id": "why", "type": "open_text", "text": {"en": "What should we improve?"}},
    {"id": "satisfaction", "type": "csat", "required": True, "text": {"en": "How satisfied?"}},
    {
        "id": "plan",
        "type": "single_choice",
        "text": {"en": "Which plan?"},
        "choices": [
            {"id": "free", "label": {"en": "Free"}},
            {"id": "pro", "label": {"en": "Pro, yearly"}},
        ],
        "other": True,
    },
    {
        "id": "features",
        "type": "multiple_choice",
        "text": {"en": "What do you use?"},
        "choices": [
            {"id": "export", "label": {"en": "Export"}},
            {"id": "reports", "label": {"en": "Reports"}},
            {"id": "alerts", "label": {"en": "Alerts"}},
        ],
        "other": True,
        "shuffle": True,
    },
    {"id": "stars", "type": "rating", "scale": 5, "display": "stars", "text": {"en": "Rate us"}},
    {"id": "again", "type": "yes_no", "text": {"en": "Would you buy again?"}},
    {
        "id": "call",
        "type": "cta",
        "text": {"en": "Talk to us?"},
        "button": {"en": "Book a call"},
        "url": "https://host.example/call",
    },
]

SURVEY: dict[str, Any] = {
    "name": "NPS Q4",
    "trigger": {"on": "event", "event": "order_completed", "delay_seconds": 5},
    "questions": QUESTIONS,
    "thank_you": {"en": {"title": "Thanks!", "body": "We read **every** answer."}},
}


def survey_create(client: APIClient, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/surveys/", {**SURVEY, **overrides}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def survey(secret_client: APIClient) -> dict[str, Any]:
    created = survey_create(secret_client)
    published = secret_client.post(f"/api/v1/surveys/{created['id']}/publish")
    assert published.status_code == 200, published.content
    return published.json()


def submit(
    client: APIClient,
    survey_id: int,
    answers: dict[str, Any],
    *,
    response_id: str | None = None,
    completed: bool = False,
    user_id: str | None = "u1",
    **extra: Any,
) -> Any:
    headers = {k: v for k, v in extra.items() if k.startswith("HTTP_")}
    body = {
        "id": response_id or str(uuid.uuid4()),
        "survey_id": survey_id,
        "answers": answers,
        "completed": completed,
        **{k: v for k, v in extra.items() if k not in headers},
    }
    if user_id:
        body["user_id"] = user_id
    return client.post("/api/v1/responses", body, format="json", HTTP_ORIGIN=ORIGIN, **headers)


__all__ = ["ORIGIN", "QUESTIONS", "SURVEY", "AppKeys", "submit", "survey_create"]
