"""Top negative terms of a trend equal `top_terms` over a full recount of the daily term
aggregates (most frequent first, ties by term in code point order), per bucket and over the
whole range, by day and by week, for whole-day and partial-day ranges."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from surveys.models import SentimentTermDaily, Survey
from surveys.selectors import filters_from_params
from surveys.sentiment_analysis import top_terms
from surveys.sentiment_selectors import SentimentQuery, sentiment_trend

# Terms whose order differs between code points and a linguistic collation ("a-b" and "a'c"
# sort among the "ab…" words there), all tied often.
TERMS = ["ab", "a-b", "a'c", "abc", "b", "ba", "can't", "cant", "export", "z-z", "zz"]
FIRST_DAY = date(2026, 3, 2)  # a Monday


@pytest.fixture
def term_rows(app_keys, survey) -> tuple[Survey, list[tuple[date, str, str, int]]]:
    rnd = random.Random(11)
    rows = []
    for offset in range(16):
        day = FIRST_DAY + timedelta(days=offset)
        for locale in ("en", "en-GB", "de"):
            for term in rnd.sample(TERMS, k=rnd.randint(3, len(TERMS))):
                rows.append((day, locale, term, rnd.choice([1, 1, 2, 2, 3])))
    target = Survey.objects.get(pk=survey["id"])
    SentimentTermDaily.objects.bulk_create(
        SentimentTermDaily(
            survey=target, app=app_keys.app, day=day, locale=locale, term=term, count=n
        )
        for day, locale, term, n in rows
    )
    return target, rows


def _expected(
    rows: list[tuple[date, str, str, int]], *, interval: str, since: date, until: date, top: int
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    per_bucket: dict[str, Counter[str]] = {}
    total: Counter[str] = Counter()
    for day, _, term, n in rows:
        if not since <= day < until:
            continue
        start = day - timedelta(days=day.weekday()) if interval == "week" else day
        per_bucket.setdefault(start.isoformat(), Counter())[term] += n
        total[term] += n
    return (
        {start: top_terms(counts.items(), top) for start, counts in per_bucket.items()},
        top_terms(total.items(), top),
    )


@pytest.mark.parametrize("interval", ["day", "week"])
@pytest.mark.parametrize("top", [1, 3, 5])
def test_whole_day_trends_rank_terms_as_a_recount(term_rows, interval, top):
    survey, rows = term_rows
    since, until = FIRST_DAY + timedelta(days=1), FIRST_DAY + timedelta(days=15)
    query = SentimentQuery(
        interval=interval,
        terms=top,
        filters=filters_from_params({"from": since.isoformat(), "to": until.isoformat()}),
    )
    trend = sentiment_trend(app=survey.app, survey=survey, query=query)
    # `to` as a date includes that day.
    per_bucket, total = _expected(
        rows, interval=interval, since=since, until=until + timedelta(days=1), top=top
    )
    got = {b["start"]: b["top_negative_terms"] for b in trend.buckets if b["top_negative_terms"]}
    assert got == per_bucket
    assert trend.totals["top_negative_terms"] == total


def test_all_time_trend_ranks_terms_as_a_recount(term_rows):
    survey, rows = term_rows
    trend = sentiment_trend(app=survey.app, survey=survey, query=SentimentQuery(terms=4))
    per_bucket, total = _expected(rows, interval="day", since=date.min, until=date.max, top=4)
    assert {b["start"]: b["top_negative_terms"] for b in trend.buckets} == per_bucket
    assert trend.totals["top_negative_terms"] == total


def test_a_partial_day_range_still_counts_every_term_of_the_whole_days(term_rows):
    # From 12:00 on the first day: that day is read from answer rows (none here), the rest
    # from the aggregates with every term, so the totals are still exact.
    survey, rows = term_rows
    since = datetime.combine(FIRST_DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    query = SentimentQuery(terms=3, filters=filters_from_params({"from": since.isoformat()}))
    trend = sentiment_trend(app=survey.app, survey=survey, query=query)
    per_bucket, total = _expected(
        rows, interval="day", since=FIRST_DAY + timedelta(days=1), until=date.max, top=3
    )
    got = {b["start"]: b["top_negative_terms"] for b in trend.buckets if b["top_negative_terms"]}
    assert got == per_bucket
    assert trend.totals["top_negative_terms"] == total
