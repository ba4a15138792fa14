"""Celery tasks of the realtime pushes: ids in, idempotent, one service each."""

from __future__ import annotations

from celery import shared_task

from engage.realtime.push import publish_push_batch, publish_push_batches


@shared_task(name="engage.realtime.publish_push", ignore_result=True)
def realtime_publish_push(app_id: int, kind: str, campaign_id: int) -> int:
    """Fan a just-published campaign out to connected people: one batch task per batch."""
    batches = publish_push_batches(app_id=app_id, kind=kind, campaign_id=campaign_id)
    for person_ids in batches:
        realtime_publish_push_batch.delay(app_id, kind, campaign_id, person_ids)
    return len(batches)


@shared_task(name="engage.realtime.publish_push_batch", ignore_result=True)
def realtime_publish_push_batch(
    app_id: int, kind: str, campaign_id: int, person_ids: list[int]
) -> int:
    """Decide and show the campaign for one batch of connected people; reruns show nothing twice."""
    return publish_push_batch(
        app_id=app_id, kind=kind, campaign_id=campaign_id, person_ids=person_ids
    )
