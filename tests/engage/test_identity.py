"""Identity tokens and hashes: valid, expired, wrong key, wrong sub, monitor mode, rotation."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import jwt
import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from engage import keys
from engage.identity import identity_secret_rotate, identity_token_make, identity_verify
from engage.models import IdentityFailure
from engage.realtime.consumers import db_threads_close
from engage.realtime.presence import presence_reset
from engage.targeting import _compiled
from segments.models import Person

pytestmark = pytest.mark.django_db
ORIGIN = "https://host.example"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "identity.md"


@pytest.fixture(autouse=True)
def _fresh_engine():
    """Compiled campaigns are cached per App id, and test databases reuse ids."""
    yield
    cache.clear()
    _compiled.clear()


@pytest.fixture
def app(app_keys):
    app = app_keys.app
    app.identity_verification = True
    app.identity_mode = "hash_or_token"
    app.save()
    return app


def token(app: Any, user_id: str = "u1", **kw: Any) -> str:
    return identity_token_make(identity_secret=app.identity_secret, user_id=user_id, **kw)


def identify(client: Any, body: dict[str, Any], **headers: Any) -> Any:
    return client.post("/api/v1/identify", body, format="json", HTTP_ORIGIN=ORIGIN, **headers)


def code(response: Any) -> str:
    assert response.status_code == 401, response.content
    return str(response.json()["error"]["code"])


# --- tokens over HTTP ------------------------------------------------------------------------


def test_valid_token_is_accepted_and_its_attributes_win(public_client, app):
    signed = token(app, attributes={"plan": "pro"})
    response = identify(
        public_client,
        {"user_id": "u1", "user_token": signed, "attributes": {"plan": "free", "seat": 3}},
    )
    assert response.status_code == 200, response.content
    assert Person.objects.get(user_id="u1").attributes == {"plan": "pro", "seat": 3}


def test_token_in_a_header_on_widget_endpoints(public_client, app):
    response = public_client.get(
        "/api/v1/widget/campaigns",
        {"user_id": "u1"},
        HTTP_ORIGIN=ORIGIN,
        HTTP_X_ENGAGE_USER_TOKEN=token(app),
    )
    assert response.status_code == 200, response.content
    events = public_client.post(
        "/api/v1/events",
        {"events": [{"name": "x", "user_id": "u1"}]},
        format="json",
        HTTP_ORIGIN=ORIGIN,
        HTTP_X_ENGAGE_USER_TOKEN=token(app),
    )
    assert events.status_code == 200, events.content


def test_expired_token(public_client, app):
    old = token(app, now=timezone.now() - timedelta(hours=1), expires_in=timedelta(minutes=5))
    response = identify(public_client, {"user_id": "u1", "user_token": old})
    assert code(response) == "token_expired"
    assert "user_token" in response.json()["error"]["message"]


def test_wrong_key(public_client, app):
    forged = identity_token_make(identity_secret="not-the-secret", user_id="u1")
    assert code(identify(public_client, {"user_id": "u1", "user_token": forged})) == (
        "bad_signature"
    )


def test_wrong_sub(public_client, app):
    other = token(app, user_id="someone-else")
    assert code(identify(public_client, {"user_id": "u1", "user_token": other})) == ("sub_mismatch")


@pytest.mark.parametrize(
    "bad",
    [
        "not.a.jwt",
        "garbage",
        "HS256-without-exp",
        "none-algorithm",
        "attributes-not-an-object",
    ],
)
def test_malformed_tokens(public_client, app, bad):
    secret = app.identity_secret
    made = {
        "HS256-without-exp": jwt.encode({"sub": "u1"}, secret, algorithm="HS256"),
        "none-algorithm": jwt.encode(
            {"sub": "u1", "exp": timezone.now() + timedelta(minutes=5)}, "", algorithm="none"
        ),
        "attributes-not-an-object": jwt.encode(
            {"sub": "u1", "exp": timezone.now() + timedelta(minutes=5), "attributes": [1]},
            secret,
            algorithm="HS256",
        ),
    }.get(bad, bad)
    assert code(identify(public_client, {"user_id": "u1", "user_token": made})) == "token_invalid"
    assert not Person.objects.filter(user_id="u1").exists()


def test_modes_accept_only_their_proofs(public_client, app):
    good_hash = keys.user_hash_compute(identity_secret=app.identity_secret, user_id="u1")
    app.identity_mode = "token"
    app.save()
    assert code(identify(public_client, {"user_id": "u1", "user_hash": good_hash})) == (
        "identity_verification_failed"
    )
    assert identify(public_client, {"user_id": "u1", "user_token": token(app)}).status_code == 200
    app.identity_mode = "hash"
    app.save()
    assert code(identify(public_client, {"user_id": "u1", "user_token": token(app)})) == (
        "identity_verification_failed"
    )
    assert identify(public_client, {"user_id": "u1", "user_hash": good_hash}).status_code == 200


def test_wrong_hash_keeps_its_documented_code_and_counts_as_bad_signature(public_client, app):
    response = identify(public_client, {"user_id": "u1", "user_hash": "0" * 64})
    assert code(response) == "identity_verification_failed"
    assert "user_hash: not signed" in response.json()["error"]["message"]
    assert IdentityFailure.objects.get(app=app).cause == "bad_signature"


def test_secret_key_requests_need_no_proof(secret_client, app):
    response = secret_client.post("/api/v1/identify", {"user_id": "u1"}, format="json")
    assert response.status_code == 200


# --- monitor mode ----------------------------------------------------------------------------


def test_monitor_mode_lets_through_and_counts(public_client, app):
    app.identity_enforcement = "monitor"
    app.save()
    forged = identity_token_make(identity_secret="wrong", user_id="u1", attributes={"admin": 1})
    response = identify(
        public_client, {"user_id": "u1", "user_token": forged, "attributes": {"plan": "x"}}
    )
    assert response.status_code == 200
    # An unverified token's attributes are not trusted.
    assert Person.objects.get(user_id="u1").attributes == {"plan": "x"}
    assert identify(public_client, {"user_id": "u2"}).status_code == 200
    assert identify(public_client, {"user_id": "u3"}).status_code == 200
    rows = {r.cause: r for r in IdentityFailure.objects.filter(app=app)}
    assert rows["bad_signature"].count == 1
    assert rows["missing"].count == 2
    assert rows["missing"].allowed == 2
    assert [e["user_id"] for e in rows["missing"].examples] == ["u3", "u2"]
    assert rows["missing"].examples[0]["door"] == "identify"


def test_enforce_mode_counts_refusals_too(public_client, app):
    identify(public_client, {"user_id": "u1", "user_token": "garbage"})
    row = IdentityFailure.objects.get(app=app)
    assert (row.cause, row.count, row.allowed) == ("token_invalid", 1, 0)


# --- rotation --------------------------------------------------------------------------------


def test_rotation_grace_period(app):
    old_secret = app.identity_secret
    old_hash = keys.user_hash_compute(identity_secret=old_secret, user_id="u1")
    old_token = identity_token_make(identity_secret=old_secret, user_id="u1")
    now = timezone.now()
    identity_secret_rotate(app=app, grace=timedelta(hours=2), now=now)
    assert app.identity_secret != old_secret
    for proof in ({"user_hash": old_hash}, {"user_token": old_token}):
        assert identity_verify(app=app, user_id="u1", now=now + timedelta(hours=1), **proof)
    new_token = token(app)
    assert identity_verify(app=app, user_id="u1", user_token=new_token).verified
    later = now + timedelta(hours=3)
    with pytest.raises(Exception, match="not signed with this App's identity secret"):
        identity_verify(app=app, user_id="u1", user_hash=old_hash, now=later)


def test_rotate_identity_secret_command(app):
    old = app.identity_secret
    out = StringIO()
    call_command(
        "engage_app", "rotate-identity-secret", str(app.pk), "--grace-hours", "1", "--json",
        stdout=out,
    )  # fmt: skip
    data = json.loads(out.getvalue())
    app.refresh_from_db()
    assert data["identity_secret"] == app.identity_secret != old
    assert app.identity_secret_previous == old
    assert data["previous_secret_valid_until"] is not None


# --- the documented snippet ------------------------------------------------------------------


def test_python_snippet_in_the_docs_makes_accepted_hashes_and_tokens(
    public_client, app, monkeypatch
):
    text = DOCS.read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.S)
    assert snippet is not None
    monkeypatch.setenv("ENGAGE_IDENTITY_SECRET", app.identity_secret)
    namespace: dict[str, Any] = {}
    exec(compile(snippet.group(1), str(DOCS), "exec"), namespace)  # noqa: S102 - our own docs
    user_hash = namespace["engage_user_hash"]("u42")
    user_token = namespace["engage_user_token"]("u42", {"plan": "pro"})
    assert identify(public_client, {"user_id": "u42", "user_hash": user_hash}).status_code == 200
    assert identify(public_client, {"user_id": "u42", "user_token": user_token}).status_code == 200
    assert Person.objects.get(user_id="u42").attributes == {"plan": "pro"}


# --- the websocket ---------------------------------------------------------------------------


@pytest.fixture
def _layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    presence_reset()
    yield
    presence_reset()
    db_threads_close()


async def _opened(key: str) -> WebsocketCommunicator:
    from engage.routing import websocket_routes

    comm = WebsocketCommunicator(
        URLRouter(websocket_routes),
        f"/ws/v1/widget?key={key}",
        headers=[(b"origin", b"https://host.example")],
    )
    connected, _ = await comm.connect(timeout=5)
    assert connected
    return comm


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_layer")
async def test_websocket_expired_token_gets_an_error_frame_then_4401(app_keys):
    from channels.db import database_sync_to_async

    app = app_keys.app
    app.identity_verification = True
    app.identity_mode = "token"
    await database_sync_to_async(app.save)()
    expired = token(app, now=timezone.now() - timedelta(hours=1))
    comm = await _opened(app_keys.public_key)
    await comm.send_json_to(
        {"type": "hello", "v": 1, "anonymous_id": "a1", "user_id": "u1", "user_token": expired}
    )
    error = await comm.receive_json_from(timeout=5)
    assert (error["type"], error["code"]) == ("error", "token_expired")
    closing = await comm.receive_output(timeout=5)
    assert (closing["type"], closing["code"]) == ("websocket.close", 4401)

    ok = await _opened(app_keys.public_key)
    await ok.send_json_to(
        {
            "type": "hello",
            "v": 1,
            "anonymous_id": "a2",
            "user_id": "u1",
            "user_token": token(app, attributes={"plan": "pro"}),
            "attributes": {"plan": "free"},
        }
    )
    welcome = await ok.receive_json_from(timeout=5)
    assert welcome["type"] == "welcome"
    person = await database_sync_to_async(Person.objects.get)(user_id="u1")
    assert person.attributes["plan"] == "pro"
    await ok.disconnect()
