"""The sweeper's queue (`SentimentPending`) and what replaced the answer table's sentiment
indexes: stored free-text answers wait in the queue until a scoring transaction takes them
out, stale entries are dropped, no index of the answer table names a sentiment column (so a
score is a HOT update on PostgreSQL), and the newest negative answers are still found across
surveys, newest first."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection

from surveys.models import Answer, SentimentPending
from surveys.sentiment import sentiment_answers_score, sentiment_pending_score
from surveys.sentiment_selectors import negative_answers_newest
from tests.surveys.conftest import survey_create
from tests.surveys.test_sentiment import DAY, NEGATIVE, NEGATIVE_2, POSITIVE, answer


def _waiting() -> list[int]:
    return sorted(SentimentPending.objects.values_list("answer_id", flat=True))


def _texts(survey_id: int) -> list[int]:
    return sorted(
        Answer.objects.filter(survey_id=survey_id, text__isnull=False).values_list("pk", flat=True)
    )


def test_stored_text_answers_wait_until_scored(app_keys, survey):
    answer(app_keys.app, survey["id"], {"recommend": 3, "why": NEGATIVE}, at=DAY)
    answer(app_keys.app, survey["id"], {"recommend": 9}, at=DAY, user="u2")
    # Only the free-text answer waits; the NPS answers never get a score.
    assert _waiting() == _texts(survey["id"])
    assert len(_waiting()) == 1
    assert sentiment_pending_score() == 1
    assert _waiting() == []
    assert sentiment_pending_score() == 0


def test_scoring_by_id_takes_the_answers_out_of_the_queue(app_keys, survey):
    answer(app_keys.app, survey["id"], {"why": POSITIVE}, at=DAY)
    answer(app_keys.app, survey["id"], {"why": NEGATIVE}, at=DAY, user="u2")
    first, second = _texts(survey["id"])
    assert sentiment_answers_score(answer_ids=[first]) == 1
    assert _waiting() == [second]
    # A task run twice finds nothing to write and nothing left to take out.
    assert sentiment_answers_score(answer_ids=[first]) == 0
    assert _waiting() == [second]


def test_entries_of_replaced_answers_are_dropped_by_the_sweeper(app_keys, survey):
    response_id = uuid.uuid4()
    answer(app_keys.app, survey["id"], {"why": NEGATIVE}, at=DAY, response_id=response_id)
    (old,) = _texts(survey["id"])
    # The same response sends new text: its answer row is replaced by a new one.
    answer(app_keys.app, survey["id"], {"why": POSITIVE}, at=DAY, response_id=response_id)
    (new,) = _texts(survey["id"])
    assert new != old
    assert _waiting() == [old, new]
    assert sentiment_pending_score() == 1
    assert _waiting() == []
    assert Answer.objects.get(pk=new).sentiment_label == "positive"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL storage parameters")
def test_no_index_of_the_answer_table_names_a_sentiment_column(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
            [Answer._meta.db_table],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT reloptions FROM pg_class WHERE relname = %s", [Answer._meta.db_table]
        )
        (options,) = cursor.fetchone()
    assert indexes
    assert [name for name, definition in indexes if "sentiment_" in definition] == []
    # Room on each page for the scored row versions (0009): scores stay HOT updates and never
    # add an entry to the wide (person, survey) covering index.
    assert "fillfactor=80" in (options or [])


def test_newest_negative_answers_are_merged_across_surveys(app_keys, survey, secret_client):
    other = survey_create(secret_client, name="Other")
    assert secret_client.post(f"/api/v1/surveys/{other['id']}/publish").status_code == 200
    at = {survey["id"]: [0, 3, 5], other["id"]: [1, 4]}  # hours after DAY
    for survey_id, hours in at.items():
        for hour in hours:
            answer(
                app_keys.app,
                survey_id,
                {"why": NEGATIVE if hour % 2 else NEGATIVE_2},
                at=DAY + timedelta(hours=hour),
                user=f"u{survey_id}-{hour}",
            )
        answer(app_keys.app, survey_id, {"why": POSITIVE}, at=DAY + timedelta(hours=9))
    sentiment_pending_score()

    def hours(rows):
        return [(row["survey_id"], (row["created_at"] - DAY) // timedelta(hours=1)) for row in rows]

    both = [survey["id"], other["id"]]
    assert hours(negative_answers_newest(both, limit=4)) == [
        (survey["id"], 5),
        (other["id"], 4),
        (survey["id"], 3),
        (other["id"], 1),
    ]
    bounded = negative_answers_newest(
        both, limit=10, since=DAY + timedelta(hours=1), until=DAY + timedelta(hours=5)
    )
    assert hours(bounded) == [(other["id"], 4), (survey["id"], 3), (other["id"], 1)]
    assert all(row["text"] in (NEGATIVE, NEGATIVE_2) for row in bounded)
