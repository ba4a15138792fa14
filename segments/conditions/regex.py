"""The regex dialect of conditions: one parse, exact translations for RE2 and PostgreSQL.

Conditions run on three engines: RE2 in process (and inside SQLite, through a registered
function) and PostgreSQL's own regex engine. Their syntaxes differ in the corners (`\\w`, `\\b`,
`.` and newlines, case folding), so a pattern is parsed here into a small tree and written out
for each engine with only constructs whose meaning is identical in both: explicit character
sets instead of class shorthands, `(?:…)` groups, greedy repetition. A match anywhere in the
text counts (search, not full match).

Supported: literals; `.` (any character but a newline); `[...]` and `[^...]` sets with
ranges; `\\d \\D \\w \\W \\s \\S` (ASCII: `[0-9]`, `[0-9A-Za-z_]`, `[\\t\\n\\f\\r ]`);
`\\n \\t \\r \\f \\v`;
a backslash before any ASCII punctuation; `^` and `$` (start and end of the whole text);
groups `(…)` and `(?:…)`; `|`; `* + ? {n} {n,} {n,m}` (bounds ≤ 100, a trailing `?` for laziness
is accepted and changes nothing, since only whether it matches counts); a leading `(?i)`,
which ignores the case of ASCII letters only. Anything else (back references, look-around,
`\\b`, `\\p{…}`, POSIX classes, other flags) is refused with a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

MAX_PATTERN_LENGTH = 200
MAX_REPEAT = 100
# Bounds the size of the programs both engines build: every atom counts once per copy that
# counted repetition makes of it.
MAX_WEIGHT = 2000

_DIGITS = ((ord("0"), ord("9")),)
_WORD = ((ord("0"), ord("9")), (ord("A"), ord("Z")), (ord("_"), ord("_")), (ord("a"), ord("z")))
_SPACE = ((9, 10), (12, 13), (32, 32))  # \t \n \f \r and space: RE2's \s
_CLASS_ESCAPES = {"d": _DIGITS, "w": _WORD, "s": _SPACE}
_CONTROL_ESCAPES = {"n": 10, "t": 9, "r": 13, "f": 12, "v": 11}
_SPECIAL = set("\\^$.|?*+()[]{}")

Ranges = tuple[tuple[int, int], ...]


class RegexUnsupported(ValueError):
    """The pattern is outside the dialect; the message says why and where."""


@dataclass(frozen=True, slots=True)
class CharSet:
    ranges: Ranges  # sorted, merged, inclusive code point ranges
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Anchor:
    end: bool  # False: start of text (^), True: end of text ($)


@dataclass(frozen=True, slots=True)
class Repeat:
    node: Node
    min: int
    max: int | None


@dataclass(frozen=True, slots=True)
class Sequence:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Alternation:
    branches: tuple[Node, ...]


Node = CharSet | Anchor | Repeat | Sequence | Alternation


@dataclass(frozen=True, slots=True)
class Translated:
    """A pattern written out for each engine."""

    re2: str
    postgresql: str


def _merge(ranges: list[tuple[int, int]]) -> Ranges:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _fold_ascii(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Add the other ASCII case of every ASCII letter in `ranges`."""
    extra: list[tuple[int, int]] = []
    for lo, hi in ranges:
        for first, last, shift in ((ord("a"), ord("z"), -32), (ord("A"), ord("Z"), 32)):
            a, b = max(lo, first), min(hi, last)
            if a <= b:
                extra.append((a + shift, b + shift))
    return ranges + extra


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0
        self.ignore_case = False
        if pattern.startswith("(?i)"):
            self.ignore_case = True
            self.pos = 4

    def fail(self, message: str, at: int | None = None) -> RegexUnsupported:
        """An error pointing at a character (1-based, as people count)."""
        return RegexUnsupported(f"{message} at position {(self.pos if at is None else at) + 1}")

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def parse(self) -> Node:
        node = self.alternation()
        if self.pos < len(self.text):
            raise self.fail('unbalanced ")"')
        return node

    def alternation(self) -> Node:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else Alternation(tuple(branches))

    def sequence(self) -> Node:
        items: list[Node] = []
        while (char := self.peek()) is not None and char not in "|)":
            items.append(self.piece())
        return items[0] if len(items) == 1 else Sequence(tuple(items))

    def piece(self) -> Node:
        start = self.pos
        atom = self.atom()
        char = self.peek()
        if char is None or char not in "*+?{":
            return atom
        if isinstance(atom, Anchor):
            raise self.fail(f'"{self.text[start]}" cannot be repeated', start)
        low, high = self.quantifier()
        if self.peek() == "?":  # lazy: irrelevant to whether there is a match
            self.pos += 1
        if (char := self.peek()) is not None and char in "*+?{":
            raise self.fail("a repetition cannot be repeated; use a group")
        return Repeat(atom, low, high)

    def quantifier(self) -> tuple[int, int | None]:
        start = self.pos
        char = self.text[self.pos]
        self.pos += 1
        if char == "*":
            return 0, None
        if char == "+":
            return 1, None
        if char == "?":
            return 0, 1
        low = self.number()
        high: int | None = low
        if self.peek() == ",":
            self.pos += 1
            high = None if self.peek() == "}" else self.number()
        if self.peek() != "}":
            raise self.fail(
                '"{" starts a repetition {n}, {n,} or {n,m}; write \\{ for the brace', start
            )
        self.pos += 1
        if low > MAX_REPEAT or (high is not None and high > MAX_REPEAT):
            raise self.fail(f"repetition bounds are at most {MAX_REPEAT}", start)
        if high is not None and high < low:
            raise self.fail("repetition {n,m} needs n ≤ m", start)
        return low, high

    def number(self) -> int:
        start = self.pos
        while (char := self.peek()) is not None and "0" <= char <= "9":
            self.pos += 1
        if start == self.pos or self.pos - start > 6:
            raise self.fail('"{" starts a repetition {n}, {n,} or {n,m}; write \\{ for the brace')
        return int(self.text[start : self.pos])

    def atom(self) -> Node:
        start = self.pos
        char = self.text[self.pos]
        if char == "(":
            self.pos += 1
            if self.text.startswith("?:", self.pos):
                self.pos += 2
            elif self.peek() == "?":
                raise self.fail("only (…) and (?:…) groups are supported", start)
            inner = self.alternation()
            if self.peek() != ")":
                raise self.fail('missing ")"')
            self.pos += 1
            return inner
        if char == "[":
            return self.char_set()
        if char == ".":
            self.pos += 1
            return CharSet(((10, 10),), negated=True)
        if char in "^$":
            self.pos += 1
            return Anchor(end=char == "$")
        if char == "\\":
            return self.escape(in_set=False)
        if char in "*+?":
            raise self.fail(f'nothing to repeat before "{char}"', start)
        if char in "{}":
            raise self.fail(f'write \\{char} for a literal "{char}"', start)
        self.pos += 1
        return self.literal(ord(char))

    def literal(self, code: int) -> CharSet:
        ranges = [(code, code)]
        if self.ignore_case:
            ranges = _fold_ascii(ranges)
        return CharSet(_merge(ranges))

    def escape(self, *, in_set: bool) -> CharSet:
        start = self.pos
        self.pos += 1
        char = self.peek()
        if char is None:
            raise self.fail("trailing backslash", start)
        self.pos += 1
        lower = char.lower()
        if lower in _CLASS_ESCAPES:
            if in_set and char != lower:
                raise self.fail(f"\\{char} is not supported inside [ ]", start)
            return CharSet(_CLASS_ESCAPES[lower], negated=char != lower)
        if char in _CONTROL_ESCAPES:
            return CharSet(((_CONTROL_ESCAPES[char],) * 2,))
        if char.isascii() and not char.isalnum():
            return self.literal(ord(char))
        raise self.fail(f"unsupported escape \\{char}", start)

    def char_set(self) -> CharSet:
        self.pos += 1
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            char = self.peek()
            if char is None:
                raise self.fail('missing "]"')
            if char == "]" and not first:
                self.pos += 1
                break
            if char == "[":
                raise self.fail('write \\[ for a literal "[" inside [ ]')
            if char == "]":
                raise self.fail('write \\] for a literal "]" inside [ ]')
            first = False
            item_start = self.pos
            low = self.set_item()
            if (
                self.peek() == "-"
                and self.pos + 1 < len(self.text)
                and self.text[self.pos + 1] != "]"
            ):
                self.pos += 1
                high = self.set_item()
                if not (_single(low) and _single(high)):
                    raise self.fail("a range needs single characters on both sides", item_start)
                a, b = low.ranges[0][0], high.ranges[0][0]
                if a > b:
                    raise self.fail("range out of order", item_start)
                ranges.append((a, b))
            else:
                ranges.extend(low.ranges)
        if self.ignore_case:
            ranges = _fold_ascii(ranges)
        return CharSet(_merge(ranges), negated=negated)

    def set_item(self) -> CharSet:
        char = self.text[self.pos]
        if char == "\\":
            return self.escape(in_set=True)
        self.pos += 1
        return CharSet(((ord(char), ord(char)),))


