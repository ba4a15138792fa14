"""Operators: which values each accepts, and what each means for one JSON value.

The rules here are the reference semantics; the SQL compiler reproduces them per database.

- Values have JSON kinds: string, number (a boolean is not a number), boolean, array, object,
  and null. An operator compares an attribute with a value of its own kind; a value of another
  kind is a mismatch and the test is false, never an error.
- A missing or null attribute fails every test except `is_not_set`. So `neq`, `not_in` and
  `not_contains` are false for a person without the attribute: "plan is not pro" does not
  match people with no plan. Combine with `is_not_set` under `any` to include them.
- Strings compare case-sensitively, character by character (Unicode code points), with no
  normalisation; `gt`/`lt`/`between` on strings use code point order.
- `contains`/`not_contains` look for a substring in a string, or an element of the same kind
  and value in an array.
- Dates are strings in ISO 8601 (`2024-05-01`, `2024-05-01T10:00:00`, with optional seconds,
  fraction (digits beyond microseconds are dropped) and `Z` or `±HH:MM` up to ±15:59; a
  space may replace `T`; no offset means UTC; a date alone means its midnight, UTC).
  `before`/`after` compare instants; `within_last_days N` holds for instants in
  [now − N×24h, now]; `not_within_last_days N` for instants before now − N×24h.
  A string that is not such a date is a mismatch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

import re2

from segments.conditions.regex import (
    MAX_PATTERN_LENGTH,
    RegexUnsupported,
    regex_literal,
    regex_translate,
)

try:  # RE2's own binding: a boolean search without the wrapper's span bookkeeping
    from re2 import _re2 as _re2_binding
except ImportError:  # pragma: no cover - the wrapper alone still works, more slowly
    _re2_binding = None

Scalar = str | int | float | bool
Value = Scalar | tuple[Scalar, ...] | None
ValueTest = Callable[[Any, datetime], bool]


class Op(StrEnum):
    EQ = "eq"
    NEQ = "neq"
    IN = "in"
    NOT_IN = "not_in"
    CONTAINS = "contains"
    NOT_CONTAINS = "not_contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    REGEX = "regex"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    BETWEEN = "between"
    IS_SET = "is_set"
    IS_NOT_SET = "is_not_set"
    BEFORE = "before"
    AFTER = "after"
    WITHIN_LAST_DAYS = "within_last_days"
    NOT_WITHIN_LAST_DAYS = "not_within_last_days"


ATTRIBUTE_OPS = frozenset(Op)
# Context values (page URL, locale, device) are strings or absent.
CONTEXT_OPS = frozenset(
    {
        Op.EQ,
        Op.NEQ,
        Op.IN,
        Op.NOT_IN,
        Op.CONTAINS,
        Op.NOT_CONTAINS,
        Op.STARTS_WITH,
        Op.ENDS_WITH,
        Op.REGEX,
        Op.IS_SET,
        Op.IS_NOT_SET,
    }
)
COUNT_OPS = frozenset({Op.EQ, Op.NEQ, Op.GT, Op.GTE, Op.LT, Op.LTE, Op.BETWEEN})
ORDER_OPS = frozenset({Op.GT, Op.GTE, Op.LT, Op.LTE})
DATE_OPS = frozenset({Op.BEFORE, Op.AFTER})
RELATIVE_DATE_OPS = frozenset({Op.WITHIN_LAST_DAYS, Op.NOT_WITHIN_LAST_DAYS})
NO_VALUE_OPS = frozenset({Op.IS_SET, Op.IS_NOT_SET})

MAX_LIST_LENGTH = 1000
MAX_STRING_LENGTH = 1000
MAX_DAYS = 36500

MICROS_PER_DAY = 86_400_000_000
# The widest offset PostgreSQL accepts (real ones span −12:00 to +14:00).
MAX_OFFSET_HOURS = 15


# ---- kinds -------------------------------------------------------------------------------


def kind_of(value: Any) -> str:
    """The JSON kind of a value: string, number, boolean, null, array, object (or other)."""
    kind = type(value)
    if kind is str:
        return "string"
    if kind is bool:
        return "boolean"
    if kind is int or kind is float:
        return "number"
    if value is None:
        return "null"
    if kind is list or kind is tuple:
        return "array"
    if kind is dict:
        return "object"
    return "other"


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or kind is float


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same kind (1 == 1.0, but True != 1 and "1" != 1)."""
    return kind_of(a) == kind_of(b) and a == b


