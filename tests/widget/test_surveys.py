"""Surveys in real Chromium: every question type answered with the keyboard alone, branching,
required checks, progress, the thank-you screen, right-to-left locales, and axe-core audits."""

from __future__ import annotations

from typing import Any

import pytest

from tests.widget.conftest import (
    SHADOW,
    Engage,
    axe_audit,
    screenshot,
    wait_for_title,
    widget_focus,
)

pytestmark = [pytest.mark.browser, pytest.mark.live]

TRIGGER = {"on": "page_view", "url": {"op": "contains", "value": "case=survey"}}


def en(text: str) -> dict[str, str]:
    return {"en": text}


def choices(*ids: str) -> list[dict[str, Any]]:
    return [{"id": i, "label": en(i.upper())} for i in ids]


EVERY_TYPE: list[dict[str, Any]] = [
    {
        "id": "recommend", "type": "nps", "required": True,
        "text": en("How likely are you to recommend Acme to a friend?"),
        "logic": [{"if": {"op": "lte", "value": 6}, "jump_to": "why"},
                  {"if": {"op": "gte", "value": 7}, "jump_to": "stars"}],
    },
    {"id": "why", "type": "open_text", "text": en("What should we improve?")},
    {
        "id": "stars", "type": "rating", "scale": 5, "display": "stars",
        "text": en("Rate the export"),
    },
    {
        "id": "ten", "type": "rating", "scale": 10, "display": "numbers",
        "text": en("How fast are reports?"), "labels": {"low": en("Slow"), "high": en("Instant")},
    },
    {"id": "csat", "type": "csat", "text": en("How satisfied are you with support?")},
    {
        "id": "role", "type": "single_choice", "text": en("What is your role?"),
        "choices": choices("dev", "pm", "design"), "other": True, "shuffle": True,
    },
    {
        "id": "formats", "type": "multiple_choice", "required": True,
        "text": en("Which formats do you export?"), "choices": choices("csv", "xlsx", "pdf"),
        "other": True,
    },
    {
        "id": "again", "type": "yes_no", "text": en("Would you use scheduled exports?"),
        "logic": [{"if": {"op": "eq", "value": False}, "jump_to": "end"}],
    },
    {
        "id": "beta", "type": "cta", "text": en("Join the beta of scheduled exports"),
        "button": en("Join the beta"), "url": "/beta",
    },
]  # fmt: skip
THANK_YOU = {"en": {"title": "Thank you!", "body": "We read **every** answer."}}


def shadow_text(page: Any, selector: str) -> str:
    return page.locator(f"engage-widget {selector}").first.inner_text().strip()


def next_question(page: Any, title: str) -> None:
    """Tab to the primary button, press Enter, and wait for the next question's title."""
    for _ in range(10):
        page.keyboard.press("Tab")
        focused = widget_focus(page)
        if focused and focused["text"] in ("Next", "Submit"):
            break
    page.keyboard.press("Enter")
    wait_for_title(page, title)


def wait_for_response(engage: Engage, page: Any, survey_id: int) -> dict[str, Any]:
    for _ in range(100):
        responses = engage.responses(survey_id)
        if responses and responses[0]["completed"]:
            assert len(responses) == 1, responses
            return responses[0]
        page.wait_for_timeout(100)
    raise AssertionError(f"no completed response: {engage.responses(survey_id)}")


def checked(page: Any) -> list[str]:
    return page.evaluate(
        f"""() => [...{SHADOW}.querySelectorAll('[aria-checked=true]')]
                  .map(b => b.getAttribute('aria-label') || b.textContent)"""
    )


