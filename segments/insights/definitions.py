"""Trend and funnel definitions: JSON in, typed and validated, every problem named by its field.

Parsing is pure except for one check that needs the database (`event_names_check`): a step or
trend naming an event the App never received is refused, so a typo does not read as "0%".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.utils.dateparse import parse_date, parse_datetime

from engage.errors import InvalidInput
from segments.conditions import ConditionInvalid, EventCondition, PropertyFilter, parse_condition

INTERVALS = ("day", "week")
MIN_STEPS = 2
MAX_STEPS = 10
MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=90)
DEFAULT_WINDOW = timedelta(days=14)
WINDOW_UNITS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 732
DEFAULT_BREAKDOWN_LIMIT = 10
MAX_BREAKDOWN_LIMIT = 25
MAX_SEGMENTS = 10
OTHER = "other"
NONE_VALUE = "(none)"


def _invalid(field: str, message: str, code: str = "invalid_definition") -> InvalidInput:
    return InvalidInput(f"{field}: {message}", code=code, details={"field": field})


@dataclass(frozen=True)
class EventFilter:
    """One event name with optional property filters (the `where` of the condition language)."""

    event: str
    where: tuple[PropertyFilter, ...] = ()
    label: str = ""


@dataclass(frozen=True)
class DateRange:
    """[start, end) in UTC; `end` is exclusive (the day after `date_to`)."""

    start: datetime
    end: datetime

    def as_dict(self) -> dict[str, str]:
        return {
            "date_from": self.start.date().isoformat(),
            "date_to": (self.end - timedelta(days=1)).date().isoformat(),
        }


@dataclass(frozen=True)
class Breakdown:
    """By one event property (top `limit` values, the rest in "other") or by segments."""

    property: str | None = None
    limit: int = DEFAULT_BREAKDOWN_LIMIT
    segments: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrendDefinition:
    event: EventFilter
    interval: str
    range: DateRange
    breakdown: Breakdown | None = None


@dataclass(frozen=True)
class FunnelDefinition:
    steps: tuple[EventFilter, ...]
    window: timedelta
    range: DateRange
    breakdown: Breakdown | None = None


def _mapping(data: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise _invalid(field, "must be an object")
    return data


def _unknown_keys(data: Mapping[str, Any], allowed: Iterable[str], field: str) -> None:
    extra = sorted(set(data) - set(allowed))
    if extra:
        where = f"{field}." if field else ""
        raise _invalid(f"{where}{extra[0]}", "unknown field")


def event_filter_parse(data: Any, field: str) -> EventFilter:
    """`{"event": NAME, "where"?: [...], "label"?: TEXT}` as an `EventFilter`."""
    data = _mapping(data, field)
    _unknown_keys(data, ("event", "where", "label"), field)
    name = data.get("event")
    if not isinstance(name, str) or not name.strip():
        raise _invalid(f"{field}.event", "give the event name")
    label = data.get("label", "")
    if not isinstance(label, str) or len(label) > 200:
        raise _invalid(f"{field}.label", "must be a text of at most 200 characters")
    where = data.get("where") or []
    try:
        parsed = parse_condition({"event": name, "where": where})
    except ConditionInvalid as exc:
        first = exc.errors[0]
        raise InvalidInput(
            f"{field}.{first.path}: {first.message}" if first.path else f"{field}: {first}",
            code="invalid_definition",
            details=[
                {"path": f"{field}.{e.path}" if e.path else field, "message": e.message}
                for e in exc.errors
            ],
        ) from None
    assert isinstance(parsed, EventCondition)  # noqa: S101 - an "event" leaf parses to one
    return EventFilter(event=name, where=parsed.where, label=label)


def _moment(value: Any, field: str, *, end: bool) -> datetime:
    """A date (whole UTC day; `end` means the day after it) or an ISO datetime."""
    if isinstance(value, str):
        day = parse_date(value) if len(value) == 10 else None
        if day is not None:
            moment = datetime.combine(day, time.min, tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise _invalid(field, "must be a date (YYYY-MM-DD) or an ISO 8601 datetime")


def date_range_parse(data: Mapping[str, Any], *, today: date) -> DateRange:
    """`date_from` / `date_to` (both inclusive days, UTC), or `last_days` (the N days ending
    today, which keeps a saved insight current); the last 30 days by default."""
    if data.get("last_days") is not None:
        days = data["last_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_RANGE_DAYS:
            raise _invalid("last_days", f"must be a whole number from 1 to {MAX_RANGE_DAYS}")
        if data.get("date_from") is not None or data.get("date_to") is not None:
            raise _invalid("last_days", "give either last_days or date_from/date_to")
        end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC)
        return DateRange(start=end - timedelta(days=days), end=end)
    end = (
        _moment(data["date_to"], "date_to", end=True)
        if data.get("date_to") is not None
        else datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC)
    )
    start = (
        _moment(data["date_from"], "date_from", end=False)
        if data.get("date_from") is not None
        else end - timedelta(days=DEFAULT_RANGE_DAYS)
    )
    if start >= end:
        raise _invalid("date_from", "must be before date_to")
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise _invalid("date_from", f"the range may span at most {MAX_RANGE_DAYS} days")
    return DateRange(start=start, end=end)


def breakdown_parse(data: Any, *, allow_property: bool) -> Breakdown | None:
    if data is None:
        return None
    data = _mapping(data, "breakdown")
    _unknown_keys(data, ("property", "limit", "segments"), "breakdown")
    if "segments" in data:
        slugs = data["segments"]
        if (
            not isinstance(slugs, list)
            or not slugs
            or not all(isinstance(s, str) and s for s in slugs)
        ):
            raise _invalid("breakdown.segments", "must be a non-empty list of segment slugs")
        if len(slugs) > MAX_SEGMENTS:
            raise _invalid(
                "breakdown.segments",
                f"at most {MAX_SEGMENTS} segments per breakdown",
                code="breakdown_too_large",
            )
        if "property" in data:
            raise _invalid("breakdown", "give either property or segments, not both")
        return Breakdown(segments=tuple(dict.fromkeys(slugs)))
    if "property" in data:
        if not allow_property:
            raise _invalid(
                "breakdown.property",
                "funnels break down by segments (or by campaign exposure and variant)",
            )
        prop = data["property"]
        if not isinstance(prop, str) or not prop or len(prop) > 255:
            raise _invalid("breakdown.property", "give the property name")
        limit = data.get("limit", DEFAULT_BREAKDOWN_LIMIT)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise _invalid("breakdown.limit", "must be a positive whole number")
        if limit > MAX_BREAKDOWN_LIMIT:
            raise _invalid(
                "breakdown.limit",
                f'at most {MAX_BREAKDOWN_LIMIT} values; the rest are summed in "{OTHER}"',
                code="breakdown_too_large",
            )
        return Breakdown(property=prop, limit=limit)
    raise _invalid("breakdown", "give a property or segments")


TREND_KEYS = ("event", "where", "interval", "date_from", "date_to", "last_days", "breakdown")
FUNNEL_KEYS = ("steps", "window", "date_from", "date_to", "last_days", "breakdown")


def trend_parse(data: Any, *, today: date, extra_keys: Iterable[str] = ()) -> TrendDefinition:
    """A trend definition from JSON; raises InvalidInput naming the field."""
    data = _mapping(data, "definition")
    _unknown_keys(data, (*TREND_KEYS, *extra_keys), "")
    event = event_filter_parse({"event": data.get("event"), "where": data.get("where")}, "trend")
    interval = data.get("interval", "day")
    if interval not in INTERVALS:
        raise _invalid("interval", f"must be one of {', '.join(INTERVALS)}")
    return TrendDefinition(
        event=EventFilter(event=event.event, where=event.where),
        interval=interval,
        range=date_range_parse(data, today=today),
        breakdown=breakdown_parse(data.get("breakdown"), allow_property=True),
    )


def window_parse(data: Any) -> timedelta:
    """`{"value": 7, "unit": "day"}` (units minute, hour, day, week), 1 minute to 90 days."""
    if data is None:
        return DEFAULT_WINDOW
    data = _mapping(data, "window")
    _unknown_keys(data, ("value", "unit"), "window")
    value, unit = data.get("value"), data.get("unit", "day")
    if unit not in WINDOW_UNITS:
        raise _invalid("window.unit", f"must be one of {', '.join(WINDOW_UNITS)}")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _invalid("window.value", "must be a positive whole number")
    window = timedelta(seconds=value * WINDOW_UNITS[unit])
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise _invalid("window", "the conversion window must be between 1 minute and 90 days")
    return window


def funnel_parse(data: Any, *, today: date, extra_keys: Iterable[str] = ()) -> FunnelDefinition:
    """A funnel definition from JSON; raises InvalidInput naming the field."""
    data = _mapping(data, "definition")
    _unknown_keys(data, (*FUNNEL_KEYS, *extra_keys), "")
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise _invalid("steps", f"give {MIN_STEPS} to {MAX_STEPS} steps", code="invalid_steps")
    if len(steps) < MIN_STEPS or len(steps) > MAX_STEPS:
        raise _invalid(
            "steps",
            f"a funnel has {MIN_STEPS} to {MAX_STEPS} steps, not {len(steps)}",
            code="invalid_steps",
        )
    parsed = tuple(event_filter_parse(step, f"steps[{i}]") for i, step in enumerate(steps))
    return FunnelDefinition(
        steps=parsed,
        window=window_parse(data.get("window")),
        range=date_range_parse(data, today=today),
        breakdown=breakdown_parse(data.get("breakdown"), allow_property=False),
    )


def event_names_check(*, app_id: int, names: dict[str, str]) -> None:
    """Refuse event names this App never received. `names` maps field path → event name."""
    from segments.models import Event

    wanted = set(names.values())
    known: set[str] = set()
    for name in wanted:
        if Event.objects.filter(app_id=app_id, name=name).exists():
            known.add(name)
    for field, name in names.items():
        if name not in known:
            raise InvalidInput(
                f'{field}: no event "{name}" has been received in this App',
                code="unknown_event",
                details={"field": field, "event": name},
            )
