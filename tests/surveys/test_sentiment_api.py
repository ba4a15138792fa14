"""Sentiment endpoints and alerts: shape, CSV, errors naming the parameter, tenancy, and an
alert that fires once per week with a signed webhook."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from engage.models_webhooks import WebhookMessage
from engage.webhooks import (
    webhook_endpoint_create,
    webhook_message_body,
    webhook_message_headers,
    webhook_verify,
)
from surveys.models import SentimentAlert, SentimentAlertRule, Survey
from surveys.sentiment import sentiment_pending_score
from surveys.sentiment_alerts import sentiment_alerts_evaluate
from surveys.services import response_submit

NEGATIVE = "Terrible update. The export is slow and the app crashes all the time."
POSITIVE = "I love the new reports, they are fast and beautiful!"


def answer(app: Any, survey_id: int, answers: dict[str, Any], at: datetime, user: str) -> None:
    response_submit(
        app=app,
        survey_id=survey_id,
        response_id=uuid.uuid4(),
        user_id=user,
        anonymous_id=None,
        delivery_id=None,
        answers=answers,
        completed=False,
        locale="en",
        now=at,
    )


@pytest.fixture
def answered(app_keys, survey) -> dict[str, Any]:
    app = app_keys.app
    answer(
        app,
        survey["id"],
        {"recommend": 2, "why": NEGATIVE},
        datetime(2024, 3, 5, 10, tzinfo=UTC),
        "u1",
    )
    answer(
        app,
        survey["id"],
        {"recommend": 10, "why": POSITIVE},
        datetime(2024, 3, 6, 10, tzinfo=UTC),
        "u2",
    )
    sentiment_pending_score()
    return survey


@pytest.mark.parametrize("slash", ["", "/"])
def test_survey_sentiment_shape(secret_client, answered, slash):
    query = "interval=day&from=2024-03-05&to=2024-03-06"
    url = f"/api/v1/surveys/{answered['id']}/sentiment{slash}?{query}"
    body = secret_client.get(url).json()
    assert body["interval"] == "day"
    assert body["survey_id"] == answered["id"]
    first, second = body["buckets"]
    assert set(first) >= {
        "start",
        "responses",
        "mean_score",
        "positive",
        "neutral",
        "negative",
        "nps",
        "top_negative_terms",
    }
    assert (first["start"], first["negative"], first["nps"]) == ("2024-03-05", 1, -100.0)
    assert (second["start"], second["positive"], second["nps"]) == ("2024-03-06", 1, 100.0)
    assert {"term": "export", "count": 1} in first["top_negative_terms"]
    assert body["totals"]["scored"] == 2


@pytest.mark.parametrize("slash", ["", "/"])
def test_app_wide_sentiment(secret_client, answered, slash):
    body = secret_client.get(f"/api/v1/sentiment{slash}?interval=week").json()
    assert body["survey_id"] is None
    assert [(b["start"], b["positive"], b["negative"]) for b in body["buckets"]] == [
        ("2024-03-04", 1, 1)
    ]


def test_sentiment_csv(secret_client, answered):
    response = secret_client.get(f"/api/v1/surveys/{answered['id']}/sentiment?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("start,responses,scored,mean_score,positive,neutral,negative")
    assert lines[1].startswith("2024-03-05,1,1,-0.")
    assert "export (1)" in lines[1]
    assert len(lines) == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("interval=month", "interval"),
        ("from=yesterday", "from"),
        ("to=2024-13-01", "to"),
        ("from=2024-03-06&to=2024-03-01", "to"),
        ("format=xml", "format"),
        ("segment=nobody", "segment"),
        ("locale=en%20US", "locale"),
        ("terms=many", "terms"),
        ("terms=51", "terms"),
        ("variant=b", "variant"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(secret_client, answered, query, field):
    for url in (
        f"/api/v1/surveys/{answered['id']}/sentiment?{query}",
        f"/api/v1/sentiment?{query}",
    ):
        response = secret_client.get(url)
        assert response.status_code == 400, (url, response.content)
        error = response.json()["error"]
        assert error["message"].startswith(f"{field}:"), error


def test_other_apps_keys_see_nothing(answered, other_app_keys, public_client):
    from rest_framework.test import APIClient

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_app_keys.secret_key}")
    response = other.get(f"/api/v1/surveys/{answered['id']}/sentiment")
    assert response.status_code == 404
    assert response.json()["error"]["code"]
    assert other.get("/api/v1/sentiment").json()["totals"]["scored"] == 0
    assert public_client.get("/api/v1/sentiment").status_code == 403
    assert APIClient().get("/api/v1/sentiment").status_code == 401


# --- alerts -------------------------------------------------------------------------------------

# Weeks: 2024-03-04 (Mon) … 03-10, then 03-11 … 03-17; "now" is in the week after.
NOW = datetime(2024, 3, 20, 9, 0, tzinfo=UTC)


def _fill(app: Any, survey_id: int) -> None:
    for i in range(3):
        answer(
            app,
            survey_id,
            {"recommend": 10, "why": POSITIVE},
            datetime(2024, 3, 5, 10, i, tzinfo=UTC),
            f"a{i}",
        )
    for i in range(3):
        answer(
            app,
            survey_id,
            {"recommend": 1, "why": NEGATIVE},
            datetime(2024, 3, 12, 10, i, tzinfo=UTC),
            f"b{i}",
        )
    sentiment_pending_score()


def test_a_sentiment_drop_fires_once_with_a_signed_webhook(app_keys, survey):
    app = app_keys.app
    endpoint = webhook_endpoint_create(
        app=app, url="https://hooks.example/engage", event_types=["sentiment.alert"]
    )
    _fill(app, survey["id"])
    rule = SentimentAlertRule.objects.create(
        app=app,
        survey=Survey.objects.get(pk=survey["id"]),
        name="Mood drop",
        kind="sentiment_drop",
        threshold=0.5,
        min_answers=3,
    )
    fired = sentiment_alerts_evaluate(now=NOW)
    assert [a.rule_id for a in fired] == [rule.pk]
    alert = fired[0]
    assert alert.period_start.isoformat() == "2024-03-11"
    assert alert.value < 0 < alert.previous_value
    assert "fell from" in alert.message
    # The same week again: nothing new.
    assert sentiment_alerts_evaluate(now=NOW) == []
    assert sentiment_alerts_evaluate(now=datetime(2024, 3, 24, 23, tzinfo=UTC)) == []
    assert SentimentAlert.objects.count() == 1

    (message,) = WebhookMessage.objects.filter(endpoint=endpoint)
    assert message.type == "sentiment.alert"
    assert message.payload["rule"]["kind"] == "sentiment_drop"
    assert message.payload["period"]["start"] == "2024-03-11"
    assert {"term": "export", "count": 3} in message.payload["top_negative_terms"]
    body = webhook_message_body(message)
    headers = webhook_message_headers(message, body=body, now=datetime.now(UTC))
    verified = webhook_verify(endpoint.secret, headers, body, now=time.time())
    assert verified["type"] == "sentiment.alert"


def test_nps_below_fires_and_small_weeks_are_not_judged(app_keys, survey):
    app = app_keys.app
    _fill(app, survey["id"])
    low = SentimentAlertRule.objects.create(
        app=app, name="NPS low", kind="nps_below", threshold=0, min_answers=3
    )
    SentimentAlertRule.objects.create(
        app=app, name="Too few", kind="nps_below", threshold=0, min_answers=4
    )
    SentimentAlertRule.objects.create(
        app=app, name="Not a drop", kind="sentiment_drop", threshold=1.99, min_answers=3
    )
    SentimentAlertRule.objects.create(
        app=app, name="Off", kind="nps_below", threshold=0, min_answers=1, active=False
    )
    fired = sentiment_alerts_evaluate(now=NOW)
    assert [a.rule.name for a in fired] == ["NPS low"]
    assert fired[0].value == -100.0
    assert fired[0].rule_id == low.pk


def test_a_rule_for_a_survey_of_another_app_is_refused(app_keys, other_app_keys, survey):
    from django.core.exceptions import ValidationError

    rule = SentimentAlertRule(
        app=other_app_keys.app,
        survey=Survey.objects.get(pk=survey["id"]),
        name="x",
        kind="nps_below",
        threshold=0,
    )
    with pytest.raises(ValidationError, match="another App"):
        rule.full_clean()
    with pytest.raises(ValidationError, match="threshold"):
        SentimentAlertRule(
            app=app_keys.app, name="x", kind="sentiment_drop", threshold=0
        ).full_clean()
