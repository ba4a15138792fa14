"""`/api/v1/surveys/`: authoring, lifecycle and how the engine shows surveys."""

from __future__ import annotations

import copy

import pytest

from surveys.models import Survey
from tests.surveys.conftest import QUESTIONS, SURVEY, submit, survey_create

pytestmark = pytest.mark.django_db


def test_create_publish_show_pause_archive(secret_client):
    created = survey_create(secret_client)
    assert created["status"] == "draft"
    assert created["questions"][1]["required"] is False
    assert created["thank_you"]["en"]["title"] == "Thanks!"
    survey_id = created["id"]

    ask = {"user_id": "u1", "event": "order_completed"}
    assert secret_client.post("/api/v1/targeting/evaluate", ask, format="json").json() == {
        "items": []
    }
    published = secret_client.post(f"/api/v1/surveys/{survey_id}/publish")
    assert published.json()["status"] == "live"

    items = secret_client.post("/api/v1/targeting/evaluate", ask, format="json").json()["items"]
    assert len(items) == 1
    item = items[0]
    assert (item["kind"], item["id"], item["display"]) == ("survey", survey_id, "modal")
    assert item["delay_seconds"] == 5
    content = item["content"]
    assert content["type"] == "survey"
    assert content["name"] == "NPS Q4"
    assert [q["id"] for q in content["questions"]] == [q["id"] for q in QUESTIONS]
    assert content["questions"][0]["logic"][0] == {
        "if": {"op": "lte", "value": 6},
        "jump_to": "why",
    }
    assert content["thank_you"]["body_html"] == "<p>We read <strong>every</strong> answer.</p>\n"

    assert secret_client.post(f"/api/v1/surveys/{survey_id}/pause/").json()["status"] == "paused"
    ask["user_id"] = "u2"
    assert secret_client.post("/api/v1/targeting/evaluate", ask, format="json").json() == {
        "items": []
    }
    archived = secret_client.post(f"/api/v1/surveys/{survey_id}/archive")
    assert archived.json()["status"] == "archived"
    again = secret_client.post(f"/api/v1/surveys/{survey_id}/publish")
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalid_transition"


def test_surveys_are_modals_so_only_the_top_one_shows(secret_client):
    low = survey_create(secret_client, name="Low", priority=1)
    high = survey_create(secret_client, name="High", priority=5)
    for survey in (low, high):
        secret_client.post(f"/api/v1/surveys/{survey['id']}/publish")
    ask = {"user_id": "u1", "event": "order_completed"}
    items = secret_client.post("/api/v1/targeting/evaluate", ask, format="json").json()["items"]
    assert [i["id"] for i in items] == [high["id"]]


def test_list_get_and_paths_with_or_without_slash(secret_client):
    created = survey_create(secret_client)
    listed = secret_client.get("/api/v1/surveys")
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()["results"]] == [created["id"]]
    assert listed.json()["next"] is None
    one = secret_client.get(f"/api/v1/surveys/{created['id']}/")
    assert one.json()["questions"][0]["id"] == "recommend"


def test_invalid_logic_is_refused_naming_the_path_and_nothing_is_saved(secret_client):
    bad = copy.deepcopy(QUESTIONS)
    bad[2]["logic"] = [{"if": {"op": "gte", "value": 4}, "jump_to": "why"}]
    response = secret_client.post("/api/v1/surveys/", {**SURVEY, "questions": bad}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_survey"
    assert error["message"] == 'questions[2].logic[0].jump_to: "why" is not after this question'
    assert Survey.objects.count() == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("questions", [], "questions: a survey needs a non-empty list of questions"),
        ("thank_you", {"en": "Thanks"}, 'thank_you.en: must be an object {"title", "body"}'),
        ("variants", [{"key": "a", "weight": 100}], "variants: at least two variants, or none"),
        ("trigger", {"on": "hover"}, "trigger.on: must be one of"),
    ],
)
def test_invalid_fields_are_refused(secret_client, field, value, message):
    response = secret_client.post("/api/v1/surveys/", {**SURVEY, field: value}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(message)


def test_a_bad_edit_leaves_the_survey_as_it_was(secret_client):
    created = survey_create(secret_client)
    bad = copy.deepcopy(QUESTIONS)
    bad[0]["logic"] = [{"if": {"op": "eq", "value": 5}, "jump_to": "recommend"}]
    response = secret_client.patch(
        f"/api/v1/surveys/{created['id']}", {"questions": bad}, format="json"
    )
    assert response.status_code == 400
    assert "questions[0].logic[0].jump_to" in response.json()["error"]["message"]
    assert Survey.objects.get().questions[0]["logic"] == created["questions"][0]["logic"]

    renamed = secret_client.patch(
        f"/api/v1/surveys/{created['id']}", {"name": "NPS Q1"}, format="json"
    )
    assert renamed.status_code == 200
    assert renamed.json()["questions"] == created["questions"]


def test_a_question_with_answers_keeps_its_type(secret_client, public_client, survey):
    assert submit(public_client, survey["id"], {"stars": 4}).status_code == 200
    changed = copy.deepcopy(survey["questions"])
    changed[5] = {"id": "stars", "type": "nps", "text": {"en": "Now out of ten"}}
    response = secret_client.patch(
        f"/api/v1/surveys/{survey['id']}", {"questions": changed}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(
        'questions[5].type: "stars" already has rating answers'
    )
    changed[5]["id"] = "stars_out_of_ten"
    response = secret_client.patch(
        f"/api/v1/surveys/{survey['id']}", {"questions": changed}, format="json"
    )
    assert response.status_code == 200


def test_keys_and_tenancy(public_client, secret_client, other_app_keys, api_client):
    created = survey_create(secret_client)
    assert public_client.get("/api/v1/surveys/").status_code == 403
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_app_keys.secret_key}")
    for path in ("", "/summary", "/responses", "/responses?format=csv", "/text-answers"):
        response = api_client.get(f"/api/v1/surveys/{created['id']}{path}")
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert api_client.post(f"/api/v1/surveys/{created['id']}/publish").status_code == 404


def test_the_openapi_schema_documents_the_survey_endpoints(api_client):
    schema = api_client.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    for path in (
        "/api/v1/responses/:",
        "/api/v1/surveys/{id}/summary/:",
        "/api/v1/surveys/{id}/responses/:",
        "/api/v1/surveys/{id}/text-answers/:",
        "text/csv:",
    ):
        assert path in text, path
