"""The real `snowplow-tracker` Python client against a live Daphne serving Engage.

Events go out through the tracker's own synchronous `Emitter` (GET and POST, base64 on and
off) to the collector endpoints of a real Daphne process on the test database, and are read
back through the people API with the secret key, as Sasha would debug an integration.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import pytest
import requests
from snowplow_tracker import Emitter, SelfDescribingJson, Subject, Tracker
from snowplow_tracker.events import PageView, SelfDescribing, StructuredEvent

from segments.models import BadEvent

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

SURVEY_ANSWERED = "iglu:com.acme/survey_answered/jsonschema/1-0-0"
PAGE_ENTITY = "iglu:com.acme/page/jsonschema/1-0-0"
USER_ENTITY = "iglu:com.acme/user/jsonschema/1-0-1"
TRUE_MS = 1_700_000_000_123

Method = Literal["get", "post"]


class Sent:
    """What the emitter reports: payloads the collector accepted and those it refused."""

    def __init__(self) -> None:
        self.succeeded: list[dict[str, Any]] = []
        self.failed: list[dict[str, Any]] = []

    def on_success(self, events: list[dict[str, Any]]) -> None:
        self.succeeded.extend(copy.deepcopy(events))

    def on_failure(self, _sent: int, events: list[dict[str, Any]]) -> None:
        self.failed.extend(copy.deepcopy(events))


def make_tracker(
    base_url: str,
    *,
    method: Method,
    encode_base64: bool,
    user_id: str,
    batch_size: int,
) -> tuple[Tracker, Emitter, Sent]:
    sent = Sent()
    emitter = Emitter(
        base_url.removeprefix("http://"),
        protocol="http",
        method=method,
        batch_size=batch_size,
        on_success=sent.on_success,
        on_failure=sent.on_failure,
        request_timeout=10,
        # A refused request must show up as a failure here, not as a retry timer thread.
        custom_retry_codes=dict.fromkeys(range(300, 600), False),
    )
    subject = Subject().set_user_id(user_id).set_domain_user_id(f"duid-{user_id}").set_lang("fr")
    tracker = Tracker(
        namespace=f"ns-{user_id}",
        emitters=emitter,
        subject=subject,
        app_id="acme-web",
        encode_base64=encode_base64,
    )
    return tracker, emitter, sent


def person(base_url: str, secret_key: str, user_id: str) -> dict[str, Any]:
    response = requests.get(
        f"{base_url}/api/v1/people/{user_id}",
        headers={"Authorization": f"Bearer {secret_key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def track_the_three_kinds(tracker: Tracker) -> None:
    tracker.track(
        PageView(
            page_url="https://host.example/reports?tab=1",
            page_title="Reports",
            referrer="https://search.example/",
        )
    )
    tracker.track(
        StructuredEvent(
            category="reports",
            action="export_clicked",
            label="csv",
            property_="toolbar",
            value=3,
            true_timestamp=TRUE_MS,
        )
    )
    tracker.track(
        SelfDescribing(
            SelfDescribingJson(SURVEY_ANSWERED, {"score": 9, "comment": "très bien"}),
            context=[
                SelfDescribingJson(PAGE_ENTITY, {"section": "reports"}),
                SelfDescribingJson(USER_ENTITY, {"plan": "pro", "seats": 12}),
            ],
        )
    )


@pytest.mark.parametrize("encode_base64", [True, False], ids=["base64", "plain"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_tracker_events_are_read_back_through_the_people_api(
    live_server_url, app_keys, method, encode_base64
):
    user_id = f"u-{method}-{int(encode_base64)}"
    # GET sends each event as it is tracked; POST buffers them and sends one batch on flush.
    tracker, _, sent = make_tracker(
        live_server_url,
        method=method,
        encode_base64=encode_base64,
        user_id=user_id,
        batch_size=1 if method == "get" else 10,
    )

    track_the_three_kinds(tracker)
    tracker.flush()

    assert sent.failed == []
    assert len(sent.succeeded) == 3
    profile = person(live_server_url, app_keys.secret_key, user_id)
    assert profile["user_id"] == user_id
    assert profile["anonymous_ids"] == [f"duid-{user_id}"]
    events = {e["name"]: e for e in profile["events"]}
    assert set(events) == {"page_view", "export_clicked", "survey_answered"}

    page_view = events["page_view"]["properties"]
    assert page_view["url"] == "https://host.example/reports?tab=1"
    assert page_view["page_title"] == "Reports"
    assert page_view["referrer"] == "https://search.example/"
    assert page_view["locale"] == "fr"

    clicked = events["export_clicked"]
    assert clicked["properties"] == {
        "category": "reports",
        "label": "csv",
        "property": "toolbar",
        "value": 3,
        "locale": "fr",
    }
    assert clicked["timestamp"].startswith("2023-11-14T22:13:20.123")  # the tracker's ttm

    answered = events["survey_answered"]
    assert answered["properties"]["score"] == 9
    assert answered["properties"]["comment"] == "très bien"
    assert answered["properties"]["$schema"] == SURVEY_ANSWERED
    assert answered["contexts"] == [
        {"schema": PAGE_ENTITY, "data": {"section": "reports"}},
        {"schema": USER_ENTITY, "data": {"plan": "pro", "seats": 12}},
    ]


def test_a_batch_the_tracker_sends_again_is_stored_once(live_server_url, app_keys):
    tracker, emitter, sent = make_tracker(
        live_server_url, method="post", encode_base64=True, user_id="u-retry", batch_size=10
    )
    track_the_three_kinds(tracker)
    tracker.flush()
    assert len(sent.succeeded) == 3

    # What the emitter does when an answer is lost: the same payloads (same eids) once more.
    emitter.send_events(copy.deepcopy(sent.succeeded))

    assert sent.failed == []
    assert len(sent.succeeded) == 6
    profile = person(live_server_url, app_keys.secret_key, "u-retry")
    assert sorted(e["name"] for e in profile["events"]) == [
        "export_clicked",
        "page_view",
        "survey_answered",
    ]


def test_the_collector_tells_the_tracker_its_batch_was_stored_even_when_unusable(
    live_server_url, app_keys
):
    tracker, _, sent = make_tracker(
        live_server_url, method="post", encode_base64=False, user_id="u-bad", batch_size=10
    )
    tracker.standard_nv_pairs["aid"] = "nobody-web"  # an app id no App claims
    track_the_three_kinds(tracker)
    tracker.flush()

    # 200: the events are kept as bad events (visible to staff), so the tracker must not retry.
    assert sent.failed == []
    assert len(sent.succeeded) == 3
    response = requests.get(
        f"{live_server_url}/api/v1/people/u-bad",
        headers={"Authorization": f"Bearer {app_keys.secret_key}"},
        timeout=10,
    )
    assert response.status_code == 404
    reasons = list(BadEvent.objects.filter(app=None).values_list("reason", flat=True))
    assert reasons == ['aid: unknown app id "nobody-web"'] * 3
