"""The Snowplow collector parser, against what the real snowplow-tracker client sends.

No database and no Django: the parser is pure Python. Tracker requests are captured by a
stand-in for `requests.Session` handed to the real `Emitter`, so the encodings under test (query
string, payload_data body, base64 on and off) are the client's own, not a copy of them.
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from snowplow_tracker.emitters import Emitter
from snowplow_tracker.events.page_ping import PagePing
from snowplow_tracker.events.page_view import PageView
from snowplow_tracker.events.self_describing import SelfDescribing
from snowplow_tracker.events.structured_event import StructuredEvent
from snowplow_tracker.self_describing_json import SelfDescribingJson
from snowplow_tracker.subject import Subject
from snowplow_tracker.tracker import Tracker

from segments.snowplow import (
    MAX_RAW_BODY_CHARS,
    SnowplowEvent,
    SnowplowRejected,
    parse_get,
    parse_post,
)

PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
CONTEXTS_1_0_0 = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0"
CONTEXTS_1_0_1 = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
SURVEY_ANSWERED = "iglu:com.acme/survey_answered/jsonschema/1-0-0"
SCREEN = "iglu:com.acme/screen/jsonschema/1-0-0"

TRUE_MS = 1_700_000_000_123
TRUE_TIME = datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC)

Method = Literal["get", "post"]
Result = SnowplowEvent | SnowplowRejected
TRACKER_MODES = pytest.mark.parametrize(
    ("method", "encode_base64"),
    [("get", True), ("get", False), ("post", True), ("post", False)],
)


# --- Capturing the real tracker ------------------------------------------------------------


class _Collector:
    """Takes the place of `requests.Session`: records each request as a collector receives it."""

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        self.bodies: list[bytes] = []

    def get(self, url: str, params: dict[str, Any] | None = None, **_: Any) -> SimpleNamespace:
        # Let requests build the URL, then decode it as a server would (QueryDict does the same).
        prepared = requests.Request("GET", url, params=params).prepare()
        query = urlsplit(cast(str, prepared.url)).query
        self.queries.append(dict(parse_qsl(query, keep_blank_values=True)))
        return SimpleNamespace(status_code=200)

    def post(self, url: str, data: str | None = None, **kwargs: Any) -> SimpleNamespace:
        prepared = requests.Request("POST", url, data=data, headers=kwargs.get("headers")).prepare()
        body = prepared.body or b""
        self.bodies.append(body.encode("utf-8") if isinstance(body, str) else body)
        return SimpleNamespace(status_code=200)


def _track(
    method: Method,
    *,
    encode_base64: bool,
    send: Callable[[Tracker], object],
    subject: Subject | None = None,
) -> tuple[list[Result], _Collector]:
    collector = _Collector()
    emitter = Emitter(
        "collector.example",
        method=method,
        batch_size=1 if method == "get" else 100,
        session=cast(requests.Session, collector),
    )
    if subject is None:
        subject = Subject().set_user_id("user-42").set_domain_user_id("duid-1").set_lang("fr-FR")
    tracker = Tracker(
        "engage-test", emitter, subject=subject, app_id="acme-web", encode_base64=encode_base64
    )
    send(tracker)
    tracker.flush()
    if method == "get":
        return [result for query in collector.queries for result in parse_get(query)], collector
    return [result for body in collector.bodies for result in parse_post(body)], collector


def _events(results: list[Result]) -> list[SnowplowEvent]:
    rejected = [result for result in results if isinstance(result, SnowplowRejected)]
    assert rejected == []
    return cast(list[SnowplowEvent], results)


def _only_rejection(results: list[Result]) -> SnowplowRejected:
    assert len(results) == 1
    assert isinstance(results[0], SnowplowRejected)
    return results[0]


def _only_event(results: list[Result]) -> SnowplowEvent:
    (event,) = _events(results)
    return event


def _b64(value: Any, *, urlsafe: bool = True, padded: bool = True) -> str:
    raw = json.dumps(value).encode("utf-8")
    text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode("ascii")
    return text if padded else text.rstrip("=")


def _ue(schema: str, data: Any) -> dict[str, Any]:
    return {"schema": UNSTRUCT, "data": {"schema": schema, "data": data}}


def _post(*events: Any, schema: str = PAYLOAD_DATA) -> bytes:
    return json.dumps({"schema": schema, "data": list(events)}).encode("utf-8")


# --- Events from the real tracker ----------------------------------------------------------


@TRACKER_MODES
def test_page_view_from_tracker(method: Method, encode_base64: bool) -> None:
    event_ids: list[str | None] = []

    def send(tracker: Tracker) -> None:
        page_view = PageView(
            page_url="https://shop.example/cart?step=2",
            page_title="Your cart",
            referrer="https://shop.example/",
            true_timestamp=TRUE_MS,
        )
        event_ids.append(tracker.track(page_view))

    event = _only_event(_track(method, encode_base64=encode_base64, send=send)[0])

    assert event.name == "page_view"
    assert event.properties == {
        "url": "https://shop.example/cart?step=2",
        "page_title": "Your cart",
        "referrer": "https://shop.example/",
    }
    assert (event.aid, event.user_id, event.anonymous_id) == ("acme-web", "user-42", "duid-1")
    assert event.url == "https://shop.example/cart?step=2"
    assert event.locale == "fr-FR"
    assert event.event_id == event_ids[0]
    assert event.timestamp == TRUE_TIME
    assert event.contexts == []
    assert event.raw["e"] == "pv"


@TRACKER_MODES
def test_device_time_is_used_without_a_true_timestamp(method: Method, encode_base64: bool) -> None:
    def send(tracker: Tracker) -> None:
        tracker.track(PageView(page_url="https://shop.example/"))

    event = _only_event(_track(method, encode_base64=encode_base64, send=send)[0])

    assert event.timestamp is not None
    assert event.timestamp.tzinfo is UTC
    dtm = int(event.raw["dtm"])
    assert event.timestamp == datetime.fromtimestamp(dtm / 1000, tz=UTC)


@TRACKER_MODES
def test_page_ping_offsets_are_integers(method: Method, encode_base64: bool) -> None:
    def send(tracker: Tracker) -> None:
        ping = PagePing(page_url="https://shop.example/", min_x=0, max_x=120, min_y=40, max_y=1800)
        tracker.track(ping)

    event = _only_event(_track(method, encode_base64=encode_base64, send=send)[0])

    assert event.name == "page_ping"
    assert event.properties == {
        "url": "https://shop.example/",
        "pp_mix": 0,
        "pp_max": 120,
        "pp_miy": 40,
        "pp_may": 1800,
    }


@TRACKER_MODES
def test_structured_event_from_tracker(method: Method, encode_base64: bool) -> None:
    screen = SelfDescribingJson(SCREEN, {"name": "checkout", "index": 3})

    def send(tracker: Tracker) -> None:
        structured = StructuredEvent(
            category="shop",
            action="add_to_basket",
            label="red shoes",
            property_="size 42",
            value=59.9,
            context=[screen],
            true_timestamp=TRUE_MS,
        )
        tracker.track(structured)

    event = _only_event(_track(method, encode_base64=encode_base64, send=send)[0])

    assert event.name == "add_to_basket"
    assert event.properties == {
        "category": "shop",
        "label": "red shoes",
        "property": "size 42",
        "value": 59.9,
    }
    assert event.contexts == [{"schema": SCREEN, "data": {"name": "checkout", "index": 3}}]
    assert ("cx" in event.raw) is encode_base64
    assert ("co" in event.raw) is not encode_base64


@TRACKER_MODES
def test_self_describing_event_with_contexts_from_tracker(
    method: Method, encode_base64: bool
) -> None:
    answer = {"survey_id": "nps-2024", "score": 9, "comment": "Très bien ✓", "tags": ["a", "b"]}
    contexts = [
        SelfDescribingJson(SCREEN, {"name": "settings"}),
        SelfDescribingJson("iglu:com.acme/experiment/jsonschema/1-0-2", {"variant": "B"}),
    ]

    def send(tracker: Tracker) -> None:
        event = SelfDescribing(
            SelfDescribingJson(SURVEY_ANSWERED, answer),
            context=contexts,
            true_timestamp=TRUE_MS,
        )
        tracker.track(event)

    event = _only_event(_track(method, encode_base64=encode_base64, send=send)[0])

    assert event.name == "survey_answered"
    assert event.properties == {**answer, "$schema": SURVEY_ANSWERED}
    assert event.contexts == [
        {"schema": SCREEN, "data": {"name": "settings"}},
        {"schema": "iglu:com.acme/experiment/jsonschema/1-0-2", "data": {"variant": "B"}},
    ]
    assert ("ue_px" in event.raw) is encode_base64
    assert ("ue_pr" in event.raw) is not encode_base64


@TRACKER_MODES
def test_transaction_and_items_from_tracker(method: Method, encode_base64: bool) -> None:
    def send(tracker: Tracker) -> None:
        # The tracker deprecates its ecommerce API, but trackers in the field still send tr/ti.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            tracker.track_ecommerce_transaction(
                order_id="order-7",
                total_value=120.5,
                affiliation="web",
                tax_value=20.08,
                shipping=4.5,
                city="Lyon",
                state="ARA",
                country="FR",
                currency="EUR",
                items=[{"sku": "SKU-1", "price": 58.0, "quantity": 2, "name": "Shoe"}],
            )

    transaction, item = _events(_track(method, encode_base64=encode_base64, send=send)[0])

    assert transaction.name == "transaction"
    assert transaction.properties == {
        "order_id": "order-7",
        "affiliation": "web",
        "total": 120.5,
        "tax": 20.08,
        "shipping": 4.5,
        "city": "Lyon",
        "state": "ARA",
        "country": "FR",
        "currency": "EUR",
    }
    assert item.name == "transaction_item"
    assert item.properties == {
        "order_id": "order-7",
        "sku": "SKU-1",
        "name": "Shoe",
        "price": 58.0,
        "quantity": 2,
        "currency": "EUR",
    }


def test_post_batch_keeps_the_trackers_order_and_stringly_values() -> None:
    def send(tracker: Tracker) -> None:
        tracker.track(PageView(page_url="https://shop.example/a"))
        tracker.track(StructuredEvent(category="c", action="first", value=1))
        tracker.track(PageView(page_url="https://shop.example/b"))

    results, collector = _track("post", encode_base64=True, send=send)

    assert len(collector.bodies) == 1  # one payload_data document for the whole batch
    assert [event.name for event in _events(results)] == ["page_view", "first", "page_view"]
    # The Python emitter turns every value into a string before posting: the parser sees "1".
    assert results[1].raw["se_va"] == "1"
    assert cast(SnowplowEvent, results[1]).properties["value"] == 1.0


def test_network_user_id_set_by_the_tracker_is_the_anonymous_id_without_duid() -> None:
    def send(tracker: Tracker) -> None:
        tracker.track(PageView(page_url="https://shop.example/"))

    subject = Subject().set_network_user_id("tnuid-9")
    event = _only_event(_track("get", encode_base64=True, send=send, subject=subject)[0])

    assert event.anonymous_id == "tnuid-9"
    assert event.user_id is None


def test_get_raw_is_the_query_as_received() -> None:
    def send(tracker: Tracker) -> None:
        tracker.track(PageView(page_url="https://shop.example/"))

    results, collector = _track("get", encode_base64=True, send=send)

    assert _only_event(results).raw == collector.queries[0]
    assert all(isinstance(value, str) for value in collector.queries[0].values())


# --- Encodings the Python tracker does not produce -----------------------------------------


def _survey_query(**extra: str) -> dict[str, str]:
    return {"e": "ue", "aid": "acme-web", "tv": "js-3.24.0", "p": "web", **extra}


# Chosen so that the standard alphabet contains both "+" and "/".
AWKWARD = {"q": "???>>>", "n": 1}


def test_javascript_style_unpadded_urlsafe_base64() -> None:
    ue = _b64(_ue(SURVEY_ANSWERED, AWKWARD), padded=False)
    cx = _b64({"schema": CONTEXTS_1_0_1, "data": [{"schema": SCREEN, "data": {"n": 1}}]})
    cx = cx.rstrip("=")

    event = _only_event(parse_get(_survey_query(ue_px=ue, cx=cx)))

    assert event.properties == {**AWKWARD, "$schema": SURVEY_ANSWERED}
    assert event.contexts == [{"schema": SCREEN, "data": {"n": 1}}]


def test_standard_base64_alphabet_even_when_a_query_decoder_turned_plus_into_space() -> None:
    standard = _b64(_ue(SURVEY_ANSWERED, AWKWARD), urlsafe=False)
    assert "+" in standard
    assert "/" in standard

    for ue_px in (standard, standard.replace("+", " "), standard.rstrip("=")):
        event = _only_event(parse_get(_survey_query(ue_px=ue_px)))
        assert event.properties["q"] == "???>>>"


def test_contexts_schema_1_0_0_is_accepted() -> None:
    co = json.dumps({"schema": CONTEXTS_1_0_0, "data": [{"schema": SCREEN, "data": {"n": 2}}]})
    params = {"e": "pv", "url": "https://shop.example/", "co": co}

    event = _only_event(parse_get(params))

    assert event.contexts == [{"schema": SCREEN, "data": {"n": 2}}]


def test_post_values_may_be_real_json_values() -> None:
    body = _post(
        {
            "e": "se",
            "aid": "acme-ios",
            "se_ac": "play",
            "se_va": 3,
            "dtm": TRUE_MS,
            "uid": 1234,
            "co": {"schema": CONTEXTS_1_0_1, "data": [{"schema": SCREEN, "data": {"n": 1}}]},
        },
        {"e": "pp", "pp_mix": 0, "pp_max": 10.0, "pp_miy": "5", "pp_may": "7"},
        {"e": "ue", "ue_pr": _ue(SURVEY_ANSWERED, {"score": 10})},
    )

    structured, ping, answer = _events(parse_post(body))

    assert structured.properties == {"value": 3.0}
    assert structured.timestamp == TRUE_TIME
    assert structured.user_id == "1234"
    assert structured.contexts == [{"schema": SCREEN, "data": {"n": 1}}]
    assert ping.properties == {"pp_mix": 0, "pp_max": 10, "pp_miy": 5, "pp_may": 7}
    assert answer.properties == {"score": 10, "$schema": SURVEY_ANSWERED}


def test_payload_data_1_0_0_is_accepted() -> None:
    body = _post(
        {"e": "pv"}, schema="iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-0"
    )

    assert _only_event(parse_post(body)).name == "page_view"


def test_empty_batch_gives_no_results() -> None:
    assert parse_post(_post()) == []


# --- Identity and time ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "cookie", "expected"),
    [
        ({"duid": "d", "tnuid": "t", "nuid": "n"}, "c", "d"),
        ({"tnuid": "t", "nuid": "n"}, "c", "t"),
        ({"nuid": "n"}, "c", "n"),
        ({}, "c", "c"),
        ({"duid": ""}, "c", "c"),
        ({}, None, None),
        ({}, "", None),
    ],
)
def test_anonymous_id_precedence(
    fields: dict[str, str], cookie: str | None, expected: str | None
) -> None:
    event = _only_event(parse_get({"e": "pv", **fields}, cookie_nuid=cookie))

    assert event.anonymous_id == expected


def test_cookie_is_the_fallback_for_every_event_of_a_post() -> None:
    results = parse_post(_post({"e": "pv"}, {"e": "pv", "duid": "mine"}), cookie_nuid="sp-cookie")

    assert [event.anonymous_id for event in _events(results)] == ["sp-cookie", "mine"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"ttm": str(TRUE_MS), "dtm": "1600000000000"}, TRUE_TIME),
        ({"dtm": str(TRUE_MS)}, TRUE_TIME),
        ({"ttm": "soon", "dtm": str(TRUE_MS)}, TRUE_TIME),
        ({"ttm": "9" * 30, "dtm": str(TRUE_MS)}, TRUE_TIME),
        ({"ttm": "-5"}, None),
        ({"dtm": "nan"}, None),
        ({"dtm": {"ms": 1}}, None),
        ({}, None),
    ],
)
def test_timestamp_prefers_true_time_and_is_none_when_unusable(
    fields: dict[str, Any], expected: datetime | None
) -> None:
    event = _only_event(parse_post(_post({"e": "pv", **fields})))

    assert event.timestamp == expected


# --- Rejections ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"aid": "acme-web"}, 'missing field "e"'),
        ({"e": "zz"}, 'e: unknown event type "zz"'),
        ({"e": "se", "se_ca": "shop"}, 'missing field "se_ac"'),
        ({"e": "ue"}, 'missing field "ue_pr" or "ue_px"'),
        ({"e": "ue", "ue_px": "not*base64"}, "ue_px: invalid base64"),
        ({"e": "ue", "ue_px": "abcde"}, "ue_px: invalid base64"),
        ({"e": "ue", "ue_px": base64.b64encode(b"\xff\xfe").decode()}, "ue_px: base64 content"),
        ({"e": "ue", "ue_px": _b64("[1,")[:-2]}, "ue_px: invalid JSON"),
        ({"e": "ue", "ue_pr": "{not json"}, "ue_pr: invalid JSON"),
        ({"e": "ue", "ue_pr": '{"schema": NaN}'}, "ue_pr: invalid JSON"),
        ({"e": "ue", "ue_pr": json.dumps([1])}, "ue_pr: expected a self-describing object"),
        (
            {"e": "ue", "ue_pr": json.dumps({"schema": CONTEXTS_1_0_1, "data": {}})},
            "ue_pr: unknown schema",
        ),
        ({"e": "ue", "ue_pr": json.dumps({"schema": UNSTRUCT})}, 'ue_pr: missing field "data"'),
        (
            {"e": "ue", "ue_pr": json.dumps(_ue("com.acme/x", {}))},
            "ue_pr.data.schema: not an Iglu schema URI",
        ),
        (
            {"e": "ue", "ue_pr": json.dumps(_ue(SURVEY_ANSWERED, [1, 2]))},
            "ue_pr.data.data: expected an object, got array",
        ),
        (
            {
                "e": "pv",
                "cx": _b64({"schema": "iglu:com.acme/contexts/jsonschema/1-0-0", "data": []}),
            },
            'cx: unknown contexts schema "iglu:com.acme/contexts/jsonschema/1-0-0"',
        ),
        (
            {"e": "pv", "co": json.dumps({"schema": CONTEXTS_1_0_1, "data": {"a": 1}})},
            "co.data: expected an array of entities, got object",
        ),
        (
            {"e": "pv", "co": json.dumps({"schema": CONTEXTS_1_0_1, "data": [{"schema": 5}]})},
            "co.data[0].schema: expected a string, got number",
        ),
        (
            {
                "e": "pv",
                "co": json.dumps(
                    {"schema": CONTEXTS_1_0_1, "data": [{"schema": SCREEN, "data": "x"}]}
                ),
            },
            "co.data[0].data: expected an object, got string",
        ),
        ({"e": "pp", "pp_max": "12.5"}, 'pp_max: expected an integer, got "12.5"'),
        ({"e": "tr", "tr_id": "o-1", "tr_tt": "lots"}, 'tr_tt: expected a number, got "lots"'),
        ({"e": "tr", "tr_tt": "10"}, 'missing field "tr_id"'),
        ({"e": "ti", "ti_id": "o-1", "ti_sk": "s", "ti_pr": "1"}, 'missing field "ti_qu"'),
    ],
)
def test_unusable_event_is_rejected_with_a_reason_naming_the_field(
    fields: dict[str, str], reason: str
) -> None:
    rejection = _only_rejection(parse_get({"aid": "acme-web", **fields}))

    assert rejection.reason.startswith(reason)
    assert rejection.aid == "acme-web"
    assert rejection.raw == {"aid": "acme-web", **fields}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"e": "pv", "uid": {"id": 1}}, "uid: expected a string, got object"),
        ({"e": "pv", "duid": ["a"]}, "duid: expected a string, got array"),
        ({"e": True}, "e: expected a string, got boolean"),
        ({"e": "se", "se_ac": None}, 'missing field "se_ac"'),
        ({"e": "ue", "ue_px": {"schema": UNSTRUCT}}, "ue_px: expected a base64 string, got object"),
        ({"e": "ue", "ue_pr": 12}, "ue_pr: expected a JSON string, got number"),
        ({"e": "pp", "pp_mix": [1]}, "pp_mix: expected an integer, got array"),
    ],
)
def test_junk_json_values_in_a_post_are_rejected(fields: dict[str, Any], reason: str) -> None:
    rejection = _only_rejection(parse_post(_post({"aid": "acme-web", **fields})))

    assert rejection.reason == reason
    assert rejection.aid == "acme-web"


def test_non_numeric_structured_value_is_kept_as_text() -> None:
    event = _only_event(parse_get({"e": "se", "se_ac": "rate", "se_va": "five"}))

    assert event.properties == {"value": "five"}


def test_one_bad_event_does_not_reject_its_batch() -> None:
    body = _post({"e": "pv", "aid": "a"}, "not an event", {"e": "zz", "aid": "a"}, {"e": "pv"})

    first, second, third, fourth = parse_post(body)

    assert isinstance(first, SnowplowEvent)
    assert second == SnowplowRejected(
        raw={"event": "not an event"},
        reason="data[1]: expected an event object, got string",
        aid=None,
    )
    assert isinstance(third, SnowplowRejected)
    assert third.reason == 'e: unknown event type "zz"'
    assert isinstance(fourth, SnowplowEvent)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "body: invalid JSON"),
        (b"{not json", "body: invalid JSON"),
        (b"\xff\xfe{}", "body: not UTF-8 text"),
        (b"[" * 100_000, "body: invalid JSON (nested too deeply)"),
        (b'{"data": [NaN]}', "body: invalid JSON"),
        (b'{"data": [1e999]}', "body: invalid JSON"),
        (b"[]", "body: expected a payload_data object, got array"),
        (b'{"data": []}', 'schema: expected "iglu:com.snowplowanalytics.snowplow/payload_data'),
        (json.dumps({"schema": PAYLOAD_DATA, "data": {}}).encode(), "data: expected an array"),
    ],
)
def test_body_that_is_not_payload_data_gives_one_rejection_with_the_body(
    body: bytes, reason: str
) -> None:
    rejection = _only_rejection(parse_post(body))

    assert rejection.reason.startswith(reason)
    assert rejection.raw["body"] == body[:MAX_RAW_BODY_CHARS].decode("utf-8", errors="replace")
    assert rejection.aid is None


def test_body_with_an_unknown_payload_schema_is_tied_to_its_app() -> None:
    body = _post({"e": "pv", "aid": "acme-web"}, schema="iglu:com.acme/payload/jsonschema/2-0-0")

    rejection = _only_rejection(parse_post(body))

    assert rejection.aid == "acme-web"


def test_huge_unreadable_body_is_kept_truncated() -> None:
    body = b"\xff" + b"x" * (MAX_RAW_BODY_CHARS * 5)

    rejection = _only_rejection(parse_post(body))

    assert rejection.raw["body"].startswith("\ufffdxxx")
    assert len(rejection.raw["body"]) == MAX_RAW_BODY_CHARS
    assert rejection.raw["truncated"] is True


# --- Never raises --------------------------------------------------------------------------

_FIELD_NAMES = [
    "e", "aid", "uid", "duid", "nuid", "tnuid", "eid", "dtm", "ttm", "url", "page", "refr",
    "lang", "se_ac", "se_ca", "se_la", "se_pr", "se_va", "pp_mix", "pp_max", "pp_miy", "pp_may",
    "ue_pr", "ue_px", "co", "cx", "tr_id", "tr_tt", "tr_tx", "ti_id", "ti_sk", "ti_pr", "ti_qu",
    "ti_nm", "ti_na",
]  # fmt: skip
_SCHEMAS = [
    UNSTRUCT, CONTEXTS_1_0_0, CONTEXTS_1_0_1, SURVEY_ANSWERED, "iglu:x", "", "iglu:a/b/c/1-0",
]  # fmt: skip

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
_objects = st.dictionaries(st.text(max_size=6), _json_values, max_size=4)
_self_describing = st.fixed_dictionaries(
    {"schema": st.sampled_from(_SCHEMAS) | st.text(max_size=10)},
    optional={
        "data": _json_values
        | st.lists(
            st.fixed_dictionaries({"schema": st.sampled_from(_SCHEMAS), "data": _json_values})
        )
        | st.fixed_dictionaries({"schema": st.sampled_from(_SCHEMAS), "data": _json_values})
    },
)
# Mostly well-formed envelopes, so that the fuzzing also reaches the code past the envelope checks.
_documents = st.one_of(
    _self_describing,
    st.builds(_ue, st.sampled_from([SURVEY_ANSWERED, SCREEN, "iglu:x"]), _objects | _json_values),
    st.builds(
        lambda entities: {"schema": CONTEXTS_1_0_1, "data": entities},
        st.lists(st.builds(lambda data: {"schema": SCREEN, "data": data}, _objects), max_size=3),
    ),
)
_field_values = st.one_of(
    st.sampled_from(["pv", "pp", "se", "ue", "tr", "ti", "zz", "", "1", "-3", "12.5", "1e309"]),
    st.text(max_size=20),
    st.integers().map(str),
    st.floats().map(str),
    _json_values,
    _documents,
    _documents.map(json.dumps),
    _documents.map(lambda value: _b64(value, padded=False)),
    _documents.map(lambda value: _b64(value, urlsafe=False)),
    st.binary(max_size=20).map(lambda raw: base64.b64encode(raw).decode()),
)
_events_strategy = st.fixed_dictionaries(
    {"e": st.sampled_from(["pv", "pp", "se", "ue", "tr", "ti"])},
    optional={name: _field_values for name in _FIELD_NAMES if name != "e"},
)
_self_describing_events = st.fixed_dictionaries(
    {"e": st.just("ue"), "ue_px": _documents.map(lambda value: _b64(value, padded=False))},
    optional={"co": _documents.map(json.dumps), "dtm": _field_values, "duid": _field_values},
)
_any_events = (
    _events_strategy
    | _self_describing_events
    | st.dictionaries(st.text(max_size=5), _field_values, max_size=4)
)


def _assert_well_formed(results: list[Result]) -> None:
    for result in results:
        assert isinstance(result, SnowplowEvent | SnowplowRejected)
        # The stores are JSON columns: anything the parser hands on must serialise strictly.
        json.dumps(result.raw, allow_nan=False)
        if isinstance(result, SnowplowRejected):
            assert not result.reason.startswith("internal error"), result.reason
            continue
        assert result.name
        json.dumps([result.properties, result.contexts], allow_nan=False)
        assert result.timestamp is None or result.timestamp.tzinfo is UTC


@settings(max_examples=100)
@given(
    st.dictionaries(
        st.sampled_from(_FIELD_NAMES) | st.text(max_size=5) | st.integers(),
        _field_values | st.floats() | st.builds(object) | st.tuples(st.integers()),
        max_size=10,
    ),
    st.none() | st.text(max_size=8),
)
def test_parse_get_never_raises(params: dict[Any, Any], cookie: str | None) -> None:
    results = parse_get(params, cookie_nuid=cookie)

    assert len(results) == 1
    _assert_well_formed(results)


@settings(max_examples=100)
@given(st.lists(_any_events | _json_values, max_size=4), st.sampled_from([PAYLOAD_DATA, "x"]))
def test_parse_post_never_raises_on_json_payloads(events: list[Any], schema: str) -> None:
    results = parse_post(_post(*events, schema=schema))

    _assert_well_formed(results)


@settings(max_examples=100)
@given(st.binary(max_size=200) | _json_values.map(lambda value: json.dumps(value).encode()))
def test_parse_post_never_raises_on_arbitrary_bytes(body: bytes) -> None:
    results = parse_post(body)

    _assert_well_formed(results)
