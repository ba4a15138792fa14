"""What a survey is made of: questions, branching logic, thank-you screen and variants.

Everything here is pure (no database): validation of a definition, with errors that name the
path to the bad part (`questions[1].logic[0].jump_to: "why" is not after this question`),
the branching rules shared by validation and by response completion, and the rendering of a
survey into what the widget shows for one locale.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

import nh3
from markdown_it import MarkdownIt

from engage import errors

MAX_QUESTIONS = 50
MAX_CHOICES = 50
MAX_RULES = 20
MAX_TEXT = 1000
MAX_BODY = 5000
MAX_LOCALES = 50
END = "end"
# The choice id that stands for the free-text "other" option of a choice question.
OTHER = "other"
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
LOCALE_PATTERN = re.compile(r"^[A-Za-z]{2,8}([_-][A-Za-z0-9]{1,8}){0,3}$")
RATING_SCALES = (3, 5, 7, 10)
RATING_DISPLAYS = ("stars", "numbers")
CTA_VALUES = ("clicked", "dismissed")


class QuestionType(StrEnum):
    NPS = "nps"
    RATING = "rating"
    CSAT = "csat"
    SINGLE_CHOICE = "single_choice"
    MULTIPLE_CHOICE = "multiple_choice"
    OPEN_TEXT = "open_text"
    YES_NO = "yes_no"
    CTA = "cta"


SCORED_TYPES = frozenset({QuestionType.NPS, QuestionType.RATING, QuestionType.CSAT})
CHOICE_TYPES = frozenset({QuestionType.SINGLE_CHOICE, QuestionType.MULTIPLE_CHOICE})

COMMON_KEYS = frozenset({"id", "type", "text", "description", "required", "logic"})
TYPE_KEYS: dict[QuestionType, frozenset[str]] = {
    QuestionType.NPS: frozenset({"labels"}),
    QuestionType.RATING: frozenset({"scale", "display", "labels"}),
    QuestionType.CSAT: frozenset({"labels"}),
    QuestionType.SINGLE_CHOICE: frozenset({"choices", "other", "other_label", "shuffle"}),
    QuestionType.MULTIPLE_CHOICE: frozenset({"choices", "other", "other_label", "shuffle"}),
    QuestionType.OPEN_TEXT: frozenset({"placeholder"}),
    QuestionType.YES_NO: frozenset({"labels"}),
    QuestionType.CTA: frozenset({"button", "url"}),
}
LABEL_KEYS: dict[QuestionType, tuple[str, ...]] = {
    QuestionType.NPS: ("low", "high"),
    QuestionType.RATING: ("low", "high"),
    QuestionType.CSAT: ("low", "high"),
    QuestionType.YES_NO: ("yes", "no"),
}

# Logic operators each question type accepts.
NUMBER_OPS = ("eq", "neq", "lt", "lte", "gt", "gte", "between", "in", "not_in")
PRESENCE_OPS = ("is_set", "is_not_set")
TYPE_OPS: dict[QuestionType, tuple[str, ...]] = {
    QuestionType.NPS: (*NUMBER_OPS, *PRESENCE_OPS),
    QuestionType.RATING: (*NUMBER_OPS, *PRESENCE_OPS),
    QuestionType.CSAT: (*NUMBER_OPS, *PRESENCE_OPS),
    QuestionType.SINGLE_CHOICE: ("eq", "neq", "in", "not_in", *PRESENCE_OPS),
    QuestionType.MULTIPLE_CHOICE: (
        "contains",
        "not_contains",
        "contains_any",
        "contains_all",
        *PRESENCE_OPS,
    ),
    QuestionType.OPEN_TEXT: ("contains", "not_contains", *PRESENCE_OPS),
    QuestionType.YES_NO: ("eq", "neq", *PRESENCE_OPS),
    QuestionType.CTA: ("eq", "neq", *PRESENCE_OPS),
}


def score_range(question: Mapping[str, Any]) -> tuple[int, int]:
    """The whole numbers a scored question accepts: NPS 0–10, CSAT 1–5, rating 1–scale."""
    kind = question["type"]
    if kind == QuestionType.NPS:
        return 0, 10
    if kind == QuestionType.CSAT:
        return 1, 5
    return 1, int(question.get("scale", 5))


def choice_ids(question: Mapping[str, Any]) -> list[str]:
    """The choice ids a choice question accepts, with `other` when it has the free-text option."""
    ids = [c["id"] for c in question.get("choices", [])]
    if question.get("other"):
        ids.append(OTHER)
    return ids


# --- validation of a definition ---------------------------------------------------------------


def _fail(path: str, message: str, code: str = "invalid_survey") -> errors.InvalidInput:
    return errors.InvalidInput(f"{path}: {message}", code=code)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def localized_validate(value: Any, path: str, *, max_length: int = MAX_TEXT) -> dict[str, str]:
    """A clean `{locale: text}` with at least one non-blank text."""
    if isinstance(value, str):
        raise _fail(path, f'must be an object of texts per locale, e.g. {{"en": "{value[:40]}"}}')
    if not isinstance(value, dict) or not value:
        raise _fail(path, 'must be an object of texts per locale, e.g. {"en": "…"}')
    if len(value) > MAX_LOCALES:
        raise _fail(path, f"at most {MAX_LOCALES} locales")
    clean: dict[str, str] = {}
    for locale, text in value.items():
        if not isinstance(locale, str) or not LOCALE_PATTERN.match(locale):
            raise _fail(path, f'"{locale}" is not a locale tag like en or pt-BR')
        if not isinstance(text, str) or not text.strip():
            raise _fail(f"{path}.{locale}", "must be a non-empty string")
        if len(text) > max_length:
            raise _fail(f"{path}.{locale}", f"at most {max_length} characters")
        clean[locale] = text
    return clean


def _bool(question: Mapping[str, Any], key: str, path: str) -> bool:
    value = question.get(key, False)
    if not isinstance(value, bool):
        raise _fail(f"{path}.{key}", "must be true or false")
    return value


def url_safe(url: str) -> bool:
    """http(s), mailto, or a relative URL: never javascript: or data:."""
    lowered = url.strip().lower()
    if lowered.startswith(("/", "#", "?")) and not lowered.startswith("//"):
        return True
    return ":" in lowered and lowered.split(":", 1)[0] in {"http", "https", "mailto"}


def _choices_validate(question: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
    choices = question.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _fail(f"{path}.choices", "a choice question needs a list of choices")
    if len(choices) > MAX_CHOICES:
        raise _fail(f"{path}.choices", f"at most {MAX_CHOICES} choices")
    seen: set[str] = set()
    clean = []
    for i, choice in enumerate(choices):
        cpath = f"{path}.choices[{i}]"
        if not isinstance(choice, dict):
            raise _fail(cpath, 'must be an object {"id", "label"}')
        unknown = set(choice) - {"id", "label"}
        if unknown:
            raise _fail(cpath, f"unknown field {sorted(unknown)[0]!r}")
        choice_id = choice.get("id")
        if not isinstance(choice_id, str) or not ID_PATTERN.match(choice_id):
            raise _fail(
                f"{cpath}.id",
                "1 to 64 letters, digits, _ or -, starting with a letter or digit",
            )
        if choice_id == OTHER:
            raise _fail(f"{cpath}.id", '"other" is reserved: set "other": true instead')
        if choice_id in seen:
            raise _fail(f"{cpath}.id", f'"{choice_id}" is used twice')
        seen.add(choice_id)
        clean.append(
            {"id": choice_id, "label": localized_validate(choice.get("label"), f"{cpath}.label")}
        )
    return clean


def _question_validate(question: Any, path: str, seen_ids: set[str]) -> dict[str, Any]:
    if not isinstance(question, dict):
        raise _fail(path, "must be an object")
    raw_id = question.get("id")
    if not isinstance(raw_id, str) or not ID_PATTERN.match(raw_id):
        raise _fail(
            f"{path}.id", "1 to 64 letters, digits, _ or -, starting with a letter or digit"
        )
    if raw_id == END:
        raise _fail(f"{path}.id", '"end" is reserved for logic jumps')
    if raw_id in seen_ids:
        raise _fail(f"{path}.id", f'"{raw_id}" is used by another question')
    seen_ids.add(raw_id)
    try:
        kind = QuestionType(str(question.get("type")))
    except ValueError:
        raise _fail(
            f"{path}.type", f"must be one of {', '.join(t.value for t in QuestionType)}"
        ) from None
    unknown = set(question) - COMMON_KEYS - TYPE_KEYS[kind]
    if unknown:
        raise _fail(path, f"unknown field {sorted(unknown)[0]!r} for a {kind.value} question")
    clean: dict[str, Any] = {
        "id": raw_id,
        "type": kind.value,
        "text": localized_validate(question.get("text"), f"{path}.text"),
        "required": _bool(question, "required", path),
    }
    if question.get("description") is not None:
        clean["description"] = localized_validate(
            question["description"], f"{path}.description", max_length=MAX_BODY
        )
    if kind in LABEL_KEYS and question.get("labels") is not None:
        labels = question["labels"]
        allowed = LABEL_KEYS[kind]
        if not isinstance(labels, dict) or set(labels) - set(allowed):
            raise _fail(f"{path}.labels", f"an object with {' and/or '.join(allowed)}")
        clean["labels"] = {
            key: localized_validate(text, f"{path}.labels.{key}") for key, text in labels.items()
        }
    if kind == QuestionType.RATING:
        scale = question.get("scale", 5)
        if not _is_int(scale) or scale not in RATING_SCALES:
            raise _fail(f"{path}.scale", f"one of {', '.join(map(str, RATING_SCALES))}")
        display = question.get("display", "stars")
        if display not in RATING_DISPLAYS:
            raise _fail(f"{path}.display", "stars or numbers")
        if display == "stars" and scale == 10:
            raise _fail(f"{path}.display", "a 10-point scale shows as numbers, not stars")
        clean["scale"] = scale
        clean["display"] = display
    if kind in CHOICE_TYPES:
        clean["choices"] = _choices_validate(question, path)
        clean["other"] = _bool(question, "other", path)
        clean["shuffle"] = _bool(question, "shuffle", path)
        if question.get("other_label") is not None:
            if not clean["other"]:
                raise _fail(f"{path}.other_label", 'only with "other": true')
            clean["other_label"] = localized_validate(
                question["other_label"], f"{path}.other_label"
            )
    if kind == QuestionType.OPEN_TEXT and question.get("placeholder") is not None:
        clean["placeholder"] = localized_validate(question["placeholder"], f"{path}.placeholder")
    if kind == QuestionType.CTA:
        clean["button"] = localized_validate(question.get("button"), f"{path}.button")
        url = question.get("url")
        if url is not None:
            if not isinstance(url, str) or not url_safe(url) or len(url) > 2000:
                raise _fail(f"{path}.url", "an http(s), mailto or relative URL", code="unsafe_url")
            clean["url"] = url
    return clean


def _number_value(question: Mapping[str, Any], value: Any, path: str) -> int:
    low, high = score_range(question)
    if not _is_int(value) or not low <= value <= high:
        raise _fail(path, f"a whole number from {low} to {high}")
    return int(value)


def _choice_value(question: Mapping[str, Any], value: Any, path: str) -> str:
    ids = choice_ids(question)
    if not isinstance(value, str) or value not in ids:
        raise _fail(path, f"{value!r} is not a choice of this question ({', '.join(ids)})")
    return value


def _list_of(value: Any, path: str, item: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _fail(path, "a non-empty list")
    return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]


def _rule_value(question: Mapping[str, Any], op: str, value: Any, path: str) -> Any:
    """The clean `value` of a logic rule for this question type and operator."""
    kind = question["type"]
    if op in PRESENCE_OPS:
        if value is not None:
            raise _fail(path, f"{op} takes no value")
        return None
    if kind in SCORED_TYPES:
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise _fail(path, "between takes [low, high]")
            low = _number_value(question, value[0], f"{path}[0]")
            high = _number_value(question, value[1], f"{path}[1]")
            if low > high:
                raise _fail(path, "between takes [low, high] with low ≤ high")
            return [low, high]
        if op in ("in", "not_in"):
            return _list_of(value, path, lambda v, p: _number_value(question, v, p))
        return _number_value(question, value, path)
    if kind == QuestionType.YES_NO:
        if not isinstance(value, bool):
            raise _fail(path, "true (yes) or false (no)")
        return value
    if kind == QuestionType.CTA:
        if value not in CTA_VALUES:
            raise _fail(path, "clicked or dismissed")
        return value
    if kind == QuestionType.SINGLE_CHOICE:
        if op in ("in", "not_in"):
            return _list_of(value, path, lambda v, p: _choice_value(question, v, p))
        return _choice_value(question, value, path)
    if kind == QuestionType.MULTIPLE_CHOICE:
        if op in ("contains_any", "contains_all"):
            return _list_of(value, path, lambda v, p: _choice_value(question, v, p))
        return _choice_value(question, value, path)
    # open_text: contains / not_contains a piece of text
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise _fail(path, "a non-empty piece of text")
    return value


def _logic_validate(
    question: Mapping[str, Any], raw: Any, path: str, index: int, positions: Mapping[str, int]
) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _fail(path, 'a list of rules {"if": {"op", "value"}, "jump_to"}')
    if len(raw) > MAX_RULES:
        raise _fail(path, f"at most {MAX_RULES} rules")
    kind = QuestionType(question["type"])
    clean = []
    for i, rule in enumerate(raw):
        rpath = f"{path}[{i}]"
        if not isinstance(rule, dict):
            raise _fail(rpath, 'must be an object {"if": {"op", "value"}, "jump_to"}')
        unknown = set(rule) - {"if", "jump_to"}
        if unknown:
            raise _fail(rpath, f"unknown field {sorted(unknown)[0]!r}")
        condition = rule.get("if")
        if not isinstance(condition, dict):
            raise _fail(f"{rpath}.if", 'must be an object {"op", "value"}')
        unknown = set(condition) - {"op", "value"}
        if unknown:
            raise _fail(f"{rpath}.if", f"unknown field {sorted(unknown)[0]!r}")
        op = condition.get("op")
        if op not in TYPE_OPS[kind]:
            raise _fail(
                f"{rpath}.if.op",
                f"unknown operator {op!r} for a {kind.value} question; "
                f"use one of {', '.join(TYPE_OPS[kind])}",
            )
        value = _rule_value(question, op, condition.get("value"), f"{rpath}.if.value")
        target = rule.get("jump_to")
        if not isinstance(target, str):
            raise _fail(f"{rpath}.jump_to", 'a question id or "end"')
        if target != END:
            if target not in positions:
                raise _fail(f"{rpath}.jump_to", f'no question "{target}" in this survey')
            # Jumps only go forward, so no path can loop back: no cycle is possible.
            if positions[target] <= index:
                raise _fail(f"{rpath}.jump_to", f'"{target}" is not after this question')
        if_clean: dict[str, Any] = {"op": op}
        if value is not None:
            if_clean["value"] = value
        clean.append({"if": if_clean, "jump_to": target})
    return clean


def questions_validate(questions: Any) -> list[dict[str, Any]]:
    """Clean, ordered questions with validated logic; 400 naming the first bad path."""
    if not isinstance(questions, list) or not questions:
        raise _fail("questions", "a survey needs a non-empty list of questions")
    if len(questions) > MAX_QUESTIONS:
        raise _fail("questions", f"at most {MAX_QUESTIONS} questions")
    seen: set[str] = set()
    clean = [_question_validate(q, f"questions[{i}]", seen) for i, q in enumerate(questions)]
    positions = {q["id"]: i for i, q in enumerate(clean)}
    for i, question in enumerate(clean):
        logic = _logic_validate(
            question, questions[i].get("logic"), f"questions[{i}].logic", i, positions
        )
        if logic:
            question["logic"] = logic
    return clean


def thank_you_validate(thank_you: Any) -> dict[str, Any]:
    """`{locale: {"title", "body" (markdown)}}`; empty means no thank-you screen."""
    if thank_you in (None, {}):
        return {}
    if not isinstance(thank_you, dict):
        raise _fail("thank_you", 'an object per locale, e.g. {"en": {"title", "body"}}')
    clean: dict[str, Any] = {}
    for locale, entry in thank_you.items():
        path = f"thank_you.{locale}"
        if not isinstance(locale, str) or not LOCALE_PATTERN.match(locale):
            raise _fail("thank_you", f'"{locale}" is not a locale tag like en or pt-BR')
        if not isinstance(entry, dict):
            raise _fail(path, 'must be an object {"title", "body"}')
        unknown = set(entry) - {"title", "body"}
        if unknown:
            raise _fail(path, f"unknown field {sorted(unknown)[0]!r}")
        title = entry.get("title", "")
        body = entry.get("body", "")
        if not isinstance(title, str) or len(title) > 300:
            raise _fail(f"{path}.title", "a string of at most 300 characters")
        if not isinstance(body, str) or len(body) > MAX_BODY:
            raise _fail(f"{path}.body", f"markdown of at most {MAX_BODY} characters")
        if not title.strip() and not body.strip():
            raise _fail(path, "needs a title or a body")
        clean[locale] = {"title": title, "body": body}
    return clean


def variants_validate(
    variants: Any, questions: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """A/B variants of the question wording: keys unique, weights summing to 100.

    `[{"key", "weight", "texts"?: {QUESTION_ID: {locale: text}}}]`: a variant replaces the
    text of the questions it names; ids, types, choices and logic stay the same, so answers of
    every variant compare in one summary (filter it by `variant`).
    """
    if variants in (None, []):
        return []
    if not isinstance(variants, list) or len(variants) < 2:
        raise _fail("variants", "at least two variants, or none")
    ids = {q["id"] for q in questions}
    seen: set[str] = set()
    clean = []
    for i, variant in enumerate(variants):
        path = f"variants[{i}]"
        if not isinstance(variant, dict):
            raise _fail(path, "must be an object")
        unknown = set(variant) - {"key", "weight", "texts"}
        if unknown:
            raise _fail(path, f"unknown field {sorted(unknown)[0]!r}")
        key = variant.get("key")
        if not isinstance(key, str) or not ID_PATTERN.match(key):
            raise _fail(f"{path}.key", "1 to 64 letters, digits, _ or -")
        if key in seen:
            raise _fail(f"{path}.key", f'"{key}" is used twice')
        seen.add(key)
        weight = variant.get("weight")
        if not isinstance(weight, int) or isinstance(weight, bool) or weight <= 0:
            raise _fail(f"{path}.weight", "a positive whole number")
        entry: dict[str, Any] = {"key": key, "weight": weight}
        texts = variant.get("texts")
        if texts is not None:
            if not isinstance(texts, dict):
                raise _fail(f"{path}.texts", "an object {QUESTION_ID: {locale: text}}")
            for question_id in texts:
                if question_id not in ids:
                    raise _fail(f"{path}.texts", f'no question "{question_id}" in this survey')
            entry["texts"] = {
                qid: localized_validate(text, f"{path}.texts.{qid}") for qid, text in texts.items()
            }
        clean.append(entry)
    total = sum(v["weight"] for v in clean)
    if total != 100:
        raise _fail("variants", f"weights must sum to 100, not {total}")
    return clean


@dataclass(frozen=True)
class Definition:
    questions: list[dict[str, Any]]
    thank_you: dict[str, Any]
    variants: list[dict[str, Any]]


def definition_validate(*, questions: Any, thank_you: Any, variants: Any) -> Definition:
    """The whole survey-specific part of a survey, validated together (variants name questions)."""
    clean_questions = questions_validate(questions)
    return Definition(
        questions=clean_questions,
        thank_you=thank_you_validate(thank_you),
        variants=variants_validate(variants, clean_questions),
    )


# --- branching --------------------------------------------------------------------------------


def _rule_matches(question: Mapping[str, Any], condition: Mapping[str, Any], answer: Any) -> bool:
    """Does a rule's condition hold for this answer? An unanswered question (None) matches
    only `is_not_set`, as a missing attribute does in the condition language."""
    op = condition["op"]
    if op == "is_set":
        return answer is not None
    if op == "is_not_set":
        return answer is None
    if answer is None:
        return False
    # Validated when the survey was saved: a scalar or a list as the operator takes.
    value: Any = condition["value"]
    kind = question["type"]
    if kind == QuestionType.SINGLE_CHOICE:
        answer = OTHER if isinstance(answer, dict) else answer
    if kind == QuestionType.MULTIPLE_CHOICE:
        picked = {OTHER if isinstance(a, dict) else a for a in answer}
        if op == "contains":
            return value in picked
        if op == "not_contains":
            return value not in picked
        if op == "contains_any":
            return bool(picked & set(value))
        return set(value) <= picked  # contains_all
    if kind == QuestionType.OPEN_TEXT:
        found = str(value).casefold() in str(answer).casefold()
        return found if op == "contains" else not found
    if op == "eq":
        return bool(answer == value)
    if op == "neq":
        return bool(answer != value)
    if op == "in":
        return answer in value
    if op == "not_in":
        return answer not in value
    if op == "between":
        return bool(value[0] <= answer <= value[1])
    if op == "lt":
        return bool(answer < value)
    if op == "lte":
        return bool(answer <= value)
    if op == "gt":
        return bool(answer > value)
    return bool(answer >= value)  # gte


def next_question(question: Mapping[str, Any], answer: Any) -> str | None:
    """Where the first matching rule jumps (a question id or "end"); None: the next one."""
    for rule in question.get("logic", ()):
        if _rule_matches(question, rule["if"], answer):
            return str(rule["jump_to"])
    return None


def question_path(questions: Sequence[Mapping[str, Any]], answers: Mapping[str, Any]) -> list[str]:
    """The ids of the questions a respondent with these answers is shown, in order."""
    positions = {q["id"]: i for i, q in enumerate(questions)}
    path: list[str] = []
    i = 0
    while i < len(questions):
        question = questions[i]
        path.append(question["id"])
        target = next_question(question, answers.get(question["id"]))
        if target == END:
            break
        i = positions[target] if target is not None else i + 1
    return path


# --- rendering for the widget -----------------------------------------------------------------

THANK_YOU_TAGS = {
    "p", "br", "strong", "em", "b", "i", "u", "s", "code", "ul", "ol", "li", "a", "span",
}  # fmt: skip
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).disable("image")


@lru_cache(maxsize=1024)
def markdown_render(text: str) -> str:
    """Markdown to sanitised HTML: raw HTML is escaped, links keep only safe schemes."""
    return nh3.clean(
        _markdown.render(text),
        tags=THANK_YOU_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def locale_pick(texts: Mapping[str, Any], locale: str | None, default: str) -> str:
    """The best locale of `texts`: exact, then language (pt-BR → pt), then default, then any."""
    if locale:
        if locale in texts:
            return locale
        base = locale.replace("_", "-").split("-")[0].lower()
        for key in texts:
            if key.replace("_", "-").split("-")[0].lower() == base:
                return key
    if default in texts:
        return default
    return next(iter(texts))


def localized(texts: Mapping[str, str], locale: str | None, default: str) -> str:
    return texts[locale_pick(texts, locale, default)] if texts else ""


def survey_locales(questions: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every locale the question texts are written in, in first-seen order."""
    seen: dict[str, None] = {}
    for question in questions:
        for locale in question.get("text", {}):
            seen.setdefault(locale, None)
    return list(seen)


