"""People, their anonymous ids, their events, per-day event counters and bad events."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class EventSource(models.TextChoices):
    COLLECTOR = "collector", "Snowplow collector"
    API = "api", "Events API"
    WIDGET = "widget", "Widget"


class Person(models.Model):
    """Someone using an App: known by a user id, any number of anonymous ids, or both."""

    app = models.ForeignKey("engage.App", on_delete=models.CASCADE, related_name="people")
    user_id = models.CharField(max_length=255, null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["app", "user_id"],
                condition=Q(user_id__isnull=False),
                name="person_unique_user_id_per_app",
            )
        ]
        indexes = [models.Index(fields=["app", "last_seen"], name="person_app_last_seen")]
        verbose_name_plural = "people"

    def __str__(self) -> str:
        return self.user_id or f"anonymous #{self.pk}"


class AnonymousId(models.Model):
    """An anonymous id (Snowplow domain user id, network user id, widget id) of a person."""

    app = models.ForeignKey("engage.App", on_delete=models.CASCADE, related_name="+")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="anonymous_ids")
    anonymous_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["app", "anonymous_id"], name="anonymous_id_unique_per_app"
            )
        ]

    def __str__(self) -> str:
        return self.anonymous_id


class Event(models.Model):
    """A usable event, as Engage understood it, with the raw payload it came from."""

    app = models.ForeignKey("engage.App", on_delete=models.CASCADE, related_name="events")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=255)
    properties = models.JSONField(default=dict, blank=True)
    contexts = models.JSONField(default=list, blank=True)
    timestamp = models.DateTimeField(help_text="When it happened, by the client's clock.")
    received_at = models.DateTimeField(help_text="When Engage received it.")
    source = models.CharField(max_length=16, choices=EventSource.choices)
    dedup_id = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        help_text="Snowplow eid or API message_id: a retry with the same id is stored once.",
    )
    raw = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        # No unique constraint on (app, dedup_id): on PostgreSQL the table is partitioned by
        # month of `timestamp` (segments/partitions.py), and a unique index of a partitioned
        # table must include the partition key. EventDedup keeps the ids instead.
        indexes = [
            models.Index(fields=["person", "name", "timestamp"], name="event_person_name_ts"),
            # A person's newest events (people API): on monthly partitions, read newest
            # partition first and stop at the limit, whatever the length of the history.
            # Funnels read a range of people's events from it in the order their window
            # passes need, from the index alone (PostgreSQL; segments/insights/funnels.py).
            models.Index(
                fields=["person", "-timestamp", "-id"],
                include=["app", "name"],
                name="event_person_recent",
            ),
            models.Index(fields=["app", "name", "timestamp"], name="event_app_name_ts"),
            models.Index(fields=["app", "received_at"], name="event_app_received"),
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.timestamp:%Y-%m-%d %H:%M:%S}"


class EventDedup(models.Model):
    """A dedup id (Snowplow `eid`, API `message_id`) of an App seen in the last days.

    The ingest path inserts here and stores an event only when the id was new, in the same
    statement. Rows older than ENGAGE_EVENT_DEDUP_DAYS are pruned by the retention task, so
    the table stays small: a retry that arrives later than that is stored again.
    """

    # The key itself is the unique (app, dedup id): no surrogate id and no second index to
    # write on the ingestion hot path.
    pk = models.CompositePrimaryKey("app", "dedup_id")
    app = models.ForeignKey(
        "engage.App", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    dedup_id = models.CharField(max_length=255)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["received_at"], name="event_dedup_received")]

    def __str__(self) -> str:
        return self.dedup_id


class EventDailyCount(models.Model):
    """How many events of one name a person had on one UTC day.

    Updated in the same transaction as the events, so behavioural conditions see an event in
    the very next decision without scanning the event table.
    """

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="daily_counts")
    name = models.CharField(max_length=255)
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["person", "name", "day"]
        constraints = [
            models.UniqueConstraint(
                fields=["person", "name", "day"], name="event_daily_count_unique"
            )
        ]
        indexes = [models.Index(fields=["name", "day"], name="event_daily_name_day")]

    def __str__(self) -> str:
        return f"{self.name} {self.day}: {self.count}"


class BadEvent(models.Model):
    """A request or event that could not be used, kept with its raw payload and the reason.

    `app` is empty when the request could not be tied to any App; such rows are visible to
    staff in the admin only.
    """

    app = models.ForeignKey(
        "engage.App", on_delete=models.CASCADE, related_name="bad_events", null=True, blank=True
    )
    source = models.CharField(max_length=16, choices=EventSource.choices)
    received_at = models.DateTimeField(db_index=True)
    reason = models.CharField(max_length=500)
    raw = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["app", "received_at"], name="bad_event_app_received")]

    def __str__(self) -> str:
        return self.reason


class Segment(models.Model):
    """A named group of people of an App, defined by a condition (DESIGN.md's language)."""

    app = models.ForeignKey("engage.App", on_delete=models.CASCADE, related_name="segments")
    slug = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    condition = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["app", "slug"], name="segment_unique_slug_per_app")
        ]

    def __str__(self) -> str:
        return self.name
