"""Push paths without a socket: targeting/push, the events listener's presence gate, publish
batches, presence itself, and that a failing push never breaks the write it follows."""

from __future__ import annotations

import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from engage.campaigns import campaign_create, campaign_pause, campaign_publish
from engage.models import CampaignStatus, Delivery
from engage.realtime import presence as presence_module
from engage.realtime import push
from engage.realtime.presence import LocalPresence, RedisPresence, presence, presence_reset
from segments.models import Event, Person
from segments.services import EventInput, events_ingest, person_resolve

pytestmark = pytest.mark.django_db(transaction=True)

CONTENT = {"en": {"title": "Hello", "body": "Hi", "buttons": []}}


@pytest.fixture(autouse=True)
def _in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    presence_reset()
    yield
    presence_reset()


def message(app: Any, *, publish: bool = True, **fields: Any) -> Any:
    data = {"name": "m", "kind": "banner", "content": CONTENT, "trigger": {"on": "api"}, **fields}
    campaign = campaign_create(kind="message", app=app, data=data)
    if publish:
        campaign_publish(campaign=campaign)
    return campaign


def connect(app: Any, person: Person, channel: str) -> None:
    """What the consumer does on hello: join the person's group and record presence."""
    layer = get_channel_layer()
    async_to_sync(layer.group_add)(push.person_group(app.pk, person.pk), channel)
    async_to_sync(layer.group_add)(push.app_group(app.pk), channel)
    async_to_sync(presence().connection_add)(app_id=app.pk, person_id=person.pk, channel=channel)


def received(channel: str) -> list[dict[str, Any]]:
    layer = get_channel_layer()
    messages: list[dict[str, Any]] = []
    while True:
        queue = layer.channels.get(channel)
        if not queue or queue.empty():
            return messages
        messages.append(async_to_sync(layer.receive)(channel))


def person(app: Any, user_id: str) -> Person:
    found = person_resolve(app=app, user_id=user_id, anonymous_id=None, create=True)
    assert found is not None
    return found


# --- targeting/push --------------------------------------------------------------------------


def test_push_creates_a_delivery_and_answers_the_connections_reached(app_keys, secret_client):
    campaign = message(app_keys.app, audience={"condition": {"attribute": "plan", "op": "eq",
                                                             "value": "pro"}})  # fmt: skip
    body = {"user_id": "u1", "campaign": {"kind": "message", "id": campaign.pk}}
    first = secret_client.post("/api/v1/targeting/push", body, format="json")
    assert first.status_code == 200, first.json()
    assert first.json()["connections"] == 0
    # Not in the audience, yet shown: a push is an explicit instruction for this person.
    delivery = Delivery.objects.get(pk=first.json()["delivery_id"])
    assert (delivery.person.user_id, delivery.campaign_id, delivery.shown_at) == (
        "u1",
        campaign.pk,
        None,
    )
    connect(app_keys.app, delivery.person, "test.a")
    connect(app_keys.app, delivery.person, "test.b")
    again = secret_client.post("/api/v1/targeting/push/", body, format="json")
    assert again.json() == {"connections": 2, "delivery_id": str(delivery.pk)}  # still pending
    for channel in ("test.a", "test.b"):
        (show,) = received(channel)
        assert show["type"] == "realtime.show"
        assert show["item"]["delivery_id"] == str(delivery.pk)


def test_push_refuses_what_it_cannot_show(app_keys, secret_client, public_client, other_app_keys):
    draft = message(app_keys.app, publish=False)
    foreign = message(other_app_keys.app)

    def post(client: Any, body: dict[str, Any]) -> Any:
        return client.post("/api/v1/targeting/push", body, format="json")

    response = post(
        secret_client, {"user_id": "u", "campaign": {"kind": "message", "id": draft.pk}}
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, "campaign_not_live")
    response = post(
        secret_client, {"user_id": "u", "campaign": {"kind": "message", "id": foreign.pk}}
    )
    assert response.status_code == 404
    response = post(secret_client, {"user_id": "u", "campaign": {"kind": "poll", "id": 1}})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_campaign_kind"
    response = post(secret_client, {"campaign": {"kind": "message", "id": draft.pk}})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("user_id")
    response = post(public_client, {"user_id": "u", "campaign": {"kind": "message", "id": 1}})
    assert response.status_code == 403
    assert not Delivery.objects.exists()


