"""Pushes to open widgets, each leaving from a service after commit.

- `events_push` (events listener): an event from any door triggers matching event campaigns
  on the person's open widgets. Presence is asked first, so events of people without an open
  widget cost one presence lookup per batch and no evaluation. With the Redis channel layer
  this runs on the process's push worker (`PushWorker`), off the request that stored the
  events, in batches.
- `campaign_status_push` (status listener): a campaign going live is pushed to eligible
  connected people by a Celery task in batches; a paused or archived one is revoked on every
  open widget of the App.
- `campaign_push` (`POST /api/v1/targeting/push`): show one campaign to one person now.

A push that fails (Redis down, a bug) is logged and never undoes or fails the write it
follows: people see the campaign in their next snapshot instead.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import close_old_connections, transaction

from engage import errors
from engage.campaigns import campaign_get_for_app
from engage.models import App, Campaign, CampaignStatus, TriggerOn
from engage.realtime.presence import presence
from engage.realtime.services import moment_items
from engage.targeting import (
    CompiledApp,
    CompiledCampaign,
    Item,
    Moment,
    compile_one,
    compiled_app,
    decide,
    decisions_commit_async,
    items_for,
    situation_build,
)
from segments.models import AnonymousId, Person
from segments.services import StoredEvent, person_resolve

logger = logging.getLogger(__name__)

PUBLISH_BATCH_SIZE = 100
# After presence fails (Redis down or slow), ingestion stops asking it for this long instead of
# paying a timeout on every request; those events then push nothing (see the module docstring).
PRESENCE_BACKOFF_SECONDS = 10.0
_presence_down_until = 0.0
SHOW = "realtime.show"
REVOKE = "realtime.revoke"


def person_group(app_id: int, person_id: int) -> str:
    return f"person.{app_id}.{person_id}"


def app_group(app_id: int) -> str:
    return f"app.{app_id}"


def show_message(item: Item) -> dict[str, Any]:
    return {"type": SHOW, "item": item.as_dict()}


def revoke_message(kind: str, campaign_id: int) -> dict[str, Any]:
    return {"type": REVOKE, "kind": kind, "id": campaign_id}


Send = tuple[str, dict[str, Any]]

# channels_redis's connection pool (redis-py's, 100 connections) raises instead of waiting when
# it is exhausted, so thousands of widgets reconnecting at once after a deploy, or a batch of
# pushes sent concurrently, must not hit it all at once: channel layer calls of one event loop
# go through this gate.
LAYER_CONCURRENCY = 32
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def layer_gate() -> asyncio.Semaphore:
    """The channel-layer concurrency gate of the running event loop."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(LAYER_CONCURRENCY)
    return gate


