"""Previews: on a test user's open widgets, and through one-time links; always test deliveries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.utils import timezone

from engage import errors, models
from engage.campaigns import campaign_create
from engage.deliveries import delivery_event_record, targeting_evaluate
from engage.experiments import campaign_results
from engage.preview import campaign_preview, preview_link_create, preview_token_redeem
from engage.realtime.consumers import db_threads_close
from engage.realtime.frames import FrameError, Preview, frame_parse
from engage.realtime.presence import presence_reset
from engage.targeting import Moment, _compiled

ORIGIN = "https://host.example"
CONTENT = {"en": {"title": "Preview me", "body": "Hi", "buttons": []}, "fr": {"title": "Salut"}}


@pytest.fixture(autouse=True)
def _fresh(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    cache.clear()
    _compiled.clear()
    presence_reset()
    yield
    presence_reset()
    cache.clear()
    _compiled.clear()


def draft(app: Any, **fields: Any) -> Any:
    data = {"name": "Draft", "kind": "modal", "content": CONTENT, "trigger": {"on": "api"}}
    return campaign_create(kind="message", app=app, data={**data, **fields})


def token_of(link: str) -> str:
    return link.split("engage_preview=", 1)[1]


@pytest.mark.django_db
def test_preview_ignores_status_schedule_audience_and_caps_and_is_a_test(app_keys):
    app = app_keys.app
    models.TestUser.objects.create(app=app, user_id="qa")
    m = draft(
        app,
        audience={"condition": {"attribute": "plan", "op": "eq", "value": "enterprise"}},
        starts_at=timezone.now() + timedelta(days=3),
        max_impressions=1,
    )
    first = campaign_preview(app=app, kind="message", campaign_id=m.pk, user_id="qa")
    second = campaign_preview(app=app, kind="message", campaign_id=m.pk, user_id="qa", locale="fr")
    assert first.item.content["title"] == "Preview me"
    assert second.item.content["title"] == "Salut"
    assert first.item.display == "modal"
    for previewed in (first, second):
        delivery_event_record(app=app, delivery_id=previewed.delivery.pk, type="clicked")
    deliveries = models.Delivery.objects.filter(campaign_id=m.pk)
    assert deliveries.count() == 2
    assert all(d.is_test for d in deliveries)
    # Absent from results, caps and quiet periods.
    (variant,) = campaign_results(kind="message", campaign_id=m.pk, variants=[""])["variants"]
    assert (variant["eligible"], variant["shown"], variant["clicked"]) == (0, 0, 0)
    live = campaign_create(
        kind="message",
        app=app,
        data={"name": "Live", "kind": "banner", "content": CONTENT, "recontact_days": 30},
    )
    from engage.campaigns import campaign_publish

    campaign_publish(campaign=live)
    items = targeting_evaluate(
        app=app, user_id="qa", anonymous_id=None, moment=Moment(), dry_run=True
    ).items
    assert [i.id for i in items] == [live.pk]


@pytest.mark.django_db
def test_preview_only_for_test_users_of_the_app(app_keys, other_app_keys):
    m = draft(app_keys.app)
    models.TestUser.objects.create(app=other_app_keys.app, user_id="qa")
    with pytest.raises(errors.InvalidInput) as refused:
        campaign_preview(app=app_keys.app, kind="message", campaign_id=m.pk, user_id="qa")
    assert refused.value.code == "not_a_test_user"
    models.TestUser.objects.create(app=app_keys.app, user_id="qa")
    with pytest.raises(errors.NotFound):
        campaign_preview(app=other_app_keys.app, kind="message", campaign_id=m.pk, user_id="qa")


@pytest.mark.django_db
def test_preview_link_is_single_use_signed_and_expires(app_keys, other_app_keys):
    app = app_keys.app
    m = draft(app)
    link = preview_link_create(
        app=app, kind="message", campaign_id=m.pk, url="https://host.example/reports?tab=2#top"
    )
    assert link.startswith("https://host.example/reports?tab=2&engage_preview=")
    token = token_of(link.split("#", 1)[0])
    assert link.endswith("#top")
    with pytest.raises(errors.InvalidInput) as foreign:
        preview_token_redeem(app=other_app_keys.app, token=token, user_id=None, anonymous_id="a")
    assert foreign.value.code == "preview_token_invalid"
    item = preview_token_redeem(app=app, token=token, user_id=None, anonymous_id="tester-browser")
    assert item.id == m.pk
    delivery = models.Delivery.objects.get(pk=str(item.delivery_id))
    assert delivery.is_test
    assert delivery.person.user_id is None
    with pytest.raises(errors.InvalidInput) as again:
        preview_token_redeem(app=app, token=token, user_id=None, anonymous_id="someone")
    assert again.value.code == "preview_token_used"
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(errors.InvalidInput) as bad:
        preview_token_redeem(app=app, token=tampered, user_id=None, anonymous_id="a")
    assert bad.value.code == "preview_token_invalid"
    old = preview_link_create(
        app=app,
        kind="message",
        campaign_id=m.pk,
        url="https://host.example/",
        now=timezone.now() - timedelta(hours=1),
    )
    with pytest.raises(errors.InvalidInput) as expired:
        preview_token_redeem(app=app, token=token_of(old), user_id=None, anonymous_id="a")
    assert expired.value.code == "preview_token_expired"
    with pytest.raises(errors.InvalidInput) as elsewhere:
        preview_link_create(app=app, kind="message", campaign_id=m.pk, url="https://evil.example/")
    assert elsewhere.value.code == "invalid_url"


@pytest.mark.django_db
def test_preview_over_http(public_client, app_keys):
    m = draft(app_keys.app)
    link = preview_link_create(
        app=app_keys.app, kind="message", campaign_id=m.pk, url="https://host.example/"
    )
    for path in ("/api/v1/widget/preview", "/api/v1/widget/preview/"):
        response = public_client.post(
            path,
            {"token": token_of(link), "anonymous_id": "b1"},
            format="json",
            HTTP_ORIGIN=ORIGIN,
        )
        if path.endswith("/"):
            assert response.status_code == 400
            assert response.json()["error"]["code"] == "preview_token_used"
        else:
            assert response.status_code == 200, response.content
            assert response.json()["items"][0]["content"]["title"] == "Preview me"
    missing = public_client.post(
        "/api/v1/widget/preview", {"token": "x"}, format="json", HTTP_ORIGIN=ORIGIN
    )
    assert missing.status_code == 400
    assert "anonymous_id" in missing.json()["error"]["message"]


async def _widget(key: str, anonymous_id: str, **hello: Any) -> WebsocketCommunicator:
    from engage.routing import websocket_routes

    comm = WebsocketCommunicator(
        URLRouter(websocket_routes),
        f"/ws/v1/widget?key={key}",
        headers=[(b"origin", ORIGIN.encode())],
    )
    connected, _ = await comm.connect(timeout=5)
    assert connected
    await comm.send_json_to({"type": "hello", "v": 1, "anonymous_id": anonymous_id, **hello})
    assert (await comm.receive_json_from(timeout=5))["type"] == "welcome"
    assert (await comm.receive_json_from(timeout=5))["type"] == "snapshot"
    return comm


@pytest.mark.django_db(transaction=True)
async def test_preview_reaches_the_test_users_open_widgets_and_the_link_frame(app_keys):
    app = app_keys.app
    await database_sync_to_async(models.TestUser.objects.create)(app=app, user_id="qa")
    m = await database_sync_to_async(draft)(app)
    try:
        tab_one = await _widget(app_keys.public_key, "a1", user_id="qa")
        tab_two = await _widget(app_keys.public_key, "a2", user_id="qa")
        previewed = await database_sync_to_async(campaign_preview)(
            app=app, kind="message", campaign_id=m.pk, user_id="qa"
        )
        assert previewed.connections == 2
        for tab in (tab_one, tab_two):
            show = await tab.receive_json_from(timeout=5)
            assert show["type"] == "show"
            assert show["item"]["delivery_id"] == str(previewed.delivery.pk)

        link = await database_sync_to_async(preview_link_create)(
            app=app, kind="message", campaign_id=m.pk, url="https://host.example/"
        )
        stranger = await _widget(app_keys.public_key, "not-signed-in")
        await stranger.send_json_to({"type": "preview", "token": token_of(link), "id": 1})
        show = await stranger.receive_json_from(timeout=5)
        assert (show["type"], show["item"]["id"]) == ("show", m.pk)
        assert (await stranger.receive_json_from(timeout=5)) == {"type": "ack", "id": 1}
        await stranger.send_json_to({"type": "preview", "token": token_of(link), "id": 2})
        error = await stranger.receive_json_from(timeout=5)
        assert (error["type"], error["code"], error["id"]) == ("error", "preview_token_used", 2)
        for comm in (tab_one, tab_two, stranger):
            await comm.disconnect()
    finally:
        await database_sync_to_async(db_threads_close)()


def test_preview_frame_shape():
    frame = frame_parse('{"type": "preview", "token": "abc", "id": 7}')
    assert isinstance(frame, Preview)
    assert (frame.token, frame.id) == ("abc", 7)
    for bad, path in (
        ('{"type": "preview"}', "token"),
        ('{"type": "preview", "token": 1}', "token"),
    ):
        with pytest.raises(FrameError) as refused:
            frame_parse(bad)
        assert (refused.value.code, refused.value.path) == ("invalid_frame", path)
    hello = frame_parse('{"type": "hello", "v": 1, "anonymous_id": "a", "user_token": "t.t.t"}')
    assert hello.user_token == "t.t.t"  # type: ignore[attr-defined]