def _single(node: CharSet) -> bool:
    return not node.negated and len(node.ranges) == 1 and node.ranges[0][0] == node.ranges[0][1]


def _weight(node: Node) -> int:
    if isinstance(node, CharSet | Anchor):
        return 1
    if isinstance(node, Repeat):
        copies = max(node.min, node.max or 0, 1)
        return _weight(node.node) * copies
    items = node.items if isinstance(node, Sequence) else node.branches
    return sum(_weight(item) for item in items) + 1


def _char(code: int, engine: str) -> str:
    char = chr(code)
    if char.isascii() and char.isalnum():
        return char
    if engine == "re2":
        return f"\\x{{{code:X}}}"
    return f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"


def _emit(node: Node, engine: str) -> str:
    if isinstance(node, CharSet):
        if _single(node):
            return _char(node.ranges[0][0], engine)
        # Surrogates cannot occur in text; leaving them out of ranges keeps both engines happy.
        parts = []
        for lo, hi in node.ranges:
            for a, b in ((lo, min(hi, 0xD7FF)), (max(lo, 0xE000), hi)):
                if a > b:
                    continue
                parts.append(
                    _char(a, engine) if a == b else f"{_char(a, engine)}-{_char(b, engine)}"
                )
        return f"[{'^' if node.negated else ''}{''.join(parts)}]"
    if isinstance(node, Anchor):
        return "$" if node.end else "^"
    if isinstance(node, Repeat):
        inner = f"(?:{_emit(node.node, engine)})"
        if (node.min, node.max) == (0, None):
            return inner + "*"
        if (node.min, node.max) == (1, None):
            return inner + "+"
        if (node.min, node.max) == (0, 1):
            return inner + "?"
        if node.max is None:
            return f"{inner}{{{node.min},}}"
        if node.max == node.min:
            return f"{inner}{{{node.min}}}"
        return f"{inner}{{{node.min},{node.max}}}"
    if isinstance(node, Sequence):
        return "".join(
            f"(?:{_emit(item, engine)})" if isinstance(item, Alternation) else _emit(item, engine)
            for item in node.items
        )
    return "|".join(_emit(branch, engine) for branch in node.branches)


