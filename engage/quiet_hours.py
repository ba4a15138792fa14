"""Quiet hours: no campaign shows between two local times in the person's time zone.

An App may set `quiet_hours = {"start": "22:00", "end": "08:00"}`. The person's local time
comes from their `timezone` attribute (an IANA name such as "Europe/Paris"); without one, or
with a name that is not a time zone, the App's `timezone` is used. A window whose end is
before its start spans midnight. Pushes and previews are explicit and ignore quiet hours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engage import errors

_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    def contains(self, moment: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def label(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


def _clock(value: Any, name: str) -> time:
    match = _CLOCK.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise errors.InvalidInput(
            f'quiet_hours.{name}: must be a 24-hour time "HH:MM"', code="invalid_quiet_hours"
        )
    return time(int(match.group(1)), int(match.group(2)))


def quiet_hours_validate(value: Any) -> dict[str, str]:
    """The setting as stored: {} (none) or {"start", "end"}; raises InvalidInput naming the key."""
    if value in (None, {}, ""):
        return {}
    if not isinstance(value, dict):
        raise errors.InvalidInput(
            'quiet_hours: must be {"start": "HH:MM", "end": "HH:MM"} or empty',
            code="invalid_quiet_hours",
        )
    unknown = set(value) - {"start", "end"}
    if unknown:
        raise errors.InvalidInput(
            f"quiet_hours.{sorted(unknown)[0]}: unknown key", code="invalid_quiet_hours"
        )
    start, end = _clock(value.get("start"), "start"), _clock(value.get("end"), "end")
    return {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}"}


@lru_cache(maxsize=64)
def _parsed(start: str, end: str) -> QuietHours | None:
    try:
        return QuietHours(_clock(start, "start"), _clock(end, "end"))
    except errors.InvalidInput:
        return None  # saved before validation existed: no quiet hours rather than a crash


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class LocalTime:
    at: datetime
    zone_name: str
    fallback: bool  # the App's zone, because the person has no valid `timezone`


def local_time(*, now: datetime, person_zone: Any, app_zone: str) -> LocalTime:
    """`now` in the person's zone, or the App's when theirs is missing or unknown."""
    if isinstance(person_zone, str) and person_zone and (found := zone(person_zone)):
        return LocalTime(now.astimezone(found), person_zone, False)
    fallback = zone(app_zone) or ZoneInfo("UTC")
    return LocalTime(now.astimezone(fallback), str(fallback.key), True)


@lru_cache(maxsize=1024)
def quiet_hours_verdict(
    start: str, end: str, now: datetime, person_zone: str | None, app_zone: str
) -> tuple[bool, str] | None:
    """(inside quiet hours, the reason in words) for one moment and zone; None when the
    setting is unusable. Cached: a decision asks once per campaign with the same arguments."""
    hours = _parsed(start, end)
    if hours is None:
        return None
    local = local_time(now=now, person_zone=person_zone, app_zone=app_zone)
    where = f"{local.at:%H:%M} in {local.zone_name}" + (" (App default)" if local.fallback else "")
    if hours.contains(local.at.time()):
        return True, f"it is {where}, inside quiet hours {hours.label()}"
    return False, f"it is {where}, outside quiet hours {hours.label()}"
