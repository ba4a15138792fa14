"""Sentiment of free-text answers: the analyzer interface, its offline default (VADER), the
language gate in front of it and the terms of negative answers.

An analyzer turns `(text, locale)` into a `SentimentResult`: a score in [-1, 1], a label
(`positive`, `neutral`, `negative`, or `unsupported` for a language it cannot read, which is
never scored) and the analyzer's name and version, which are stored with every score so that
a change of backend can be found and re-scored (`manage.py sentiment_rescore`).

`ENGAGE_SENTIMENT_ANALYZER` names another backend by dotted path: a class (instantiated once
per process, without arguments) or a ready instance with `name`, `version` and
`analyze_many`. Subclassing `LanguageGatedAnalyzer` gives the language gate for free: a
backend then only says which languages it reads and how it scores one text.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from django.conf import settings
from django.utils.module_loading import import_string


class SentimentLabel:
    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"
    UNSUPPORTED = "unsupported"

    SCORED = (POSITIVE, NEUTRAL, NEGATIVE)
    ALL = (POSITIVE, NEUTRAL, NEGATIVE, UNSUPPORTED)


@dataclass(frozen=True)
class SentimentResult:
    """The sentiment of one text. `score` is None when the label is `unsupported`."""

    score: float | None
    label: str
    language: str
    analyzer: str  # "name version", as stored with the answer

    @property
    def scored(self) -> bool:
        return self.label != SentimentLabel.UNSUPPORTED


@runtime_checkable
class SentimentAnalyzer(Protocol):
    """What the scoring pipeline needs from a backend."""

    name: str
    version: str

    def analyze(self, text: str, locale: str) -> SentimentResult: ...

    def analyze_many(self, items: Sequence[tuple[str, str]]) -> list[SentimentResult]: ...


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- language -----------------------------------------------------------------------------------

# Function words that English has and the languages langid confuses it with mostly lack; two
# distinct ones making up a fair share of the words are enough to call a text English without
# running the detector (most English answers take this path; everything else is detected).
ENGLISH_MARKERS = _words(
    "the and is are was were it its it's this that i i'm i've you you're my your our they "
    "their them of for with but not very have has had don't doesn't didn't can't isn't wasn't "
    "won't would could should been just really what when which there because about after "
    "before too much"
)
# Everyday English words of product feedback that other Latin-script languages lack (no
# "app", "fast", "problem", "super", "export": those are German or French too). A text of two
# or more words, all ASCII, at least 60% of them from here or the markers, is English.
COMMON_ENGLISH = ENGLISH_MARKERS | _words(
    "great good bad love loved hate like liked easy hard slow quick quickly use used using "
    "work works working worked need needs want wanted please thanks thank help helpful team "
    "time times feature features update updates updated new old best better worse worst nice "
    "awesome amazing terrible horrible awful poor pricing expensive cheap free really every "
    "always never still again broken crash crashes crashed bug bugs buggy issue issues data "
    "report reports login account page pages button screen loading load takes took make made "
    "get got go going hours days week weeks month months customer service answer answered "
    "ticket friendly useless useful confusing clear clean fine okay lot lots everything "
    "nothing something anything after since last first next we us me our so to be on in at "
    "an by or if all no yes how why who can will do does did setup set up way"
)
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
# Below this confidence, or for texts this short, the detector is a coin toss: the answer's
# locale (else the App's default locale) decides instead.
CONFIDENT = 0.5
SHORT_WORDS = 3
CONFIDENT_SHORT = 0.9


@functools.lru_cache(maxsize=1)
def _identifier() -> Any:
    """py3langid's model, loaded once per process (deterministic: a naive Bayes model).

    The model ships its feature table as float16. Each classification multiplies a text's rows
    of it by float32 counts, and NumPy converts float16 element by element in software: about
    half the time of a classification. The table is converted to float32 once here instead
    (about 57 MB instead of 28 MB per process); the arithmetic is the same (float16 widens
    exactly to float32), so every language and confidence is the library's own
    (`tests/surveys/test_sentiment_batch.py` compares them)."""
    import numpy as np
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    model = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE)
    return LanguageIdentifier(
        np.asarray(model.nb_ptc, dtype=np.float32),
        model.nb_pc,
        model.nb_classes,
        model.tk_nextmove,
        model.tk_output,
        norm_probs=True,
        tk_row=model.tk_row,
    )


def language_of_locale(locale: str) -> str:
    """`pt-BR` → `pt`; "" stays ""."""
    return locale.split("-")[0].split("_")[0].lower() if locale else ""


def language_detect(text: str, hint: str) -> str:
    """The ISO 639-1 language of `text`; `hint` (a locale) decides when the text cannot.

    English with at least two marker words, or made mostly (60%) of everyday English words, is
    recognised without the detector. Otherwise
    py3langid decides when it is confident (at least 0.5, or 0.9 for texts of one to three
    words); when it is not, the hint's language is taken. Deterministic for a given text.
    """
    words = WORD.findall(text.lower())
    markers = {w for w in words if w in ENGLISH_MARKERS}
    if len(markers) >= 2 and len(markers) * 4 >= len(words):
        return "en"
    if len(words) >= 2 and all(word.isascii() for word in words):
        common = sum(1 for word in words if word in COMMON_ENGLISH)
        if common * 5 >= len(words) * 3:
            return "en"
    hinted = language_of_locale(hint)
    if not words:
        return hinted
    language, confidence = _identifier().classify(text)
    needed = CONFIDENT_SHORT if len(words) <= SHORT_WORDS else CONFIDENT
    if confidence >= needed or not hinted:
        return str(language)
    return hinted


# --- analyzers ----------------------------------------------------------------------------------


def label_for(score: float, *, threshold: float = 0.05) -> str:
    """VADER's documented cut-offs: compound ≥ 0.05 positive, ≤ -0.05 negative."""
    if score >= threshold:
        return SentimentLabel.POSITIVE
    if score <= -threshold:
        return SentimentLabel.NEGATIVE
    return SentimentLabel.NEUTRAL


