"""Scoring pipeline, aggregates and trends: stored answers are scored once after commit, the
aggregates equal a recount, and trend buckets split at UTC day and ISO week boundaries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from surveys.models import Answer, SentimentDaily, SentimentTermDaily, Survey
from surveys.selectors import ResponseFilters, filters_from_params
from surveys.sentiment import (
    sentiment_aggregates_rebuild,
    sentiment_answers_score,
    sentiment_pending_score,
    sentiment_rescore,
)
from surveys.sentiment_selectors import SentimentQuery, sentiment_trend
from surveys.services import response_submit

POSITIVE = "I love the new reports, they are fast and beautiful!"
NEGATIVE = "Terrible update. The export is slow and the app crashes all the time."
NEGATIVE_2 = "The export is broken and support is useless."
GERMAN = "Das ist wirklich schlecht, die App stürzt ständig ab."


def answer(
    app: Any,
    survey_id: int,
    answers: dict[str, Any],
    *,
    at: datetime,
    user: str = "u1",
    locale: str | None = "en",
    response_id: uuid.UUID | None = None,
) -> Any:
    return response_submit(
        app=app,
        survey_id=survey_id,
        response_id=response_id or uuid.uuid4(),
        user_id=user,
        anonymous_id=None,
        delivery_id=None,
        answers=answers,
        completed=False,
        locale=locale,
        now=at,
    )


def aggregates(survey_id: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    daily = list(
        SentimentDaily.objects.filter(survey_id=survey_id)
        .exclude(positive=0, neutral=0, negative=0, unsupported=0, score_sum_e4=0)
        .order_by("day", "locale")
        .values_list(
            "day", "locale", "positive", "neutral", "negative", "unsupported", "score_sum_e4"
        )
    )
    terms = list(
        SentimentTermDaily.objects.filter(survey_id=survey_id, count__gt=0)
        .order_by("day", "locale", "term")
        .values_list("day", "locale", "term", "count")
    )
    return daily, terms


def assert_aggregates_match_a_recount(survey_id: int) -> None:
    before = aggregates(survey_id)
    sentiment_aggregates_rebuild(survey=Survey.objects.get(pk=survey_id))
    assert aggregates(survey_id) == before


DAY = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)  # a Wednesday


def test_open_text_and_other_texts_are_scored_after_commit(
    app_keys, survey, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        answer(
            app_keys.app,
            survey["id"],
            {"recommend": 3, "why": NEGATIVE, "plan": {"other": POSITIVE}, "stars": 2},
            at=DAY,
        )
    rows = {
        a.question_id: a for a in Answer.objects.filter(survey_id=survey["id"], text__isnull=False)
    }
    assert rows["why"].sentiment_label == "negative"
    assert rows["why"].sentiment_score is not None
    assert rows["why"].sentiment_score < -0.3
    assert rows["plan"].sentiment_label == "positive"
    assert rows["why"].sentiment_analyzer.startswith("vader 3.")
    assert rows["why"].sentiment_language == "en"
    # Number answers are never scored.
    assert (
        not Answer.objects.filter(survey_id=survey["id"], text__isnull=True)
        .exclude(sentiment_label=None)
        .exists()
    )
    daily, terms = aggregates(survey["id"])
    assert [(d[2], d[3], d[4], d[5]) for d in daily] == [(1, 0, 1, 0)]
    assert "slow" in [t[2] for t in terms]
    assert "export" in [t[2] for t in terms]


def test_nothing_is_scored_before_commit(app_keys, survey, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        answer(app_keys.app, survey["id"], {"recommend": 3, "why": NEGATIVE}, at=DAY)
    assert Answer.objects.get(question_id="why").sentiment_label is None
    assert len(callbacks) == 1
    callbacks[0]()
    assert Answer.objects.get(question_id="why").sentiment_label == "negative"


def test_scoring_twice_never_double_counts(app_keys, survey):
    answer(app_keys.app, survey["id"], {"recommend": 3, "why": NEGATIVE}, at=DAY)
    ids = list(Answer.objects.filter(text__isnull=False).values_list("pk", flat=True))
    assert sentiment_answers_score(answer_ids=ids) == 1
    counted = aggregates(survey["id"])
    assert sentiment_answers_score(answer_ids=ids) == 0
    assert sentiment_pending_score() == 0
    assert aggregates(survey["id"]) == counted
    assert_aggregates_match_a_recount(survey["id"])


def test_unsupported_languages_are_counted_but_not_scored(app_keys, survey):
    answer(app_keys.app, survey["id"], {"recommend": 3, "why": GERMAN}, at=DAY, locale="en")
    assert sentiment_pending_score() == 1
    row = Answer.objects.get(question_id="why")
    assert (row.sentiment_label, row.sentiment_score, row.sentiment_language) == (
        "unsupported",
        None,
        "de",
    )
    trend = sentiment_trend(app=app_keys.app, survey=Survey.objects.get(pk=survey["id"]))
    assert trend.totals["unsupported"] == 1
    assert trend.totals["scored"] == 0
    assert trend.totals["mean_score"] is None


def test_a_changed_answer_replaces_its_old_score(app_keys, survey):
    rid = uuid.uuid4()
    answer(app_keys.app, survey["id"], {"recommend": 3, "why": NEGATIVE}, at=DAY, response_id=rid)
    sentiment_pending_score()
    answer(app_keys.app, survey["id"], {"why": POSITIVE}, at=DAY, response_id=rid)
    sentiment_pending_score()
    daily, terms = aggregates(survey["id"])
    assert [(d[2], d[4]) for d in daily] == [(1, 0)]
    assert terms == []
    # Clearing the answer withdraws it altogether.
    answer(app_keys.app, survey["id"], {"why": None}, at=DAY, response_id=rid)
    assert aggregates(survey["id"]) == ([], [])


def test_a_locale_given_later_moves_the_scored_answers(app_keys, survey):
    rid = uuid.uuid4()
    answer(
        app_keys.app,
        survey["id"],
        {"recommend": 3, "why": NEGATIVE},
        at=DAY,
        response_id=rid,
        locale=None,
    )
    sentiment_pending_score()
    answer(app_keys.app, survey["id"], {"stars": 1}, at=DAY, response_id=rid, locale="en-GB")
    daily, _ = aggregates(survey["id"])
    assert [(d[1], d[4]) for d in daily] == [("en-GB", 1)]
    assert_aggregates_match_a_recount(survey["id"])


class HalfAnalyzer:
    """Every text scores +0.5: a stand-in for a new backend."""

    name = "half"
    version = "2"

    def analyze(self, text: str, locale: str) -> Any:
        from surveys.sentiment_analysis import SentimentResult

        return SentimentResult(0.5, "positive", "en", "half 2")

    def analyze_many(self, items: Any) -> list[Any]:
        return [self.analyze(t, loc) for t, loc in items]


def test_rescore_after_a_backend_change_keeps_the_analyzer_version(app_keys, survey, settings):
    answer(app_keys.app, survey["id"], {"recommend": 3, "why": NEGATIVE}, at=DAY)
    answer(app_keys.app, survey["id"], {"recommend": 9, "why": NEGATIVE_2}, at=DAY, user="u2")
    sentiment_pending_score()
    settings.ENGAGE_SENTIMENT_ANALYZER = "tests.surveys.test_sentiment.HalfAnalyzer"
    assert sentiment_rescore(survey_id=survey["id"]) == 2
    assert set(Answer.objects.exclude(text=None).values_list("sentiment_analyzer", flat=True)) == {
        "half 2"
    }
    trend = sentiment_trend(app=app_keys.app, survey=Survey.objects.get(pk=survey["id"]))
    assert (trend.totals["positive"], trend.totals["negative"], trend.totals["mean_score"]) == (
        2,
        0,
        0.5,
    )
    assert trend.totals["top_negative_terms"] == []
    # Only answers of another analyzer are re-scored, unless asked for all.
    assert sentiment_rescore(survey_id=survey["id"]) == 0
    assert sentiment_rescore(survey_id=survey["id"], everything=True) == 2
    assert_aggregates_match_a_recount(survey["id"])


def test_rescore_command_names_bad_arguments(app_keys, survey):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--survey"):
        call_command("sentiment_rescore", "--survey", "999999")
    with pytest.raises(CommandError, match="--app"):
        call_command("sentiment_rescore", "--app", "999999")


def _trend(app: Any, survey_id: int, interval: str, **params: str) -> list[dict[str, Any]]:
    query = SentimentQuery(interval=interval, filters=filters_from_params(params))
    return sentiment_trend(app=app, survey=Survey.objects.get(pk=survey_id), query=query).buckets


def test_day_buckets_split_at_utc_midnight(app_keys, survey):
    app = app_keys.app
    answer(
        app,
        survey["id"],
        {"recommend": 2, "why": NEGATIVE},
        at=datetime(2024, 3, 5, 23, 59, 59, tzinfo=UTC),
    )
    answer(
        app,
        survey["id"],
        {"recommend": 10, "why": POSITIVE},
        at=datetime(2024, 3, 6, 0, 0, 1, tzinfo=UTC),
        user="u2",
    )
    answer(
        app,
        survey["id"],
        {"recommend": 9, "why": POSITIVE},
        at=datetime(2024, 3, 6, 23, 0, tzinfo=UTC),
        user="u3",
    )
    sentiment_pending_score()
    buckets = _trend(app, survey["id"], "day")
    assert [
        (b["start"], b["responses"], b["positive"], b["negative"], b["nps"]) for b in buckets
    ] == [
        ("2024-03-05", 1, 0, 1, -100.0),
        ("2024-03-06", 2, 2, 0, 100.0),
    ]
    assert buckets[0]["mean_score"] < 0 < buckets[1]["mean_score"]
    assert {t["term"] for t in buckets[0]["top_negative_terms"]} == {
        "terrible",
        "update",
        "export",
        "slow",
        "crashes",
        "time",
    }
    assert buckets[1]["top_negative_terms"] == []
    # A range that cuts into a day reads that day's rows: the same answers either way.
    cut = _trend(
        app, survey["id"], "day", **{"from": "2024-03-05T23:59:00Z", "to": "2024-03-06T12:00:00Z"}
    )
    assert [(b["start"], b["responses"], b["positive"], b["negative"]) for b in cut] == [
        ("2024-03-05", 1, 0, 1),
        ("2024-03-06", 1, 1, 0),
    ]
    # Whole days read the aggregates: the same buckets.
    assert _trend(app, survey["id"], "day", **{"from": "2024-03-05", "to": "2024-03-06"}) == buckets


def test_week_buckets_start_on_monday_utc(app_keys, survey):
    app = app_keys.app
    sunday = datetime(2024, 3, 10, 23, 59, tzinfo=UTC)
    monday = datetime(2024, 3, 11, 0, 1, tzinfo=UTC)
    answer(app, survey["id"], {"recommend": 2, "why": NEGATIVE}, at=sunday)
    answer(
        app,
        survey["id"],
        {"recommend": 5, "why": NEGATIVE_2},
        at=datetime(2024, 3, 4, 0, 0, tzinfo=UTC),
        user="u2",
    )
    answer(app, survey["id"], {"recommend": 10, "why": POSITIVE}, at=monday, user="u3")
    sentiment_pending_score()
    buckets = _trend(app, survey["id"], "week")
    assert [(b["start"], b["scored"], b["negative"], b["positive"]) for b in buckets] == [
        ("2024-03-04", 2, 2, 0),
        ("2024-03-11", 1, 0, 1),
    ]
    assert buckets[0]["top_negative_terms"][0] == {"term": "export", "count": 2}
    # from/to fill the range without gaps, empty weeks included.
    ranged = _trend(app, survey["id"], "week", **{"from": "2024-02-26", "to": "2024-03-24"})
    assert [b["start"] for b in ranged] == ["2024-02-26", "2024-03-04", "2024-03-11", "2024-03-18"]
    assert ranged[0]["mean_score"] is None
    assert ranged[0]["scored"] == 0


def test_locale_filter_covers_regional_variants(app_keys, survey):
    app = app_keys.app
    answer(app, survey["id"], {"recommend": 2, "why": NEGATIVE}, at=DAY, locale="en-GB")
    answer(app, survey["id"], {"recommend": 9, "why": POSITIVE}, at=DAY, locale="fr", user="u2")
    sentiment_pending_score()
    (bucket,) = _trend(app, survey["id"], "day", locale="en")
    assert (bucket["negative"], bucket["positive"], bucket["responses"], bucket["nps"]) == (
        1,
        0,
        1,
        -100.0,
    )


def test_segment_filter_reads_people_in_the_segment(app_keys, survey, secret_client):
    app = app_keys.app
    answer(app, survey["id"], {"recommend": 2, "why": NEGATIVE}, at=DAY, user="pro-user")
    answer(app, survey["id"], {"recommend": 9, "why": POSITIVE}, at=DAY, user="free-user")
    sentiment_pending_score()
    from segments.models import Person

    Person.objects.filter(user_id="pro-user").update(attributes={"plan": "pro"})
    created = secret_client.post(
        "/api/v1/segments/",
        {
            "name": "Pro",
            "slug": "pro",
            "condition": {"attribute": "plan", "op": "eq", "value": "pro"},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    (bucket,) = _trend(app, survey["id"], "day", segment="pro")
    assert (bucket["responses"], bucket["negative"], bucket["positive"]) == (1, 1, 0)


def test_app_wide_trend_covers_every_survey_of_the_app_only(
    app_keys, other_app_keys, survey, secret_client
):
    from tests.surveys.conftest import survey_create

    second = survey_create(secret_client, name="Onboarding")
    secret_client.post(f"/api/v1/surveys/{second['id']}/publish")
    answer(app_keys.app, survey["id"], {"recommend": 2, "why": NEGATIVE}, at=DAY)
    answer(app_keys.app, second["id"], {"recommend": 10, "why": POSITIVE}, at=DAY, user="u2")
    sentiment_pending_score()
    trend = sentiment_trend(app=app_keys.app, query=SentimentQuery(filters=ResponseFilters()))
    assert (trend.totals["positive"], trend.totals["negative"], trend.totals["nps"]) == (1, 1, 0.0)
    other = sentiment_trend(app=other_app_keys.app)
    assert other.buckets == []
    assert other.totals["scored"] == 0


def test_beat_runs_the_sweeper_and_the_alert_check(settings):
    from engage.celery import app as celery_app

    for entry in ("sentiment-score-pending", "sentiment-alerts-check"):
        assert settings.CELERY_BEAT_SCHEDULE[entry]["task"] in celery_app.tasks


def test_the_sweeper_task_scores_what_waits(app_keys, survey):
    from surveys.tasks import sentiment_score_pending

    answer(app_keys.app, survey["id"], {"recommend": 3, "why": NEGATIVE}, at=DAY)
    answer(app_keys.app, survey["id"], {"recommend": 9, "why": POSITIVE}, at=DAY, user="u2")
    assert sentiment_score_pending.apply().get() == 2
    assert sentiment_score_pending.apply().get() == 0


def test_a_broker_that_is_down_never_fails_a_stored_response(
    public_client, survey, monkeypatch, django_capture_on_commit_callbacks
):
    from tests.surveys.conftest import submit

    def broker_down(**kwargs: Any) -> None:
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr("surveys.tasks.sentiment_score.delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = submit(public_client, survey["id"], {"recommend": 3, "why": NEGATIVE})
    assert response.status_code == 200, response.content
    assert Answer.objects.get(question_id="why").sentiment_label is None
    assert sentiment_pending_score() == 1  # the sweeper's job
    assert Answer.objects.get(question_id="why").sentiment_label == "negative"