def regex_parse(pattern: str) -> Node:
    """The tree of a pattern of the dialect; `RegexUnsupported` says what is outside it."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise RegexUnsupported(f"longer than {MAX_PATTERN_LENGTH} characters")
    if any(0xD800 <= ord(char) <= 0xDFFF for char in pattern):
        raise RegexUnsupported("contains an unpaired surrogate")
    node = _Parser(pattern).parse()
    if _weight(node) > MAX_WEIGHT:
        raise RegexUnsupported("too complex once repetitions are expanded")
    return node


@dataclass(frozen=True, slots=True)
class Literal:
    """A pattern that is plain text, perhaps anchored: searchable with string methods."""

    text: str
    at_start: bool
    at_end: bool


def regex_literal(pattern: str) -> Literal | None:
    """The literal a pattern amounts to (e.g. `^/reports/` or `@acme\\.com$`), or None."""
    node = regex_parse(pattern)
    items = list(node.items) if isinstance(node, Sequence) else [node]
    at_start = bool(items) and items[0] == Anchor(end=False)
    if at_start:
        items.pop(0)
    at_end = bool(items) and items[-1] == Anchor(end=True)
    if at_end:
        items.pop()
    chars = []
    for item in items:
        if not isinstance(item, CharSet) or not _single(item):
            return None
        chars.append(chr(item.ranges[0][0]))
    return Literal("".join(chars), at_start, at_end)


@lru_cache(maxsize=4096)
def regex_translate(pattern: str) -> Translated:
    """The pattern for RE2 and for PostgreSQL, with the same matches (search semantics)."""
    node = regex_parse(pattern)
    return Translated(re2=_emit(node, "re2"), postgresql=_emit(node, "postgresql"))
