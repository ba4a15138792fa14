"""Batch scoring: answers scored in batches and slices are counted exactly once, rows changed
between the read and the write are left for later, and the faster language detector decides
exactly as the library does. Runs on SQLite and, with DATABASE_URL, on PostgreSQL (whose path
is pipelined)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from surveys import sentiment
from surveys.models import Answer, SentimentDaily
from surveys.sentiment import sentiment_answers_score, sentiment_pending_score
from surveys.sentiment_analysis import (
    SentimentResult,
    VaderAnalyzer,
    _identifier,
    analyzer_get,
)
from tests.surveys.test_sentiment import (
    DAY,
    GERMAN,
    NEGATIVE,
    NEGATIVE_2,
    POSITIVE,
    aggregates,
    answer,
    assert_aggregates_match_a_recount,
)

TEXTS = [
    POSITIVE,
    NEGATIVE,
    NEGATIVE_2,
    GERMAN,
    "Mostly the calendar view",
    "ok",
    "👍",
    "L'export est trop lent et plante souvent",
    "La aplicación es muy lenta y confusa",
    "Dit is niet goed, de app is traag",
    "Der Export ist nicht gut",
    "not bad at all, but the pricing hurts :(",
    "ЭТО УЖАСНО",
    "ダッシュボードが遅い",
    "",
]
LOCALES = ["en", "en-GB", "de", "fr", ""]


def test_the_language_detector_decides_as_the_library_does():
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    library = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
    for text in TEXTS:
        language, confidence = _identifier().classify(text)
        expected_language, expected_confidence = library.classify(text)
        assert language == expected_language, text
        assert confidence == pytest.approx(expected_confidence, abs=1e-6), text


def test_a_batch_gives_the_results_of_one_text_at_a_time():
    analyzer = VaderAnalyzer()
    items = [(text, locale) for text in TEXTS for locale in LOCALES]
    assert analyzer.analyze_many(items) == [analyzer.analyze(t, loc) for t, loc in items]


def test_batches_and_slices_count_every_answer_once(app_keys, survey, monkeypatch):
    # Slices of 3 inside batches of 10: writes cross slice and batch limits.
    monkeypatch.setattr(sentiment, "SLICE_SIZE", 3)
    texts = [POSITIVE, NEGATIVE, NEGATIVE_2, GERMAN, "ok", "Mostly the calendar view"]
    for i in range(37):
        answer(
            app_keys.app,
            survey["id"],
            {"recommend": i % 11, "why": texts[i % len(texts)]},
            at=DAY + timedelta(hours=7 * i),
            user=f"u{i}",
            locale=LOCALES[i % len(LOCALES)] or None,
        )
    assert sentiment_pending_score(batch_size=10) == 37
    analyzer = analyzer_get()
    for row in Answer.objects.filter(survey_id=survey["id"], text__isnull=False):
        result = analyzer.analyze(row.text or "", row.locale or "en")
        assert (row.sentiment_label, row.sentiment_score, row.sentiment_language) == (
            result.label,
            result.score,
            result.language,
        )
    daily, _ = aggregates(survey["id"])
    assert sum(sum(d[2:6]) for d in daily) == 37
    assert_aggregates_match_a_recount(survey["id"])
    assert sentiment_pending_score(batch_size=10) == 0


class _ChangesRowsMidway:
    """Scores like VADER, but first changes some rows as a concurrent request would between
    this batch's read and its write."""

    def __init__(self, change: dict[int, dict[str, object]]) -> None:
        self.vader = analyzer_get()
        self.name, self.version = self.vader.name, self.vader.version
        self.change = change

    def analyze(self, text: str, locale: str) -> SentimentResult:
        return self.vader.analyze(text, locale)

    def analyze_many(self, items: Sequence[tuple[str, str]]) -> list[SentimentResult]:
        for pk, values in self.change.items():
            Answer.objects.filter(pk=pk).update(**values)
        self.change = {}
        return self.vader.analyze_many(items)


def test_a_row_changed_after_it_was_read_is_left_pending(app_keys, survey):
    for i, text in enumerate((NEGATIVE, POSITIVE, NEGATIVE_2)):
        answer(app_keys.app, survey["id"], {"why": text}, at=DAY, user=f"u{i}")
    ids = list(
        Answer.objects.filter(text__isnull=False).order_by("pk").values_list("pk", flat=True)
    )
    # The second answer's response got its locale meanwhile: the score was computed with the
    # old hint and would be counted under the old locale, so it is not written.
    analyzer = _ChangesRowsMidway({ids[1]: {"locale": "en-GB"}})
    assert sentiment_answers_score(answer_ids=ids, analyzer=analyzer) == 2
    assert Answer.objects.get(pk=ids[1]).sentiment_label is None
    assert_aggregates_match_a_recount(survey["id"])
    # The sweeper scores it later, under its new locale.
    assert sentiment_pending_score() == 1
    assert SentimentDaily.objects.get(survey_id=survey["id"], locale="en-GB").positive == 1
    assert_aggregates_match_a_recount(survey["id"])


def test_a_row_scored_by_another_worker_meanwhile_is_not_written_again(app_keys, survey):
    answer(app_keys.app, survey["id"], {"why": NEGATIVE}, at=DAY)
    answer(app_keys.app, survey["id"], {"why": POSITIVE}, at=DAY, user="u2")
    first, second = Answer.objects.filter(text__isnull=False).order_by("pk")
    # Another worker scores the first row after this batch read it (its own transaction
    # counts it; only the row is simulated here).
    analyzer = _ChangesRowsMidway(
        {first.pk: {"sentiment_label": "negative", "sentiment_score": -0.25}}
    )
    assert sentiment_answers_score(answer_ids=[first.pk, second.pk], analyzer=analyzer) == 1
    first.refresh_from_db()
    assert (first.sentiment_label, first.sentiment_score) == ("negative", -0.25)
    daily, terms = aggregates(survey["id"])
    # This batch counted only what it wrote: the positive answer.
    assert [(d[2], d[3], d[4], d[5]) for d in daily] == [(1, 0, 0, 0)]
    assert terms == []
