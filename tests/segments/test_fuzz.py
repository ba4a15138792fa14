"""Hypothesis fuzzers of the two languages Engage reads from strangers.

- The condition language: any JSON is either a condition (which round-trips through JSON,
  describes itself and evaluates without raising on any person) or refused with errors whose
  paths lead to the bad node. Nothing else escapes, so the API can never answer 500.
- The collector: any request (query, body) is answered 200 or 413, never 5xx, and every event
  the parser found is stored once, good or bad: stored + bad = parsed, none lost.

The parser alone (parse_get/parse_post never raise) is fuzzed in test_snowplow_parser.py;
the SQL compiler against the predicate in test_conditions_differential.py.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segments.collector import collector_query_from_bytes, collector_receive
from segments.conditions import (
    ConditionInvalid,
    EventRecord,
    InMemoryFacts,
    compile_predicate,
    condition_describe,
    condition_to_json,
    parse_condition,
)
from segments.conditions.operators import Op
from segments.models import BadEvent, Event
from segments.snowplow import parse_get, parse_post

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
OPS = [op.value for op in Op]
NAMES = ["plan", "age", "signed_up", "export_clicked", "page_view", "country", ""]
KEYS = [
    "all",
    "any",
    "not",
    "attribute",
    "event",
    "segment",
    "page_url",
    "locale",
    "device",
    "op",
    "value",
    "count",
    "within_days",
    "where",
    "property",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["pro", "2026-01-01", "2026-05-31T10:00:00Z", "^a.*", "(", "", "x" * 1001]),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


def _leaf(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    comparison = st.fixed_dictionaries(
        {"op": st.sampled_from([*OPS, "eqq", 3])}, optional={"value": values}
    )
    if kind == "attribute":
        return st.builds(lambda n, c: {"attribute": n, **c}, st.sampled_from(NAMES), comparison)
    if kind == "event":
        return st.fixed_dictionaries(
            {"event": st.sampled_from(NAMES) | values},
            optional={
                "count": comparison | values,
                "within_days": st.integers(-5, 4000) | values,
                "where": st.lists(
                    st.builds(
                        lambda p, c: {"property": p, **c}, st.sampled_from(NAMES), comparison
                    ),
                    max_size=3,
                )
                | values,
            },
        )
    if kind == "segment":
        return st.fixed_dictionaries({"segment": st.sampled_from(["power-users", "BAD SLUG"])})
    return st.builds(lambda c: {kind: c}, comparison | values)


leaves = st.one_of(
    *(_leaf(k) for k in ("attribute", "event", "segment", "page_url", "locale", "device"))
)
# Mostly well-shaped trees with mistakes sprinkled in: odd keys, wrong types, deep nesting.
conditions = st.recursive(
    leaves | values,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, max_size=4)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, max_size=4)),
        st.builds(lambda x: {"not": x}, inner),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), inner, max_size=3),
    ),
    max_leaves=12,
)

people = st.builds(
    lambda attributes, events: InMemoryFacts(
        attributes=attributes,
        now=NOW,
        events=events,
        context={"page_url": "https://app.example/reports", "locale": "en", "device": None},
        segments={},
    ),
    st.dictionaries(st.sampled_from(NAMES), scalars | values, max_size=4),
    st.lists(
        st.builds(
            EventRecord,
            name=st.sampled_from(NAMES),
            timestamp=st.just(NOW),
            properties=st.dictionaries(st.sampled_from(NAMES), scalars, max_size=3),
        ),
        max_size=5,
    ),
)

_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _resolves(data: Any, path: str, message: str) -> bool:
    """Whether an error path leads into `data`: every step but the last exists (the last may be
    the missing or bad key). An unknown key is named whole in the message, dots and all, and
    its parent must exist."""
    unknown = re.fullmatch(r'unknown key "(.*)"', message, re.DOTALL)
    if unknown and path.endswith(unknown[1]):
        parent = path[: len(path) - len(unknown[1])].rstrip(".")
        return _steps_exist(data, [(m[1], m[2]) for m in _PATH_TOKEN.finditer(parent)])
    return _steps_exist(data, [(m[1], m[2]) for m in _PATH_TOKEN.finditer(path)][:-1])


def _steps_exist(data: Any, tokens: list[tuple[str, str]]) -> bool:
    node = data
    for key, index in tokens:
        if index:
            if not isinstance(node, list) or int(index) >= len(node):
                return False
            node = node[int(index)]
        else:
            if not isinstance(node, dict) or key not in node:
                return False
            node = node[key]
    return True


def _parse(data: Any, *, allow_context: bool) -> tuple[Any, ConditionInvalid | None]:
    try:
        return parse_condition(data, allow_context=allow_context), None
    except ConditionInvalid as refused:
        return None, refused


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=conditions, person=people, allow_context=st.booleans())
def test_any_json_is_a_condition_or_refused_with_paths(data, person, allow_context):
    condition, refused = _parse(data, allow_context=allow_context)
    if refused is not None:
        assert refused.errors
        assert refused.status == 400
        for error in refused.errors:
            assert error.message
            assert _resolves(data, error.path, error.message), (error.path, data)
        return
    assert condition is not None
    # A condition: the same tree from its JSON, a description, and an answer for anyone.
    again = parse_condition(condition_to_json(condition), allow_context=allow_context)
    assert again == condition
    assert isinstance(condition_describe(condition), str)
    assert isinstance(compile_predicate(condition)(person), bool)


@given(depth=st.integers(1, 500), leaf=leaves)
def test_deep_nesting_is_refused_not_a_recursion_error(depth, leaf):
    data: Any = leaf
    for _ in range(depth):
        data = {"not": data}
    _, refused = _parse(data, allow_context=False)
    if depth >= 10:
        assert refused is not None
        assert "nested deeper than 10 levels" in str(refused)


# --- the collector -----------------------------------------------------------------------------

_FIELDS = ["e", "aid", "uid", "duid", "dtm", "url", "se_ac", "ue_pr", "ue_px", "co", "cx"]
_field_values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["pv", "se", "ue", "pp", "tr", "ti", "acme-web", "other-web", "x"]),
    st.builds(lambda v: json.dumps(v), values),
    st.builds(lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).decode(), values),
)
# Each event has a fresh eid (or none): a stored event is never a duplicate of an earlier one.
events = st.builds(
    lambda fields, eid: {**fields, **({"eid": str(uuid.uuid4())} if eid else {})},
    st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=4), _field_values, max_size=8),
    st.booleans(),
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda items, schema: json.dumps({"schema": schema, "data": items}).encode(),
        st.lists(events | values, max_size=5),
        st.sampled_from(
            [
                "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
                "iglu:com.acme/other/jsonschema/1-0-0",
            ]
        ),
    ),
)


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(method=st.sampled_from(["GET", "POST"]), query=events, body=bodies)
def test_the_collector_stores_every_event_once_and_never_fails(app_keys, method, query, body):
    before = (Event.objects.count(), BadEvent.objects.count())
    query = collector_query_from_bytes(urlencode(query).encode())
    parsed = parse_get(query, cookie_nuid=None) if method == "GET" else parse_post(body)

    answer = collector_receive(method=method, query=query, body=body, origin=None, cookie_nuid=None)

    assert answer.status == 200, answer.body
    stored = Event.objects.count() - before[0]
    bad = BadEvent.objects.count() - before[1]
    assert stored + bad == len(parsed)