def content_render(
    *,
    name: str,
    questions: Sequence[Mapping[str, Any]],
    thank_you: Mapping[str, Any],
    variants: Sequence[Mapping[str, Any]],
    locale: str | None,
    variant: str,
    default_locale: str,
) -> dict[str, Any]:
    """What the widget renders: every text resolved to one locale, markdown made safe HTML.

    Choices keep their authored order; the widget shuffles those with `"shuffle": true`.
    `thank_you` is null when the survey has no thank-you screen.
    """
    texts: Mapping[str, Any] = {}
    for v in variants:
        if v["key"] == variant:
            texts = v.get("texts", {})
    chosen = locale_pick(dict.fromkeys(survey_locales(questions)), locale, default_locale)

    def t(value: Mapping[str, str]) -> str:
        return localized(value, chosen, default_locale)

    rendered = []
    for q in questions:
        item: dict[str, Any] = {
            "id": q["id"],
            "type": q["type"],
            "text": t(texts.get(q["id"]) or q["text"]),
            "required": q["required"],
            "logic": q.get("logic", []),
        }
        if q.get("description"):
            item["description"] = t(q["description"])
        if q.get("labels"):
            item["labels"] = {key: t(value) for key, value in q["labels"].items()}
        if q["type"] in SCORED_TYPES:
            low, high = score_range(q)
            item["scale"] = {"min": low, "max": high}
            item["display"] = q.get("display", "numbers")
        if q["type"] in CHOICE_TYPES:
            item["choices"] = [{"id": c["id"], "label": t(c["label"])} for c in q["choices"]]
            item["shuffle"] = q.get("shuffle", False)
            item["other"] = q.get("other", False)
            if q.get("other"):
                item["other_label"] = t(q["other_label"]) if q.get("other_label") else "Other"
        if q.get("placeholder"):
            item["placeholder"] = t(q["placeholder"])
        if q["type"] == QuestionType.CTA:
            item["button"] = {"label": t(q["button"]), "url": q.get("url")}
        rendered.append(item)
    thanks = None
    if thank_you:
        entry = thank_you[locale_pick(thank_you, chosen, default_locale)]
        thanks = {
            "title": entry.get("title", ""),
            "body_html": markdown_render(entry.get("body", "")),
        }
    return {
        "type": "survey",
        "name": name,
        "locale": chosen,
        "questions": rendered,
        "thank_you": thanks,
    }
