"""ISO dates: PostgreSQL's SQL reading of a date string gives the instant Python gives."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segments.conditions.operators import ISO_PATTERN, iso_instant, iso_shapes
from segments.conditions.sql import _PG_INSTANT

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_shapes_are_exactly_the_pattern() -> None:
    shapes = iso_shapes()
    assert len(set(shapes)) == 89
    assert all(re.fullmatch(ISO_PATTERN, shape) for shape in shapes)
    # Each digit position of a shape, as a digit-free string, is refused.
    assert not any(re.fullmatch(ISO_PATTERN, shape.replace("0", "x", 1)) for shape in shapes)


@st.composite
def date_strings(draw: st.DrawFn) -> str:
    """Mostly well-shaped strings with edge-prone digits, sometimes one character off."""
    shape = draw(st.sampled_from(iso_shapes()))
    digits = st.sampled_from("0123456789") | st.sampled_from("0129")
    chars = [draw(digits) if c == "0" else c for c in shape]
    # Steer months, days, hours, offsets near their limits.
    if draw(st.booleans()):
        chars[5:7] = draw(st.sampled_from(["01", "02", "04", "12", "13", "00"]))
        chars[8:10] = draw(st.sampled_from(["28", "29", "30", "31", "32", "00", "01"]))
        chars[0:4] = draw(st.sampled_from(["2024", "2023", "1900", "2000", "0000", "0001", "9999"]))
    if len(chars) > 10 and draw(st.booleans()):
        chars[11:13] = draw(st.sampled_from(["00", "23", "24"]))
    if chars[-6:-5] in (["+"], ["-"]) and draw(st.booleans()):
        chars[-5:-3] = draw(st.sampled_from(["00", "14", "15", "16", "23"]))
        chars[-2:] = draw(st.sampled_from(["00", "59", "60"]))
    text = "".join(chars)
    if draw(st.integers(0, 5)) == 0:
        index = draw(st.integers(0, len(text) - 1))
        text = text[:index] + draw(st.sampled_from("x/:.-+TZ 9")) + text[index + 1 :]
    return text


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(texts=st.lists(date_strings(), min_size=1, max_size=10))
def test_postgresql_reads_dates_as_python_does(postgres: Any, db: None, texts: list[str]) -> None:
    sql = "SELECT " + _PG_INSTANT.replace("{t}", "%s::text")
    with connection.cursor() as cursor:
        for text in texts:
            cursor.execute(sql, [text])
            (moment,) = cursor.fetchone()
            expected = iso_instant(text)
            got = None if moment is None else (moment - EPOCH) // timedelta(microseconds=1)
            assert got == expected, text