class LanguageGatedAnalyzer:
    """A backend that reads some languages: texts in others are `unsupported`, not scored."""

    name = "base"
    version = "0"
    languages: frozenset[str] = frozenset()

    @property
    def identity(self) -> str:
        return f"{self.name} {self.version}"

    def score(self, text: str) -> float:
        """The score of a text in a supported language, in [-1, 1]."""
        raise NotImplementedError

    def label(self, score: float) -> str:
        return label_for(score)

    def analyze(self, text: str, locale: str) -> SentimentResult:
        return self._result(text, language_detect(text, locale))

    def analyze_many(self, items: Sequence[tuple[str, str]]) -> list[SentimentResult]:
        """Detect the language of every text first, then score the supported ones: the same
        results as one text at a time, in about a fifth less time (each loop keeps its own
        code and data hot in the processor's caches instead of alternating between the two)."""
        languages = [language_detect(text, locale) for text, locale in items]
        return [
            self._result(text, language)
            for (text, _), language in zip(items, languages, strict=True)
        ]

    def _result(self, text: str, language: str) -> SentimentResult:
        if language not in self.languages:
            return SentimentResult(None, SentimentLabel.UNSUPPORTED, language, self.identity)
        score = max(-1.0, min(1.0, float(self.score(text))))
        if math.isnan(score):
            score = 0.0
        return SentimentResult(score, self.label(score), language, self.identity)


class VaderAnalyzer(LanguageGatedAnalyzer):
    """VADER (Hutto & Gilbert, 2014): a lexicon and rules tuned to short social-media English,
    with negation, intensifiers, "but", capitals, punctuation and emoji. Offline, no model."""

    name = "vader"
    languages = frozenset({"en"})

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        from surveys.vader import VaderCompound

        self._vader = SentimentIntensityAnalyzer()
        self.version = importlib.metadata.version("vaderSentiment")
        # The library's compound score, computed without its overheads (`surveys/vader.py`):
        # the same scores, so the stored analyzer identity stays "vader <version>". Another
        # version of the library than the one mirrored is scored by the library itself.
        try:
            self._compound = VaderCompound(self._vader).compound
        except RuntimeError:
            self._compound = self._library_compound

    def _library_compound(self, text: str) -> float:
        return float(self._vader.polarity_scores(text)["compound"])

    def score(self, text: str) -> float:
        return self._compound(text)


DEFAULT_ANALYZER = "surveys.sentiment_analysis.VaderAnalyzer"


@functools.lru_cache(maxsize=4)
def _analyzer(path: str) -> SentimentAnalyzer:
    target = import_string(path)
    analyzer = target() if isinstance(target, type) else target
    if not isinstance(analyzer, SentimentAnalyzer):
        raise TypeError(f"{path} is not a sentiment analyzer (name, version, analyze_many)")
    return analyzer


def analyzer_get() -> SentimentAnalyzer:
    """The configured analyzer (`ENGAGE_SENTIMENT_ANALYZER`), built once per process."""
    return _analyzer(getattr(settings, "ENGAGE_SENTIMENT_ANALYZER", "") or DEFAULT_ANALYZER)


def analyzer_identity(analyzer: SentimentAnalyzer) -> str:
    return f"{analyzer.name} {analyzer.version}"


# --- terms of negative answers ------------------------------------------------------------------

# English stop words (the analyzer reads English only, so negative answers are English):
# function words, auxiliaries and fillers, plus words every product answer has.
STOP_WORDS = _words(
    """a about above after again against all also am an and any are aren't as at be because
    been before being below between both but by can can't cannot could couldn't did didn't do
    does doesn't doing don't down during each even ever every few for from further get gets
    got had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers
    herself him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its
    itself just let's like me more most much must mustn't my myself no nor not now of off on
    once one only or other ought our ours ourselves out over own really same shan't she she'd
    she'll she's should shouldn't so some still such than that that's the their theirs them
    themselves then there there's these they they'd they'll they're they've this those
    though through to too under until up upon us very was wasn't we we'd we'll we're we've
    were weren't what what's when when's where where's which while who who's whom why why's
    will with won't would wouldn't yet you you'd you'll you're you've your yours yourself
    yourselves thing things lot lots way make makes made use used using app really quite
    always never something anything everything nothing please thanks thank"""
)
TERM = re.compile(r"[a-z][a-z'-]*[a-z]")
MAX_TERMS_PER_ANSWER = 25


def terms_of(text: str) -> list[str]:
    """The distinct terms of a text, in order: lower-cased words of two letters or more,
    without stop words and without a trailing possessive; at most 25."""
    seen: dict[str, None] = {}
    for match in TERM.finditer(text.lower()):
        word = match.group(0).removesuffix("'s")
        if len(word) < 2 or word in STOP_WORDS or len(word) > 64:
            continue
        seen.setdefault(word, None)
        if len(seen) >= MAX_TERMS_PER_ANSWER:
            break
    return list(seen)


def top_terms(counts: Iterable[tuple[str, int]], limit: int = 10) -> list[dict[str, Any]]:
    """The most frequent terms, ties by term, as `[{"term", "count"}]`."""
    ranked = sorted(((t, n) for t, n in counts if n > 0), key=lambda tn: (-tn[1], tn[0]))
    return [{"term": term, "count": n} for term, n in ranked[:limit]]
