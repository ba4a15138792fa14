"""Answers: what each question type accepts, and how an answer is stored for aggregation.

An answer is the JSON value a respondent gave to one question (`answers[QUESTION_ID]`):

| type | value |
| --- | --- |
| nps | whole number 0–10 |
| rating | whole number 1–scale |
| csat | whole number 1–5 |
| single_choice | a choice id, or `{"other": "free text"}` when the question has "other" |
| multiple_choice | a non-empty list of distinct choice ids, plus at most one `{"other": "…"}` |
| open_text | a string (blank counts as unanswered) |
| yes_no | true or false |
| cta | "clicked" or "dismissed" |

`null` clears an earlier answer to that question. Pure functions: no database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engage import errors
from surveys.definition import OTHER, SCORED_TYPES, QuestionType, choice_ids, score_range

MAX_OPEN_TEXT = 10_000
MAX_OTHER_TEXT = 1_000
MAX_ANSWERS = 100


def _fail(path: str, message: str) -> errors.InvalidInput:
    return errors.InvalidInput(f"{path}: {message}", code="invalid_answer")


def _other_text(question: Mapping[str, Any], value: Mapping[str, Any], path: str) -> dict[str, str]:
    if not question.get("other"):
        raise _fail(path, "this question has no free-text other option")
    if set(value) != {"other"}:
        raise _fail(path, 'the other option is {"other": "free text"}')
    text = value["other"]
    if not isinstance(text, str) or not text.strip():
        raise _fail(f"{path}.other", "the free text of the other option, non-empty")
    if len(text) > MAX_OTHER_TEXT:
        raise _fail(f"{path}.other", f"at most {MAX_OTHER_TEXT} characters")
    return {"other": text}


def _known_choice(question: Mapping[str, Any], value: Any, path: str) -> str:
    known = [c for c in choice_ids(question) if c != OTHER]
    if not isinstance(value, str) or value not in known:
        raise _fail(path, f"{value!r} is not a choice of this question ({', '.join(known)})")
    return value


def answer_validate(question: Mapping[str, Any], value: Any, path: str) -> Any:
    """The clean answer to `question`, or None when it clears the question; 400 naming `path`."""
    if value is None:
        return None
    kind = question["type"]
    if kind in SCORED_TYPES:
        low, high = score_range(question)
        # JSON numbers from browsers may arrive as 7.0; a fraction is refused.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _fail(path, f"a {kind} answer is a whole number from {low} to {high}")
        return value
    if kind == QuestionType.YES_NO:
        if not isinstance(value, bool):
            raise _fail(path, "a yes_no answer is true or false")
        return value
    if kind == QuestionType.CTA:
        if value not in ("clicked", "dismissed"):
            raise _fail(path, 'a cta answer is "clicked" or "dismissed"')
        return value
    if kind == QuestionType.OPEN_TEXT:
        if not isinstance(value, str):
            raise _fail(path, "an open_text answer is a string")
        if len(value) > MAX_OPEN_TEXT:
            raise _fail(path, f"at most {MAX_OPEN_TEXT} characters")
        return value if value.strip() else None
    if kind == QuestionType.SINGLE_CHOICE:
        if isinstance(value, dict):
            return _other_text(question, value, path)
        return _known_choice(question, value, path)
    # multiple_choice
    if not isinstance(value, list):
        raise _fail(path, 'a multiple_choice answer is a list of choice ids (and {"other": …})')
    if not value:
        return None
    picked: list[Any] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        if isinstance(item, dict):
            if OTHER in seen:
                raise _fail(f"{path}[{i}]", "the other option is given twice")
            picked.append(_other_text(question, item, f"{path}[{i}]"))
            seen.add(OTHER)
            continue
        choice = _known_choice(question, item, f"{path}[{i}]")
        if choice in seen:
            raise _fail(f"{path}[{i}]", f'"{choice}" is given twice')
        seen.add(choice)
        picked.append(choice)
    return picked


def answers_validate(questions: Sequence[Mapping[str, Any]], answers: Any) -> dict[str, Any]:
    """Clean answers keyed by question id (None for a cleared one); 400 naming the first bad one.

    Unknown question ids are refused, so a typo in a client never loses an answer silently.
    """
    if not isinstance(answers, dict):
        raise _fail("answers", "an object {QUESTION_ID: value}")
    if len(answers) > MAX_ANSWERS:
        raise _fail("answers", f"at most {MAX_ANSWERS} answers")
    by_id = {q["id"]: q for q in questions}
    clean: dict[str, Any] = {}
    for question_id, value in answers.items():
        question = by_id.get(question_id)
        if question is None:
            raise errors.InvalidInput(
                f'answers.{question_id}: no question "{question_id}" in this survey',
                code="unknown_question",
            )
        clean[question_id] = answer_validate(question, value, f"answers.{question_id}")
    return clean


@dataclass(frozen=True)
class AnswerRow:
    """One row of the per-answer table: what summaries count and search.

    A multiple-choice answer has a row per picked choice; `first` marks one row per
    (response, question) so that "how many answered" is a plain count.
    """

    question_id: str
    number: int | None = None
    choice: str | None = None
    text: str | None = None
    first: bool = True


def answer_rows(question: Mapping[str, Any], value: Any) -> list[AnswerRow]:
    """The per-answer rows of one clean, non-null answer."""
    qid = question["id"]
    kind = question["type"]
    if kind in SCORED_TYPES:
        return [AnswerRow(qid, number=int(value))]
    if kind == QuestionType.YES_NO:
        return [AnswerRow(qid, number=1 if value else 0)]
    if kind == QuestionType.CTA:
        return [AnswerRow(qid, choice=str(value))]
    if kind == QuestionType.OPEN_TEXT:
        return [AnswerRow(qid, text=str(value))]
    items = value if kind == QuestionType.MULTIPLE_CHOICE else [value]
    rows = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            rows.append(AnswerRow(qid, choice=OTHER, text=item["other"], first=i == 0))
        else:
            rows.append(AnswerRow(qid, choice=item, first=i == 0))
    return rows
