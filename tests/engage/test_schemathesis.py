"""Schemathesis against `/api/schema/`: every documented operation, generated requests.

For each operation of the OpenAPI schema, a bounded number of generated requests (valid and
invalid ones) go through Django in-process with a real secret key of an App that has data
(a person, a segment, a message, a live survey). Two checks must hold for every answer:

- no server error (5xx): bad input is a 4xx with the JSON error body;
- an answer whose status code the schema documents conforms to the documented schema.

`ENGAGE_SCHEMATHESIS_EXAMPLES` sets the examples per operation and mode (default 6: the run
stays well under two minutes in CI).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from engage.campaigns import campaign_create, campaign_publish
from segments.services import EventInput, events_ingest, person_identify, segment_create
from tests.conftest import AppKeys
from tests.surveys.conftest import QUESTIONS

EXAMPLES = int(os.environ.get("ENGAGE_SCHEMATHESIS_EXAMPLES", "6"))
CHECKS = [not_a_server_error, response_schema_conformance]


def _schema() -> Any:
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


def _operations() -> list[Any]:
    return [result.ok() for result in _schema().get_all_operations()]


OPERATIONS = _operations()


@pytest.fixture
def data(app_keys: AppKeys) -> AppKeys:
    app = app_keys.app
    person_identify(app=app, user_id="u1", anonymous_id="a1", attributes={"plan": "pro"})
    events_ingest(app=app, events=[EventInput(name="clicked", user_id="u1")])
    segment_create(app=app, slug="power-users", name="Power", condition={"event": "clicked"})
    message = campaign_create(
        kind="message",
        app=app,
        data={"name": "M", "kind": "modal", "content": {"en": {"title": "Hi", "body": "x"}}},
    )
    campaign_publish(campaign=message)
    survey = campaign_create(kind="survey", app=app, data={"name": "S", "questions": QUESTIONS})
    campaign_publish(campaign=survey)
    return app_keys


def test_the_schema_documents_the_api():
    paths = {op.path for op in OPERATIONS}
    assert "/api/v1/events/" in paths
    assert "/api/v1/surveys/{id}/summary/" in paths
    assert len(OPERATIONS) >= 30


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_no_server_error_and_no_schema_violation(operation, data):
    headers = {"Authorization": f"Bearer {data.secret_key}"}

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            response = case.call(headers=headers)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            # Nothing of this operation can be made invalid (e.g. only free-form strings).
            assert mode is GenerationMode.NEGATIVE