def test_every_question_type_answered_with_the_keyboard_alone(engage: Engage, page: Any) -> None:
    survey_id = engage.survey(EVERY_TYPE, TRIGGER, thank_you=THANK_YOU)
    page.goto(engage.page_url(case="survey", user="u_1"))
    dialog = page.locator("engage-widget [role=dialog]")
    dialog.wait_for()
    assert dialog.get_attribute("aria-modal") == "true"
    assert page.locator(
        f"engage-widget #{dialog.get_attribute('aria-labelledby')}"
    ).inner_text() == ("How likely are you to recommend Acme to a friend?")

    # NPS: a radio group of 0–10 with one tab stop; the focus starts on it.
    group = page.locator("engage-widget [role=radiogroup]")
    assert group.locator("[role=radio]").count() == 11
    assert widget_focus(page)["role"] == "radio"  # type: ignore[index]
    assert shadow_text(page, ".lh") == "Not likely\nVery likely"
    screenshot(page, "survey_nps")
    axe_audit(page, "nps")

    # Required: Next without an answer says so and stays.
    page.keyboard.press("Tab")
    assert widget_focus(page)["text"] == "Next"  # type: ignore[index]
    page.keyboard.press("Enter")
    assert shadow_text(page, "[role=alert]") == "Required"
    screenshot(page, "survey_required")
    axe_audit(page, "required error")
    page.keyboard.press("Shift+Tab")
    for _ in range(9):
        page.keyboard.press("ArrowRight")
    assert checked(page) == ["9"]
    assert [b.get_attribute("tabindex") for b in group.locator("[role=radio]").all()].count(
        "0"
    ) == 1
    progress = page.locator("engage-widget [role=progressbar]")
    assert progress.get_attribute("aria-valuetext") == "1 / 9"
    next_question(page, "Rate the export")  # 9 ≥ 7 jumps over "why"

    # Rating, 5 stars: arrows move and select; the stars up to the choice light up.
    assert progress.get_attribute("aria-valuetext") == "3 / 9"
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    assert checked(page) == ["4"]
    assert page.locator("engage-widget .s .on").count() == 4
    screenshot(page, "survey_rating_stars")
    axe_audit(page, "rating stars")
    next_question(page, "How fast are reports?")

    # Rating, 10 numbers with the survey's own end labels; End picks the last.
    assert shadow_text(page, ".lh") == "Slow\nInstant"
    page.keyboard.press("End")
    assert checked(page) == ["10"]
    axe_audit(page, "rating numbers")
    next_question(page, "How satisfied are you with support?")

    # CSAT 1–5: Home then one step.
    page.keyboard.press("Home")
    page.keyboard.press("ArrowDown")
    assert checked(page) == ["2"]
    screenshot(page, "survey_csat")
    axe_audit(page, "csat")
    next_question(page, "What is your role?")

    # Single choice with "other" last: pick it, type, go on.
    labels = page.locator("engage-widget [role=radio]").all_inner_texts()
    assert sorted(labels[:3]) == ["DESIGN", "DEV", "PM"]
    assert labels[3] == "Other"
    page.keyboard.press("End")
    page.keyboard.press("Tab")
    assert widget_focus(page) == {
        "tag": "input", "role": None, "text": "", "label": "Please specify", "dialog": True
    }  # fmt: skip
    page.keyboard.type("Data engineer")
    screenshot(page, "survey_single_choice")
    axe_audit(page, "single choice")
    next_question(page, "Which formats do you export?")

    # Multiple choice: checkboxes, each a tab stop, toggled with Space.
    page.keyboard.press("Space")  # CSV
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # PDF
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # Other
    page.keyboard.press("Tab")
    page.keyboard.type("Parquet")
    assert checked(page) == ["CSV", "PDF", "Other"]
    screenshot(page, "survey_multiple_choice")
    axe_audit(page, "multiple choice")
    next_question(page, "Would you use scheduled exports?")

    # Yes/no: Space picks the focused "Yes".
    page.keyboard.press("Space")
    assert checked(page) == ["Yes"]
    axe_audit(page, "yes/no")
    next_question(page, "Join the beta of scheduled exports")

    # CTA: its button is the way on (it opens the link in a new tab).
    assert widget_focus(page)["text"] == "Join the beta"  # type: ignore[index]
    screenshot(page, "survey_cta")
    axe_audit(page, "cta")
    with page.context.expect_page() as popup:
        page.keyboard.press("Enter")
    assert popup.value.url.endswith("/beta")
    page.bring_to_front()

    # Thank-you screen with the server's sanitised body; Close is focused.
    wait_for_title(page, "Thank you!")
    assert shadow_text(page, ".bd") == "We read every answer."
    assert page.locator("engage-widget .bd strong").inner_text() == "every"
    assert widget_focus(page)["text"] == "Close"  # type: ignore[index]
    screenshot(page, "survey_thank_you")
    axe_audit(page, "thank you")

    response = wait_for_response(engage, page, survey_id)
    assert response["answers"] == {
        "recommend": 9,
        "stars": 4,
        "ten": 10,
        "csat": 2,
        "role": {"other": "Data engineer"},
        "formats": ["csv", "pdf", {"other": "Parquet"}],
        "again": True,
        "beta": "clicked",
    }
    page.keyboard.press("Enter")
    dialog.wait_for(state="detached")
    answered = [e[1] for e in page.evaluate("window.seen") if e[0] == "answered"]
    assert [a["question_id"] for a in answered] == [
        "recommend", "stars", "ten", "csat", "role", "formats", "again", "beta"
    ]  # fmt: skip
    assert answered[-1]["completed"] is True
    assert [e[0] for e in page.evaluate("window.seen")][-1] == "answered"  # no "dismissed"
    assert page.errors == []


