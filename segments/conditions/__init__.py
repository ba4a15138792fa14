"""The condition language of segments and campaign audiences (DESIGN.md, "The condition
language"): parsed once into a typed tree, compiled to an in-process predicate and to SQL with
the same answers, and described in words.

    condition = parse_condition(data)                  # ConditionInvalid lists every error
    matches = compile_predicate(condition)(facts)      # one person, microseconds
    people = Person.objects.filter(condition_to_q(condition, app=app, now=now))
    condition_describe(condition)                      # "plan is pro and did export_clicked …"

`segments.conditions.facts.person_facts_load` loads one person's facts from the database
(imported lazily here so the predicate can be used without Django models loaded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from segments.conditions.describe import condition_describe
from segments.conditions.operators import Op
from segments.conditions.predicate import (
    EventRecord,
    InMemoryFacts,
    PersonFacts,
    Predicate,
    SegmentResolver,
    compile_predicate,
)
from segments.conditions.tree import (
    AllOf,
    AnyOf,
    AttributeCondition,
    Condition,
    ConditionError,
    ConditionInvalid,
    ContextCondition,
    CountTest,
    EventCondition,
    Not,
    PropertyFilter,
    SegmentCondition,
    condition_event_names,
    condition_key,
    condition_segments,
    condition_to_json,
    parse_condition,
)

if TYPE_CHECKING:
    from segments.conditions.facts import DatabaseFacts, person_facts_load
    from segments.conditions.sql import condition_people, condition_to_q

__all__ = [
    "AllOf",
    "AnyOf",
    "AttributeCondition",
    "Condition",
    "ConditionError",
    "ConditionInvalid",
    "ContextCondition",
    "CountTest",
    "DatabaseFacts",
    "EventCondition",
    "EventRecord",
    "InMemoryFacts",
    "Not",
    "Op",
    "PersonFacts",
    "Predicate",
    "PropertyFilter",
    "SegmentCondition",
    "SegmentResolver",
    "compile_predicate",
    "condition_describe",
    "condition_event_names",
    "condition_key",
    "condition_people",
    "condition_segments",
    "condition_to_json",
    "condition_to_q",
    "parse_condition",
    "person_facts_load",
]

_LAZY = {
    "DatabaseFacts": "segments.conditions.facts",
    "person_facts_load": "segments.conditions.facts",
    "condition_people": "segments.conditions.sql",
    "condition_to_q": "segments.conditions.sql",
}


def __getattr__(name: str) -> Any:
    # The SQL compiler and the database facts import models: load them on first use, so that
    # importing the language (e.g. from a settings-free benchmark) needs no app registry.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
