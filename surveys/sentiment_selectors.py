"""Reads for sentiment: trends per day or week, for a survey or a whole App, and the newest
negative answers.

Whole UTC days come from the daily aggregates (`SentimentDaily`, `SentimentTermDaily`,
`ResponseTally`, `AnswerTally`): a handful of grouped queries over thousands of rows, however
many answers there are. Only the part of a `from`/`to` range that cuts into a day, and any
`segment` filter (people in it now), read the answer rows themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Trunc

from engage import errors
from engage.models import App
from surveys.definition import LOCALE_PATTERN, QuestionType
from surveys.models import (
    Answer,
    AnswerTally,
    Response,
    ResponseTally,
    SentimentDaily,
    SentimentTermDaily,
    Survey,
)
from surveys.selectors import (
    MAX_TIMELINE_BUCKETS,
    CsvExport,
    ResponseFilters,
    _people_in_segment,
    csv_field,
    filters_from_params,
    nps_score,
)
from surveys.sentiment_analysis import SentimentLabel, top_terms

INTERVALS = ("day", "week")
FORMATS = ("json", "csv")
DEFAULT_TERMS = 10
MAX_TERMS = 50


@dataclass(frozen=True)
class SentimentQuery:
    """A validated trend request: `interval`, the filters (`from`, `to`, `segment`,
    `locale`), how many negative terms per bucket, and the output format."""

    interval: str = "day"
    filters: ResponseFilters = field(default_factory=ResponseFilters)
    terms: int = DEFAULT_TERMS
    format: str = "json"


def sentiment_query_from_params(params: Mapping[str, Any]) -> SentimentQuery:
    """Parse query parameters; 400 naming the parameter for a bad one."""
    interval = params.get("interval") or "day"
    if interval not in INTERVALS:
        raise errors.InvalidInput(f"interval: one of {', '.join(INTERVALS)}")
    fmt = params.get("format") or "json"
    if fmt not in FORMATS:
        raise errors.InvalidInput(f"format: one of {', '.join(FORMATS)}")
    if params.get("variant") not in (None, ""):
        raise errors.InvalidInput("variant: sentiment trends are not split by A/B variant")
    locale = params.get("locale")
    if locale not in (None, "") and not LOCALE_PATTERN.match(str(locale)):
        raise errors.InvalidInput("locale: a locale tag like en or pt-BR")
    terms_text = params.get("terms")
    terms = DEFAULT_TERMS
    if terms_text not in (None, ""):
        try:
            terms = int(str(terms_text))
        except ValueError:
            terms = -1
        if not 0 <= terms <= MAX_TERMS:
            raise errors.InvalidInput(f"terms: a whole number from 0 to {MAX_TERMS}")
    filters = filters_from_params({k: params.get(k) for k in ("from", "to", "segment", "locale")})
    return SentimentQuery(interval=interval, filters=filters, terms=terms, format=fmt)


# --- reading ------------------------------------------------------------------------------------


@dataclass
class _Bucket:
    responses: int = 0
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # by SentimentLabel.ALL
    score_sum_e4: int = 0
    nps: dict[int, int] = field(default_factory=dict)
    terms: dict[str, int] = field(default_factory=dict)

    def add(self, other: _Bucket) -> None:
        self.responses += other.responses
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.score_sum_e4 += other.score_sum_e4
        for number, n in other.nps.items():
            self.nps[number] = self.nps.get(number, 0) + n
        for term, n in other.terms.items():
            self.terms[term] = self.terms.get(term, 0) + n


@dataclass(frozen=True)
class _Scope:
    """Which surveys a trend covers, and the NPS question of each."""

    app: App
    survey_ids: list[int]
    nps_questions: dict[int, str]
    survey_id: int | None

    def nps_q(self) -> Q:
        q = Q(pk__in=[])
        for survey_id, question_id in self.nps_questions.items():
            q |= Q(survey_id=survey_id, question_id=question_id)
        return q


def _scope(app: App, survey: Survey | None) -> _Scope:
    surveys = [survey] if survey is not None else list(Survey.objects.filter(app=app))
    nps: dict[int, str] = {}
    for s in surveys:
        question = next((q for q in s.questions if q.get("type") == QuestionType.NPS), None)
        if question is not None:
            nps[s.pk] = question["id"]
    return _Scope(app, [s.pk for s in surveys], nps, survey.pk if survey else None)


def _start(value: Any) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _bucket_of(day: date, interval: str) -> date:
    return day - timedelta(days=day.weekday()) if interval == "week" else day


def _locale_q(locale: str | None) -> Q:
    if not locale:
        return Q()
    return Q(locale=locale) | Q(locale__startswith=f"{locale}-")


Buckets = dict[date, _Bucket]


def _from_aggregates(
    scope: _Scope, since: date | None, until: date | None, locale: str | None, interval: str
) -> Buckets:
    """Whole days [since, until) from the daily aggregates."""
    days = Q()
    if since:
        days &= Q(day__gte=since)
    if until:
        days &= Q(day__lt=until)
    where = days & _locale_q(locale)
    own = Q(survey_id=scope.survey_id) if scope.survey_id else Q(app_id=scope.app.pk)
    bucket: Any = F("day") if interval == "day" else Trunc("day", interval)
    buckets: Buckets = {}
    by_value: dict[Any, _Bucket] = {}

    def of(value: Any) -> _Bucket:
        """The bucket of a bucket value as the database returns it (one lookup per row)."""
        found = by_value.get(value)
        if found is None:
            start = _start(value)
            found = buckets.get(start)
            if found is None:
                found = buckets[start] = _Bucket()
            by_value[value] = found
        return found

    for row in (
        SentimentDaily.objects.filter(own & where)
        .annotate(bucket=bucket)
        .values("bucket")
        .annotate(
            positive_n=Sum("positive"),
            neutral_n=Sum("neutral"),
            negative_n=Sum("negative"),
            unsupported_n=Sum("unsupported"),
            score_sum=Sum("score_sum_e4"),
        )
        .order_by()
    ):
        b = of(row["bucket"])
        b.counts = [
            row["positive_n"] or 0,
            row["neutral_n"] or 0,
            row["negative_n"] or 0,
            row["unsupported_n"] or 0,
        ]
        b.score_sum_e4 = int(row["score_sum"] or 0)
    # A year of days has tens of thousands of (day, term) rows: read as plain tuples (the
    # bucket values are converted once per bucket by `of`, not once per row).
    terms_sql, terms_params = (
        SentimentTermDaily.objects.filter(own & where)
        .annotate(bucket=bucket)
        .values_list("bucket", "term")
        .annotate(n=Sum("count"))
        .filter(n__gt=0)
        .order_by()
        .query.sql_with_params()
    )
    with connection.cursor() as cursor:
        cursor.execute(terms_sql, terms_params)
        for value, term, n in cursor.fetchall():
            of(value).terms[term] = n
    surveys = Q(survey_id__in=scope.survey_ids)
    for row in (
        ResponseTally.objects.filter(surveys & where)
        .annotate(bucket=bucket)
        .values("bucket")
        .annotate(n=Sum("count"))
        .order_by()
    ):
        of(row["bucket"]).responses += row["n"] or 0
    if scope.nps_questions:
        for row in (
            AnswerTally.objects.filter(scope.nps_q() & where & Q(number__gte=0))
            .annotate(bucket=bucket)
            .values("bucket", "number")
            .annotate(n=Sum("count"))
            .order_by()
        ):
            nps = of(row["bucket"]).nps
            nps[row["number"]] = nps.get(row["number"], 0) + (row["n"] or 0)
    return buckets


def _from_rows(scope: _Scope, filters: ResponseFilters, interval: str) -> Buckets:
    """[since, until) from the answer and response rows (cut days, segment filters)."""
    where = Q(survey_id__in=scope.survey_ids) & _locale_q(filters.locale)
    if filters.since:
        where &= Q(created_at__gte=filters.since)
    if filters.until:
        where &= Q(created_at__lt=filters.until)
    if filters.segment:
        where &= Q(person_id__in=_people_in_segment(scope.app, filters.segment))
    bucket = Trunc("created_at", interval, tzinfo=UTC)
    buckets: Buckets = {}

    def of(value: Any) -> _Bucket:
        return buckets.setdefault(_start(value), _Bucket())

    labels = {label: i for i, label in enumerate(SentimentLabel.ALL)}
    for row in (
        Answer.objects.filter(where, sentiment_label__isnull=False)
        .annotate(bucket=bucket)
        .values("bucket", "sentiment_label")
        .annotate(n=Count("pk"), score_sum=Sum("sentiment_score"))
        .order_by()
    ):
        b = of(row["bucket"])
        b.counts[labels[row["sentiment_label"]]] += row["n"]
        b.score_sum_e4 += round((row["score_sum"] or 0) * 10_000)
    from surveys.sentiment_analysis import terms_of

    for start, text in (
        Answer.objects.filter(where, sentiment_label=SentimentLabel.NEGATIVE)
        .annotate(bucket=bucket)
        .values_list("bucket", "text")
        .order_by()
        .iterator(chunk_size=2000)
    ):
        terms = of(start).terms
        for term in terms_of(text or ""):
            terms[term] = terms.get(term, 0) + 1
    for row in (
        Response.objects.filter(where)
        .annotate(bucket=bucket)
        .values("bucket")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        of(row["bucket"]).responses += row["n"]
    if scope.nps_questions:
        for row in (
            Answer.objects.filter(where & scope.nps_q() & Q(number__isnull=False))
            .annotate(bucket=bucket)
            .values("bucket", "number")
            .annotate(n=Count("pk"))
            .order_by()
        ):
            nps = of(row["bucket"]).nps
            nps[row["number"]] = nps.get(row["number"], 0) + row["n"]
    return buckets


def _midnight_after(moment: datetime) -> datetime:
    start = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start if start == moment else start + timedelta(days=1)


def _midnight_before(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _read(scope: _Scope, filters: ResponseFilters, interval: str) -> Buckets:
    if filters.segment:
        return _from_rows(scope, filters, interval)
    since, until = filters.since, filters.until
    first_day = _midnight_after(since) if since else None
    end_day = _midnight_before(until) if until else None
    if first_day and end_day and first_day >= end_day:
        return _from_rows(scope, filters, interval)  # less than one whole day
    parts = [
        _from_aggregates(
            scope,
            first_day.date() if first_day else None,
            end_day.date() if end_day else None,
            filters.locale,
            interval,
        )
    ]
    if since and first_day and since < first_day:
        parts.append(_from_rows(scope, replace(filters, until=first_day), interval))
    if until and end_day and end_day < until:
        parts.append(_from_rows(scope, replace(filters, since=end_day), interval))
    if len(parts) == 1:
        return parts[0]
    buckets: Buckets = {}
    for part in parts:
        for start, bucket in part.items():
            buckets.setdefault(start, _Bucket()).add(bucket)
    return buckets


# --- shaping ------------------------------------------------------------------------------------


def _nps_of(distribution: Mapping[int, int]) -> tuple[float | None, int]:
    promoters = sum(n for s, n in distribution.items() if s >= 9)
    passives = sum(n for s, n in distribution.items() if 7 <= s <= 8)
    detractors = sum(n for s, n in distribution.items() if s <= 6)
    return nps_score(promoters, passives, detractors), promoters + passives + detractors


def _shape(bucket: _Bucket, terms: int) -> dict[str, Any]:
    positive, neutral, negative, unsupported = bucket.counts
    scored = positive + neutral + negative
    nps, nps_responses = _nps_of(bucket.nps)
    return {
        "responses": bucket.responses,
        "scored": scored,
        "mean_score": round(bucket.score_sum_e4 / scored / 10_000, 4) if scored else None,
        "positive": positive,
        "neutral": neutral,
        "negative": negative,
        "unsupported": unsupported,
        "nps": nps,
        "nps_responses": nps_responses,
        "top_negative_terms": top_terms(bucket.terms.items(), terms),
    }


@dataclass(frozen=True)
class SentimentTrend:
    interval: str
    survey_id: int | None
    filters: dict[str, str]
    totals: dict[str, Any]
    buckets: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sentiment_trend(
    *, app: App, survey: Survey | None = None, query: SentimentQuery | None = None
) -> SentimentTrend:
    """Sentiment per UTC day or ISO week (Monday) of one survey or of all the App's surveys.

    Each bucket: responses started, scored answers, their mean score, counts by label
    (`unsupported` answers are counted but never scored), the NPS of the same bucket (the
    survey's first NPS question; for an App, every survey's) and the most frequent terms of
    its negative answers. Buckets run without gaps from `from` (else the first with data) to
    `to` (else the last with data). Before: `survey`, when given, belongs to `app`.
    """
    query = query or SentimentQuery()
    scope = _scope(app, survey)
    filters = query.filters
    buckets = _read(scope, filters, query.interval) if scope.survey_ids else {}

    interval = query.interval
    first = _bucket_of(filters.since.astimezone(UTC).date(), interval) if filters.since else None
    last = (
        _bucket_of((filters.until - timedelta(microseconds=1)).astimezone(UTC).date(), interval)
        if filters.until
        else None
    )
    if buckets:
        first = first or min(buckets)
        last = last or max(buckets)
    step = timedelta(days=7 if interval == "week" else 1)
    if first and last and first <= last and (last - first) // step < MAX_TIMELINE_BUCKETS:
        day = first
        while day <= last:
            buckets.setdefault(day, _Bucket())
            day += step
    total = _Bucket()
    rows = []
    for start in sorted(buckets):
        total.add(buckets[start])
        rows.append({"start": start.isoformat(), **_shape(buckets[start], query.terms)})
    return SentimentTrend(
        interval=interval,
        survey_id=scope.survey_id,
        filters=filters.as_params(),
        totals=_shape(total, query.terms),
        buckets=rows,
    )


CSV_HEADER = [
    "start",
    "responses",
    "scored",
    "mean_score",
    "positive",
    "neutral",
    "negative",
    "unsupported",
    "nps",
    "nps_responses",
    "top_negative_terms",
]


def sentiment_trend_csv(trend: SentimentTrend) -> CsvExport:
    """One CSV row per bucket; terms as `term (count); …`."""

    def cell(value: Any) -> str:  # dates and numbers: never quoted nor formula-guarded
        return "" if value is None else str(value)

    def row(bucket: Mapping[str, Any]) -> list[str]:
        terms = "; ".join(f"{t['term']} ({t['count']})" for t in bucket["top_negative_terms"])
        return [cell(bucket[c]) for c in CSV_HEADER[:-1]] + [csv_field(terms)]

    return CsvExport(header=CSV_HEADER, rows=iter([row(b) for b in trend.buckets]))


def negative_answers_newest(
    survey_ids: Iterable[int],
    *,
    limit: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """The `limit` newest negative answers of these surveys ([since, until) when given), most
    negative first among equals in time.

    One query per survey with negative answers in the range (from the daily aggregates), each
    walking its survey's answers newest first on `answer_survey_created` until it has `limit`
    negative ones, then merged: no index names `sentiment_label` (so that scoring is a HOT
    update, see `Answer.Meta`), and one query over several surveys could not walk that index
    in time order."""
    fields = ("survey_id", "question_id", "text", "sentiment_score", "locale", "created_at")
    # Only the surveys whose daily aggregates count a negative answer in the range: most of an
    # App's surveys are skipped without touching their answers.
    days = SentimentDaily.objects.filter(survey_id__in=list(survey_ids), negative__gt=0)
    if since is not None:
        days = days.filter(day__gte=since.astimezone(UTC).date())
    if until is not None:
        days = days.filter(day__lte=until.astimezone(UTC).date())
    found: list[dict[str, Any]] = []
    for survey_id in sorted(set(days.values_list("survey_id", flat=True))):
        rows = Answer.objects.filter(survey_id=survey_id, sentiment_label=SentimentLabel.NEGATIVE)
        if since is not None:
            rows = rows.filter(created_at__gte=since)
        if until is not None:
            rows = rows.filter(created_at__lt=until)
        found += rows.order_by("-created_at", "sentiment_score").values(*fields)[:limit]
    found.sort(key=lambda row: (-row["created_at"].timestamp(), row["sentiment_score"]))
    return found[:limit]


def sentiment_negative_recent(
    *, app: App, survey: Survey | None = None, limit: int = 10
) -> list[dict[str, Any]]:
    """The newest negative answers of a survey or of the App's surveys, most negative first
    among equals in time; each with its survey's name."""
    surveys = (
        {survey.pk: survey.name}
        if survey is not None
        else dict(Survey.objects.filter(app=app).values_list("pk", "name"))
    )
    rows = negative_answers_newest(surveys, limit=limit)
    return [
        {
            "survey_id": row["survey_id"],
            "survey_name": surveys.get(row["survey_id"], ""),
            "question_id": row["question_id"],
            "text": row["text"],
            "score": row["sentiment_score"],
            "locale": row["locale"],
            "created_at": row["created_at"],
        }
        for row in rows
    ]
