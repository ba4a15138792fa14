"""The push worker: event pushes leave the request that stored the events (Redis layer)."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from engage.campaigns import campaign_create, campaign_publish
from engage.models import Delivery
from engage.realtime import push
from engage.realtime.presence import presence, presence_reset
from segments.services import EventInput, events_ingest, person_resolve

CONTENT = {"en": {"title": "Hello", "body": "Hi", "buttons": []}}


def run_each(batch: list[Any]) -> None:
    for job in batch:
        job()


def test_queued_items_are_handled_in_order_in_batches_on_the_worker_thread():
    batches: list[tuple[list[int], str]] = []
    release = threading.Event()

    def handle(batch: list[Any]) -> None:
        if "hold" in batch:
            release.wait(5)
        if "hold" in batch or 0 in batch:
            raise ValueError("a failing batch does not stop the worker")
        batches.append((batch, threading.current_thread().name))

    worker = push.PushWorker(handle, name="test-push")
    assert worker.submit("hold")
    assert worker.submit(0)
    assert worker.join(timeout=0.2) is False  # still held
    release.set()
    assert worker.join(timeout=5)
    # Queued while the worker was busy: handled together, in order, in the next batch.
    for n in (1, 2, 3):
        assert worker.submit(n)
    assert worker.join(timeout=5)
    assert [n for batch, _ in batches for n in batch] == [1, 2, 3]
    assert {name for _, name in batches} == {"test-push"}
    assert not worker.owns_current_thread()


def test_a_batch_pushes_each_apps_events_together(monkeypatch):
    pushed: list[tuple[int, list[str]]] = []
    monkeypatch.setattr(
        push, "_events_push_logged", lambda app, stored: pushed.append((app.pk, stored))
    )
    first, second = SimpleNamespace(pk=1), SimpleNamespace(pk=2)
    push._events_push_batch([(first, ["a"]), (second, ["b"]), (first, ["c", "d"])])  # type: ignore[list-item]
    assert pushed == [(1, ["a", "c", "d"]), (2, ["b"])]


def test_a_full_queue_refuses_so_the_caller_runs_the_job_itself(monkeypatch):
    monkeypatch.setattr(push, "PUSH_QUEUE_SIZE", 1)
    worker = push.PushWorker(run_each, name="test-push")
    started, release = threading.Event(), threading.Event()

    def blocking() -> None:
        started.set()
        release.wait(5)

    assert worker.submit(blocking)
    assert started.wait(5)
    assert worker.submit(lambda: None)  # waits in the queue
    assert not worker.submit(lambda: None)  # the queue is full
    release.set()
    assert worker.join(timeout=5)


def test_with_the_in_memory_layer_pushes_stay_in_the_callers_thread(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    assert not push._hand_off(SimpleNamespace(pk=1), [])  # type: ignore[arg-type]


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_with_redis_the_request_does_not_wait_for_the_push(
    app_keys, redis_url, settings, monkeypatch
):
    settings.REDIS_URL = redis_url
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": redis_url, "socket_timeout": None}]},
        }
    }
    presence_reset()
    app = app_keys.app
    data: dict[str, Any] = {
        "name": "on order",
        "kind": "banner",
        "content": CONTENT,
        "trigger": {"on": "event", "event": "order_completed"},
    }
    campaign = campaign_create(kind="message", app=app, data=data)
    campaign_publish(campaign=campaign)
    online = person_resolve(app=app, user_id="online", anonymous_id=None, create=True)
    assert online is not None
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(push.person_group(app.pk, online.pk), channel)
    async_to_sync(presence().connection_add)(app_id=app.pk, person_id=online.pk, channel=channel)

    real = push._events_push
    started, release = threading.Event(), threading.Event()
    threads: list[str] = []

    def held(app: Any, stored: Any) -> None:
        threads.append(threading.current_thread().name)
        started.set()
        release.wait(5)
        real(app, stored)

    monkeypatch.setattr(push, "_events_push", held)
    events_ingest(app=app, events=[EventInput(name="order_completed", user_id="online")])
    # The ingest has returned while its push is still held on the worker: nothing decided yet.
    assert started.wait(5)
    assert threads == ["engage-push"]
    assert not Delivery.objects.exists()
    release.set()
    assert push.push_worker().join(timeout=10)
    show = async_to_sync(layer.receive)(channel)
    assert show["type"] == push.SHOW
    assert show["item"]["id"] == campaign.pk
    assert str(Delivery.objects.get().pk) == show["item"]["delivery_id"]
    async_to_sync(presence().connection_remove)(app_id=app.pk, person_id=online.pk, channel=channel)
    presence_reset()
