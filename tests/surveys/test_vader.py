"""`VaderCompound` gives exactly the compound score of vaderSentiment's `polarity_scores`."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vaderSentiment.vaderSentiment import (
    BOOSTER_DICT,
    NEGATE,
    SPECIAL_CASES,
    SentimentIntensityAnalyzer,
)

import surveys.vader
from surveys.sentiment_analysis import VaderAnalyzer
from surveys.vader import VaderCompound

LIBRARY = SentimentIntensityAnalyzer()
FAST = VaderCompound(LIBRARY)

# The library's own examples, plus texts aimed at each rule.
FIXED = [
    "VADER is smart, handsome, and funny.",
    "VADER is smart, handsome, and funny!",
    "VADER is very smart, handsome, and funny.",
    "VADER is VERY SMART, handsome, and FUNNY.",
    "VADER is VERY SMART, handsome, and FUNNY!!!",
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "VADER is not smart, handsome, nor funny.",
    "The book was good.",
    "At least it isn't a horrible book.",
    "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today SUX!",
    "Today only kinda sux! But I'll get by, lol",
    "Make sure you :) or :D today!",
    "Catch utf-8 emoji such as 💘 and 💋 and 😁",
    "Not bad at all",
    "no problem, no good or bad, no love nor hate",
    "never so happy, never this sad, without doubt the best",
    "it is the bomb, yeah right, the kiss of death, to die for",
    "least good thing, at least good, very least good",
    "good good good but bad bad bad",
    "GREAT but SLOW and BUGGY",
    "Why??? Why is it broken????",
    "",
    "   ",
    "!!!",
    "😁",
    "fine😁great",
    "Ünïcode façade is lovely but naïve",
]


@pytest.mark.parametrize("text", FIXED)
def test_fixed_texts_score_as_the_library_does(text):
    assert FAST.compound(text) == LIBRARY.polarity_scores(text)["compound"]


# Words that trigger the rules, a sample of the lexicon, plain words, emoji and punctuation.
_LEXICON = sorted(LIBRARY.lexicon)
RULE_WORDS = [
    *sorted(BOOSTER_DICT),
    *NEGATE,
    *sorted(SPECIAL_CASES),
    "but",
    "no",
    "or",
    "nor",
    "least",
    "at",
    "very",
    "kind",
    "of",
    "so",
    "this",
    "never",
    "without",
    "doubt",
    "the",
]
PLAIN = ["app", "export", "report", "page", "team", "it", "we", "Tuesday"]
EMOJI = ["😁", "💘", "🙂", "😡", "👍", "🔥"]


def _token(rnd: random.Random) -> str:
    pool = rnd.choice((_LEXICON, RULE_WORDS, RULE_WORDS, PLAIN, EMOJI))
    word = rnd.choice(pool)
    shape = rnd.random()
    if shape < 0.15:
        word = word.upper()
    elif shape < 0.2:
        word = word.title()
    before = rnd.choice(("", "", "", "(", '"', "😁"))
    after = rnd.choice(("", "", "", "!", "?", ".", ",", "!!", "??", "😁", ":)"))
    return before + word + after


def test_generated_texts_score_as_the_library_does():
    """20,000 texts of up to 25 words drawn from the lexicon, the words of every rule
    (boosters, negations, idioms, "but", "no", "least", "kind of", "never so", "without
    doubt"), plain words and emoji, in capitals or not, with punctuation around them."""
    rnd = random.Random(20261125)
    for _ in range(20_000):
        text = " ".join(_token(rnd) for _ in range(rnd.randint(0, 25)))
        assert FAST.compound(text) == LIBRARY.polarity_scores(text)["compound"], text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_strings_score_as_the_library_does(text):
    assert FAST.compound(text) == LIBRARY.polarity_scores(text)["compound"]


def test_the_analyzer_scores_with_the_fast_path_and_the_same_result():
    analyzer = VaderAnalyzer()
    text = "The export is NOT good but support was really helpful!!"
    assert analyzer.score(text) == LIBRARY.polarity_scores(text)["compound"]
    assert analyzer.identity == f"vader {analyzer.version}"


def test_another_library_version_is_scored_by_the_library_itself(monkeypatch):
    monkeypatch.setattr(surveys.vader, "MIRRORED_VERSION", "0.0.0")
    with pytest.raises(RuntimeError, match=r"mirrors vaderSentiment 0\.0\.0"):
        VaderCompound()
    analyzer = VaderAnalyzer()
    text = "Great app but the export is slow"
    assert analyzer.score(text) == LIBRARY.polarity_scores(text)["compound"]
    assert analyzer._compound == analyzer._library_compound
