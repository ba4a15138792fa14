"""Survey definitions, branching and answers: the pure rules, without the database."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engage import errors
from surveys.answers import answer_rows, answers_validate
from surveys.definition import (
    content_render,
    definition_validate,
    question_path,
    questions_validate,
)
from tests.surveys.conftest import QUESTIONS


def questions(**changes: Any) -> list[dict[str, Any]]:
    """The fixture questions with `changes` applied as {"INDEX.key": value}."""
    result = copy.deepcopy(QUESTIONS)
    for where, value in changes.items():
        index, key = where.split("__", 1)
        result[int(index.lstrip("q"))][key] = value
    return result


def refused(raw: Any) -> str:
    with pytest.raises(errors.InvalidInput) as caught:
        questions_validate(raw)
    return caught.value.message


def test_valid_definition_is_cleaned_with_defaults():
    clean = questions_validate(QUESTIONS)
    assert [q["id"] for q in clean] == [q["id"] for q in QUESTIONS]
    assert clean[1]["required"] is False
    assert clean[5]["scale"] == 5
    assert clean[5]["display"] == "stars"
    assert clean[3]["other"] is True
    assert clean[3]["shuffle"] is False
    assert clean[0]["logic"][1] == {"if": {"op": "gte", "value": 9}, "jump_to": "satisfaction"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"q1__logic": [{"if": {"op": "is_set"}, "jump_to": "recommend"}]},
            'questions[1].logic[0].jump_to: "recommend" is not after this question',
        ),
        (
            {"q1__logic": [{"if": {"op": "is_set"}, "jump_to": "why"}]},
            'questions[1].logic[0].jump_to: "why" is not after this question',
        ),
        (
            {"q0__logic": [{"if": {"op": "eq", "value": 3}, "jump_to": "nowhere"}]},
            'questions[0].logic[0].jump_to: no question "nowhere" in this survey',
        ),
        (
            {"q0__logic": [{"if": {"op": "eq", "value": 11}, "jump_to": "end"}]},
            "questions[0].logic[0].if.value: a whole number from 0 to 10",
        ),
        (
            {"q0__logic": [{"if": {"op": "contains", "value": 3}, "jump_to": "end"}]},
            "questions[0].logic[0].if.op: unknown operator 'contains' for a nps question",
        ),
        (
            {"q3__logic": [{"if": {"op": "eq", "value": "gold"}, "jump_to": "end"}]},
            "questions[3].logic[0].if.value: 'gold' is not a choice of this question",
        ),
        (
            {"q0__logic": [{"if": {"op": "between", "value": [9, 2]}, "jump_to": "end"}]},
            "questions[0].logic[0].if.value: between takes [low, high] with low ≤ high",
        ),
        ({"q0__logic": [{"when": {}, "jump_to": "end"}]}, "questions[0].logic[0]: unknown field"),
        ({"q2__id": "recommend"}, 'questions[2].id: "recommend" is used by another question'),
        ({"q2__id": "end"}, 'questions[2].id: "end" is reserved'),
        ({"q2__type": "slider"}, "questions[2].type: must be one of nps, rating"),
        ({"q5__scale": 4}, "questions[5].scale: one of 3, 5, 7, 10"),
        ({"q5__display": "hearts"}, "questions[5].display: stars or numbers"),
        ({"q1__text": "Why?"}, "questions[1].text: must be an object of texts per locale"),
        ({"q1__text": {"en": "  "}}, "questions[1].text.en: must be a non-empty string"),
        ({"q1__choices": []}, "questions[1]: unknown field 'choices' for a open_text question"),
        (
            {"q3__choices": [{"id": "a", "label": {"en": "A"}}, {"id": "a", "label": {"en": "B"}}]},
            'questions[3].choices[1].id: "a" is used twice',
        ),
        (
            {"q3__choices": [{"id": "other", "label": {"en": "Other"}}]},
            'questions[3].choices[0].id: "other" is reserved',
        ),
        (
            {"q7__url": "javascript:alert(1)"},
            "questions[7].url: an http(s), mailto or relative URL",
        ),
        ({"q7__button": None}, "questions[7].button: must be an object of texts per locale"),
    ],
)
def test_invalid_definitions_name_the_path(changes, message):
    assert message in refused(questions(**changes))


def test_empty_or_malformed_question_lists_are_refused():
    assert refused([]) == "questions: a survey needs a non-empty list of questions"
    assert refused({"id": "x"}) == "questions: a survey needs a non-empty list of questions"
    assert refused(["nps"]) == "questions[0]: must be an object"


def test_variants_name_known_questions_and_weigh_100():
    base = {"questions": QUESTIONS, "thank_you": {}}
    with pytest.raises(errors.InvalidInput, match=r'variants\[1\].texts: no question "nope"'):
        definition_validate(
            **base,
            variants=[
                {"key": "a", "weight": 50},
                {"key": "b", "weight": 50, "texts": {"nope": {"en": "?"}}},
            ],
        )
    with pytest.raises(errors.InvalidInput, match="variants: weights must sum to 100, not 90"):
        definition_validate(
            **base, variants=[{"key": "a", "weight": 40}, {"key": "b", "weight": 50}]
        )


def test_thank_you_needs_a_title_or_body():
    with pytest.raises(errors.InvalidInput, match=r"thank_you.en: needs a title or a body"):
        definition_validate(questions=QUESTIONS, thank_you={"en": {"title": " "}}, variants=[])


def test_logic_decides_the_path():
    clean = questions_validate(QUESTIONS)
    everything = [q["id"] for q in clean]
    # A detractor is asked why; a promoter skips it; a passive goes on in order.
    assert question_path(clean, {"recommend": 3}) == everything
    assert question_path(clean, {"recommend": 10}) == [i for i in everything if i != "why"]
    assert question_path(clean, {"recommend": 7}) == everything
    with_end = questions(q0__logic=[{"if": {"op": "in", "value": [0, 1]}, "jump_to": "end"}])
    assert question_path(questions_validate(with_end), {"recommend": 1}) == ["recommend"]


def test_unanswered_question_matches_only_is_not_set():
    raw = questions(
        q1__logic=[
            {"if": {"op": "not_contains", "value": "price"}, "jump_to": "stars"},
            {"if": {"op": "is_not_set"}, "jump_to": "call"},
        ]
    )
    clean = questions_validate(raw)
    path = question_path(clean, {"recommend": 3})
    assert path == ["recommend", "why", "call"]
    assert question_path(clean, {"recommend": 3, "why": "cheap"})[2] == "stars"


def test_multiple_choice_logic_operators():
    raw = questions(
        q4__logic=[
            {"if": {"op": "contains_all", "value": ["export", "alerts"]}, "jump_to": "call"},
            {"if": {"op": "contains", "value": "other"}, "jump_to": "again"},
        ]
    )
    clean = questions_validate(raw)
    tail = question_path(clean, {"recommend": 7, "features": ["alerts", "export"]})[-2:]
    assert tail == ["features", "call"]
    assert "again" in question_path(clean, {"recommend": 7, "features": [{"other": "x"}]})
    assert "stars" in question_path(clean, {"recommend": 7, "features": ["export"]})


def test_content_resolves_locales_variants_and_sanitises_the_thank_you():
    definition = definition_validate(
        questions=QUESTIONS,
        thank_you={
            "en": {
                "title": "Thanks",
                "body": "<script>x()</script> [bad](javascript:x) [good](https://a.example)",
            },
            "de": {"title": "Danke"},
        },
        variants=[
            {"key": "a", "weight": 50},
            {"key": "b", "weight": 50, "texts": {"recommend": {"en": "Recommend us?"}}},
        ],
    )
    render = {
        "name": "NPS",
        "questions": definition.questions,
        "thank_you": definition.thank_you,
        "variants": definition.variants,
        "default_locale": "en",
    }
    german = content_render(**render, locale="de-AT", variant="a")
    assert german["locale"] == "de"
    assert german["questions"][0]["text"] == "Wie wahrscheinlich …?"
    assert german["questions"][1]["text"] == "What should we improve?"  # falls back to en
    assert german["thank_you"] == {"title": "Danke", "body_html": ""}
    english = content_render(**render, locale="ja", variant="b")
    assert english["locale"] == "en"
    assert english["questions"][0]["text"] == "Recommend us?"
    assert english["questions"][0]["scale"] == {"min": 0, "max": 10}
    assert english["questions"][3]["choices"] == [
        {"id": "free", "label": "Free"},
        {"id": "pro", "label": "Pro, yearly"},
    ]
    assert english["questions"][7]["button"] == {
        "label": "Book a call",
        "url": "https://host.example/call",
    }
    body = english["thank_you"]["body_html"]
    assert "<script>" not in body
    assert "&lt;script&gt;" in body
    assert 'href="javascript' not in body
    assert '<a href="https://a.example" rel="noopener noreferrer nofollow">good</a>' in body


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"recommend": 11}, "answers.recommend: a nps answer is a whole number from 0 to 10"),
        ({"recommend": 7.5}, "answers.recommend: a nps answer is a whole number from 0 to 10"),
        ({"recommend": "7"}, "answers.recommend: a nps answer is a whole number from 0 to 10"),
        ({"recommend": True}, "answers.recommend: a nps answer is a whole number from 0 to 10"),
        ({"stars": 6}, "answers.stars: a rating answer is a whole number from 1 to 5"),
        ({"satisfaction": 0}, "answers.satisfaction: a csat answer is a whole number from 1 to 5"),
        ({"plan": "gold"}, "answers.plan: 'gold' is not a choice of this question (free, pro)"),
        ({"plan": {"other": ""}}, "answers.plan.other: the free text of the other option"),
        ({"features": ["export", "export"]}, 'answers.features[1]: "export" is given twice'),
        ({"features": "export"}, "answers.features: a multiple_choice answer is a list"),
        ({"again": "yes"}, "answers.again: a yes_no answer is true or false"),
        ({"call": "opened"}, 'answers.call: a cta answer is "clicked" or "dismissed"'),
        ({"why": 42}, "answers.why: an open_text answer is a string"),
        ({"nope": 1}, 'answers.nope: no question "nope" in this survey'),
        ([1, 2], "answers: an object {QUESTION_ID: value}"),
    ],
)
def test_invalid_answers_name_the_question(answers, message):
    with pytest.raises(errors.InvalidInput) as caught:
        answers_validate(questions_validate(QUESTIONS), answers)
    assert message in caught.value.message


def test_answers_are_cleaned_and_split_into_rows():
    clean_questions = questions_validate(QUESTIONS)
    clean = answers_validate(
        clean_questions,
        {"recommend": 9.0, "why": "   ", "features": ["alerts", {"other": "CLI"}], "plan": None},
    )
    assert clean == {
        "recommend": 9,
        "why": None,
        "features": ["alerts", {"other": "CLI"}],
        "plan": None,
    }
    rows = answer_rows(clean_questions[4], clean["features"])
    assert [(r.choice, r.text, r.first) for r in rows] == [
        ("alerts", None, True),
        ("other", "CLI", False),
    ]
    assert [r.number for r in answer_rows(clean_questions[6], False)] == [0]
