"""The messages API, the targeting API and the widget endpoints, through DRF's client."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

from engage.keys import user_hash_compute
from engage.models import Delivery
from messaging.content import markdown_render
from segments.models import Segment

pytestmark = pytest.mark.django_db

BODY: dict[str, Any] = {
    "name": "Try CSV export",
    "kind": "modal",
    "priority": 10,
    "audience": {"condition": {"attribute": "plan", "op": "eq", "value": "pro"}},
    "trigger": {"on": "page_view", "url": {"op": "contains", "value": "/reports"}},
    "content": {
        "en": {
            "title": "New: CSV export",
            "body": "Export **any** report.",
            "buttons": [
                {"label": "Try it", "action": "url", "url": "/reports/export"},
                {"label": "Later", "action": "dismiss"},
            ],
        }
    },
    "sample_percent": 100,
    "holdout_percent": 0,
    "max_impressions": 3,
    "recontact_days": 7,
    "goal_event": "export_completed",
}


def create(client: Any, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/messages/", {**BODY, **overrides}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_publish_evaluate_pause(secret_client, public_client):
    message = create(secret_client)
    assert message["status"] == "draft"
    response = secret_client.post(f"/api/v1/messages/{message['id']}/publish")
    assert response.status_code == 200
    assert response.json()["status"] == "live"

    ask = {"user_id": "u1", "attributes": {"plan": "pro"}, "url": "https://a.test/reports/9"}
    items = secret_client.post("/api/v1/targeting/evaluate", ask, format="json").json()["items"]
    assert [i["id"] for i in items] == [message["id"]]
    item = items[0]
    assert item["kind"] == "message"
    assert item["delivery_id"]
    assert item["content"]["title"] == "New: CSV export"
    assert item["content"]["body_html"] == "<p>Export <strong>any</strong> report.</p>\n"

    not_pro = {**ask, "user_id": "u2", "attributes": {"plan": "free"}}
    assert secret_client.post("/api/v1/targeting/evaluate", not_pro, format="json").json() == {
        "items": []
    }

    widget = public_client.get(
        "/api/v1/widget/campaigns",
        {"user_id": "u1", "url": "https://a.test/reports/9"},
        HTTP_ORIGIN="https://host.example",
    )
    assert widget.status_code == 200, widget.content
    assert [i["id"] for i in widget.json()["items"]] == [message["id"]]

    secret_client.post(f"/api/v1/messages/{message['id']}/pause/")
    assert secret_client.post("/api/v1/targeting/evaluate", ask, format="json").json() == {
        "items": []
    }
    widget = public_client.get(
        "/api/v1/widget/campaigns",
        {"user_id": "u1", "url": "https://a.test/reports/9"},
        HTTP_ORIGIN="https://host.example",
    )
    assert widget.json() == {"items": []}


def test_delivery_events_through_the_widget_endpoint(secret_client, public_client):
    message = create(secret_client, audience={}, trigger={"on": "api"})
    secret_client.post(f"/api/v1/messages/{message['id']}/publish")
    item = secret_client.post(
        "/api/v1/targeting/evaluate", {"user_id": "u1"}, format="json"
    ).json()["items"][0]
    url = f"/api/v1/deliveries/{item['delivery_id']}/events"
    origin = {"HTTP_ORIGIN": "https://host.example"}
    assert public_client.post(url, {"type": "shown"}, format="json", **origin).status_code == 200
    response = public_client.post(
        url, {"type": "clicked", "button": "Try it"}, format="json", **origin
    )
    assert response.json()["clicked_button"] == "Try it"
    assert public_client.post(url, {"type": "bogus"}, format="json", **origin).status_code == 400
    # Another person may not report on this delivery.
    other = public_client.post(
        url, {"type": "dismissed", "anonymous_id": "someone-else"}, format="json", **origin
    )
    assert other.status_code == 404
    results = secret_client.get(f"/api/v1/messages/{message['id']}/results").json()
    variant = results["variants"][0]
    assert (variant["eligible"], variant["shown"], variant["clicked"]) == (1, 1, 1)
    assert Delivery.objects.get().dismissed_at is None


def test_widget_endpoints_enforce_origin_and_identity(secret_client, public_client, app_keys):
    message = create(secret_client, audience={}, trigger={"on": "api"})
    secret_client.post(f"/api/v1/messages/{message['id']}/publish")
    foreign = public_client.get(
        "/api/v1/widget/campaigns", {"user_id": "u1"}, HTTP_ORIGIN="https://evil.test"
    )
    assert foreign.status_code == 403
    app = app_keys.app
    app.identity_verification = True
    app.save()
    missing = public_client.get(
        "/api/v1/widget/campaigns", {"user_id": "u1"}, HTTP_ORIGIN="https://host.example"
    )
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "identity_verification_failed"
    good = user_hash_compute(identity_secret=app.identity_secret, user_id="u1")
    ok = public_client.get(
        "/api/v1/widget/campaigns",
        {"user_id": "u1"},
        HTTP_ORIGIN="https://host.example",
        HTTP_X_ENGAGE_USER_HASH=good,
    )
    assert ok.status_code == 200
    assert len(ok.json()["items"]) == 1


def test_public_key_cannot_manage_messages(public_client):
    assert public_client.get("/api/v1/messages/").status_code == 403
    assert public_client.post("/api/v1/targeting/evaluate", {}, format="json").status_code == 403


def test_other_apps_messages_are_404(secret_client, other_app_keys, api_client):
    message = create(secret_client)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_app_keys.secret_key}")
    assert api_client.get(f"/api/v1/messages/{message['id']}").status_code == 404
    assert api_client.post(f"/api/v1/messages/{message['id']}/publish").status_code == 404
    assert api_client.get("/api/v1/messages/").json()["results"] == []


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"variants": [{"key": "A", "weight": 50}, {"key": "B", "weight": 40}]}, "sum to 100"),
        ({"audience": {"segments": ["nope"]}}, 'audience.segments: unknown segment "nope"'),
        ({"audience": {"condition": {"attribute": "plan", "op": "eqq", "value": 1}}}, "op"),
        ({"content": {}}, "content"),
        (
            {
                "content": {
                    "en": {
                        "title": "x",
                        "buttons": [{"label": "x", "action": "url", "url": "javascript:alert(1)"}],
                    }
                }
            },
            "content.en.buttons[0].url",
        ),
        ({"trigger": {"on": "sometimes"}}, "trigger.on"),
        ({"kind": "popup"}, "kind"),
        ({"holdout_percent": 100}, "holdout_percent"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(secret_client, overrides, needle):
    response = secret_client.post("/api/v1/messages/", {**BODY, **overrides}, format="json")
    assert response.status_code == 400, response.content
    assert needle in response.json()["error"]["message"]


def test_publishing_an_archived_message_is_refused(secret_client):
    message = create(secret_client)
    assert secret_client.post(f"/api/v1/messages/{message['id']}/archive").status_code == 200
    response = secret_client.post(f"/api/v1/messages/{message['id']}/publish")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_transition"


def test_segments_are_referenced_by_slug(secret_client, app_keys):
    Segment.objects.create(app=app_keys.app, slug="power-users", name="P", condition={"all": []})
    message = create(secret_client, audience={"segments": ["power-users"]})
    assert message["audience"] == {"segments": ["power-users"]}


@pytest.mark.parametrize(
    "payload",
    [
        "<script>alert(1)</script>",
        "[x](javascript:alert(1))",
        '<img src=x onerror="alert(1)">',
        '<a href="javascript:alert(1)">x</a>',
        "[x](JaVaScRiPt:alert(1))",
        "<iframe src='https://evil.test'></iframe>",
        '<svg onload="alert(1)">',
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "![x](https://evil.test/x.png)",
    ],
)
def test_markdown_is_sanitised(payload):
    html = markdown_render(payload)
    tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            tags.append((tag, attrs))

    Collector().feed(html)
    for tag, attrs in tags:
        assert tag not in {"script", "iframe", "svg", "img", "object", "embed"}, html
        for name, value in attrs:
            assert not name.startswith("on"), html
            if name == "href":
                assert (value or "").lower().startswith(("http:", "https:", "mailto:")), html


def test_locale_fallback_to_the_apps_default(secret_client):
    content = {"en": {"title": "Hello"}, "fr": {"title": "Bonjour"}}
    message = create(secret_client, audience={}, trigger={"on": "api"}, content=content)
    secret_client.post(f"/api/v1/messages/{message['id']}/publish")

    def title(locale: str) -> str:
        body = {"user_id": "u", "locale": locale, "dry_run": True}
        items = secret_client.post("/api/v1/targeting/evaluate", body, format="json").json()
        return str(items["items"][0]["content"]["title"])

    assert title("fr-CA") == "Bonjour"
    assert title("de") == "Hello"
