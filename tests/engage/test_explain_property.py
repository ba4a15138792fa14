"""Properties: explain agrees with the engine, and the node walker with the predicate."""

from __future__ import annotations

import itertools
import os
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engage.campaigns import campaign_create, campaign_publish
from engage.deliveries import delivery_event_record, targeting_evaluate
from engage.explain import targeting_explain
from engage.models import Delivery
from engage.services import app_create
from engage.targeting import Moment, _compiled
from segments.conditions import (
    ConditionInvalid,
    EventRecord,
    InMemoryFacts,
    compile_predicate,
    parse_condition,
)
from segments.conditions.explain import condition_explain
from segments.services import EventInput, events_ingest, person_identify
from tests.segments.test_conditions_differential import (
    KEYS,
    NOW,
    SEGMENTS,
    attribute_values,
    conditions,
    events,
)


@pytest.fixture(autouse=True)
def _fresh_engine():
    """Compiled campaigns are cached per App id, and test databases reuse ids."""
    cache.clear()
    _compiled.clear()
    yield
    cache.clear()
    _compiled.clear()


EXAMPLES = int(os.environ.get("ENGAGE_EXPLAIN_EXAMPLES", "25"))
CONTENT = {"en": {"title": "Hello", "body": "Hi", "buttons": []}}
_apps = itertools.count()

AUDIENCES = [
    {},
    {"condition": {"attribute": "plan", "op": "eq", "value": "pro"}},
    {"condition": {"event": "e1", "count": {"op": "gte", "value": 2}, "within_days": 30}},
    {"condition": {"any": [{"attribute": "plan", "op": "eq", "value": "team"},
                           {"not": {"event": "e1"}}]}},
    {"condition": {"page_url": {"op": "contains", "value": "/reports"}}},
]  # fmt: skip
TRIGGERS = [
    {"on": "api"},
    {"on": "page_view"},
    {"on": "page_view", "url": {"op": "contains", "value": "/reports"}},
    {"on": "event", "event": "e1"},
    {"on": "session_start"},
]

campaign_specs = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["modal", "banner", "slide_in"]),
        "publish": st.sampled_from([True, True, True, False]),
        "priority": st.integers(0, 3),
        "audience": st.sampled_from(AUDIENCES),
        "trigger": st.sampled_from(TRIGGERS),
        "sample_percent": st.sampled_from([100, 100, 50, 0]),
        "holdout_percent": st.sampled_from([0, 0, 30]),
        "max_impressions": st.sampled_from([None, 1, 2]),
        "recontact_days": st.sampled_from([0, 0, 3]),
    }
)
person_specs = st.fixed_dictionaries(
    {
        "plan": st.sampled_from([None, "pro", "team", "free"]),
        "e1": st.integers(0, 3),
        "known": st.booleans(),
        "shown_rounds": st.integers(0, 2),
    }
)
moments = st.sampled_from(
    [
        Moment(),
        Moment(url="https://host.example/reports/1"),
        Moment(url="https://host.example/home", session_start=True),
        Moment(event="e1"),
        Moment(event="other"),
    ]
)


@pytest.mark.django_db
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    specs=st.lists(campaign_specs, min_size=1, max_size=4),
    population=st.lists(person_specs, min_size=1, max_size=3),
    moment=moments,
    quiet=st.booleans(),
)
def test_explain_decisions_equal_evaluate_dry_run(
    specs: list[dict[str, Any]], population: list[dict[str, Any]], moment: Moment, quiet: bool
) -> None:
    app = app_create(name=f"Prop {next(_apps)}", origins=["https://host.example"]).app
    if quiet:
        app.quiet_hours = {"start": "00:00", "end": "12:00"}
        app.save()
    for i, spec in enumerate(specs):
        spec = dict(spec)
        publish = spec.pop("publish")
        campaign = campaign_create(
            kind="message", app=app, data={"name": f"c{i}", "content": CONTENT, **spec}
        )
        if publish:
            campaign_publish(campaign=campaign)
    for index, person in enumerate(population):
        user = f"p{index}"
        if not person["known"]:
            continue
        person_identify(
            app=app, user_id=user, attributes={"plan": person["plan"]} if person["plan"] else {}
        )
        if person["e1"]:
            events_ingest(app=app, events=[EventInput(name="e1", user_id=user)] * person["e1"])
        for _ in range(person["shown_rounds"]):
            targeting_evaluate(app=app, user_id=user, anonymous_id=None, moment=Moment())
            for d in Delivery.objects.filter(
                person__user_id=user, shown_at__isnull=True, holdout=False
            ):
                delivery_event_record(app=app, delivery_id=d.pk, type="shown")
    for index in range(len(population)):
        user = f"p{index}"
        before = Delivery.objects.count()
        explanation = targeting_explain(app=app, user_id=user, anonymous_id=None, moment=moment)
        evaluation = targeting_evaluate(
            app=app, user_id=user, anonymous_id=None, moment=moment, dry_run=True
        )
        assert Delivery.objects.count() == before
        explained_shown = [(c.kind, c.id) for c in explanation.campaigns if c.decision == "shown"]
        assert explained_shown == [(i.kind, i.id) for i in evaluation.items]
        for c in explanation.campaigns:
            stopped = [r for r in c.reasons if r.reached and not r.passed]
            assert (c.decision == "shown") == (not stopped)
            if c.decision == "holdout":
                assert stopped[0].check == "holdout"


@settings(max_examples=200, deadline=None)
@given(
    tree=conditions,
    attributes=st.dictionaries(st.sampled_from(KEYS), attribute_values, max_size=3),
    history=events,
)
def test_node_walker_agrees_with_the_predicate_at_every_node(
    tree: dict[str, Any], attributes: dict[str, Any], history: list[Any]
) -> None:
    try:
        condition = parse_condition(tree)
    except ConditionInvalid:
        return
    facts = InMemoryFacts(
        attributes=attributes,
        now=NOW,
        events=[
            EventRecord(name=name, timestamp=NOW + timedelta(seconds=seconds), properties=props)
            for name, seconds, props in history
        ],
        segments=SEGMENTS,
    )
    explained = condition_explain(condition, facts)
    assert explained.passed == compile_predicate(condition)(facts)
    if explained.passed:
        assert explained.failures() == []
    else:
        assert explained.failures()
        assert all(not f.passed for f in explained.failures())
