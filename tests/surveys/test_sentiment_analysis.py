"""The analyzer: VADER on fixed texts, the language gate, labels, terms and the plug-in."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from surveys.sentiment_analysis import (
    SentimentLabel,
    SentimentResult,
    VaderAnalyzer,
    analyzer_get,
    label_for,
    language_detect,
    terms_of,
    top_terms,
)


@pytest.fixture(scope="module")
def vader() -> VaderAnalyzer:
    return VaderAnalyzer()


def test_clearly_positive_ranks_above_neutral_above_clearly_negative(vader):
    positive = vader.analyze("I love the new reports, they are fast and beautiful!", "en")
    neutral = vader.analyze("I opened the settings page on Tuesday.", "en")
    negative = vader.analyze("Terrible update. The app crashes and I lost my work.", "en")
    assert positive.score is not None
    assert neutral.score is not None
    assert negative.score is not None
    assert positive.score > neutral.score > negative.score
    assert (positive.label, neutral.label, negative.label) == ("positive", "neutral", "negative")
    assert positive.analyzer.startswith("vader ")
    assert positive.language == "en"


def test_negation_flips_the_score_as_vader_does(vader):
    good = vader.analyze("The export is good", "en")
    not_good = vader.analyze("The export is not good", "en")
    assert good.label == SentimentLabel.POSITIVE
    assert not_good.label == SentimentLabel.NEGATIVE
    # VADER dampens a negated word by -0.74 of its valence: the same magnitude, smaller.
    assert not_good.score == pytest.approx(-0.3412, abs=1e-4)
    assert good.score == pytest.approx(0.4404, abs=1e-4)


def test_scores_stay_within_minus_one_and_one(vader):
    shouting = vader.analyze("BEST. APP. EVER!!! Love love love it!!! 😍😍😍", "en")
    assert shouting.score is not None
    assert 0.9 < shouting.score <= 1.0


@pytest.mark.parametrize(
    ("score", "label"),
    [
        (0.05, "positive"),
        (0.0499, "neutral"),
        (0.0, "neutral"),
        (-0.0499, "neutral"),
        (-0.05, "negative"),
    ],
)
def test_labels_use_vaders_documented_thresholds(score, label):
    assert label_for(score) == label


@pytest.mark.parametrize(
    ("text", "locale", "language"),
    [
        ("Das ist wirklich schlecht, die App stürzt ständig ab.", "en", "de"),
        ("C'est vraiment nul, l'application plante tout le temps.", "en", "fr"),
        ("La aplicación es muy lenta y confusa", "", "es"),
        ("Dit is niet goed, de app is traag", "en", "nl"),
        ("The export is not what I expected at all", "de", "en"),
        ("Great tool, really easy to use", "de", "en"),
        ("Die App ist super und sehr schnell", "en", "de"),
        ("Le support client est vraiment excellent", "en", "fr"),
    ],
)
def test_language_is_detected_on_the_text_not_taken_from_the_locale(text, locale, language):
    assert language_detect(text, locale) == language


def test_short_uncertain_texts_follow_the_locale_hint():
    assert language_detect("ok", "en-GB") == "en"
    assert language_detect("ok", "de") == "de"
    assert language_detect("👍", "en") == "en"


def test_answers_in_unsupported_languages_are_not_scored(vader):
    result = vader.analyze("Das ist wirklich schlecht, die App stürzt ständig ab.", "de-AT")
    assert result == SentimentResult(None, "unsupported", "de", vader.analyze("x", "en").analyzer)
    assert not result.scored
    # Nor with an English locale: the text decides.
    assert vader.analyze("Das ist wirklich schlecht, die App stürzt ständig ab.", "en").label == (
        "unsupported"
    )


def test_terms_drop_stop_words_and_repeat_once():
    assert terms_of("The export is SLOW, the export's button is broken and it's slow!") == [
        "export",
        "slow",
        "button",
        "broken",
    ]
    assert terms_of("it is what it is") == []


def test_top_terms_rank_by_count_then_term():
    ranked = top_terms([("slow", 3), ("crash", 5), ("export", 3), ("gone", 0)], limit=3)
    assert ranked == [
        {"term": "crash", "count": 5},
        {"term": "export", "count": 3},
        {"term": "slow", "count": 3},
    ]


class FixedAnalyzer:
    """A stand-in backend: every text scores -0.5."""

    name = "fixed"
    version = "1"

    def analyze(self, text: str, locale: str) -> SentimentResult:
        return SentimentResult(-0.5, "negative", "en", "fixed 1")

    def analyze_many(self, items: Sequence[tuple[str, str]]) -> list[SentimentResult]:
        return [self.analyze(t, loc) for t, loc in items]


def test_another_backend_is_plugged_by_setting(settings):
    settings.ENGAGE_SENTIMENT_ANALYZER = "tests.surveys.test_sentiment_analysis.FixedAnalyzer"
    analyzer = analyzer_get()
    assert isinstance(analyzer, FixedAnalyzer)
    settings.ENGAGE_SENTIMENT_ANALYZER = "surveys.sentiment_analysis.VaderAnalyzer"
    assert isinstance(analyzer_get(), VaderAnalyzer)


def test_a_setting_that_names_no_analyzer_is_refused(settings):
    settings.ENGAGE_SENTIMENT_ANALYZER = "surveys.sentiment_analysis.terms_of"
    with pytest.raises(TypeError, match="not a sentiment analyzer"):
        analyzer_get()
