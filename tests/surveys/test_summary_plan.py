"""The summaries read from the rows (segment filter, cut days) group by keys whose number of
distinct values PostgreSQL knows from the statistics of migration 0004: it then hashes in
parallel instead of sorting a million-group estimate. These tests fail if the selector's day
expression drifts from the statistics' one (or the statistics are gone)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from engage.campaigns import campaign_create, campaign_publish
from segments.models import Person, Segment
from surveys.models import Answer, Response, Survey
from surveys.selectors import ResponseFilters, _segment_plan, survey_summary
from tests.surveys.conftest import QUESTIONS

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

START = datetime(2024, 5, 1, tzinfo=UTC)
DAYS = 3
RESPONSES = 900


@pytest.fixture
def busy(app_keys) -> Survey:
    """900 responses at distinct instants over 3 UTC days, an NPS answer row each."""
    app = app_keys.app
    survey = campaign_create(kind="survey", app=app, data={"name": "Busy", "questions": QUESTIONS})
    campaign_publish(campaign=survey)
    Segment.objects.create(
        app=app, slug="pro", name="Pro", condition={"attribute": "plan", "op": "eq", "value": "pro"}
    )
    people = Person.objects.bulk_create(
        Person(
            app=app,
            user_id=f"u{i}",
            attributes={"plan": "pro" if i % 2 else "free"},
            first_seen=START,
            last_seen=START,
        )
        for i in range(100)
    )
    responses, answers = [], []
    for n in range(RESPONSES):
        at = START + timedelta(seconds=n * DAYS * 86_400 // RESPONSES)
        response = Response(
            id=uuid.uuid4(),
            app=app,
            survey_id=survey.pk,
            person=people[n % len(people)],
            answers={"recommend": n % 11},
            last_question="recommend",
            created_at=at,
            updated_at=at,
        )
        responses.append(response)
        answers.append(
            Answer(
                response=response,
                survey_id=survey.pk,
                person_id=response.person_id,
                question_id="recommend",
                number=n % 11,
                created_at=at,
            )
        )
    Response.objects.bulk_create(responses)
    Answer.objects.bulk_create(answers)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE surveys_response, surveys_answer")
    return Survey.objects.select_related("app").get(pk=survey.pk)


def _estimated_groups(sql: str) -> float:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        raw = cursor.fetchone()[0]
    plan: dict[str, Any] = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    while plan["Node Type"] != "Aggregate":
        plan = plan["Plans"][0]
    return float(plan["Plan Rows"])


@pytest.mark.parametrize("filters", [ResponseFilters(segment="pro"), ResponseFilters()])
def test_the_planner_expects_the_true_number_of_groups(postgres, busy, filters):
    with CaptureQueriesContext(connection) as queries:
        summary = survey_summary(survey=busy, filters=filters, source="rows")
    assert summary.responses == (RESPONSES // 2 if filters.segment else RESPONSES)
    grouped = [q["sql"] for q in queries.captured_queries if "GROUP BY" in q["sql"]]
    assert len(grouped) == 2  # responses, answer rows
    responses_sql, answers_sql = grouped
    # True groups: 3 days × (completed, last question) = 3, and 3 days × 11 scores = 33.
    # Without the statistics the day counts as distinct as the instants (900).
    assert _estimated_groups(responses_sql) <= 3 * 4
    assert _estimated_groups(answers_sql) <= 33 * 4


def _scans(sql: str) -> list[tuple[str, str, str]]:
    """(node type, index or table, index condition) of every scan in the statement's plan."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        raw = cursor.fetchone()[0]
    found: list[tuple[str, str, str]] = []
    pending = [(json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]]
    while pending:
        node = pending.pop()
        if "Scan" in node["Node Type"]:
            name = node.get("Index Name", node.get("Relation Name", ""))
            found.append((node["Node Type"], name, node.get("Index Cond", "")))
        pending += node.get("Plans", [])
    return found


@pytest.mark.django_db(transaction=True)
def test_a_segment_filter_reads_its_members_rows_from_the_person_indexes(postgres, busy):
    with connection.cursor() as cursor:  # the pages all-visible, as autovacuum keeps them
        cursor.execute("VACUUM ANALYZE surveys_response, surveys_answer")
    filters = ResponseFilters(segment="pro")
    with CaptureQueriesContext(connection) as queries:
        survey_summary(survey=busy, filters=filters, source="rows")
    grouped = [q["sql"] for q in queries.captured_queries if "GROUP BY" in q["sql"]]
    for sql, index in zip(grouped, ["response_person_survey", "answer_person_survey"], strict=True):
        with _segment_plan(filters):
            scans = _scans(sql)
        # Each member's rows looked up by person, and read from the index alone.
        assert any(
            kind == "Index Only Scan" and name == index and "person_id =" in cond
            for kind, name, cond in scans
        ), scans
        assert not any(name in ("surveys_response", "surveys_answer") for _, name, _ in scans)