def group_messages_send(messages: list[Send]) -> None:
    """Send (group, message) pairs on the channel layer, concurrently; logs and swallows errors.

    Sync code only (services, listeners, tasks): it runs the sends on an event loop through
    async_to_sync.
    """
    if not messages:
        return
    layer = get_channel_layer()
    if layer is None:
        return

    async def send(group: str, message: dict[str, Any]) -> None:
        async with layer_gate():
            await layer.group_send(group, message)

    async def send_all() -> None:
        results = await asyncio.gather(
            *(send(group, message) for group, message in messages), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                logger.error("realtime push failed: %r", result)

    try:
        if _worker.owns_current_thread():
            _worker.run_async(send_all())
        else:
            async_to_sync(send_all)()
    except Exception:
        logger.exception("realtime push of %d messages failed", len(messages))


# --- the push worker --------------------------------------------------------------------------

# Event pushes waiting for the worker, at most; past that, the request that stored the events
# runs its push itself (back pressure instead of unbounded memory).
PUSH_QUEUE_SIZE = 10_000
# Queued pushes the worker takes at once: under load it decides for many people in one batch
# (one presence lookup, one transaction) instead of falling behind one request at a time.
PUSH_BATCH = 200


class PushWorker:
    """A thread per process that runs queued pushes, in batches, off the requests.

    The events API answers once its events are stored; deciding for connected people and the
    channel-layer sends then happen here. `handle` gets everything queued since its last call
    (at most PUSH_BATCH items). The thread has an event loop of its own, kept for its life, so
    the channel layer's Redis connections are reused from one batch to the next (a fresh
    `async_to_sync` loop per push would open new ones each time). Database connections are
    checked out per batch and given back after it, like a request's.
    """

    def __init__(self, handle: Callable[[list[Any]], object], *, name: str) -> None:
        self._handle = handle
        self._name = name
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=PUSH_QUEUE_SIZE)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, item: Any) -> bool:
        """Queue `item`; False when the queue is full (the caller then handles it itself)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        try:
            self._jobs.put_nowait(item)
        except queue.Full:
            return False
        return True

    def owns_current_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def run_async(self, awaitable: Any) -> Any:
        assert self._loop is not None  # noqa: S101 - set before any batch runs
        return self._loop.run_until_complete(awaitable)

    def join(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued was handled (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._jobs.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        while True:
            batch = [self._jobs.get()]
            while len(batch) < PUSH_BATCH:
                try:
                    batch.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            close_old_connections()
            try:
                self._handle(batch)
            except Exception:
                logger.exception("realtime push batch of %d failed", len(batch))
            finally:
                close_old_connections()
                for _ in batch:
                    self._jobs.task_done()


def _events_push_batch(batch: list[tuple[App, list[StoredEvent]]]) -> None:
    """The push worker's handler: the queued events of each App pushed together."""
    by_app: dict[int, tuple[App, list[StoredEvent]]] = {}
    for app, stored in batch:
        by_app.setdefault(app.pk, (app, []))[1].extend(stored)
    for app, stored in by_app.values():
        _events_push_logged(app, stored)


_worker = PushWorker(_events_push_batch, name="engage-push")


def push_worker() -> PushWorker:
    return _worker


def _hand_off(app: App, stored: list[StoredEvent]) -> bool:
    """Queue the events' push on the push worker when the channel layer crosses processes.

    With the in-memory layer (development, most tests) pushes stay in the caller's thread:
    that layer's queues belong to the event loop that reads them.
    """
    layer = get_channel_layer()
    if layer is None or isinstance(layer, InMemoryChannelLayer):
        return False
    return _worker.submit((app, stored))


def _send_on_commit(messages: list[Send]) -> None:
    if messages:
        transaction.on_commit(lambda: group_messages_send(messages))


def _anonymous_ids(people: Iterable[Person]) -> dict[int, str]:
    """The first anonymous id of each anonymous person (their bucket key, as the widget's)."""
    ids = [p.pk for p in people if not p.user_id]
    found: dict[int, str] = {}
    if ids:
        for person_id, anonymous_id in (
            AnonymousId.objects.filter(person_id__in=ids)
            .order_by("-id")
            .values_list("person_id", "anonymous_id")
        ):
            found[person_id] = anonymous_id  # ordered newest first: the oldest one wins
    return found


# --- events -----------------------------------------------------------------------------------


def events_push(app: App, stored: list[StoredEvent]) -> None:
    """Events listener: show event-triggered campaigns on the open widgets of their people.

    Before: `stored` were committed (called after commit by segments.services). After: for
    each person with an open connection and each event name that triggers a live campaign,
    the engine decided (deliveries recorded) and `show` frames were sent. Never raises.

    With the Redis channel layer the work is handed to the process's push worker, so the
    request that stored the events answers without waiting for it; events that trigger no
    live campaign are dropped here, before any hand-off.
    """
    try:
        triggering = compiled_app(app.pk).by_event
        if not any(e.name in triggering for e in stored):
            return
        if not _hand_off(app, stored):
            _events_push_logged(app, stored)
    except Exception:
        logger.exception("realtime push for %d events failed", len(stored))


