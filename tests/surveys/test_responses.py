"""`POST /api/v1/responses` and `response_submit`: partial answers, retries, bad input."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connection

from engage.keys import user_hash_compute
from engage.models import Delivery
from engage.models_webhooks import WebhookMessage
from engage.services import app_create
from engage.webhooks import webhook_endpoint_create, webhook_verify
from segments.services import person_resolve
from surveys.models import Answer, AnswerTally, Response, ResponseTally
from surveys.services import response_submit
from tests.surveys.conftest import ORIGIN, submit, survey_create

pytestmark = pytest.mark.django_db


def stored() -> dict[str, Any]:
    """Everything a submit may change, to compare before and after."""
    return {
        "responses": list(Response.objects.values("id", "answers", "completed", "updated_at")),
        "answers": sorted(
            Answer.objects.values_list("question_id", "number", "choice", "text", "first")
        ),
        "tallies": sorted(
            AnswerTally.objects.filter(count__gt=0).values_list(
                "question_id", "number", "choice", "count"
            )
        ),
        "responses_tallied": sorted(
            ResponseTally.objects.filter(count__gt=0).values_list(
                "completed", "last_question", "count"
            )
        ),
    }


def test_same_id_three_times_partial_then_complete_is_one_response(public_client, survey):
    rid = str(uuid.uuid4())
    first = submit(public_client, survey["id"], {"recommend": 3}, response_id=rid)
    assert first.status_code == 200, first.content
    assert first.json()["completed"] is False
    submit(public_client, survey["id"], {"why": "Faster, please"}, response_id=rid)
    done = submit(public_client, survey["id"], {"satisfaction": 4}, response_id=rid, completed=True)
    assert done.status_code == 200
    body = done.json()
    assert body["id"] == rid
    assert body["completed"] is True
    assert body["answers"] == {"recommend": 3, "why": "Faster, please", "satisfaction": 4}
    assert Response.objects.count() == 1
    assert sorted(Answer.objects.values_list("question_id", flat=True)) == [
        "recommend",
        "satisfaction",
        "why",
    ]

    # A retry of any of the three changes nothing, and never un-completes.
    before = stored()
    again = submit(public_client, survey["id"], {"recommend": 3}, response_id=rid)
    assert again.status_code == 200
    assert again.json()["completed"] is True
    assert stored() == before


def test_later_answers_replace_earlier_ones_and_null_clears(public_client, secret_client, survey):
    rid = str(uuid.uuid4())
    submit(public_client, survey["id"], {"recommend": 3, "features": ["export"]}, response_id=rid)
    submit(
        public_client,
        survey["id"],
        {"recommend": 9, "features": ["alerts", {"other": "CLI"}], "why": "x"},
        response_id=rid,
    )
    response = submit(public_client, survey["id"], {"why": None}, response_id=rid)
    assert response.json()["answers"] == {
        "recommend": 9,
        "features": ["alerts", {"other": "CLI"}],
    }
    assert sorted(Answer.objects.values_list("question_id", "number", "choice", "text")) == [
        ("features", None, "alerts", None),
        ("features", None, "other", "CLI"),
        ("recommend", 9, None, None),
    ]
    summary = secret_client.get(f"/api/v1/surveys/{survey['id']}/summary").json()
    assert summary["nps"]["promoters"] == 1
    assert summary["nps"]["detractors"] == 0
    assert summary["questions"]["features"]["answered"] == 1
    assert summary["questions"]["features"]["selections"] == 2
    assert summary["questions"]["why"]["answered"] == 0


def test_an_invalid_update_changes_nothing_and_keeps_the_partial_response(public_client, survey):
    rid = str(uuid.uuid4())
    submit(public_client, survey["id"], {"recommend": 3, "why": "slow"}, response_id=rid)
    before = stored()

    bad = submit(public_client, survey["id"], {"why": "ok", "recommend": 12}, response_id=rid)
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == (
        "answers.recommend: a nps answer is a whole number from 0 to 10"
    )
    unknown = submit(public_client, survey["id"], {"whyy": "typo"}, response_id=rid)
    assert unknown.status_code == 400
    assert unknown.json()["error"] == {
        "code": "unknown_question",
        "message": 'answers.whyy: no question "whyy" in this survey',
    }
    # Completing without the required CSAT, which the logic still asks for a detractor.
    early = submit(public_client, survey["id"], {"why": "ok"}, response_id=rid, completed=True)
    assert early.status_code == 400
    assert early.json()["error"]["code"] == "required_answer"
    assert early.json()["error"]["message"].startswith("answers.satisfaction: a completed")
    assert stored() == before


def test_required_questions_follow_the_logic(public_client, survey):
    # recommend 10 jumps over "why" to "satisfaction", which is required.
    response = submit(public_client, survey["id"], {"recommend": 10}, completed=True)
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"missing": ["satisfaction"]}
    ok = submit(public_client, survey["id"], {"recommend": 10, "satisfaction": 5}, completed=True)
    assert ok.status_code == 200


def test_a_new_response_with_bad_answers_is_not_created(public_client, survey):
    response = submit(public_client, survey["id"], {"plan": "gold"})
    assert response.status_code == 400
    assert "answers.plan: 'gold' is not a choice" in response.json()["error"]["message"]
    assert Response.objects.count() == 0
    malformed = submit(public_client, survey["id"], {"recommend": 1}, response_id="not-a-uuid")
    assert malformed.status_code == 400
    assert malformed.json()["error"]["message"] == "id: the response id must be a UUID"
    anonymous = submit(public_client, survey["id"], {"recommend": 1}, user_id=None)
    assert anonymous.status_code == 400
    assert anonymous.json()["error"]["message"].startswith("user_id:")


def test_only_live_surveys_of_the_app_take_answers(
    public_client, secret_client, survey, other_app_keys, api_client
):
    draft = survey_create(secret_client, name="Draft")
    refused = submit(public_client, draft["id"], {"recommend": 1})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "survey_not_live"
    assert refused.json()["error"]["message"] == (
        f"survey_id: survey {draft['id']} is draft and takes no answers"
    )

    rid = str(uuid.uuid4())
    assert submit(public_client, survey["id"], {"recommend": 8}, response_id=rid).status_code == 200
    secret_client.post(f"/api/v1/surveys/{survey['id']}/pause")
    paused = submit(public_client, survey["id"], {"satisfaction": 2}, response_id=rid)
    assert paused.status_code == 400
    assert paused.json()["error"]["code"] == "survey_not_live"
    assert Response.objects.get().answers == {"recommend": 8}

    # Another App's key does not reach this survey at all.
    api_client.credentials(HTTP_X_ENGAGE_KEY=other_app_keys.public_key)
    foreign = submit(api_client, survey["id"], {"recommend": 1})
    assert foreign.status_code == 404
    assert foreign.json()["error"]["message"] == f"survey_id: no survey {survey['id']} in this App"


def test_a_response_id_cannot_be_reused_for_another_survey_or_person(
    public_client, secret_client, survey
):
    other = survey_create(secret_client, name="Other")
    secret_client.post(f"/api/v1/surveys/{other['id']}/publish")
    rid = str(uuid.uuid4())
    submit(public_client, survey["id"], {"recommend": 8}, response_id=rid)
    taken = submit(public_client, other["id"], {"recommend": 8}, response_id=rid)
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "response_id_taken"
    stolen = submit(public_client, survey["id"], {"recommend": 0}, response_id=rid, user_id="u2")
    assert stolen.status_code == 409
    assert Response.objects.get().answers == {"recommend": 8}


def test_completion_marks_the_delivery_answered_and_stops_showing_it(
    public_client, secret_client, survey
):
    ask = {"user_id": "u1", "event": "order_completed"}
    [item] = secret_client.post("/api/v1/targeting/evaluate", ask, format="json").json()["items"]
    rid = str(uuid.uuid4())
    partial = submit(
        public_client,
        survey["id"],
        {"recommend": 9},
        response_id=rid,
        delivery_id=item["delivery_id"],
    )
    assert partial.json()["delivery_id"] == item["delivery_id"]
    assert Delivery.objects.get().answered_at is None
    submit(public_client, survey["id"], {"satisfaction": 5}, response_id=rid, completed=True)
    delivery = Delivery.objects.get()
    assert delivery.answered_at is not None
    assert delivery.shown_at is not None
    assert secret_client.post("/api/v1/targeting/evaluate", ask, format="json").json() == {
        "items": []
    }


def test_without_a_delivery_id_the_open_delivery_is_linked(public_client, secret_client, survey):
    ask = {"user_id": "u1", "event": "order_completed"}
    [item] = secret_client.post("/api/v1/targeting/evaluate", ask, format="json").json()["items"]
    done = submit(public_client, survey["id"], {"recommend": 9, "satisfaction": 5}, completed=True)
    assert done.json()["delivery_id"] == item["delivery_id"]
    assert Delivery.objects.get().answered_at is not None


def test_a_delivery_of_someone_else_is_not_found(public_client, secret_client, survey):
    ask = {"user_id": "u1", "event": "order_completed"}
    [item] = secret_client.post("/api/v1/targeting/evaluate", ask, format="json").json()["items"]
    response = submit(
        public_client, survey["id"], {"recommend": 9}, user_id="u2", delivery_id=item["delivery_id"]
    )
    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith("delivery_id:")
    assert Response.objects.count() == 0


def test_widget_checks_origin_and_identity_hash(api_client, db):
    created = app_create(name="Strict", origins=[ORIGIN], identity_verification=True)
    app = created.app
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {created.secret_key}")
    survey = survey_create(api_client)
    api_client.post(f"/api/v1/surveys/{survey['id']}/publish")

    api_client.credentials(HTTP_X_ENGAGE_KEY=app.public_key)
    missing = submit(api_client, survey["id"], {"recommend": 5})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "identity_verification_failed"
    user_hash = user_hash_compute(identity_secret=app.identity_secret, user_id="u1")
    ok = submit(api_client, survey["id"], {"recommend": 5}, HTTP_X_ENGAGE_USER_HASH=user_hash)
    assert ok.status_code == 200, ok.content
    foreign_origin = api_client.post(
        "/api/v1/responses",
        {"id": str(uuid.uuid4()), "survey_id": survey["id"], "anonymous_id": "a1", "answers": {}},
        format="json",
        HTTP_ORIGIN="https://evil.example",
    )
    assert foreign_origin.status_code == 403
    assert foreign_origin.json()["error"]["code"] == "origin_not_allowed"


def test_anonymous_then_identified_keeps_one_response(public_client, survey):
    rid = str(uuid.uuid4())
    first = submit(
        public_client,
        survey["id"],
        {"recommend": 2},
        response_id=rid,
        user_id=None,
        anonymous_id="anon-1",
    )
    assert first.status_code == 200
    assert first.json()["user_id"] is None
    done = submit(
        public_client,
        survey["id"],
        {"satisfaction": 1},
        response_id=rid,
        anonymous_id="anon-1",
        completed=True,
    )
    assert done.json()["user_id"] == "u1"
    assert Response.objects.count() == 1


@pytest.fixture
def receiver() -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {"requests": [], "secret": ""}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            state["requests"].append(webhook_verify(state["secret"], headers, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_completion_sends_one_signed_response_completed_webhook(
    public_client, survey, app_keys, receiver, django_capture_on_commit_callbacks
):
    endpoint = webhook_endpoint_create(
        app=app_keys.app, url=receiver["url"], event_types=["response.completed"]
    )
    receiver["secret"] = endpoint.secret
    rid = str(uuid.uuid4())
    with django_capture_on_commit_callbacks(execute=True):
        submit(public_client, survey["id"], {"recommend": 10}, response_id=rid)
        submit(public_client, survey["id"], {"satisfaction": 5}, response_id=rid, completed=True)
        submit(public_client, survey["id"], {"satisfaction": 5}, response_id=rid, completed=True)
    assert WebhookMessage.objects.count() == 1
    [event] = receiver["requests"]
    assert event["type"] == "response.completed"
    data = event["data"]
    assert data["response_id"] == rid
    assert data["survey_id"] == survey["id"]
    assert data["answers"] == {"recommend": 10, "satisfaction": 5}
    assert data["person"] == {"user_id": "u1"}
    assert data["completed"] is True


def test_response_submit_is_the_door_for_every_transport(app_keys, secret_client, survey):
    """The websocket consumer calls the service with keyword arguments only."""
    response = response_submit(
        app=app_keys.app,
        survey_id=survey["id"],
        response_id=uuid.uuid4(),
        user_id=None,
        anonymous_id="anon-ws",
        delivery_id=None,
        answers={"recommend": 6},
        completed=False,
        locale="pt-BR",
    )
    assert response.locale == "pt-BR"
    assert response.person == person_resolve(
        app=app_keys.app, user_id=None, anonymous_id="anon-ws", create=False
    )
    with pytest.raises(TypeError):
        response_submit(app_keys.app, survey["id"])  # type: ignore[misc]


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_never_duplicate_or_lose_answers(postgres, app_keys, survey):
    """Eight workers send parts of one new response at once (PostgreSQL, real transactions)."""
    rid = uuid.uuid4()
    parts = [
        {"recommend": 4},
        {"why": "price"},
        {"satisfaction": 2},
        {"plan": "pro"},
        {"features": ["export"]},
        {"stars": 2},
        {"again": False},
        {"call": "dismissed"},
    ]
    failures: list[BaseException] = []
    start = threading.Barrier(len(parts))

    def send(answers: dict[str, Any]) -> None:
        try:
            start.wait()
            response_submit(
                app=app_keys.app,
                survey_id=survey["id"],
                response_id=rid,
                user_id="u1",
                anonymous_id=None,
                delivery_id=None,
                answers=answers,
                completed=False,
            )
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    response = Response.objects.get()
    assert response.answers == {k: v for part in parts for k, v in part.items()}
    assert Answer.objects.filter(question_id="features").count() == 1
    assert ResponseTally.objects.filter(count__gt=0).values_list("count", flat=True).get() == 1
    assert json.loads(json.dumps(response.answers)) == response.answers