def test_branching_to_a_follow_up_and_to_the_end(engage: Engage, page: Any) -> None:
    recommend = {
        **EVERY_TYPE[0],
        "logic": [{"if": {"op": "lte", "value": 6}, "jump_to": "why"},
                  {"if": {"op": "gte", "value": 7}, "jump_to": "again"}],
    }  # fmt: skip
    survey_id = engage.survey([recommend, EVERY_TYPE[1], *EVERY_TYPE[7:]], TRIGGER)
    page.goto(engage.page_url(case="survey", user="u_1"))
    page.locator("engage-widget [role=dialog]").wait_for()
    for _ in range(3):
        page.keyboard.press("ArrowRight")  # 3 ≤ 6: asks why
    next_question(page, "What should we improve?")
    assert widget_focus(page)["tag"] == "textarea"  # type: ignore[index]
    page.keyboard.type("Exports are slow")
    screenshot(page, "survey_open_text")
    axe_audit(page, "open text")
    next_question(page, "Would you use scheduled exports?")
    page.keyboard.press("ArrowRight")  # No: the end, without the CTA
    assert checked(page) == ["No"]
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # Submit: the survey has no thank-you screen, so it closes
    page.locator("engage-widget [role=dialog]").wait_for(state="detached")
    response = wait_for_response(engage, page, survey_id)
    assert response["answers"] == {"recommend": 3, "why": "Exports are slow", "again": False}


def test_escape_dismisses_a_survey_keeping_the_partial_response(engage: Engage, page: Any) -> None:
    survey_id = engage.survey([{**EVERY_TYPE[0], "logic": []}, EVERY_TYPE[1]], TRIGGER)
    page.goto(engage.page_url(case="survey", user="u_1"))
    page.locator("engage-widget [role=dialog]").wait_for()
    page.keyboard.press("Home")
    next_question(page, "What should we improve?")
    page.keyboard.press("Escape")
    page.locator("engage-widget [role=dialog]").wait_for(state="detached")
    for _ in range(100):
        responses = engage.responses(survey_id)
        if responses:
            break
        page.wait_for_timeout(100)
    assert [(r["answers"], r["completed"]) for r in responses] == [({"recommend": 0}, False)]
    assert [e[0] for e in page.evaluate("window.seen")][-1] == "dismissed"


def test_right_to_left_locale_mirrors_the_survey_and_its_arrow_keys(
    engage: Engage, page: Any
) -> None:
    engage.survey(
        [
            {
                "id": "q",
                "type": "nps",
                "text": {"ar": "ما مدى احتمال أن توصي بنا؟", "en": "Recommend?"},
            }
        ],
        TRIGGER,
    )
    page.goto(engage.page_url(case="survey", user="u_1", locale="ar"))
    dialog = page.locator("engage-widget [role=dialog]")
    dialog.wait_for()
    assert dialog.get_attribute("dir") == "rtl"
    assert dialog.get_attribute("lang") == "ar"
    assert shadow_text(page, "h2") == "ما مدى احتمال أن توصي بنا؟"
    assert shadow_text(page, ".bs button") == "إرسال"  # "Submit", from the widget's own texts
    radios = dialog.locator("[role=radio]")
    zero, ten = radios.nth(0).bounding_box(), radios.nth(10).bounding_box()
    assert zero
    assert ten
    assert zero["x"] > ten["x"]  # 0 on the right
    page.keyboard.press("ArrowLeft")  # left is forward in right-to-left
    assert checked(page) == ["1"]
    screenshot(page, "survey_rtl")
    axe_audit(page, "rtl")