def _events_push_logged(app: App, stored: list[StoredEvent]) -> None:
    try:
        _events_push(app, stored)
    except Exception:
        logger.exception("realtime push for %d events failed", len(stored))


def _events_push(app: App, stored: list[StoredEvent]) -> None:
    global _presence_down_until
    compiled = compiled_app(app.pk)
    wanted = [e for e in stored if e.name in compiled.by_event]
    if not wanted or time.monotonic() < _presence_down_until:
        return
    try:
        present = presence().people_present(app_id=app.pk, person_ids={e.person_id for e in wanted})
    except Exception:
        _presence_down_until = time.monotonic() + PRESENCE_BACKOFF_SECONDS
        logger.exception("presence unavailable; event pushes pause for a few seconds")
        return
    if present:
        _events_decide(app, compiled, wanted, present)


@transaction.atomic
def _events_decide(
    app: App,
    compiled: CompiledApp,
    wanted: list[StoredEvent],
    present: set[int],
) -> None:
    decisions_commit_async()  # this transaction only records decisions
    people = Person.objects.in_bulk(present)
    anonymous = _anonymous_ids(people.values())
    messages: list[Send] = []
    done: set[tuple[int, str]] = set()
    for event in wanted:
        person = people.get(event.person_id)
        if person is None or (person.pk, event.name) in done:
            continue
        done.add((person.pk, event.name))
        url = event.properties.get("url") if isinstance(event.properties, dict) else None
        moment = Moment(event=event.name, url=url if isinstance(url, str) else None)
        on_event = compiled.by_event.get(event.name, ())
        messages.extend(
            _decide(
                app,
                person,
                moment,
                anonymous_id=anonymous.get(person.pk),
                campaigns=on_event,
                compiled=compiled,
            )
        )
    _send_on_commit(messages)


def _decide(
    app: App,
    person: Person,
    moment: Moment,
    *,
    anonymous_id: str | None,
    campaigns: tuple[CompiledCampaign, ...],
    compiled: CompiledApp | None = None,
) -> list[Send]:
    """One person's decision inside a batch: its failure is logged and costs only this person
    (moment_items runs in a savepoint)."""
    try:
        items = moment_items(
            app=app,
            person=person,
            moment=moment,
            anonymous_id=anonymous_id,
            campaigns=campaigns,
            compiled=compiled,
        )
    except Exception:
        logger.exception("realtime decision for person %s failed", person.pk)
        return []
    group = person_group(app.pk, person.pk)
    return [(group, show_message(item)) for item in items]


# --- publish, pause, archive ------------------------------------------------------------------


def campaign_status_push(kind: str, campaign: Campaign, status: str) -> None:
    """Status listener (after commit): live → queue the publish push; paused/archived → revoke.

    Never raises: the status change is committed whatever happens here.
    """
    try:
        if status == CampaignStatus.LIVE:
            from engage.realtime.tasks import realtime_publish_push

            realtime_publish_push.delay(campaign.app_id, kind, campaign.pk)
        elif status in (CampaignStatus.PAUSED, CampaignStatus.ARCHIVED):
            group_messages_send([(app_group(campaign.app_id), revoke_message(kind, campaign.pk))])
    except Exception:
        logger.exception("realtime push for %s %s becoming %s failed", kind, campaign.pk, status)


def publish_pushable(c: CompiledCampaign) -> bool:
    """Whether going live shows the campaign on open widgets at once.

    Campaigns that can show at any moment of a visit (triggered on session start, or on any
    page view without a URL condition) are; those waiting for an event, an API call or a
    page of a given URL show when that happens.
    """
    if c.trigger_on == TriggerOn.SESSION_START:
        return True
    return c.trigger_on == TriggerOn.PAGE_VIEW and c.trigger_url is None