# ---- ISO dates ---------------------------------------------------------------------------

ISO_PATTERN = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?)?"
)
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)


def iso_shapes() -> list[str]:
    """Every shape ISO_PATTERN accepts, with each digit written as 0 (89 of them); the SQL
    compiler checks a string's shape against these instead of running a regex per row."""
    times = [""]
    for separator in "T ":
        for seconds in ["", ":00", *(":00." + "0" * n for n in range(1, 10))]:
            for zone in ("", "Z", "+00:00", "-00:00"):
                times.append(f"{separator}00:00{seconds}{zone}")
    return [f"0000-00-00{time}" for time in times]


def days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 (Howard Hinnant's algorithm; year ≥ 1, so no negative division).

    The SQL compiler writes the same arithmetic for PostgreSQL.
    """
    y = year - (1 if month <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@lru_cache(maxsize=32768)
def iso_instant(text: str) -> int | None:
    """Microseconds since the epoch (UTC) of an ISO 8601 date or datetime, or None."""
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    year, month, day = int(match[1]), int(match[2]), int(match[3])
    hour = int(match[4] or 0)
    minute = int(match[5] or 0)
    second = int(match[6] or 0)
    micros = int(((match[7] or "") + "000000")[:6])
    offset = 0
    zone = match[8]
    if zone and zone != "Z":
        off_h, off_m = int(zone[1:3]), int(zone[4:6])
        if off_h > MAX_OFFSET_HOURS or off_m > 59:
            return None
        offset = (off_h * 60 + off_m) * (1 if zone[0] == "+" else -1)
    if not (year >= 1 and 1 <= month <= 12 and 1 <= day <= days_in_month(year, month)):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return (seconds - offset * 60) * 1_000_000 + micros


def datetime_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (naive is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


# ---- values ------------------------------------------------------------------------------


def _scalar_error(value: Any, *, strings_only: bool) -> str | None:
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            return f"a string of at most {MAX_STRING_LENGTH} characters"
        return None
    if strings_only:
        return "a string"
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return None if math.isfinite(value) else "a finite number"
    return "a string, a number or a boolean"


def value_validate(op: Op, value: Any, *, present: bool, context: bool = False) -> str | None:
    """Why `value` cannot go with `op` (a message for the `value` path), or None.

    `present` says whether the condition had a "value" key at all; `context` restricts values
    to what page URL, locale and device can be compared with (strings).
    """
    if op in NO_VALUE_OPS:
        return None if value is None else f'"{op}" takes no value'
    if not present:
        return f'"{op}" needs a value'
    if op in (Op.EQ, Op.NEQ, Op.CONTAINS, Op.NOT_CONTAINS):
        problem = _scalar_error(value, strings_only=context)
        return f'"{op}" needs {problem}' if problem else None
    if op in (Op.STARTS_WITH, Op.ENDS_WITH):
        problem = _scalar_error(value, strings_only=True)
        return f'"{op}" needs {problem}' if problem else None
    if op in (Op.IN, Op.NOT_IN):
        allowed = "strings" if context else "strings, numbers or booleans"
        if not isinstance(value, list) or not value or len(value) > MAX_LIST_LENGTH:
            return f'"{op}" needs a list of 1 to {MAX_LIST_LENGTH} {allowed}'
        for index, item in enumerate(value):
            problem = _scalar_error(item, strings_only=context)
            if problem:
                return f'"{op}" needs a list of {allowed}; item {index} is not {problem}'
        return None
    if op is Op.REGEX:
        if not isinstance(value, str) or len(value) > MAX_PATTERN_LENGTH:
            return f'"regex" needs a string of at most {MAX_PATTERN_LENGTH} characters'
        try:
            re2.compile(regex_translate(value).re2)
        except RegexUnsupported as error:
            return f"unsupported regex: {error}"
        except re2.error as error:
            return f"invalid regex: {error}"
        return None
    if op in ORDER_OPS:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return f'"{op}" needs a number or a string'
        problem = _scalar_error(value, strings_only=False)
        return f'"{op}" needs {problem}' if problem else None
    if op is Op.BETWEEN:
        return _between_error(value)
    if op in DATE_OPS:
        if not isinstance(value, str) or iso_instant(value) is None:
            return f'"{op}" needs an ISO 8601 date or datetime such as "2024-05-01"'
        return None
    if op in RELATIVE_DATE_OPS:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
            return f'"{op}" needs a whole number of days from 1 to {MAX_DAYS}'
        return None
    raise AssertionError(op)  # pragma: no cover - every operator is handled above


def _between_error(value: Any) -> str | None:
    message = '"between" needs [low, high]: two numbers or two strings, low ≤ high'
    if not isinstance(value, list) or len(value) != 2:
        return message
    low, high = value
    if kind_of(low) != kind_of(high) or kind_of(low) not in ("number", "string"):
        return message
    if _scalar_error(low, strings_only=False) or _scalar_error(high, strings_only=False):
        return message
    return message if low > high else None


def count_value_validate(op: Op, value: Any, *, present: bool) -> str | None:
    """Why `value` cannot be an event count for `op`, or None."""

    def is_count(item: Any) -> bool:
        return isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 10**9

    if not present:
        return f'"{op}" needs a value'
    if op is Op.BETWEEN:
        if (
            isinstance(value, list)
            and len(value) == 2
            and all(is_count(item) for item in value)
            and value[0] <= value[1]
        ):
            return None
        return '"between" needs [low, high]: two whole numbers ≥ 0, low ≤ high'
    return None if is_count(value) else f'"{op}" needs a whole number ≥ 0'


def value_freeze(value: Any) -> Value:
    """The hashable form of a validated value (lists become tuples)."""
    if isinstance(value, list):
        return tuple(value)
    frozen: Value = value
    return frozen


# ---- tests on one value ------------------------------------------------------------------


def _never(_value: Any, _now: datetime) -> bool:
    return False


def _equal_test(target: Scalar) -> ValueTest:
    if type(target) is str:
        return lambda v, _now: type(v) is str and v == target
    if type(target) is bool:
        return lambda v, _now: v is target
    return lambda v, _now: (type(v) is int or type(v) is float) and v == target


def _member_test(targets: tuple[Scalar, ...], *, negate: bool) -> ValueTest:
    strings = frozenset(t for t in targets if type(t) is str)
    numbers = frozenset(t for t in targets if _is_number(t))
    booleans = frozenset(t for t in targets if type(t) is bool)

    def member(v: Any, _now: datetime) -> bool:
        kind = type(v)
        if kind is str:
            pool: frozenset[Any] = strings
        elif kind is int or kind is float:
            pool = numbers
        elif kind is bool:
            pool = booleans
        else:
            return False
        if negate:
            # Only values of a kind the list has count: a number is not "not in" a list
            # of strings, it is a mismatch.
            return bool(pool) and v not in pool
        return v in pool

    return member


def _contains_test(target: Scalar, *, negate: bool) -> ValueTest:
    def contains(v: Any, _now: datetime) -> bool:
        kind = type(v)
        if kind is str:
            if type(target) is not str:
                return False
            return (target not in v) if negate else (target in v)
        if kind is list or kind is tuple:
            found = any(_same(item, target) for item in v)
            return not found if negate else found
        return False

    return contains


def _order_test(op: Op, target: int | float | str) -> ValueTest:
    if type(target) is str:

        def same_kind(v: Any) -> bool:
            return type(v) is str

    else:

        def same_kind(v: Any) -> bool:
            return type(v) is int or type(v) is float

    if op is Op.GT:
        return lambda v, _now: same_kind(v) and v > target
    if op is Op.GTE:
        return lambda v, _now: same_kind(v) and v >= target
    if op is Op.LT:
        return lambda v, _now: same_kind(v) and v < target
    return lambda v, _now: same_kind(v) and v <= target


def _between_test(low: Any, high: Any) -> ValueTest:
    if type(low) is str:
        return lambda v, _now: type(v) is str and low <= v <= high
    return lambda v, _now: (type(v) is int or type(v) is float) and low <= v <= high


@lru_cache(maxsize=4096)
def regex_compiled(pattern: str) -> Any:
    """The pattern compiled by RE2's public API (validation, and the reference for tests)."""
    return re2.compile(regex_translate(pattern).re2)


@lru_cache(maxsize=4096)
def regex_search(pattern: str) -> Callable[[str], bool]:
    """Whether the pattern occurs in a text: string methods for a plain literal, else RE2.

    Raises UnicodeEncodeError for text with unpaired surrogates, which is not text.
    """
    literal = regex_literal(pattern)
    if literal is not None:
        text = literal.text
        if literal.at_start and literal.at_end:
            return lambda v: v == text
        if literal.at_start:
            return lambda v: v.startswith(text)
        if literal.at_end:
            return lambda v: v.endswith(text)
        return lambda v: text in v
    translated = regex_translate(pattern).re2
    if _re2_binding is not None:
        # A one-pattern RE2 set answers "is there a match" with the DFA alone.
        options = re2.Options()
        options.never_capture = True
        regexp_set = _re2_binding.Set(_re2_binding.RE2.Anchor.UNANCHORED, options)
        if regexp_set.Add(translated.encode()) == 0 and regexp_set.Compile():
            match = regexp_set.Match
            return lambda v: bool(match(v.encode()))
    compiled = regex_compiled(pattern)
    return lambda v: compiled.search(v) is not None


def _regex_test(pattern: str) -> ValueTest:
    search = regex_search(pattern)

    def test(v: Any, _now: datetime) -> bool:
        if type(v) is not str:
            return False
        try:
            return search(v)
        except UnicodeEncodeError:  # unpaired surrogates cannot be searched: not a string
            return False

    return test


def _date_test(op: Op, value: Any) -> ValueTest:
    if op in DATE_OPS:
        bound = iso_instant(value)
        if bound is None:  # pragma: no cover - refused by validation
            raise ValueError(f"not an ISO date: {value!r}")

        def compare(v: Any, _now: datetime) -> bool:
            instant = iso_instant(v) if type(v) is str else None
            if instant is None:
                return False
            return instant < bound if op is Op.BEFORE else instant > bound

        return compare

    span = value * MICROS_PER_DAY

    def relative(v: Any, now: datetime) -> bool:
        instant = iso_instant(v) if type(v) is str else None
        if instant is None:
            return False
        now_micros = datetime_micros(now)
        if op is Op.WITHIN_LAST_DAYS:
            return now_micros - span <= instant <= now_micros
        return instant < now_micros - span

    return relative


def value_test(op: Op, value: Any) -> ValueTest:
    """A test of one JSON value (None when missing) against a validated `op` and `value`."""
    if op is Op.IS_SET:
        return lambda v, _now: v is not None
    if op is Op.IS_NOT_SET:
        return lambda v, _now: v is None
    if op is Op.EQ:
        return _equal_test(value)
    if op is Op.NEQ:
        equal = _equal_test(value)
        kind = kind_of(value)
        return lambda v, now: kind_of(v) == kind and not equal(v, now)
    if op in (Op.IN, Op.NOT_IN):
        return _member_test(value, negate=op is Op.NOT_IN)
    if op in (Op.CONTAINS, Op.NOT_CONTAINS):
        return _contains_test(value, negate=op is Op.NOT_CONTAINS)
    if op is Op.STARTS_WITH:
        return lambda v, _now: type(v) is str and v.startswith(value)
    if op is Op.ENDS_WITH:
        return lambda v, _now: type(v) is str and v.endswith(value)
    if op is Op.REGEX:
        return _regex_test(value)
    if op in ORDER_OPS:
        return _order_test(op, value)
    if op is Op.BETWEEN:
        low, high = value
        return _between_test(low, high)
    if op in DATE_OPS or op in RELATIVE_DATE_OPS:
        return _date_test(op, value)
    return _never  # pragma: no cover


def count_test(op: Op, value: Any) -> Callable[[int], bool]:
    """A test of an event count against a validated count operator and value."""
    if op is Op.BETWEEN:
        low, high = value
        return lambda n: low <= n <= high
    target: int = value
    return {
        Op.EQ: lambda n: n == target,
        Op.NEQ: lambda n: n != target,
        Op.GT: lambda n: n > target,
        Op.GTE: lambda n: n >= target,
        Op.LT: lambda n: n < target,
        Op.LTE: lambda n: n <= target,
    }[op]
