"""Celery tasks of surveys: doors that take ids and call one service each."""

from __future__ import annotations

from collections.abc import Sequence

from celery import shared_task

from surveys.sentiment import sentiment_answers_score, sentiment_pending_score
from surveys.sentiment_alerts import sentiment_alerts_evaluate

# A sweep scores this many batches, then queues itself again, so one task never runs for long.
SWEEP_BATCHES = 20


@shared_task(acks_late=True, ignore_result=True)
def sentiment_score(answer_ids: Sequence[int]) -> int:
    """Score these free-text answers (queued after commit by `response_submit`); idempotent."""
    return sentiment_answers_score(answer_ids=list(answer_ids))


@shared_task(acks_late=True, ignore_result=True)
def sentiment_score_pending() -> int:
    """Score answers that wait for a score (lost tasks, imports). Run every few minutes by
    beat; queues itself again while there is more."""
    scored = sentiment_pending_score(max_batches=SWEEP_BATCHES)
    if scored and not sentiment_score_pending.request.is_eager:
        sentiment_score_pending.delay()
    return scored


@shared_task(acks_late=True, ignore_result=True)
def sentiment_alerts_check() -> int:
    """Evaluate the sentiment alert rules on the last complete week. Run hourly by beat."""
    return len(sentiment_alerts_evaluate())