def publish_push_batches(*, app_id: int, kind: str, campaign_id: int) -> list[list[int]]:
    """The connected people of the App to consider for a campaign that went live, in batches.

    Empty when the campaign is no longer live or does not show on publish. Reads only.
    """
    app = App.objects.filter(pk=app_id).first()
    if app is None:
        return []
    compiled = {(c.kind, c.id): c for c in compiled_app(app_id).campaigns}.get((kind, campaign_id))
    if compiled is None or compiled.status != CampaignStatus.LIVE or not publish_pushable(compiled):
        return []
    people = presence().app_people(app_id=app_id)
    return [people[i : i + PUBLISH_BATCH_SIZE] for i in range(0, len(people), PUBLISH_BATCH_SIZE)]


@transaction.atomic
def publish_push_batch(*, app_id: int, kind: str, campaign_id: int, person_ids: list[int]) -> int:
    """Decide a just-published campaign for these connected people and show it where it passes.

    Every display rule applies (audience, sampling, caps, quiet period, holdout); only the
    trigger is taken as met. Deliveries are recorded (pending ones reused, so running a batch
    twice shows nothing twice), in one transaction; the pushes leave after its commit.
    Returns how many people it was shown to.
    """
    app = App.objects.filter(pk=app_id).first()
    if app is None:
        return 0
    compiled = {(c.kind, c.id): c for c in compiled_app(app_id).campaigns}.get((kind, campaign_id))
    if compiled is None or compiled.status != CampaignStatus.LIVE:
        return 0
    decisions_commit_async()  # this transaction only records decisions
    as_api = (replace(compiled, trigger_on=TriggerOn.API, trigger_url=None),)
    people = Person.objects.filter(app_id=app_id, pk__in=person_ids)
    anonymous = _anonymous_ids(people)
    messages: list[Send] = []
    for person in people:
        messages.extend(
            _decide(app, person, Moment(), anonymous_id=anonymous.get(person.pk), campaigns=as_api)
        )
    _send_on_commit(messages)
    return len(messages)


# --- targeting/push ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pushed:
    item: Item
    connections: int


@transaction.atomic
def campaign_push(*, app: App, user_id: str, kind: str, campaign_id: Any) -> Pushed:
    """Show a live campaign to the person now, on every open widget (targeting/push).

    A push is an explicit instruction for one named user, so trigger, audience, sampling,
    caps, quiet period and holdout are not applied; the campaign must be live and inside its
    window, and a survey the person already answered is not shown again. After: the person
    exists; a delivery is recorded (a pending one is reused); after commit a `show` frame goes
    to the person's connections, and a person with none gets it in their next snapshot.
    `connections` is how many open connections the person had.
    """
    campaign = campaign_get_for_app(app=app, kind=kind, campaign_id=campaign_id)
    if campaign.status != CampaignStatus.LIVE:
        raise errors.InvalidInput(
            f"campaign: a {campaign.status} campaign cannot be pushed; publish it first",
            code="campaign_not_live",
        )
    person = person_resolve(app=app, user_id=user_id, anonymous_id=None, create=True)
    assert person is not None  # noqa: S101 - a user id is always given
    forced = replace(
        compile_one(kind, campaign),
        trigger_on=TriggerOn.API,
        trigger_url=None,
        audience=None,
        sample_bp=10_000,
        holdout_bp=0,
        max_impressions=None,
        recontact_days=0,
        quiet_hours=False,
    )
    situation = situation_build(app=app, person=person, moment=Moment(), user_id=user_id)
    decision = decide(situation, (forced,))[0]
    if not decision.shown:
        failed = decision.verdicts[-1]
        raise errors.InvalidInput(
            f"campaign: cannot be shown to this person: {failed.reason}",
            code="campaign_not_eligible",
        )
    item = items_for(situation, [decision], dry_run=False, locale=None)[0]
    connections = presence().connections_count(app_id=app.pk, person_id=person.pk)
    _send_on_commit([(person_group(app.pk, person.pk), show_message(item))])
    return Pushed(item=item, connections=connections)
