"""The regex dialect: RE2 in process and in SQLite, a translation for PostgreSQL's engine, the
same matches everywhere, and no catastrophic backtracking."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from segments.conditions import InMemoryFacts, compile_predicate, condition_to_q, parse_condition
from segments.conditions.operators import regex_compiled
from segments.conditions.regex import RegexUnsupported, regex_translate
from segments.models import Person
from tests.factories import AppFactory, PersonFactory

NOW = datetime(2024, 3, 10, tzinfo=UTC)


def matches_everywhere(pattern: str, texts: list[str]) -> list[bool]:
    """Whether each text matches, checking that the predicate and the SQL query agree."""
    app = AppFactory()
    condition = parse_condition({"attribute": "t", "op": "regex", "value": pattern})
    people = [PersonFactory(app=app, attributes={"t": text}) for text in texts]
    in_sql = set(
        Person.objects.filter(condition_to_q(condition, app=app, now=NOW)).values_list(
            "pk", flat=True
        )
    )
    predicate = compile_predicate(condition)
    results = []
    for person, text in zip(people, texts, strict=True):
        in_process = predicate(InMemoryFacts(attributes={"t": text}))
        assert in_process == (person.pk in in_sql), (pattern, text)
        results.append(in_process)
    return results


@pytest.mark.parametrize(
    "pattern", ["(a+)+$", "(a|aa)+$", "(a*)*b", "^(([a-z])+.)+[A-Z]([a-z])+$", "(x+x+)+y"]
)
def test_catastrophic_backtracking_patterns_return(db: None, pattern: str) -> None:
    # With a backtracking engine each of these would run for longer than the universe is old
    # on such inputs; RE2 (and PostgreSQL's engine on the translation) answer at once.
    hostile = ["a" * 30_000 + "!", "x" * 30_000, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"]
    assert matches_everywhere(pattern, hostile) == [False, False, False]


def test_search_semantics_anchors_and_newlines(db: None) -> None:
    texts = ["pro", "a pro", "pro\n", "\npro", "PRO", "p\nro"]
    assert matches_everywhere("pro", texts) == [True, True, True, True, False, False]
    assert matches_everywhere("^pro$", texts) == [True, False, False, False, False, False]
    assert matches_everywhere("p.ro", texts) == [False] * 6
    assert matches_everywhere("p[^x]ro", texts) == [False, False, False, False, False, True]
    assert matches_everywhere("(?i)^pro", texts) == [True, False, True, False, True, False]


def test_unicode_is_matched_by_code_point(db: None) -> None:
    texts = ["Zürich", "Zurich", "日本語", "😀!", "e\u0301"]
    assert matches_everywhere("ü", texts) == [True, False, False, False, False]
    assert matches_everywhere("^.{3}$", texts) == [False, False, True, False, False]
    assert matches_everywhere("^.!$", texts) == [False, False, False, True, False]
    assert matches_everywhere("[日月]", texts) == [False, False, True, False, False]
    assert matches_everywhere("^e.$", texts) == [False, False, False, False, True]
    assert matches_everywhere(r"^\w+$", texts) == [False, True, False, False, False]


@pytest.mark.parametrize(
    "pattern",
    [r"(a)\1", "(?=x)", "(?<=x)", r"\bx", r"\p{L}", "[[:alpha:]]", "(?m)^x", "a{,3}", "x{3", "*"],
)
def test_constructs_outside_the_dialect_are_refused(pattern: str) -> None:
    with pytest.raises(RegexUnsupported):
        regex_translate(pattern)


def test_translations_spell_classes_out() -> None:
    translated = regex_translate(r"(?i)\d+a.\s")
    assert translated.re2 == r"(?:[0-9])+[Aa][^\x{A}][\x{9}-\x{A}\x{C}-\x{D}\x{20}]"
    assert translated.postgresql == r"(?:[0-9])+[Aa][^\u000A][\u0009-\u000A\u000C-\u000D\u0020]"


# A small alphabet of regex syntax, to reach its corners quickly.
TOKENS = [*"ab.|*+?()[]^$-é\n", r"\d", r"\w", r"\s", r"\D", r"\.", "{1,2}", "{2}", "(?:", "[^"]
patterns = st.lists(st.sampled_from(TOKENS), max_size=8).map("".join)
texts = st.lists(st.text(alphabet=list("ab-\n .é1_Z"), max_size=6), min_size=1, max_size=8)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=patterns, ignore_case=st.booleans(), samples=texts)
def test_postgresql_translation_matches_what_re2_matches(
    postgres: Any, db: None, body: str, ignore_case: bool, samples: list[str]
) -> None:
    pattern = ("(?i)" if ignore_case else "") + body
    try:
        translated = regex_translate(pattern)
    except RegexUnsupported:
        assume(False)
        return
    compiled = regex_compiled(pattern)
    with connection.cursor() as cursor:
        for text in samples:
            cursor.execute('SELECT %s COLLATE "C" ~ %s', [text, translated.postgresql])
            (in_postgresql,) = cursor.fetchone()
            assert in_postgresql == (compiled.search(text) is not None), (pattern, text)
