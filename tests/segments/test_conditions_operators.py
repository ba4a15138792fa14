"""Every operator on both compilers: each case is a person with one attribute value (or none),
evaluated by the in-process predicate and by the SQL query, which must agree with the expected
answer. Runs on whatever database DATABASE_URL points to."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from engage.models import App
from segments.conditions import (
    AttributeCondition,
    InMemoryFacts,
    compile_predicate,
    condition_to_q,
    parse_condition,
)
from segments.conditions.operators import value_test
from segments.models import Person
from tests.factories import AppFactory, PersonFactory

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
MISSING = object()

# (op, value, [(attribute value or MISSING, expected), ...])
CASES: list[tuple[str, Any, list[tuple[Any, bool]]]] = [
    (
        "eq",
        "pro",
        [
            ("pro", True),
            ("Pro", False),
            ("pro ", False),
            (5, False),
            (MISSING, False),
            (None, False),
            (["pro"], False),
            ({"pro": 1}, False),
        ],
    ),
    ("eq", 5, [(5, True), (5.0, True), ("5", False), (True, False), (5.5, False)]),
    ("eq", 0.1, [(0.1, True), (0.2, False), ("0.1", False)]),
    ("eq", True, [(True, True), (1, False), ("true", False), (False, False)]),
    ("eq", "Zürich 日本 😀", [("Zürich 日本 😀", True), ("Zurich 日本 😀", False)]),
    ("neq", "pro", [("team", True), ("pro", False), (5, False), (MISSING, False), (None, False)]),
    ("neq", 5, [(6, True), (5.0, False), ("6", False), (False, False)]),
    ("neq", False, [(True, True), (False, False), (0, False)]),
    (
        "in",
        ["pro", "team", 3],
        [
            ("pro", True),
            ("team", True),
            (3, True),
            (3.0, True),
            ("3", False),
            ("free", False),
            (MISSING, False),
            (True, False),
            (["pro"], False),
        ],
    ),
    ("in", [True], [(True, True), (1, False), (False, False)]),
    ("in", ["é", "😀"], [("é", True), ("e\u0301", False), ("😀", True)]),
    (
        "not_in",
        ["pro", "team"],
        [("free", True), ("pro", False), (5, False), (MISSING, False), (None, False)],
    ),
    ("not_in", ["pro", 1], [(2, True), ("x", True), (True, False), (1.0, False)]),
    ("not_in", [True], [(False, True), (True, False), (0, False)]),
    (
        "contains",
        "ü",
        [
            ("Zürich", True),
            ("Zurich", False),
            (["ü"], True),
            (["Zürich"], False),
            (5, False),
            (MISSING, False),
        ],
    ),
    ("contains", "ro", [("pro", True), ("PRO", False)]),
    ("contains", "", [("", True), ("abc", True), (5, False)]),
    ("contains", 2, [([1, 2], True), ([2.0], True), (["2"], False), ("2", False), (2, False)]),
    ("contains", True, [([True], True), ([1], False), ([[True]], False)]),
    (
        "not_contains",
        "x",
        [
            ("abc", True),
            ("xyz", False),
            (["a"], True),
            (["x"], False),
            (5, False),
            (MISSING, False),
        ],
    ),
    ("not_contains", 2, [([1], True), ([2], False), ("abc", False), ([], True)]),
    ("starts_with", "日本", [("日本語", True), ("語日本", False), (["日本"], False)]),
    ("starts_with", "", [("", True), ("a", True), (5, False)]),
    (
        "ends_with",
        ".com",
        [("a@x.com", True), ("a@x.co", False), ("com", False), (".com", True), (MISSING, False)],
    ),
    ("ends_with", "", [("abc", True), (1, False)]),
    ("ends_with", "😀", [("hi😀", True), ("😀hi", False)]),
    ("regex", "^pro", [("pro plan", True), ("a pro", False), (7, False), (MISSING, False)]),
    ("regex", "(?i)^PRO$", [("pro", True), ("Pro", True), ("pro\n", False), ("pros", False)]),
    ("regex", r"\d{3}", [("ab123", True), ("ab12", False), ("ab١٢٣", False), (123, False)]),
    ("regex", "^.$", [("\n", False), ("é", True), ("😀", True), ("ab", False)]),
    ("regex", r"^\w+$", [("abc_1", True), ("ab-c", False), ("é", False)]),
    ("regex", r"a\sb", [("a b", True), ("a\tb", True), ("a\vb", False), ("a\u00a0b", False)]),
    ("regex", "[^a]", [("\n", True), ("a", False), ("aaé", True)]),
    ("regex", "ü|ß", [("Zürich", True), ("Straße", True), ("Strasse", False)]),
    ("regex", "(?i)ü", [("Ü", False), ("ü", True)]),
    ("regex", "(?i)[a-c]x", [("Bx", True), ("bX", True), ("dx", False)]),
    ("regex", r"^\$\d+(?:\.\d\d)?$", [("$10", True), ("$10.50", True), ("$10.5", False)]),
    ("regex", "colou?r", [("color", True), ("colour", True), ("colr", False)]),
    ("regex", "^(ab){2,3}$", [("abab", True), ("ababab", True), ("ab", False)]),
    ("regex", "", [("", True), ("x", True), (1, False)]),
    ("gt", 5, [(6, True), (5, False), (5.5, True), ("6", False), (True, False), (MISSING, False)]),
    ("gt", "b", [("c", True), ("b", False), ("B", False), ("é", True), ("ba", True), (5, False)]),
    ("gte", 5, [(5, True), (5.0, True), (4.9, False), (-10, False)]),
    ("lt", 0, [(-1.5, True), (0, False), (False, False), (None, False)]),
    ("lte", "m", [("a", True), ("m", True), ("z", False), ("M", True), ("ma", False)]),
    (
        "between",
        [1, 10],
        [(1, True), (10, True), (10.5, False), (0, False), ("5", False), (5.5, True)],
    ),
    ("between", ["a", "c"], [("b", True), ("c", True), ("ca", False), ("B", False), (2, False)]),
    (
        "is_set",
        None,
        [
            ("", True),
            (0, True),
            (False, True),
            ([], True),
            ({}, True),
            (None, False),
            (MISSING, False),
        ],
    ),
    ("is_not_set", None, [(MISSING, True), (None, True), ("", False), (0, False), ([], False)]),
    (
        "before",
        "2024-01-01",
        [
            ("2023-12-31T23:59:59Z", True),
            ("2024-01-01", False),
            ("2024-01-01T00:00:00+01:00", True),
            ("2023-12-31", True),
            ("2023-12-31T23:59:59.999999", True),
            ("2024-01-01 00:00:00", False),
            ("not a date", False),
            ("2023-02-29", False),
            ("2000-02-29T10:00", True),
            ("1900-02-29", False),
            (20231231, False),
            (MISSING, False),
        ],
    ),
    (
        "after",
        "2024-01-01T00:00:00Z",
        [
            ("2024-01-01T00:00:00.000001Z", True),
            ("2024-01-01T00:00:00Z", False),
            ("2024-01-01T00:00:00.0000009Z", False),
            ("2024-01-01T00:00:00-00:01", True),
            ("2024-01-01T01:00+01:00", False),
            ("2024-02-29", True),
            ("2023-02-29", False),
            ("2100-02-29", False),
            ("2024-13-01", False),
            ("2024-01-01T24:00:00", False),
            ("2024-01-01T10:00:60", False),
            ("2024-06-01t10:00:00z", False),
            ("9999-12-31T23:59:59.999999Z", True),
            ("0000-01-01", False),
        ],
    ),
    (
        "within_last_days",
        7,
        [
            ("2024-03-03T12:00:00Z", True),
            ("2024-03-03T11:59:59.999999Z", False),
            ("2024-03-10T12:00:00Z", True),
            ("2024-03-10T12:00:00.000001Z", False),
            ("2024-03-05", True),
            ("2024-03-03", False),
            ("2024-03-03T13:00:00+01:00", True),
            ("2024-03-03T06:59:59-05:00", False),
            (MISSING, False),
        ],
    ),
    (
        "not_within_last_days",
        7,
        [
            ("2024-03-03T11:59:59Z", True),
            ("2024-03-03T12:00:00Z", False),
            ("2024-03-11", False),
            ("2019-01-01", True),
            ("garbage", False),
            (MISSING, False),
        ],
    ),
]


def _case_id(case: tuple[str, Any, list[tuple[Any, bool]]]) -> str:
    op, value, _ = case
    return f"{op}-{value!r}"


def _check(app: App, condition_json: dict[str, Any], rows: list[tuple[Any, bool]]) -> None:
    condition = parse_condition(condition_json)
    predicate = compile_predicate(condition)
    people = []
    for value, _expected in rows:
        attributes = {} if value is MISSING else {"x": value}
        people.append(PersonFactory(app=app, attributes=attributes))
    matched = set(
        Person.objects.filter(condition_to_q(condition, app=app, now=NOW)).values_list(
            "pk", flat=True
        )
    )
    # The generic test of one value (used by `where` filters and context leaves); attribute
    # leaves use fused closures for the common operators, held to the same answers here.
    generic = (
        value_test(condition.op, condition.value)
        if isinstance(condition, AttributeCondition)
        else None
    )
    for person, (value, expected) in zip(people, rows, strict=True):
        fresh = Person.objects.get(pk=person.pk)  # attributes as the database gives them back
        in_process = predicate(InMemoryFacts(attributes=fresh.attributes, now=NOW))
        in_sql = person.pk in matched
        assert (in_process, in_sql) == (expected, expected), (condition_json, value)
        if generic is not None:
            assert generic(fresh.attributes.get("x"), NOW) == expected, (condition_json, value)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_operator_on_both_compilers(
    db: None, case: tuple[str, Any, list[tuple[Any, bool]]]
) -> None:
    op, value, rows = case
    condition = {"attribute": "x", "op": op}
    if value is not None:
        condition["value"] = value
    _check(AppFactory(), condition, rows)


def test_every_operator_is_covered() -> None:
    from segments.conditions.operators import Op

    assert {op for op, _, _ in CASES} == {str(op) for op in Op}


def test_negation_of_a_missing_attribute_is_true_on_both(db: None) -> None:
    # neq is false on a missing attribute, but "not eq" is true: NULLs never leak out of SQL.
    app = AppFactory()
    _check(
        app,
        {"not": {"attribute": "x", "op": "eq", "value": "pro"}},
        [(MISSING, True), ("pro", False), ("team", True), (None, True), (5, True)],
    )
    _check(
        app,
        {"not": {"attribute": "x", "op": "regex", "value": "^a"}},
        [(MISSING, True), ("abc", False), ("b", True)],
    )
    _check(
        app,
        {"not": {"attribute": "x", "op": "after", "value": "2024-01-01"}},
        [(MISSING, True), ("2025-01-01", False), ("junk", True)],
    )


def test_unicode_attribute_names_on_both(db: None) -> None:
    app = AppFactory()
    for name in ("größe", "名前", "a.b", "with space", "0", "😀"):
        condition = parse_condition({"attribute": name, "op": "eq", "value": "ü"})
        person = PersonFactory(app=app, attributes={name: "ü"})
        other = PersonFactory(app=app, attributes={"other": "ü"})
        matched = list(
            Person.objects.filter(condition_to_q(condition, app=app, now=NOW)).values_list(
                "pk", flat=True
            )
        )
        assert matched == [person.pk], name
        assert compile_predicate(condition)(InMemoryFacts(attributes={name: "ü"}))
        assert not compile_predicate(condition)(InMemoryFacts(attributes=other.attributes))


def test_groups_on_both(db: None) -> None:
    app = AppFactory()
    pro = PersonFactory(app=app, attributes={"plan": "pro", "seats": 12})
    small_pro = PersonFactory(app=app, attributes={"plan": "pro", "seats": 2})
    free = PersonFactory(app=app, attributes={"plan": "free", "seats": 40})
    nobody = PersonFactory(app=app, attributes={})
    cases = [
        ({"all": []}, {pro, small_pro, free, nobody}),
        ({"any": []}, set()),
        ({"not": {"any": []}}, {pro, small_pro, free, nobody}),
        (
            {
                "all": [
                    {"attribute": "plan", "op": "eq", "value": "pro"},
                    {"attribute": "seats", "op": "gte", "value": 10},
                ]
            },
            {pro},
        ),
        (
            {
                "any": [
                    {"attribute": "plan", "op": "eq", "value": "free"},
                    {"not": {"attribute": "seats", "op": "gt", "value": 5}},
                ]
            },
            {small_pro, free, nobody},
        ),
    ]
    people = [pro, small_pro, free, nobody]
    for data, expected in cases:
        condition = parse_condition(data)
        in_sql = set(Person.objects.filter(condition_to_q(condition, app=app, now=NOW)))
        predicate = compile_predicate(condition)
        in_process = {p for p in people if predicate(InMemoryFacts(attributes=p.attributes))}
        assert in_sql == expected == in_process, data


def test_query_is_scoped_to_the_app(db: None) -> None:
    app, other = AppFactory(), AppFactory()
    mine = PersonFactory(app=app, attributes={"plan": "pro"})
    PersonFactory(app=other, attributes={"plan": "pro"})
    condition = parse_condition({"attribute": "plan", "op": "eq", "value": "pro"})
    assert list(Person.objects.filter(condition_to_q(condition, app=app, now=NOW))) == [mine]


def test_count_and_list_in_one_query(db: None, django_assert_num_queries: Any) -> None:
    app = AppFactory()
    for seats in range(5):
        PersonFactory(app=app, attributes={"seats": seats, "plan": "pro"})
    condition = parse_condition(
        {
            "all": [
                {"attribute": "seats", "op": "between", "value": [1, 3]},
                {"attribute": "plan", "op": "regex", "value": "^p"},
                {"event": "export_clicked", "within_days": 30, "count": {"op": "lt", "value": 2}},
            ]
        }
    )
    people = Person.objects.filter(condition_to_q(condition, app=app, now=NOW))
    with django_assert_num_queries(1):
        assert people.count() == 3
    with django_assert_num_queries(1):
        assert len(list(people[:2])) == 2