# --- the events listener ---------------------------------------------------------------------


def test_events_for_people_without_a_widget_cost_one_presence_lookup(app_keys, monkeypatch):
    message(app_keys.app, trigger={"on": "event", "event": "order_completed"})
    asked: list[set[int]] = []
    real = LocalPresence.people_present

    def spy(self: LocalPresence, *, app_id: int, person_ids: Any) -> set[int]:
        asked.append(set(person_ids))
        return real(self, app_id=app_id, person_ids=person_ids)

    monkeypatch.setattr(LocalPresence, "people_present", spy)
    events = [EventInput(name="order_completed", user_id=f"u{i}") for i in range(20)]
    events += [EventInput(name="page_view", user_id="u0")]
    events_ingest(app=app_keys.app, events=events)
    assert len(asked) == 1
    assert len(asked[0]) == 20
    assert not Delivery.objects.exists()
    # Events that trigger no campaign do not even ask.
    events_ingest(app=app_keys.app, events=[EventInput(name="page_view", user_id="u1")])
    assert len(asked) == 1


def test_an_event_of_a_connected_person_is_decided_and_pushed(app_keys):
    campaign = message(app_keys.app, trigger={"on": "event", "event": "order_completed"})
    online = person(app_keys.app, "online")
    connect(app_keys.app, online, "test.online")
    events_ingest(
        app=app_keys.app,
        events=[
            EventInput(name="order_completed", user_id="online"),
            EventInput(name="order_completed", user_id="online"),  # same batch: decided once
            EventInput(name="order_completed", user_id="offline"),
        ],
    )
    (show,) = received("test.online")
    assert show["item"]["id"] == campaign.pk
    assert list(Delivery.objects.values_list("person__user_id", flat=True)) == ["online"]


