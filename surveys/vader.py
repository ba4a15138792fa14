"""VADER's compound score, computed exactly as `vaderSentiment` computes it, in a fraction of
its time.

`SentimentIntensityAnalyzer.polarity_scores` spends most of its time on work whose result it
throws away or recomputes: it rebuilds the text character by character to replace emoji (by
string concatenation, even when the text has none), lower-cases the whole word list again for
every lexicon word it meets (three times in the negation check, once in the idiom check), and
computes the positive, negative and neutral proportions that the compound score does not use.

`VaderCompound.compound` follows the library's rules step by step, in the library's order and
with the library's arithmetic (so every float is bit for bit the same): the emoji replacement
(skipped for ASCII texts, which cannot hold one of its emoji), the word split and punctuation
strip, the capitals differential, the lexicon walk with its booster, negation, "no", "least",
"kind of" and idiom rules, the "but" rule (the library's own function: its quirks with equal
values are kept), the punctuation emphasis and the normalisation. The lexicons, constants and
helpers are the library's own objects, read from the installed module, so an upgrade of
`vaderSentiment` is followed (and checked: `tests/surveys/test_vader.py` compares the two on
fixed texts and on generated ones, and a different version is refused until that test has run
against it).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import string
from typing import Any

# The version whose code `VaderCompound` mirrors. Another installed version makes
# `VaderCompound()` raise, so the analyzer falls back to the library's own `polarity_scores`.
MIRRORED_VERSION = "3.3.2"

_SO_THIS = ("so", "this")


class VaderCompound:
    """`polarity_scores(text)["compound"]` of vaderSentiment 3.3.2, without its overheads."""

    def __init__(self, analyzer: Any | None = None) -> None:
        vader_module = importlib.import_module("vaderSentiment.vaderSentiment")

        version = importlib.metadata.version("vaderSentiment")
        if version != MIRRORED_VERSION:
            raise RuntimeError(
                f"VaderCompound mirrors vaderSentiment {MIRRORED_VERSION}, not {version}"
            )
        sia = analyzer or vader_module.SentimentIntensityAnalyzer()
        self.lexicon: dict[str, float] = sia.lexicon
        self.emojis: dict[str, str] = sia.emojis
        # Every emoji of the library's list is non-ASCII; were one ASCII, no text could skip the
        # character walk.
        self._ascii_skips_emoji = not any(key.isascii() for key in self.emojis)
        self._booster: dict[str, float] = vader_module.BOOSTER_DICT
        self._negate = frozenset(vader_module.NEGATE)
        self._special: dict[str, float] = vader_module.SPECIAL_CASES
        self._but_check = vader_module.SentimentIntensityAnalyzer._but_check
        self._normalize = vader_module.normalize
        self._scalar_inc_dec = vader_module.scalar_inc_dec
        self._allcap_differential = vader_module.allcap_differential
        self._n_scalar: float = vader_module.N_SCALAR
        self._c_incr: float = vader_module.C_INCR
        self._punctuation = string.punctuation

    def _replace_emoji(self, text: str) -> str:
        """The library's emoji walk: each emoji becomes its description, spaced from what
        precedes it. The same string, built with a list instead of repeated concatenation."""
        emojis = self.emojis
        parts: list[str] = []
        prev_space = True
        for char in text:
            description = emojis.get(char)
            if description is not None:
                if not prev_space:
                    parts.append(" ")
                parts.append(description)
                prev_space = False
            else:
                parts.append(char)
                prev_space = char == " "
        return "".join(parts)

    def _negated(self, word: str) -> bool:
        """`vaderSentiment.negated([word])`."""
        word = word.lower()
        return word in self._negate or "n't" in word

    def _negation_check(self, valence: float, lower: list[str], start_i: int, i: int) -> float:
        """`SentimentIntensityAnalyzer._negation_check` on the lower-cased words."""
        if start_i == 0:
            if self._negated(lower[i - 1]):
                valence = valence * self._n_scalar
        elif start_i == 1:
            if lower[i - 2] == "never" and lower[i - 1] in _SO_THIS:
                valence = valence * 1.25
            elif lower[i - 2] == "without" and lower[i - 1] == "doubt":
                pass
            elif self._negated(lower[i - 2]):
                valence = valence * self._n_scalar
        else:
            if (lower[i - 3] == "never" and lower[i - 2] in _SO_THIS) or lower[i - 1] in _SO_THIS:
                valence = valence * 1.25
            elif lower[i - 3] == "without" and (lower[i - 2] == "doubt" or lower[i - 1] == "doubt"):
                pass
            elif self._negated(lower[i - 3]):
                valence = valence * self._n_scalar
        return valence

    def _special_idioms_check(self, valence: float, lower: list[str], i: int) -> float:
        """`SentimentIntensityAnalyzer._special_idioms_check` (called for i ≥ 3 only)."""
        special = self._special
        onezero = f"{lower[i - 1]} {lower[i]}"
        twoonezero = f"{lower[i - 2]} {lower[i - 1]} {lower[i]}"
        twoone = f"{lower[i - 2]} {lower[i - 1]}"
        threetwoone = f"{lower[i - 3]} {lower[i - 2]} {lower[i - 1]}"
        threetwo = f"{lower[i - 3]} {lower[i - 2]}"
        for seq in (onezero, twoonezero, twoone, threetwoone, threetwo):
            if seq in special:
                valence = special[seq]
                break
        last = len(lower) - 1
        if last > i:
            zeroone = f"{lower[i]} {lower[i + 1]}"
            if zeroone in special:
                valence = special[zeroone]
        if last > i + 1:
            zeroonetwo = f"{lower[i]} {lower[i + 1]} {lower[i + 2]}"
            if zeroonetwo in special:
                valence = special[zeroonetwo]
        booster = self._booster
        for n_gram in (threetwoone, threetwo, twoone):
            if n_gram in booster:
                valence = valence + booster[n_gram]
        return valence

    def _lexicon_valence(
        self, words: list[str], lower: list[str], i: int, is_cap_diff: bool
    ) -> float:
        """`SentimentIntensityAnalyzer.sentiment_valence` for a word in the lexicon."""
        lexicon = self.lexicon
        item_lowercase = lower[i]
        valence = lexicon[item_lowercase]
        n = len(words)
        if item_lowercase == "no" and i != n - 1 and lower[i + 1] in lexicon:
            valence = 0.0
        if (
            (i > 0 and lower[i - 1] == "no")
            or (i > 1 and lower[i - 2] == "no")
            or (i > 2 and lower[i - 3] == "no" and lower[i - 1] in ("or", "nor"))
        ):
            valence = lexicon[item_lowercase] * self._n_scalar
        if is_cap_diff and words[i].isupper():
            if valence > 0:
                valence += self._c_incr
            else:
                valence -= self._c_incr
        for start_i in range(3):
            if i > start_i and lower[i - (start_i + 1)] not in lexicon:
                s = self._scalar_inc_dec(words[i - (start_i + 1)], valence, is_cap_diff)
                if start_i == 1 and s != 0:
                    s = s * 0.95
                if start_i == 2 and s != 0:
                    s = s * 0.9
                valence = valence + s
                valence = self._negation_check(valence, lower, start_i, i)
                if start_i == 2:
                    valence = self._special_idioms_check(valence, lower, i)
        # `_least_check`
        if i > 1 and lower[i - 1] not in lexicon and lower[i - 1] == "least":
            if lower[i - 2] != "at" and lower[i - 2] != "very":
                valence = valence * self._n_scalar
        elif i > 0 and lower[i - 1] not in lexicon and lower[i - 1] == "least":
            valence = valence * self._n_scalar
        return valence

    def compound(self, text: str) -> float:
        """`SentimentIntensityAnalyzer().polarity_scores(text)["compound"]`."""
        if not (self._ascii_skips_emoji and text.isascii()):
            text = self._replace_emoji(text)
        text = text.strip()
        punctuation = self._punctuation
        words = []
        for token in text.split():
            stripped = token.strip(punctuation)
            words.append(token if len(stripped) <= 2 else stripped)
        lower = [word.lower() for word in words]
        n = len(words)
        is_cap_diff = self._allcap_differential(words)

        lexicon = self.lexicon
        booster = self._booster
        sentiments: list[float] = []
        for i, item_lowercase in enumerate(lower):
            if (
                item_lowercase in booster
                or item_lowercase not in lexicon
                or (item_lowercase == "kind" and i < n - 1 and lower[i + 1] == "of")
            ):
                sentiments.append(0)
            else:
                sentiments.append(self._lexicon_valence(words, lower, i, is_cap_diff))
        if "but" in lower:
            sentiments = self._but_check(words, sentiments)
        if not sentiments:
            return 0.0
        sum_s = float(sum(sentiments))
        if sum_s != 0:
            ep_count = text.count("!")
            if ep_count > 4:
                ep_count = 4
            ep_amplifier = ep_count * 0.292
            qm_count = text.count("?")
            qm_amplifier: float = 0
            if qm_count > 1:
                qm_amplifier = qm_count * 0.18 if qm_count <= 3 else 0.96
            punct_emph_amplifier = ep_amplifier + qm_amplifier
            if sum_s > 0:
                sum_s += punct_emph_amplifier
            else:
                sum_s -= punct_emph_amplifier
        return round(self._normalize(sum_s), 4)
