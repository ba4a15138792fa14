"""Celery tasks of the engage app: doors that take ids and call one service each."""

from __future__ import annotations

from celery import Task, shared_task

from engage.campaigns import campaigns_schedule_tick
from engage.webhooks import webhook_message_send, webhook_messages_overdue


@shared_task(bind=True, acks_late=True, ignore_result=True)
def webhook_send(self: Task, message_id: str, attempt: int | None = None) -> None:
    """Try to deliver one webhook message; queue the next try when it failed.

    `attempt` (tries already made when this was queued) makes duplicates no-ops. In eager mode
    (no broker) the countdown is ignored and the next try runs at once; the chain still ends
    after MAX_ATTEMPTS because the service stops asking for retries.
    """
    retry = webhook_message_send(message_id=message_id, attempt=attempt)
    if retry is not None and not (retry.deferred and self.request.is_eager):
        webhook_send.apply_async(
            args=[message_id], kwargs={"attempt": retry.attempt}, countdown=retry.countdown
        )


@shared_task(acks_late=True, ignore_result=True)
def webhooks_send_overdue() -> int:
    """Queue again the pending messages whose tasks were lost. Run every few minutes by beat."""
    overdue = webhook_messages_overdue()
    for message_id, attempts in overdue:
        webhook_send.apply_async(args=[message_id], kwargs={"attempt": attempts})
    return len(overdue)


@shared_task(acks_late=True, ignore_result=True)
def campaigns_schedule() -> int:
    """Start scheduled campaigns and archive ended ones. Run every minute by beat."""
    return campaigns_schedule_tick()


@shared_task(acks_late=True, ignore_result=True)
def adaptive_allocations() -> int:
    """Recompute the variant weights of live adaptive campaigns. Run hourly by beat."""
    from engage.kpis import adaptive_allocations_update

    return adaptive_allocations_update()
