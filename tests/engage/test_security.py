"""Keys, the admin log, browser security and production settings."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from engage import selectors
from engage.campaigns import campaign_create
from engage.errors import InvalidInput
from engage.models import App
from engage.selectors import app_cache_clear
from engage.services import app_secret_key_rotate
from engage.webhooks import webhook_endpoint_create
from messaging.models import Message
from surveys.models import Survey
from tests.surveys.conftest import QUESTIONS

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "https://host.example"


def secret(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def works(key: str) -> bool:
    """Whether a management API accepts the secret key (a fresh lookup, as another process)."""
    app_cache_clear()
    status = secret(key).get("/api/v1/segments/").status_code
    assert status in (200, 401), status
    return status == 200


# --- secret key rotation ------------------------------------------------------------------------


@pytest.mark.django_db
def test_rotation_keeps_the_old_key_for_the_grace_period_only(app_keys, monkeypatch):
    old = app_keys.secret_key
    rotated = app_secret_key_rotate(app=app_keys.app, grace_hours=2)

    assert rotated.secret_key != old
    assert works(rotated.secret_key)
    assert works(old)
    until = rotated.previous_until
    assert until is not None
    assert timedelta(hours=1.99) < until - timezone.now() <= timedelta(hours=2)

    # Even a cached lookup stops accepting the old key the moment its time is up.
    assert secret(old).get("/api/v1/segments/").status_code == 200
    monkeypatch.setattr(selectors.timezone, "now", lambda: until + timedelta(seconds=1))
    assert secret(old).get("/api/v1/segments/").status_code == 401
    assert not works(old)
    assert works(rotated.secret_key)


@pytest.mark.django_db
def test_rotation_without_grace_revokes_at_once_and_only_one_previous_key_is_kept(app_keys):
    first = app_keys.secret_key
    second = app_secret_key_rotate(app=app_keys.app, grace_hours=1).secret_key
    third = app_secret_key_rotate(app=app_keys.app, grace_hours=1).secret_key
    assert (works(first), works(second), works(third)) == (False, True, True)

    fourth = app_secret_key_rotate(app=app_keys.app, grace_hours=0)
    assert fourth.previous_until is None
    assert (works(second), works(third), works(fourth.secret_key)) == (False, False, True)


@pytest.mark.django_db
def test_an_old_key_of_one_app_never_opens_another(app_keys, other_app_keys):
    old = app_keys.secret_key
    app_secret_key_rotate(app=app_keys.app, grace_hours=1)
    app_cache_clear()
    me = secret(old).get("/api/v1/me").json()
    assert me["app"]["id"] == app_keys.app.pk
    assert me["key"] == "secret"
    assert secret(other_app_keys.secret_key).get("/api/v1/me").json()["app"]["id"] == (
        other_app_keys.app.pk
    )


@pytest.mark.django_db
def test_negative_grace_is_refused(app_keys):
    with pytest.raises(InvalidInput, match="grace_hours"):
        app_secret_key_rotate(app=app_keys.app, grace_hours=-1)
    assert works(app_keys.secret_key)


@pytest.mark.django_db
def test_the_command_rotates_with_a_grace_period(app_keys):
    out = io.StringIO()
    call_command(
        "engage_app",
        "rotate-secret",
        str(app_keys.app.pk),
        "--grace-hours",
        "3",
        "--json",
        stdout=out,
    )
    data = json.loads(out.getvalue())

    assert data["id"] == app_keys.app.pk
    assert works(data["secret_key"])
    assert works(app_keys.secret_key)
    assert data["previous_key_valid_until"] is not None

    out = io.StringIO()
    call_command(
        "engage_app", "rotate-secret", str(app_keys.app.pk), "--grace-hours", "0", stdout=out
    )
    assert "The previous key no longer works." in out.getvalue()
    assert not works(data["secret_key"])


# --- the admin log -------------------------------------------------------------------------------


def changes_of(obj: Any) -> list[str]:
    return list(
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(type(obj)),
            object_id=str(obj.pk),
            action_flag=CHANGE,
        ).values_list("change_message", flat=True)
    )


@pytest.mark.django_db
def test_the_rotate_action_is_logged_and_keeps_the_old_key_a_day(
    admin_client, admin_user, app_keys
):
    response = admin_client.post(
        "/admin/engage/app/",
        {"action": "rotate_secret_key", "_selected_action": [app_keys.app.pk]},
        follow=True,
    )

    notes = " ".join(str(m) for m in response.context["messages"])
    assert "New secret key of Acme (shown only now): sk_" in notes
    assert works(app_keys.secret_key)  # 24 hours of grace
    [entry] = LogEntry.objects.filter(object_id=str(app_keys.app.pk))
    assert entry.user == admin_user
    assert entry.action_flag == CHANGE
    assert entry.change_message.startswith("Rotated the secret key; the previous key works until")

    admin_client.post(
        "/admin/engage/app/",
        {"action": "rotate_secret_key_now", "_selected_action": [app_keys.app.pk]},
    )
    assert "Rotated the secret key; the previous key no longer works." in changes_of(app_keys.app)


@pytest.mark.django_db
def test_message_status_actions_and_buttons_are_logged(admin_client, app_keys):
    content = {"en": {"title": "Hi", "body": "x", "buttons": []}}
    message = campaign_create(
        kind="message", app=app_keys.app, data={"name": "M", "kind": "modal", "content": content}
    )
    assert isinstance(message, Message)
    admin_client.post(
        "/admin/messaging/message/",
        {"action": "publish_selected", "_selected_action": [message.pk]},
    )
    admin_client.post(f"/admin/messaging/message/{message.pk}/status/pause/")

    assert changes_of(message) == ["Status changed to paused.", "Published (list action)."]


@pytest.mark.django_db
def test_survey_actions_are_logged(admin_client, app_keys):
    survey = campaign_create(
        kind="survey", app=app_keys.app, data={"name": "S", "questions": QUESTIONS}
    )
    assert isinstance(survey, Survey)
    for action in ("publish", "pause"):
        admin_client.post(
            "/admin/surveys/survey/", {"action": action, "_selected_action": [survey.pk]}
        )
    assert changes_of(survey) == ["Paused (list action).", "Published (list action)."]


@pytest.mark.django_db
def test_webhook_secret_rotation_is_logged(admin_client, app_keys):
    endpoint = webhook_endpoint_create(app=app_keys.app, url="https://hooks.example/engage")
    admin_client.post(
        "/admin/engage/webhookendpoint/",
        {"action": "rotate_secret", "_selected_action": [endpoint.pk]},
    )
    assert changes_of(endpoint) == ["Rotated the signing secret."]


@pytest.mark.django_db
def test_a_failed_action_writes_no_log_entry(admin_client, app_keys):
    content = {"en": {"title": "Hi", "body": "x", "buttons": []}}
    message = campaign_create(
        kind="message", app=app_keys.app, data={"name": "M", "kind": "modal", "content": content}
    )
    # A draft cannot be paused: refused, so nothing changed and nothing is logged.
    admin_client.post(f"/admin/messaging/message/{message.pk}/status/pause/")
    assert changes_of(message) == []


# --- browser security -----------------------------------------------------------------------


@pytest.mark.django_db
def test_cors_allows_only_origins_some_app_lists(api_client, app_keys):
    allowed = api_client.options(
        "/api/v1/events",
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type,x-engage-key",
    )
    assert allowed["Access-Control-Allow-Origin"] == ORIGIN
    assert allowed["Access-Control-Allow-Credentials"] == "true"
    foreign = api_client.options(
        "/api/v1/events",
        HTTP_ORIGIN="https://evil.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert "Access-Control-Allow-Origin" not in foreign


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/events", {"events": [{"name": "x", "anonymous_id": "a"}]}),
        ("post", "/api/v1/identify", {"user_id": "u1"}),
        ("get", "/api/v1/widget/campaigns?anonymous_id=a", None),
    ],
)
def test_a_public_key_is_refused_from_another_apps_origin(
    app_keys, other_app_keys, method, path, body
):
    # The other App's origin passes CORS (some App lists it) but is not this App's.
    App.objects.filter(pk=other_app_keys.app.pk).update(allowed_origins=["https://other.example"])
    app_cache_clear()
    client = APIClient()
    client.credentials(HTTP_X_ENGAGE_KEY=app_keys.public_key)
    call = getattr(client, method)

    refused = call(path, body, format="json", HTTP_ORIGIN="https://other.example")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "origin_not_allowed"
    assert call(path, body, format="json", HTTP_ORIGIN=ORIGIN).status_code == 200
    # Servers and mobile apps send no Origin.
    assert call(path, body, format="json").status_code == 200


def directives(header: str) -> dict[str, list[str]]:
    parts = (p.split() for p in header.split(";") if p.strip())
    return {p[0]: p[1:] for p in parts}


@pytest.mark.django_db
def test_the_admin_and_docs_pages_carry_the_content_security_policy(client, settings):
    settings.CONTENT_SECURITY_POLICY = {
        "DIRECTIVES": settings.ENGAGE_CSP_DIRECTIVES,
        "EXCLUDE_URL_PREFIXES": ["/api/v1/", "/i", "/com.snowplowanalytics.snowplow/"],
    }
    login = client.get("/admin/login/")
    policy = directives(login["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert login["X-Frame-Options"] == "DENY"

    docs = directives(client.get("/api/docs/")["Content-Security-Policy"])
    assert docs["script-src"] == ["'self'", "https://cdn.jsdelivr.net"]
    assert "blob:" in docs["worker-src"]

    assert "Content-Security-Policy" not in client.get("/api/v1/events")


def test_hsts_is_sent_over_https_when_configured(client, settings):
    settings.SECURE_HSTS_SECONDS = 31_536_000
    assert client.get("/healthz", secure=True)["Strict-Transport-Security"] == ("max-age=31536000")
    assert "Strict-Transport-Security" not in client.get("/healthz")


def production_settings(**env: str) -> dict[str, Any]:
    """The settings a process reads with DEBUG off and `env` set."""
    script = (
        "import json, django; django.setup(); from django.conf import settings as s;"
        "print(json.dumps({k: getattr(s, k, None) for k in ["
        "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', "
        "'SECURE_PROXY_SSL_HEADER', 'X_FRAME_OPTIONS', 'CONTENT_SECURITY_POLICY', "
        "'SECURE_CONTENT_TYPE_NOSNIFF', 'ENGAGE_RATE_LIMIT_PUBLIC']}))"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ENGAGE_", "SECURE_"))}
    base.update(
        DJANGO_SETTINGS_MODULE="engage.settings",
        DEBUG="false",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="engage.example.com",
        **env,
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_outside_debug_cookies_are_secure_and_the_csp_is_on():
    found = production_settings()
    assert found["SESSION_COOKIE_SECURE"] is True
    assert found["CSRF_COOKIE_SECURE"] is True
    assert found["X_FRAME_OPTIONS"] == "DENY"
    assert found["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert found["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]["script-src"] == ["'self'"]
    # Opt-in: they depend on how TLS is terminated in front of Engage.
    assert found["SECURE_HSTS_SECONDS"] == 0
    assert found["SECURE_PROXY_SSL_HEADER"] is None


def test_hsts_and_the_proxy_header_come_from_the_environment():
    found = production_settings(
        SECURE_HSTS_SECONDS="63072000", ENGAGE_BEHIND_TLS_PROXY="true", ENGAGE_CSP="false"
    )
    assert found["SECURE_HSTS_SECONDS"] == 63_072_000
    assert found["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert found["CONTENT_SECURITY_POLICY"] is None


def test_a_bad_rate_limit_setting_stops_the_start_with_its_name():
    with pytest.raises(subprocess.CalledProcessError) as failure:
        production_settings(ENGAGE_RATE_LIMIT_PUBLIC="lots")
    assert "ENGAGE_RATE_LIMIT_PUBLIC" in failure.value.stderr


# --- size limits ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("public", "/api/v1/responses"),
        ("public", "/api/v1/identify"),
        ("secret", "/api/v1/segments/"),
        ("secret", "/api/v1/targeting/evaluate"),
        ("secret", "/api/v1/messages"),
    ],
)
def test_a_body_over_the_limit_is_413_on_every_door(app_keys, settings, key, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    client = APIClient()
    if key == "public":
        client.credentials(HTTP_X_ENGAGE_KEY=app_keys.public_key)
    else:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {app_keys.secret_key}")

    response = client.post(path, {"name": "x" * 2_000}, format="json", HTTP_ORIGIN=ORIGIN)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
