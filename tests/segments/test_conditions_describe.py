"""Conditions in words, as Parker reads them in the admin."""

from __future__ import annotations

from typing import Any

import pytest

from segments.conditions import condition_describe, parse_condition


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (
            {
                "all": [
                    {"attribute": "plan", "op": "eq", "value": "pro"},
                    {
                        "event": "export_clicked",
                        "count": {"op": "gte", "value": 3},
                        "within_days": 30,
                    },
                ]
            },
            "plan is pro and did export_clicked at least 3 times in the last 30 days",
        ),
        ({"event": "signup"}, "did signup"),
        ({"event": "signup", "within_days": 1}, "did signup in the last day"),
        ({"event": "signup", "count": {"op": "eq", "value": 0}}, "did not do signup"),
        ({"event": "e", "count": {"op": "lt", "value": 2}}, "did e fewer than twice"),
        ({"event": "e", "count": {"op": "eq", "value": 1}}, "did e exactly once"),
        (
            {"event": "e", "count": {"op": "between", "value": [2, 5]}},
            "did e between 2 and 5 times",
        ),
        (
            {
                "event": "export_clicked",
                "where": [{"property": "format", "op": "in", "value": ["csv", "xlsx"]}],
            },
            "did export_clicked with format is one of csv, xlsx",
        ),
        ({"attribute": "name", "op": "eq", "value": "Ada Lovelace"}, 'name is "Ada Lovelace"'),
        ({"attribute": "city", "op": "eq", "value": "Zürich"}, "city is Zürich"),
        ({"attribute": "beta", "op": "eq", "value": True}, "beta is true"),
        ({"attribute": "plan", "op": "not_in", "value": ["free"]}, "plan is none of free"),
        (
            {"attribute": "email", "op": "ends_with", "value": "@acme.com"},
            "email ends with @acme.com",
        ),
        ({"attribute": "email", "op": "regex", "value": "^a.*@x$"}, "email matches /^a.*@x$/"),
        ({"attribute": "seats", "op": "between", "value": [1, 10]}, "seats is between 1 and 10"),
        ({"attribute": "seats", "op": "gte", "value": 2.5}, "seats is at least 2.5"),
        ({"attribute": "phone", "op": "is_not_set"}, "phone is not set"),
        (
            {"attribute": "seen", "op": "within_last_days", "value": 7},
            "seen is within the last 7 days",
        ),
        (
            {"attribute": "seen", "op": "not_within_last_days", "value": 1},
            "seen is more than 1 day ago",
        ),
        (
            {"attribute": "signup", "op": "before", "value": "2024-01-01"},
            "signup is before 2024-01-01",
        ),
        ({"segment": "power-users"}, "is in segment power-users"),
        ({"all": []}, "everyone"),
        ({"any": []}, "no one"),
        (
            {
                "any": [
                    {
                        "all": [
                            {"attribute": "a", "op": "is_set"},
                            {"attribute": "b", "op": "is_set"},
                        ]
                    },
                    {"not": {"segment": "x"}},
                ]
            },
            "(a is set and b is set) or not is in segment x",
        ),
        (
            {"not": {"any": [{"segment": "a"}, {"segment": "b"}]}},
            "not (is in segment a or is in segment b)",
        ),
    ],
)
def test_describe(data: dict[str, Any], text: str) -> None:
    assert condition_describe(parse_condition(data)) == text


def test_describe_context() -> None:
    condition = parse_condition(
        {
            "all": [
                {"page_url": {"op": "contains", "value": "/reports"}},
                {"locale": {"op": "eq", "value": "de"}},
            ]
        },
        allow_context=True,
    )
    assert condition_describe(condition) == "page URL contains /reports and locale is de"
