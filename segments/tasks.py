"""Celery tasks of segments: doors that call one service each."""

from __future__ import annotations

from celery import shared_task

from segments.partitions import events_maintain


@shared_task(name="segments.tasks.events_maintain", acks_late=True, ignore_result=True)
def events_maintain_task() -> dict[str, int]:
    """Create upcoming event partitions, drop expired ones and apply retention (beat, daily).

    Idempotent: a rerun after a lost worker finds the partitions made and the rows deleted.
    """
    report = events_maintain()
    return {
        "created": len(report.created),
        "dropped": len(report.dropped),
        "events_deleted": report.events_deleted,
        "counters_deleted": report.counters_deleted,
        "dedup_ids_deleted": report.dedup_ids_deleted,
    }
