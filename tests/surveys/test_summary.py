"""Summaries: NPS, CSAT, completion, drop-off, choices and trends on fixed data, by hand."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from engage import errors
from engage.campaigns import campaign_create, campaign_publish
from engage.models import Delivery
from segments.models import Person, Segment
from surveys.models import AnswerTally, ResponseTally, Survey
from surveys.selectors import ResponseFilters, filters_from_params, survey_summary
from surveys.services import response_submit, survey_tallies_rebuild
from tests.surveys.conftest import QUESTIONS

pytestmark = pytest.mark.django_db

DAY1 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
DAY3 = datetime(2024, 5, 3, 18, 0, tzinfo=UTC)

# (NPS, CSAT or None when the response stopped after the NPS, day, locale)
FIXED: list[tuple[int, int | None, datetime, str]] = [
    (10, 5, DAY1, "en"),
    (10, 5, DAY1, "en"),
    (9, 4, DAY1, "en"),
    (0, None, DAY1, "en"),
    (9, 4, DAY3, "en"),
    (9, 4, DAY3, "en"),
    (8, 3, DAY3, "de"),
    (7, 2, DAY3, "de"),
    (6, 1, DAY3, "de"),
    (3, None, DAY3, "de-AT"),
]
EXTRA: dict[int, dict[str, Any]] = {
    0: {"plan": "pro", "features": ["export", "alerts"]},
    1: {"plan": "free"},
    2: {"plan": {"other": "team"}},
    4: {"plan": "pro"},
    5: {"features": ["export"]},
}
VARIANT_B = {0, 4, 8}
PRO = {1, 2, 3}


@pytest.fixture
def fixed(app_keys) -> Survey:
    app = app_keys.app
    survey = campaign_create(
        kind="survey",
        app=app,
        data={
            "name": "Fixed",
            "questions": QUESTIONS,
            "variants": [{"key": "a", "weight": 50}, {"key": "b", "weight": 50}],
        },
    )
    campaign_publish(campaign=survey)
    Segment.objects.create(
        app=app,
        slug="pro",
        name="Pro",
        condition={"attribute": "plan", "op": "eq", "value": "pro"},
    )
    for i, (nps, csat, at, locale) in enumerate(FIXED):
        user = f"user-{i}"
        person = Person.objects.create(
            app=app,
            user_id=user,
            attributes={"plan": "pro" if i in PRO else "free"},
            first_seen=at,
            last_seen=at,
        )
        delivery = Delivery.objects.create(
            app=app,
            person=person,
            kind="survey",
            campaign_id=survey.pk,
            variant="b" if i in VARIANT_B else "a",
            decided_at=at,
        )
        rid = uuid.uuid4()
        common = {
            "app": app,
            "survey_id": survey.pk,
            "response_id": rid,
            "user_id": user,
            "anonymous_id": None,
            "delivery_id": delivery.pk,
            "locale": locale,
            "now": at,
        }
        response_submit(**common, answers={"recommend": nps, **EXTRA.get(i, {})}, completed=False)
        if csat is not None:
            response_submit(
                **{**common, "now": at + timedelta(minutes=1)},
                answers={"satisfaction": csat},
                completed=True,
            )
    return Survey.objects.select_related("app").get(pk=survey.pk)


def test_summary_matches_hand_computed_nps_csat_and_completion(fixed):
    summary = survey_summary(survey=fixed)
    assert (summary.responses, summary.completed, summary.completion_rate) == (10, 8, 0.8)
    # Promoters 10, 10, 9, 9, 9; passives 8, 7; detractors 6, 3, 0: (5 − 3) / 10 = 20.
    assert summary.nps == {
        "question_id": "recommend",
        "score": 20.0,
        "promoters": 5,
        "passives": 2,
        "detractors": 3,
        "responses": 10,
    }
    # CSAT 5, 5, 4, 4, 4, 3, 2, 1: five of eight are 4 or 5 = 62.5%; mean 28 / 8 = 3.5.
    assert summary.csat == {
        "question_id": "satisfaction",
        "score": 62.5,
        "satisfied": 5,
        "responses": 8,
        "mean": 3.5,
    }
    recommend = summary.questions["recommend"]
    assert recommend["distribution"] == {
        "0": 1, "1": 0, "2": 0, "3": 1, "4": 0, "5": 0, "6": 1, "7": 1, "8": 1, "9": 3, "10": 2,
    }  # fmt: skip
    assert recommend["mean"] == 7.1  # 71 / 10
    # The two incomplete responses stopped after the NPS question.
    assert (recommend["answered"], recommend["dropped_off"], recommend["drop_off_rate"]) == (
        10,
        2,
        0.2,
    )
    assert summary.questions["satisfaction"]["dropped_off"] == 0
    plan = summary.questions["plan"]
    assert plan["answered"] == 4
    assert [(c["id"], c["count"], c["rate"]) for c in plan["choices"]] == [
        ("free", 1, 0.25),
        ("pro", 2, 0.5),
        ("other", 1, 0.25),
    ]
    features = summary.questions["features"]
    assert (features["answered"], features["selections"]) == (2, 3)
    assert [(c["id"], c["count"]) for c in features["choices"]] == [
        ("export", 2),
        ("reports", 0),
        ("alerts", 1),
        ("other", 0),
    ]
    assert summary.questions["why"] == {
        "type": "open_text",
        "text": "What should we improve?",
        "answered": 0,
        "dropped_off": 0,
        "drop_off_rate": None,
    }


def test_timeline_has_every_day_and_the_nps_of_each(fixed):
    buckets = survey_summary(survey=fixed).timeline["buckets"]
    assert [(b["start"], b["responses"], b["completed"]) for b in buckets] == [
        ("2024-05-01", 4, 3),
        ("2024-05-02", 0, 0),
        ("2024-05-03", 6, 5),
    ]
    # Day 1: 10, 10, 9, 0 → (3 − 1) / 4 = 50. Day 3: 9, 9, 8, 7, 6, 3 → (2 − 2) / 6 = 0.
    assert [b["nps"] for b in buckets] == [50.0, None, 0.0]
    # CSAT day 1: 5, 5, 4 → 100%; day 3: 4, 4, 3, 2, 1 → 40%.
    assert [b["csat"] for b in buckets] == [100.0, None, 40.0]
    weekly = survey_summary(survey=fixed, interval="week").timeline["buckets"]
    assert [(b["start"], b["responses"], b["nps"]) for b in weekly] == [("2024-04-29", 10, 20.0)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # de and de-AT: NPS 8, 7, 6, 3 → (0 − 2) / 4; CSAT 3, 2, 1 → none satisfied.
        ({"locale": "de"}, (4, 3, -50.0, 0.0)),
        # Variant b (users 0, 4, 8): NPS 10, 9, 6 → (2 − 1) / 3; CSAT 5, 4, 1 → 2 of 3.
        ({"variant": "b"}, (3, 3, 33.3, 66.7)),
        # Segment pro (users 1, 2, 3): NPS 10, 9, 0; CSAT 5, 4.
        ({"segment": "pro"}, (3, 2, 33.3, 100.0)),
        # `to` as a date includes that whole day.
        ({"from": "2024-05-01", "to": "2024-05-01"}, (4, 3, 50.0, 100.0)),
        ({"from": "2024-05-03T18:00:00Z"}, (6, 5, 0.0, 40.0)),
        # A time after day 1's responses; `to` as a date runs to the end of day 3.
        ({"from": "2024-05-01T09:30:01+00:00", "to": "2024-05-03"}, (6, 5, 0.0, 40.0)),
        ({"to": "2024-05-01T09:30:00Z"}, (0, 0, None, None)),
    ],
)
def test_filters(fixed, params, expected):
    summary = survey_summary(survey=fixed, filters=filters_from_params(params))
    csat = summary.csat["score"] if summary.csat else None
    assert (summary.responses, summary.completed, summary.nps["score"], csat) == expected


def test_the_api_answers_the_same_and_refuses_bad_filters(fixed, secret_client):
    url = f"/api/v1/surveys/{fixed.pk}/summary"
    body = secret_client.get(url, {"locale": "de"}).json()
    assert body["nps"]["score"] == -50.0
    assert body["completion_rate"] == 0.75
    assert body["filters"] == {"locale": "de"}
    for params, message in [
        ({"from": "yesterday"}, "from: an ISO 8601 date or date-time"),
        ({"from": "2024-05-03", "to": "2024-05-01"}, "to: must be after from"),
        ({"segment": "nope"}, 'segment: no segment "nope" in this App'),
        ({"interval": "hour"}, "interval: one of day, week"),
    ]:
        response = secret_client.get(url, params)
        assert response.status_code == 400, params
        assert response.json()["error"]["message"].startswith(message)


def test_summary_query_counts(fixed, django_assert_num_queries):
    with django_assert_num_queries(2):  # the daily tallies: responses, answers
        survey_summary(survey=fixed, filters=ResponseFilters(locale="de"))
    with django_assert_num_queries(4):  # whole days from tallies, the cut day from the rows
        survey_summary(survey=fixed, filters=filters_from_params({"from": "2024-05-01T10:00"}))
    with django_assert_num_queries(2):  # the rows: responses, answers (with NPS/CSAT trends)
        survey_summary(survey=fixed, filters=ResponseFilters(locale="de"), source="rows")
    # + the segment and the App's segments; on PostgreSQL also the planner settings of the
    # rows' two queries (read, set, put back) and their transaction (savepoint, release).
    with django_assert_num_queries(9 if connection.vendor == "postgresql" else 4):
        survey_summary(survey=fixed, filters=ResponseFilters(segment="pro"))


def test_tallies_and_rows_agree_after_random_edits(app_keys):
    """Submits, partial updates, cleared answers and completions in random order: the tallies
    kept by `response_submit` give the same summary as the rows, and as a rebuild."""
    app = app_keys.app
    survey = campaign_create(kind="survey", app=app, data={"name": "R", "questions": QUESTIONS})
    campaign_publish(campaign=survey)
    rng = random.Random(11)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    ids = [uuid.uuid4() for _ in range(25)]
    values: dict[str, Any] = {
        "recommend": lambda: rng.randint(0, 10),
        "why": lambda: rng.choice(["slow", "price", None]),
        "satisfaction": lambda: rng.randint(1, 5),
        "plan": lambda: rng.choice(["free", "pro", {"other": "team"}, None]),
        "features": lambda: rng.sample(["export", "reports", "alerts"], rng.randint(1, 3)),
        "stars": lambda: rng.randint(1, 5),
        "again": lambda: rng.choice([True, False]),
        "call": lambda: rng.choice(["clicked", "dismissed"]),
    }
    for _ in range(120):
        i = rng.randrange(len(ids))
        answers = {q: values[q]() for q in rng.sample(list(values), rng.randint(1, 3))}
        try:
            response_submit(
                app=app,
                survey_id=survey.pk,
                response_id=ids[i],
                user_id=f"u{i}",
                anonymous_id=None,
                delivery_id=None,
                answers=answers,
                completed=rng.random() < 0.3,
                locale=rng.choice(["en", "de", None]),
                now=start + timedelta(days=i % 9, hours=rng.randrange(24)),
            )
        except errors.InvalidInput as exc:
            if exc.code != "required_answer":  # a completion missing a required answer
                raise
    survey = Survey.objects.select_related("app").get(pk=survey.pk)
    whole_days = [
        ResponseFilters(),
        ResponseFilters(locale="de"),
        ResponseFilters(since=start + timedelta(days=2), until=start + timedelta(days=5)),
    ]
    cut_days = [
        ResponseFilters(since=start + timedelta(days=1, hours=7)),
        ResponseFilters(until=start + timedelta(days=6, hours=13), variant=""),
        ResponseFilters(
            since=start + timedelta(days=1, hours=20), until=start + timedelta(days=7, hours=3)
        ),
        ResponseFilters(since=start + timedelta(days=3, hours=5), until=start + timedelta(days=4)),
        ResponseFilters(
            since=start + timedelta(days=3, hours=5), until=start + timedelta(days=4, hours=1)
        ),
    ]
    for filters in whole_days + cut_days:
        for interval in ("day", "week"):
            from_rows = survey_summary(
                survey=survey, filters=filters, interval=interval, source="rows"
            )
            mixed = survey_summary(survey=survey, filters=filters, interval=interval)
            assert mixed == from_rows, (filters, interval)
            if filters in whole_days:
                from_tallies = survey_summary(
                    survey=survey, filters=filters, interval=interval, source="tallies"
                )
                assert from_tallies == from_rows, (filters, interval)
    assert survey_summary(survey=survey).responses == len(
        set(ids) & set(survey.responses.values_list("id", flat=True))
    )
    kept = sorted(
        AnswerTally.objects.filter(count__gt=0).values_list(
            "day", "locale", "question_id", "number", "choice", "count", "first_count"
        )
    )
    kept_responses = sorted(
        ResponseTally.objects.filter(count__gt=0).values_list(
            "day", "locale", "completed", "last_question", "count"
        )
    )
    survey_tallies_rebuild(survey=survey)
    assert (
        sorted(
            AnswerTally.objects.values_list(
                "day", "locale", "question_id", "number", "choice", "count", "first_count"
            )
        )
        == kept
    )
    assert (
        sorted(
            ResponseTally.objects.values_list(
                "day", "locale", "completed", "last_question", "count"
            )
        )
        == kept_responses
    )