def test_a_failing_push_never_breaks_the_write(app_keys, monkeypatch, secret_client):
    campaign = message(app_keys.app, trigger={"on": "event", "event": "order_completed"})
    online = person(app_keys.app, "online")
    connect(app_keys.app, online, "test.online")
    layer = get_channel_layer()

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(layer, "group_send", broken)
    events_ingest(app=app_keys.app, events=[EventInput(name="order_completed", user_id="online")])
    assert Event.objects.count() == 1
    campaign_pause(campaign=campaign)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    api = message(app_keys.app)
    response = secret_client.post(
        "/api/v1/targeting/push",
        {"user_id": "online", "campaign": {"kind": "message", "id": api.pk}},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["connections"] == 1

    asked: list[int] = []

    def presence_down(*args: Any, **kwargs: Any) -> set[int]:
        asked.append(1)
        raise ConnectionError("redis is down")

    monkeypatch.setattr(push, "_presence_down_until", 0.0)  # restored after the test
    monkeypatch.setattr(LocalPresence, "people_present", presence_down)
    campaign_publish(campaign=campaign)
    events_ingest(app=app_keys.app, events=[EventInput(name="order_completed", user_id="online")])
    events_ingest(app=app_keys.app, events=[EventInput(name="order_completed", user_id="online")])
    assert Event.objects.count() == 3
    assert len(asked) == 1  # then ingestion stops asking a presence that is down, for a while


# --- publish ---------------------------------------------------------------------------------


def test_publish_fans_out_in_batches_to_every_eligible_connected_person(app_keys, monkeypatch):
    monkeypatch.setattr(push, "PUBLISH_BATCH_SIZE", 2)
    people = [person(app_keys.app, f"u{i}") for i in range(5)]
    for p in people:
        p.attributes = {"plan": "pro"}
        p.save()
        connect(app_keys.app, p, f"test.{p.user_id}")
    outsider = person(app_keys.app, "free")
    outsider.attributes = {"plan": "free"}
    outsider.save()
    connect(app_keys.app, outsider, "test.free")
    campaign = message(
        app_keys.app,
        publish=False,
        trigger={"on": "page_view"},
        audience={"condition": {"attribute": "plan", "op": "eq", "value": "pro"}},
    )
    batches = push.publish_push_batches(app_id=app_keys.app.pk, kind="message", campaign_id=0)
    assert batches == []
    campaign_publish(campaign=campaign)
    for p in people:
        (show,) = received(f"test.{p.user_id}")
        assert show["item"]["id"] == campaign.pk
    assert received("test.free") == []
    assert push.publish_push_batches(
        app_id=app_keys.app.pk, kind="message", campaign_id=campaign.pk
    ) == [[people[0].pk, people[1].pk], [people[2].pk, people[3].pk], [people[4].pk, outsider.pk]]
    # A batch run twice (a retried task) reuses the pending deliveries.
    push.publish_push_batch(
        app_id=app_keys.app.pk,
        kind="message",
        campaign_id=campaign.pk,
        person_ids=[p.pk for p in people],
    )
    assert Delivery.objects.count() == 5


def test_campaigns_that_wait_for_something_are_not_pushed_on_publish(app_keys):
    online = person(app_keys.app, "online")
    connect(app_keys.app, online, "test.online")
    for trigger in (
        {"on": "event", "event": "x"},
        {"on": "api"},
        {"on": "page_view", "url": {"op": "contains", "value": "/reports"}},
    ):
        message(app_keys.app, trigger=trigger)
    assert received("test.online") == []
    assert not Delivery.objects.exists()


# --- presence --------------------------------------------------------------------------------


def exercise(store: Any, app_id: int) -> None:
    add = async_to_sync(store.connection_add)
    remove = async_to_sync(store.connection_remove)
    add(app_id=app_id, person_id=1, channel="c1")
    add(app_id=app_id, person_id=1, channel="c2")
    add(app_id=app_id, person_id=3, channel="c3")
    add(app_id=app_id + 1, person_id=2, channel="c4")
    assert store.connections_count(app_id=app_id, person_id=1) == 2
    assert store.people_present(app_id=app_id, person_ids=[1, 2, 3, 4]) == {1, 3}
    assert store.app_people(app_id=app_id) == [1, 3]
    remove(app_id=app_id, person_id=1, channel="c1")
    remove(app_id=app_id, person_id=3, channel="c3")
    assert store.connections_count(app_id=app_id, person_id=1) == 1
    assert store.app_people(app_id=app_id) == [1]


def test_local_presence_counts_and_expires(monkeypatch):
    store = LocalPresence()
    exercise(store, 10)
    now = time.time()
    monkeypatch.setattr(presence_module.time, "time", lambda: now + presence_module.TTL_SECONDS + 1)
    assert store.app_people(app_id=10) == []


@pytest.mark.redis
def test_redis_presence_counts_and_expires(redis_url, monkeypatch):
    store = RedisPresence(redis_url)
    app_id = 10_000_000 + int(time.time() * 1000) % 1_000_000  # no clash with other runs
    exercise(store, app_id)
    now = time.time()
    monkeypatch.setattr(presence_module.time, "time", lambda: now + presence_module.TTL_SECONDS + 1)
    assert store.app_people(app_id=app_id) == []
    assert store.people_present(app_id=app_id, person_ids=[1]) == set()


def test_presence_follows_the_channel_layer(settings):
    assert isinstance(presence(), LocalPresence)
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}
    assert isinstance(presence(), RedisPresence)
