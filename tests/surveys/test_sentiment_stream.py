"""The sweeper on PostgreSQL outside a transaction (`_score_stream`): one pipeline across its
batches, each batch its own transaction. It scores what the batch-by-batch path scores, takes
stale queue entries out, stops after `max_batches`, and a failing batch rolls back alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from surveys import sentiment
from surveys.models import Answer, SentimentPending
from surveys.sentiment import sentiment_pending_score
from tests.surveys.test_sentiment import (
    DAY,
    GERMAN,
    NEGATIVE,
    NEGATIVE_2,
    POSITIVE,
    aggregates,
    answer,
    assert_aggregates_match_a_recount,
)

pytestmark = [pytest.mark.django_db(transaction=True)]

TEXTS = [POSITIVE, NEGATIVE, NEGATIVE_2, GERMAN, "ok", "Mostly the calendar view"]


@pytest.fixture
def stored(postgres, app_keys, survey, monkeypatch):
    """25 free-text answers stored while no worker runs (their tasks are never sent), in
    batches of 4 with slices of 3: writes cross slice and batch limits."""
    from surveys import tasks

    monkeypatch.setattr(tasks.sentiment_score, "delay", lambda **kwargs: None)
    monkeypatch.setattr(sentiment, "SLICE_SIZE", 3)
    for i in range(25):
        answer(
            app_keys.app,
            survey["id"],
            {"recommend": i % 11, "why": TEXTS[i % len(TEXTS)]},
            at=DAY + timedelta(hours=5 * i),
            user=f"u{i}",
        )
    return survey["id"]


def _pending() -> list[int]:
    return sorted(SentimentPending.objects.values_list("answer_id", flat=True))


def test_the_stream_scores_every_waiting_answer_once(stored):
    assert connection.get_autocommit()  # the stream's condition
    assert len(_pending()) == 25
    assert sentiment_pending_score(batch_size=4) == 25
    assert _pending() == []
    rows = Answer.objects.filter(survey_id=stored, text__isnull=False)
    assert not rows.filter(sentiment_label__isnull=True).exists()
    assert rows.filter(sentiment_label="unsupported").count() == 4  # the German ones
    assert_aggregates_match_a_recount(stored)
    # Nothing left: a second sweep writes nothing and counts nothing again.
    before = aggregates(stored)
    assert sentiment_pending_score(batch_size=4) == 0
    assert aggregates(stored) == before


def test_stale_entries_leave_the_queue(stored):
    first, second, third = _pending()[:3]
    Answer.objects.filter(pk=first).delete()  # gone
    # Scored by someone else meanwhile (its entry not yet taken out).
    Answer.objects.filter(pk=second).update(sentiment_label="neutral", sentiment_score=0.0)
    assert sentiment_pending_score(batch_size=4) == 23
    assert _pending() == []
    assert Answer.objects.get(pk=second).sentiment_analyzer == ""  # not written over
    assert Answer.objects.get(pk=third).sentiment_label is not None


def test_the_stream_stops_after_max_batches(stored):
    assert sentiment_pending_score(batch_size=4, max_batches=2) == 8
    assert len(_pending()) == 17
    assert sentiment_pending_score(batch_size=4, max_batches=0) == 0
    assert sentiment_pending_score(batch_size=10) == 17
    assert_aggregates_match_a_recount(stored)


def test_a_failing_batch_rolls_back_alone(stored, monkeypatch):
    calls = {"n": 0}
    apply = sentiment._deltas_apply

    def failing_on_the_third(deltas):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        apply(deltas)

    monkeypatch.setattr(sentiment, "_deltas_apply", failing_on_the_third)
    with pytest.raises(RuntimeError, match="boom"):
        sentiment_pending_score(batch_size=4)
    # The first two batches are committed; the third and the rest still wait.
    assert len(_pending()) == 17
    assert Answer.objects.filter(survey_id=stored, sentiment_label__isnull=False).count() == 8
    assert_aggregates_match_a_recount(stored)
    # The connection is usable again, and the next sweep finishes the work.
    monkeypatch.setattr(sentiment, "_deltas_apply", apply)
    assert sentiment_pending_score(batch_size=4) == 17
    assert_aggregates_match_a_recount(stored)
