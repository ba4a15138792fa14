"""Validation: every problem of a condition is refused with its path, all at once."""

from __future__ import annotations

from typing import Any

import pytest

from segments.conditions import (
    AllOf,
    AttributeCondition,
    ConditionError,
    ConditionInvalid,
    CountTest,
    EventCondition,
    InMemoryFacts,
    Op,
    PropertyFilter,
    compile_predicate,
    condition_key,
    condition_to_json,
    parse_condition,
)
from segments.conditions.tree import condition_event_names, condition_segments

DAYS = "needs a whole number of days from 1 to 36500"
ISO = 'needs an ISO 8601 date or datetime such as "2024-05-01"'
BETWEEN = '"between" needs [low, high]: two numbers or two strings, low ≤ high'
REGEX = "unsupported regex: "


def errors_of(data: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(ConditionInvalid) as caught:
        parse_condition(data, **kwargs)
    return [str(error) for error in caught.value.errors]


def test_the_design_example_error() -> None:
    data = {
        "all": [
            {"attribute": "plan", "op": "eq", "value": "pro"},
            {"attribute": "seats", "op": "gt", "value": 3},
            {"attribute": "plan", "op": "eqq", "value": "pro"},
        ]
    }
    with pytest.raises(ConditionInvalid) as caught:
        parse_condition(data)
    assert str(caught.value) == 'all[2].op: unknown operator "eqq"'
    assert caught.value.errors == [ConditionError("all[2].op", 'unknown operator "eqq"')]
    assert caught.value.as_dict()["error"]["code"] == "invalid_condition"
    assert caught.value.status == 400


def test_all_errors_are_collected_with_their_paths() -> None:
    data = {
        "any": [
            {"attribute": "a", "op": "in", "value": "pro"},
            {"not": {"attribute": "", "op": "eq", "value": 1}},
            {"event": "export", "count": {"op": "gte", "value": -1}, "within_days": 0},
            {"event": "export", "where": [{"property": "format", "op": "regex", "value": "(a"}]},
            {"segment": "Not a slug!"},
            {"attribute": "a", "op": "is_set", "value": 3},
            {"attribute": "a", "op": "eq", "value": 1, "extra": True},
            {"page_url": {"op": "contains", "value": "/x"}},
            {"attribute": "a", "op": "eq", "event": "x"},
            "plan is pro",
        ]
    }
    assert errors_of(data) == [
        'any[0].value: "in" needs a list of 1 to 1000 strings, numbers or booleans',
        "any[1].not.attribute: an attribute name must be a non-empty string",
        'any[2].count.value: "gte" needs a whole number ≥ 0',
        "any[2].within_days: must be a whole number from 1 to 3650",
        'any[3].where[0].value: unsupported regex: missing ")" at position 3',
        "any[4].segment: must be a segment slug",
        'any[5].value: "is_set" takes no value',
        'any[6].extra: unknown key "extra"',
        "any[7].page_url: context conditions (page_url, locale, device) are only allowed in "
        "campaign audiences",
        "any[8]: has both attribute and event; use one per node",
        "any[9]: must be an object",
    ]


DAYS = "needs a whole number of days from 1 to 36500"
ISO = 'needs an ISO 8601 date or datetime such as "2024-05-01"'
BETWEEN = BETWEEN
REGEX = "unsupported regex: "


@pytest.mark.parametrize(
    ("leaf", "message"),
    [
        ({"op": "eq"}, '"eq" needs a value'),
        ({"op": "eq", "value": None}, '"eq" needs a string, a number or a boolean'),
        ({"op": "eq", "value": [1]}, '"eq" needs a string, a number or a boolean'),
        ({"op": "eq", "value": float("nan")}, '"eq" needs a finite number'),
        ({"op": "in", "value": []}, '"in" needs a list of 1 to 1000 strings, numbers or booleans'),
        (
            {"op": "not_in", "value": ["a", {"b": 1}]},
            '"not_in" needs a list of strings, numbers or booleans; item 1 is not a string, a '
            "number or a boolean",
        ),
        ({"op": "contains", "value": [1]}, '"contains" needs a string, a number or a boolean'),
        ({"op": "starts_with", "value": 1}, '"starts_with" needs a string'),
        ({"op": "ends_with", "value": True}, '"ends_with" needs a string'),
        ({"op": "regex", "value": 5}, '"regex" needs a string of at most 200 characters'),
        ({"op": "regex", "value": "a" * 201}, '"regex" needs a string of at most 200 characters'),
        ({"op": "regex", "value": r"(a)\1"}, REGEX + r"unsupported escape \1 at position 4"),
        (
            {"op": "regex", "value": "(?=a)"},
            REGEX + "only (…) and (?:…) groups are supported at position 1",
        ),
        ({"op": "regex", "value": r"\bword"}, REGEX + r"unsupported escape \b at position 1"),
        (
            {"op": "regex", "value": "a**"},
            REGEX + "a repetition cannot be repeated; use a group at position 3",
        ),
        (
            {"op": "regex", "value": "a{1000}"},
            REGEX + "repetition bounds are at most 100 at position 2",
        ),
        (
            {"op": "regex", "value": "((a{100}){100})"},
            REGEX + "too complex once repetitions are expanded",
        ),
        ({"op": "regex", "value": "[z-a]"}, REGEX + "range out of order at position 2"),
        (
            {"op": "regex", "value": "[[:alpha:]]"},
            REGEX + 'write \\[ for a literal "[" inside [ ] at position 2',
        ),
        ({"op": "gt", "value": True}, '"gt" needs a number or a string'),
        ({"op": "gte", "value": [1]}, '"gte" needs a number or a string'),
        ({"op": "between", "value": [5, 1]}, BETWEEN),
        ({"op": "between", "value": [1, "z"]}, BETWEEN),
        ({"op": "between", "value": [1]}, BETWEEN),
        ({"op": "is_not_set", "value": "x"}, '"is_not_set" takes no value'),
        ({"op": "before", "value": "yesterday"}, f'"before" {ISO}'),
        ({"op": "after", "value": "2023-02-29"}, f'"after" {ISO}'),
        ({"op": "within_last_days", "value": 0}, f'"within_last_days" {DAYS}'),
        ({"op": "within_last_days", "value": 1.5}, f'"within_last_days" {DAYS}'),
        ({"op": "not_within_last_days", "value": True}, f'"not_within_last_days" {DAYS}'),
    ],
)
def test_values_are_checked_per_operator(leaf: dict[str, Any], message: str) -> None:
    path = "op" if "op" not in leaf else "value"
    assert errors_of({"attribute": "x", **leaf}) == [f"{path}: {message}"]


def test_operators_are_checked_per_place() -> None:
    assert errors_of({"attribute": "x", "op": 3, "value": 1}) == ["op: must be an operator name"]
    assert errors_of({"attribute": "x", "value": 1}) == ["op: required"]
    assert errors_of({"event": "e", "count": {"op": "contains", "value": 1}}) == [
        'count.op: "contains" cannot be used on an event count'
    ]
    assert errors_of({"event": "e", "count": {"op": "between", "value": [3, 1]}}) == [
        'count.value: "between" needs [low, high]: two whole numbers ≥ 0, low ≤ high'
    ]
    assert errors_of({"event": "e", "count": 3}) == [
        'count: must be an object like {"op": "gte", "value": 3}'
    ]
    assert errors_of({"locale": {"op": "gt", "value": "de"}}, allow_context=True) == [
        'locale.op: "gt" cannot be used on locale'
    ]
    assert errors_of({"device": {"op": "eq", "value": 1}}, allow_context=True) == [
        'device.value: "eq" needs a string'
    ]
    assert errors_of({"page_url": "/x"}, allow_context=True) == [
        'page_url: must be an object like {"op": "contains", "value": "…"}'
    ]


def test_names_that_sql_json_paths_cannot_hold_are_refused() -> None:
    assert errors_of({"attribute": 'a"b', "op": "is_set"}) == [
        "attribute: an attribute name cannot contain quotes, backslashes or control characters"
    ]
    assert errors_of({"event": "e", "where": [{"property": "a\\b", "op": "is_set"}]}) == [
        "where[0].property: a property name cannot contain quotes, backslashes or control "
        "characters"
    ]
    assert errors_of({"event": "e", "where": [{"op": "is_set"}]}) == ["where[0].property: required"]


def leaf(i: int = 0) -> dict[str, Any]:
    return {"attribute": f"a{i}", "op": "eq", "value": i}


def nested(depth: int) -> dict[str, Any]:
    node = leaf()
    for _ in range(depth - 1):
        node = {"not": node}
    return node


def test_depth_limit() -> None:
    parse_condition(nested(10))
    path = ".".join(["not"] * 10)
    assert errors_of(nested(11)) == [f"{path}: nested deeper than 10 levels"]
    # A hostile depth stops at the limit instead of recursing through it.
    assert len(errors_of(nested(5000))) == 1


def test_size_limit() -> None:
    parse_condition({"all": [leaf(i) for i in range(199)]})
    assert errors_of({"all": [leaf(i) for i in range(200)]}) == [
        "has 201 nodes; at most 200 are allowed"
    ]
    assert errors_of({"any": [leaf(i) for i in range(100_000)]})[0] == (
        "has 100001 nodes; at most 200 are allowed"
    )


def test_error_list_is_bounded() -> None:
    assert len(errors_of({"all": [{"attribute": "a", "op": "eqq"}] * 150})) == 101


def test_parsed_tree_is_typed_and_round_trips() -> None:
    data = {
        "all": [
            {"attribute": "plan", "op": "in", "value": ["pro", "team"]},
            {
                "event": "export_clicked",
                "within_days": 30,
                "where": [{"property": "format", "op": "eq", "value": "csv"}],
            },
        ]
    }
    condition = parse_condition(data)
    assert condition == AllOf(
        (
            AttributeCondition("plan", Op.IN, ("pro", "team")),
            EventCondition(
                "export_clicked",
                CountTest(Op.GTE, 1),
                30,
                (PropertyFilter("format", Op.EQ, "csv"),),
            ),
        )
    )
    canonical = condition_to_json(condition)
    assert canonical["all"][1]["count"] == {"op": "gte", "value": 1}
    assert parse_condition(canonical) == condition
    assert condition_key(condition) == condition_key(parse_condition(canonical))
    assert condition_key(condition) != condition_key(parse_condition(leaf()))
    assert hash(condition) == hash(parse_condition(data))
    assert condition_event_names(condition) == {"export_clicked"}
    assert condition_segments(
        parse_condition({"any": [{"segment": "a"}, {"not": {"segment": "b"}}]})
    ) == {"a", "b"}


def test_values_of_different_kinds_make_different_conditions() -> None:
    # In Python 1 == True == 1.0; as conditions they differ, and must not share a compiled
    # predicate (which is cached by the condition).
    one, true, one_float = (
        parse_condition({"attribute": "x", "op": "neq", "value": value}) for value in (1, True, 1.0)
    )
    assert len({one, true, one_float}) == 3
    assert one != true
    in_one = parse_condition({"attribute": "x", "op": "in", "value": [1, "a"]})
    in_true = parse_condition({"attribute": "x", "op": "in", "value": [True, "a"]})
    assert in_one != in_true
    facts = InMemoryFacts(attributes={"x": 8})
    assert compile_predicate(true)(facts) is False
    assert compile_predicate(one)(facts) is True
    assert parse_condition({"attribute": "x", "op": "neq", "value": 1}) == one


def test_context_leaves_parse_for_campaign_audiences() -> None:
    condition = parse_condition(
        {
            "all": [
                {"page_url": {"op": "regex", "value": "/reports/\\d+$"}},
                {"locale": {"op": "in", "value": ["de", "fr"]}},
                {"device": {"op": "is_set"}},
            ]
        },
        allow_context=True,
    )
    assert parse_condition(condition_to_json(condition), allow_context=True) == condition
