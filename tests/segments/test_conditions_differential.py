"""Differential test: random conditions over random people, decided by the SQL query, by the
predicate over in-memory events and by the predicate over database facts, must agree for every
person. Runs on whatever DATABASE_URL points to (CI: PostgreSQL)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segments.conditions import (
    ConditionInvalid,
    EventRecord,
    InMemoryFacts,
    compile_predicate,
    condition_to_q,
    parse_condition,
    person_facts_load,
)
from segments.models import Event, EventSource, Person
from segments.services import EventInput, events_ingest
from tests.factories import AppFactory, PersonFactory

NOW = datetime(2024, 3, 10, 0, 30, tzinfo=UTC)
DAY = 86400
# Bounded so the suite stays fast; raise it for a deeper run (e.g. 2000 before a release).
EXAMPLES = int(os.environ.get("ENGAGE_DIFFERENTIAL_EXAMPLES", "60"))

KEYS = ["plan", "名前", "flag"]
EVENTS = ["export_clicked", "page_view"]
STRINGS = ["pro", "Pro", "team", "", "a", "b", "é", "日本", "😀", "pro plan", "x\ny", "ab123", "Z"]
REGEXES = [
    "^p",
    "(?i)PRO",
    "^.$",
    r"\d",
    r"^\w+$",
    "ü|日",
    "[a-c]+",
    "(?i)[^a-z]",
    r"\s",
    "^$",
    "o{2,}",
    "(?:pro|team) ?p?",
    r"\.",
    "😀",
    "[é-ü]",
]
DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M"]
BAD_DATES = ["2023-02-29", "2024-03-09T24:00:00", "yesterday", "2024-3-9", "0000-01-01"]

OPS = [
    "eq", "neq", "in", "not_in", "contains", "not_contains", "starts_with", "ends_with", "regex",
    "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set", "before", "after",
    "within_last_days", "not_within_last_days",
]  # fmt: skip

# A person-level text: no NUL (PostgreSQL text cannot hold it) and no unpaired surrogates.
text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=4)
strings = st.one_of(st.sampled_from(STRINGS), text)
numbers = st.one_of(st.integers(-3, 12), st.sampled_from([0.5, -1.25, 2.0, 1e3, 10.0]))
scalars = st.one_of(strings, numbers, st.booleans())


@st.composite
def dates(draw: st.DrawFn) -> str:
    seconds = draw(
        st.one_of(
            st.integers(-12 * DAY, DAY),
            st.sampled_from([-DAY, -2 * DAY, -7 * DAY, -DAY - 1, -DAY + 1, 0, 1, -1]),
        )
    )
    moment = NOW + timedelta(seconds=seconds)
    if draw(st.booleans()):
        return moment.strftime(draw(st.sampled_from(DATE_FORMATS)))
    offset = draw(st.sampled_from([-300, 120, 330]))
    local = moment + timedelta(minutes=offset)
    sign = "+" if offset >= 0 else "-"
    return (
        local.strftime("%Y-%m-%dT%H:%M:%S")
        + f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    )


attribute_values = st.one_of(
    st.none(),
    scalars,
    dates(),
    st.sampled_from(BAD_DATES),
    st.lists(scalars, max_size=3),
    st.just({"nested": 1}),
    st.sampled_from([None, True, False, 0, 1, 1.0, "", "pro", ["pro"]]),
)


def value_for(op: str) -> st.SearchStrategy[Any]:
    """Valid values for `op`, drawn to overlap the attribute values above."""
    return {
        "eq": scalars,
        "neq": scalars,
        "in": st.lists(scalars, min_size=1, max_size=4),
        "not_in": st.lists(scalars, min_size=1, max_size=4),
        "contains": st.one_of(strings, st.integers(-3, 12), st.booleans()),
        "not_contains": st.one_of(strings, st.integers(-3, 12), st.booleans()),
        "starts_with": strings,
        "ends_with": strings,
        "regex": st.sampled_from(REGEXES),
        "gt": st.one_of(numbers, strings),
        "gte": st.one_of(numbers, strings),
        "lt": st.one_of(numbers, strings),
        "lte": st.one_of(numbers, strings),
        "between": st.one_of(
            st.lists(numbers, min_size=2, max_size=2).map(sorted),
            st.lists(strings, min_size=2, max_size=2).map(sorted),
        ),
        "before": dates(),
        "after": dates(),
        "within_last_days": st.sampled_from([1, 2, 7]),
        "not_within_last_days": st.sampled_from([1, 2, 7]),
    }[op]


@st.composite
def comparisons(
    draw: st.DrawFn, name_key: str, names: list[str], op: str | None = None
) -> dict[str, Any]:
    op = op or draw(st.sampled_from(OPS))
    body: dict[str, Any] = {name_key: draw(st.sampled_from(names)), "op": op}
    if op not in ("is_set", "is_not_set"):
        body["value"] = draw(value_for(op))
    return body


@st.composite
def event_leaves(draw: st.DrawFn) -> dict[str, Any]:
    leaf: dict[str, Any] = {"event": draw(st.sampled_from(EVENTS))}
    if draw(st.booleans()):
        op = draw(st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte", "between"]))
        value: Any = (
            sorted(draw(st.lists(st.integers(0, 3), min_size=2, max_size=2)))
            if op == "between"
            else draw(st.integers(0, 3))
        )
        leaf["count"] = {"op": op, "value": value}
    within = draw(st.sampled_from([None, 1, 2, 7]))
    if within is not None:
        leaf["within_days"] = within
    where = draw(st.lists(comparisons("property", ["format", "n"]), max_size=2))
    if where:
        leaf["where"] = where
    return leaf


segment_leaves = st.sampled_from(
    [{"segment": slug} for slug in ("pro", "active", "loop-a", "missing")]
)
leaves = st.one_of(
    comparisons("attribute", KEYS),
    event_leaves(),
    segment_leaves,
)
conditions = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda items: {"all": items}),
        st.lists(children, max_size=3).map(lambda items: {"any": items}),
        children.map(lambda child: {"not": child}),
    ),
    max_leaves=6,
)

SEGMENTS = {
    "pro": parse_condition({"attribute": "plan", "op": "in", "value": ["pro", "Pro"]}),
    "active": parse_condition(
        {"all": [{"segment": "pro"}, {"event": "page_view", "within_days": 2}]}
    ),
    "loop-a": parse_condition(
        {"any": [{"segment": "loop-b"}, {"attribute": "flag", "op": "eq", "value": True}]}
    ),
    "loop-b": parse_condition({"not": {"segment": "loop-a"}}),
}

# Half of the events sit on an edge: a window's first instant, either side of it, or the
# midnight between (NOW is 00:30 UTC).
event_seconds = st.one_of(
    st.integers(-10 * DAY, 300),
    st.sampled_from(
        [s + d for s in (-DAY, -2 * DAY, -7 * DAY) for d in (-1, 0, 1)] + [-1800, -1801, -1799]
    ),
)
events = st.lists(
    st.tuples(
        st.sampled_from(EVENTS),
        event_seconds,
        st.dictionaries(st.sampled_from(["format", "n"]), attribute_values, max_size=2),
    ),
    max_size=6,
)
people = st.lists(
    st.tuples(st.dictionaries(st.sampled_from(KEYS), attribute_values, max_size=3), events),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    # Every example covers every operator and several event leaves, plus random trees, so
    # that each one exercises the whole language over the same population.
    flat=st.tuples(*(comparisons("attribute", KEYS, op=op) for op in OPS)),
    behaviour=st.lists(event_leaves(), min_size=4, max_size=4),
    trees=st.lists(conditions, max_size=3),
    population=people,
)
def test_sql_and_predicate_agree(
    db: None,
    flat: tuple[dict[str, Any], ...],
    behaviour: list[dict[str, Any]],
    trees: list[dict[str, Any]],
    population: list[Any],
) -> None:
    parsed = []
    for data in [*flat, *behaviour, *trees]:
        try:
            parsed.append(parse_condition(data))
        except ConditionInvalid:
            continue
    app = AppFactory()
    stored = []
    for index, (attributes, history) in enumerate(population):
        user_id = f"u{index}"
        person = PersonFactory(app=app, user_id=user_id, attributes=attributes)
        if history:
            # UTC timestamps: the counters' UTC-day filing is tested on its own.
            events_ingest(
                app=app,
                events=[
                    EventInput(
                        name=name,
                        user_id=user_id,
                        properties=properties,
                        timestamp=NOW + timedelta(seconds=seconds),
                    )
                    for name, seconds, properties in history
                ],
                source=EventSource.API,
                received_at=NOW,
            )
        stored.append(Person.objects.get(pk=person.pk))

    # One set of facts per person serves every condition (same person, same moment).
    in_memory_facts = {
        person.pk: InMemoryFacts(
            attributes=person.attributes,
            now=NOW,
            events=[
                EventRecord(e.name, e.timestamp, e.properties)
                for e in Event.objects.filter(person=person)
            ],
            segments=SEGMENTS,
        )
        for person in stored
    }
    database_facts = {
        person.pk: person_facts_load(person, now=NOW, segment_resolver=SEGMENTS)
        for person in stored
    }
    for condition in parsed:
        predicate = compile_predicate(condition)
        query = Person.objects.filter(
            condition_to_q(condition, app=app, now=NOW, segment_resolver=SEGMENTS.get)
        )
        in_sql = set(query.values_list("user_id", flat=True))
        for person in stored:
            in_memory = predicate(in_memory_facts[person.pk])
            from_database = predicate(database_facts[person.pk])
            assert in_memory == from_database == (person.user_id in in_sql), (
                condition,
                person.user_id,
                person.attributes,
                in_memory_facts[person.pk].events,
            )
