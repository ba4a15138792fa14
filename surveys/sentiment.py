"""Writes for sentiment: scoring free-text answers and keeping the daily aggregates in step.

Every answer row with text (open-text answers and the free text of an "other" choice) is
scored once by `sentiment_answers_score`, queued by `response_submit` after commit (Celery
task `surveys.tasks.sentiment_score`) and swept up by `sentiment_pending_score` for answers
whose task was lost. Each score adds the answer to `SentimentDaily` (counts by label, exact sum
of scores) and, when negative, its terms to `SentimentTermDaily`, in the same transaction; an
answer replaced or re-scored is withdrawn first. So the aggregates always equal a recount of
the answers (`sentiment_aggregates_rebuild`), and trends never rescan answers.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from django.db import connection, transaction
from django.db.models import QuerySet

from engage.models import App
from segments.services import preparation_allow
from surveys.models import Answer, SentimentDaily, SentimentPending, SentimentTermDaily, Survey
from surveys.sentiment_analysis import (
    SentimentAnalyzer,
    SentimentLabel,
    SentimentResult,
    analyzer_get,
    analyzer_identity,
    terms_of,
)

BATCH_SIZE = 500

DailyKey = tuple[int, date, str]  # survey, day, locale
TermKey = tuple[int, date, str, str]  # survey, day, locale, term
LABEL_INDEX = {label: i for i, label in enumerate(SentimentLabel.ALL)}


def _chunks(rows: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    return (rows[i : i + size] for i in range(0, len(rows), size))


def score_e4(score: float | None) -> int:
    """A score in units of 1e-4, the precision VADER gives; sums of these are exact."""
    return round(score * 10_000) if score is not None else 0


@dataclass
class _Deltas:
    """What answers add to (or withdraw from) the aggregates."""

    # (survey, day, locale) → [app, positive, neutral, negative, unsupported, score_sum_e4]
    daily: dict[DailyKey, list[int]]
    # (survey, day, locale, term) → [app, count]
    terms: dict[TermKey, list[int]]

    def add(
        self,
        *,
        survey_id: int,
        app_id: int,
        created_at: datetime,
        locale: str,
        label: str,
        score: float | None,
        text: str | None,
        sign: int,
    ) -> None:
        values = [0, 0, 0, 0, sign * score_e4(score)]
        values[LABEL_INDEX[label]] = sign
        terms = terms_of(text) if label == SentimentLabel.NEGATIVE and text else []
        key = (survey_id, created_at.astimezone(UTC).date(), locale)
        self.add_counts(key, app_id, values, terms, sign)

    def add_counts(
        self, key: DailyKey, app_id: int, values: list[int], terms: list[str], term_sign: int
    ) -> None:
        """Add `values` ([positive, neutral, negative, unsupported, score_sum_e4]) to the day
        `key`, and `term_sign` to each of `terms` on that day."""
        entry = self.daily.get(key)
        if entry is None:
            entry = self.daily[key] = [app_id, 0, 0, 0, 0, 0]
        for i, value in enumerate(values, start=1):
            entry[i] += value
        for term in terms:
            term_entry = self.terms.get((*key, term))
            if term_entry is None:
                term_entry = self.terms[(*key, term)] = [app_id, 0]
            term_entry[1] += term_sign


def _deltas() -> _Deltas:
    return _Deltas({}, {})


def _add_to_counters(
    table: str,
    key_columns: list[str],
    fixed_columns: list[str],
    value_columns: list[str],
    rows: list[tuple[Any, ...]],
    types: list[str],
) -> None:
    """Add to counters with INSERT … ON CONFLICT DO UPDATE, in key order so that concurrent
    writers lock rows in the same order and cannot deadlock. PostgreSQL gets one array per
    column (`types` are their SQL types); SQLite a VALUES list (at most 32,766 parameters)."""
    if not rows:
        return
    columns = [*key_columns, *fixed_columns, *value_columns]
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in value_columns)
    head = f"INSERT INTO {table} ({', '.join(columns)}) "
    tail = f" ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {updates}"
    if connection.vendor == "postgresql":
        arrays = ", ".join(f"%s::{t}[]" for t in types)
        with _raw_cursor() as cursor:
            cursor.execute(
                f"{head}SELECT * FROM unnest({arrays}){tail}",  # noqa: S608 - names are ours
                [[row[i] for row in rows] for i in range(len(columns))],
            )
        return
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    for chunk in _chunks(rows, 1000):
        with connection.cursor() as cursor:
            cursor.execute(
                f"{head}VALUES {', '.join([placeholders] * len(chunk))}{tail}",
                [value for row in chunk for value in row],
            )


def _deltas_apply(deltas: _Deltas) -> None:
    _add_to_counters(
        SentimentDaily._meta.db_table,
        ["survey_id", "day", "locale"],
        ["app_id"],
        ["positive", "neutral", "negative", "unsupported", "score_sum_e4"],
        [
            (survey_id, day, locale, app_id, *values)
            for (survey_id, day, locale), (app_id, *values) in sorted(deltas.daily.items())
            if any(values)
        ],
        [
            "bigint",
            "date",
            "varchar",
            "bigint",
            "integer",
            "integer",
            "integer",
            "integer",
            "bigint",
        ],
    )
    _add_to_counters(
        SentimentTermDaily._meta.db_table,
        ["survey_id", "day", "locale", "term"],
        ["app_id"],
        ["count"],
        [(*key, app_id, n) for key, (app_id, n) in sorted(deltas.terms.items()) if n],
        ["bigint", "date", "varchar", "varchar", "bigint", "integer"],
    )


def _apps_of(survey_ids: Iterable[int]) -> dict[int, int]:
    return {pk: app for pk, (app, _) in _surveys_of(survey_ids, share_lock=False).items()}


_LOCKED_FIELDS = (
    "pk",
    "survey_id",
    "created_at",
    "locale",
    "text",
    "sentiment_label",
    "sentiment_score",
)


def sentiment_answers_withdraw(*, answers: QuerySet[Answer]) -> int:
    """Take scored answers out of the aggregates, before they are deleted or changed.

    Before: inside the transaction that then deletes or changes `answers`. After: the
    aggregates no longer count them. Every row of `answers`, scored or not, is locked until
    commit (before any aggregate row is), so a scoring task waits and then sees the outcome,
    and a later withdrawal in the same transaction never waits on a task that waits on it.
    Returns how many were withdrawn.
    """
    rows = [
        row
        for row in answers.select_for_update().order_by("pk").values_list(*_LOCKED_FIELDS)
        if row[5] is not None  # sentiment_label: only scored answers are counted
    ]
    if not rows:
        return 0
    apps = {pk: app for pk, (app, _) in _surveys_of((r[1] for r in rows), share_lock=True).items()}
    deltas = _deltas()
    for pk, survey_id, created_at, locale, text, label, score in rows:
        del pk
        deltas.add(
            survey_id=survey_id,
            app_id=apps[survey_id],
            created_at=created_at,
            locale=locale,
            label=label,
            score=score,
            text=text,
            sign=-1,
        )
    _deltas_apply(deltas)
    return len(rows)


def sentiment_answers_restore(*, answers: QuerySet[Answer]) -> int:
    """Count scored answers in the aggregates again after `sentiment_answers_withdraw` and a
    change of their day or locale, in the same transaction."""
    rows = list(
        answers.filter(sentiment_label__isnull=False).order_by("pk").values_list(*_LOCKED_FIELDS)
    )
    if not rows:
        return 0
    apps = _apps_of(row[1] for row in rows)
    deltas = _deltas()
    for _, survey_id, created_at, locale, text, label, score in rows:
        deltas.add(
            survey_id=survey_id,
            app_id=apps[survey_id],
            created_at=created_at,
            locale=locale,
            label=label,
            score=score,
            text=text,
            sign=1,
        )
    _deltas_apply(deltas)
    return len(rows)


@dataclass(frozen=True, slots=True)
class _Pending:
    """A free-text answer as read for scoring, with its survey's App and default locale."""

    pk: int
    survey_id: int
    created_at: datetime
    locale: str
    text: str
    old_label: str | None
    old_score: float | None
    app_id: int
    default_locale: str


def _raw_cursor() -> Any:
    """psycopg's own cursor on the current connection (so inside the current transaction):
    the statements of a scoring batch are sent in pipeline mode, which Django's cursor
    wrapper does not know of."""
    connection.ensure_connection()
    return connection.connection.cursor()


def _write_sql() -> str:
    """SQLite: one UPDATE of a slice's scores (FROM (VALUES …)), each only where its row still
    holds what was read: the same locale (the language hint, and the aggregate it is counted
    in) and the same previous label and score. The text of an answer row never changes (a
    changed answer is a new row). It returns the ids written; a row changed or deleted
    meanwhile is left as it is (an unscored one stays pending for the sweeper). PostgreSQL
    runs the same UPDATE in `_POSTGRES_SLICE`.

    No row is locked while a batch is analysed: the UPDATE takes the row locks itself, and on
    PostgreSQL, under READ COMMITTED, re-checks its condition on the newest version of a row
    that a concurrent transaction changed, so a score is never written over a state it was not
    computed from, and two workers given the same ids write each row once."""
    table = Answer._meta.db_table
    return (
        "WITH v(id, label, score, language, locale, old_label, old_score) AS ({values}) "  # noqa: S608
        f"UPDATE {table} SET sentiment_label = v.label, sentiment_score = v.score, "
        f"sentiment_language = v.language, sentiment_analyzer = %s FROM v "
        f"WHERE {table}.id = v.id AND {table}.locale = v.locale "
        f"AND {table}.sentiment_label IS v.old_label "
        f"AND {table}.sentiment_score IS v.old_score RETURNING {table}.id"
    )


def _pending_read(answer_ids: Sequence[int], *, rescore: bool) -> list[_Pending]:
    """SQLite: the free-text rows among `answer_ids` (unscored ones unless `rescore`), in id
    order, with their survey's App and default locale, in one query and without locking them
    (SQLite runs one writer at a time: its transactions take the write lock when they begin).
    PostgreSQL reads with `_POSTGRES_READ`."""
    ids = sorted(set(answer_ids))
    if not ids:
        return []
    rows = Answer.objects.filter(pk__in=ids, text__isnull=False)
    if not rescore:
        rows = rows.filter(sentiment_label__isnull=True)
    return [
        _Pending(*row)  # text is not null (filtered above)
        for row in rows.order_by("pk").values_list(
            *_LOCKED_FIELDS, "survey__app_id", "survey__app__default_locale"
        )
    ]


def _scores_write(rows: Sequence[tuple[_Pending, SentimentResult]], *, analyzer: str) -> set[int]:
    """SQLite: write the scores of `rows` with `_write_sql` (FROM (VALUES …), 500 rows a
    statement). Returns the ids written."""
    written: set[int] = set()
    for chunk in _chunks(rows, 500):  # 7 parameters a row: under SQLite's 32,766
        values = "VALUES " + ", ".join(
            ["(CAST(%s AS BIGINT), %s, CAST(%s AS REAL), %s, %s, %s, CAST(%s AS REAL))"]
            * len(chunk)
        )
        params: list[Any] = []
        for row, result in chunk:
            params += [
                row.pk,
                result.label,
                result.score,
                result.language[:8],
                row.locale,
                row.old_label,
                row.old_score,
            ]
        with connection.cursor() as cursor:
            cursor.execute(_write_sql().format(values=values), [*params, analyzer[:64]])
            written.update(pk for (pk,) in cursor.fetchall())
    return written


def _surveys_of(survey_ids: Iterable[int], *, share_lock: bool) -> dict[int, tuple[int, str]]:
    """survey → (app, the App's default locale), in one query.

    With `share_lock` the survey rows are locked FOR KEY SHARE in the same statement, so that
    `sentiment_aggregates_rebuild` (FOR UPDATE) waits for writers of aggregates, while writers
    never block one another. SQLite runs one writer at a time anyway."""
    ids = sorted(set(survey_ids))
    if not ids:
        return {}
    postgres = connection.vendor == "postgresql"
    sql = (
        f"SELECT s.id, s.app_id, a.default_locale FROM {Survey._meta.db_table} s "  # noqa: S608
        f"JOIN {App._meta.db_table} a ON a.id = s.app_id WHERE s.id IN "
        f"({', '.join(['%s'] * len(ids))}) ORDER BY s.id"
        + (" FOR KEY SHARE OF s" if share_lock and postgres else "")
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        return {row[0]: (row[1], row[2]) for row in cursor.fetchall()}


def _deltas_of(scored: Sequence[tuple[_Pending, SentimentResult]], written: set[int]) -> _Deltas:
    """What the rows written add to the aggregates (a re-scored row withdraws its old score)."""
    deltas = _deltas()
    for row, result in scored:
        if row.pk not in written:
            continue
        if row.old_label is not None:
            deltas.add(
                survey_id=row.survey_id,
                app_id=row.app_id,
                created_at=row.created_at,
                locale=row.locale,
                label=row.old_label,
                score=row.old_score,
                text=row.text,
                sign=-1,
            )
        deltas.add(
            survey_id=row.survey_id,
            app_id=row.app_id,
            created_at=row.created_at,
            locale=row.locale,
            label=result.label,
            score=result.score,
            text=row.text,
            sign=1,
        )
    return deltas


def _analyze(
    analyzer: SentimentAnalyzer, rows: Sequence[_Pending]
) -> list[tuple[_Pending, SentimentResult]]:
    results = analyzer.analyze_many([(row.text, row.locale or row.default_locale) for row in rows])
    return list(zip(rows, results, strict=True))


# On PostgreSQL the scores of a batch are written in slices of this many answers, pipelined: the
# server writes one slice while this process analyses the next.
SLICE_SIZE = 100

_ANSWERS = Answer._meta.db_table
_SURVEYS = Survey._meta.db_table
_DAILY = SentimentDaily._meta.db_table
_TERMS = SentimentTermDaily._meta.db_table

# The free-text rows of an array of ids (unscored ones unless re-scoring), in id order: id,
# locale, the language hint (the answer's locale, else the App's default), text, the previous
# label and score, and what the aggregates are keyed by: survey, App and UTC day. No row lock
# while the batch is analysed; the survey rows are locked FOR KEY SHARE so that
# `sentiment_aggregates_rebuild` (FOR UPDATE) waits for this transaction while scorers never
# block one another.
_READ_COLUMNS = (
    "a.locale, COALESCE(NULLIF(a.locale, ''), p.default_locale), a.text, a.sentiment_label, "
    "a.sentiment_score, a.survey_id, s.app_id, (a.created_at AT TIME ZONE 'UTC')::date"
)
_POSTGRES_READ = (
    f"SELECT a.id, {_READ_COLUMNS} FROM {_ANSWERS} a "  # noqa: S608
    f"JOIN {_SURVEYS} s ON s.id = a.survey_id JOIN {App._meta.db_table} p ON p.id = s.app_id "
    "WHERE a.id = ANY(%s) AND a.text IS NOT NULL{pending} ORDER BY a.id FOR KEY SHARE OF s"
)
_POSTGRES_READ_RESCORE = _POSTGRES_READ.format(pending="")
_POSTGRES_READ = _POSTGRES_READ.format(pending=" AND a.sentiment_label IS NULL")
_Read = tuple[int, str, str, str, str | None, float | None, int, int, date]
# What an answer adds to the aggregates if written: id, daily key, App, the daily values, the
# sign of its terms, its terms (see `_slice_deltas`).
_Candidate = tuple[int, DailyKey, int, list[int], int, list[str]]

# One slice: the scores arrive as one JSON array (one object per answer: id, label, score,
# language, locale, old_label, old_score); each row is written only where it still holds what
# was read (the same locale, the same previous label and score; see `_write_sql`). Returns the
# ids written.
_POSTGRES_SLICE = (
    "WITH v AS (SELECT * FROM json_to_recordset(%s::json) AS v(id bigint, label varchar, "  # noqa: S608
    "score float8, language varchar, locale varchar, old_label varchar, old_score float8)) "
    f"UPDATE {_ANSWERS} a SET sentiment_label = v.label, sentiment_score = v.score, "
    "sentiment_language = v.language, sentiment_analyzer = %s FROM v "
    "WHERE a.id = v.id AND a.locale = v.locale "
    "AND a.sentiment_label IS NOT DISTINCT FROM v.old_label "
    "AND a.sentiment_score IS NOT DISTINCT FROM v.old_score RETURNING a.id"
)

# The queue entries of a batch that no longer wait (see `_score_pipelined`).
_POSTGRES_DEQUEUE = (
    f"DELETE FROM {SentimentPending._meta.db_table} "  # noqa: S608
    "WHERE answer_id = ANY(%s::bigint[])"
)


def _dequeue(ids: Sequence[int]) -> None:
    """SQLite: take out of the queue the ids whose answer no longer waits: scored now (or
    already), gone, or without text. An answer left pending (changed meanwhile) stays."""
    waiting = Answer.objects.filter(pk__in=ids, text__isnull=False, sentiment_label__isnull=True)
    SentimentPending.objects.filter(answer_id__in=ids).exclude(
        answer_id__in=waiting.values("pk")
    ).delete()


def _slice_json(rows: Sequence[_Read], results: Sequence[SentimentResult]) -> str:
    """A slice's scores as the JSON array `_POSTGRES_SLICE` reads (floats in their shortest
    exact form, so a previous score compares equal to the stored one)."""
    items = []
    for row, result in zip(rows, results, strict=True):
        item: dict[str, Any] = {
            "id": row[0],
            "label": result.label,
            "score": result.score,
            "language": result.language[:8],
            "locale": row[1],
        }
        if row[4] is not None:
            item["old_label"] = row[4]
        if row[5] is not None:
            item["old_score"] = row[5]
        items.append(item)
    return json.dumps(items, ensure_ascii=False, allow_nan=False)


def _slice_deltas(rows: Sequence[_Read], results: Sequence[SentimentResult]) -> list[_Candidate]:
    """What each answer of a slice adds to the aggregates if written: (id, daily key, App,
    [positive, neutral, negative, unsupported, score_sum_e4], sign, terms): the answer's terms
    count +1 when it becomes negative, -1 when it stops being (sign 0: its terms do not
    change)."""
    negative = SentimentLabel.NEGATIVE
    out = []
    for (pk, locale, _, text, old_label, old_score, survey_id, app_id, day), result in zip(
        rows, results, strict=True
    ):
        values = [0, 0, 0, 0, score_e4(result.score)]
        values[LABEL_INDEX[result.label]] += 1
        if old_label is not None:
            values[LABEL_INDEX[old_label]] -= 1
            values[4] -= score_e4(old_score)
        sign = (result.label == negative) - (old_label == negative)
        terms = terms_of(text) if sign else []
        out.append((pk, (survey_id, day, locale), app_id, values, sign, terms))
    return out


def _score_pipelined(
    answer_ids: Sequence[int], *, rescore: bool, analyzer: SentimentAnalyzer
) -> int:
    """`sentiment_answers_score` on PostgreSQL, in psycopg's pipeline mode: this process sends
    the statements of a batch without waiting for them, and waits at the read and once more
    when the slices are written.

    The batch is read in one query. Each slice is analysed and its scores sent as one
    statement (`_POSTGRES_SLICE`: the UPDATE of the rows that still hold what was read); the
    server runs it while the next slice is analysed. Then the ids written are collected, what
    exactly those rows add to the aggregates is written (`_deltas_apply`: one upsert per table,
    rows in key order, after every answer row lock, as every writer of aggregates does, so
    concurrent writers never deadlock), and the batch's queue entries are deleted except those
    of rows read but not written (changed meanwhile: still waiting; a row scored meanwhile by
    another worker is dequeued by that worker). An error in any statement aborts the rest; it
    is raised when the pipeline ends and the transaction rolls back."""
    ids = sorted(set(answer_ids))
    if not ids:
        return 0
    connection.ensure_connection()
    raw = connection.connection
    preparation_allow(raw)  # fixed statements: parsed once per connection
    identity = analyzer_identity(analyzer)[:64]
    with raw.pipeline():
        _batch_settings(raw)
        with raw.cursor() as cursor:
            cursor.execute(
                _POSTGRES_READ_RESCORE if rescore else _POSTGRES_READ, [ids], prepare=True
            )
            rows: list[_Read] = cursor.fetchall()
        updates, candidates = _slices_send(raw, rows, analyzer=analyzer, identity=identity)
        # Leaving the pipeline waits for the rest (and raises any error of the batch).
        return _slices_finish(raw, updates, candidates, read=rows, queued=ids)


def _batch_settings(raw: Any) -> None:
    """The settings of a scoring transaction (SET LOCAL: for this transaction only)."""
    # Scores can be recomputed: if the server crashes before this commit reaches the disk,
    # the transaction is lost as a whole (rows still pending, aggregates untouched) and the
    # sweeper scores the rows again. So the commit need not wait for the disk flush.
    raw.execute("SET LOCAL synchronous_commit TO off")
    # Planned once too: their plans do not depend on the values (arrays and JSON).
    raw.execute("SET LOCAL plan_cache_mode TO force_generic_plan")


def _slices_send(
    raw: Any, rows: Sequence[_Read], *, analyzer: SentimentAnalyzer, identity: str
) -> tuple[list[Any], list[_Candidate]]:
    """Analyse `rows` slice by slice and send each slice's scores (`_POSTGRES_SLICE`) without
    waiting: the server writes one slice while the next is analysed. Returns the slices'
    cursors and what each answer adds to the aggregates if written (`_slice_deltas`)."""
    updates = []
    candidates: list[_Candidate] = []
    for chunk in _chunks(rows, SLICE_SIZE):
        results = analyzer.analyze_many([(row[3], row[2]) for row in chunk])
        update = raw.cursor()
        update.execute(_POSTGRES_SLICE, [_slice_json(chunk, results), identity], prepare=True)
        updates.append(update)
        # Computed while the server writes the slice.
        candidates += _slice_deltas(chunk, results)
    return updates, candidates


def _slices_finish(
    raw: Any,
    updates: Sequence[Any],
    candidates: Sequence[_Candidate],
    *,
    read: Sequence[_Read],
    queued: Sequence[int],
) -> int:
    """The end of a pipelined batch: wait for the ids its slices wrote, send what exactly
    those rows add to the aggregates (`_deltas_apply`: one upsert per table, in key order,
    after every answer row lock) and take out of the queue every id of the batch except the
    rows read but not written (changed meanwhile: still waiting). Returns how many were
    written."""
    written = {pk for update in updates for (pk,) in update.fetchall()}
    deltas = _deltas()
    for pk, key, app_id, values, sign, terms in candidates:
        if pk in written:
            deltas.add_counts(key, app_id, values, terms, sign)
    _deltas_apply(deltas)
    left = {row[0] for row in read} - written
    raw.execute(_POSTGRES_DEQUEUE, [[pk for pk in queued if pk not in left]], prepare=True)
    return len(written)


# The sweeper's next batch: the queue's next ids after a given one, each with its row as
# `_POSTGRES_READ` gives it when it still waits for a score (else nulls: the entry is stale).
# No lock: the scores are written under the guard of `_POSTGRES_SLICE` and the surveys are
# locked by `_POSTGRES_LOCK` in the transaction that writes them.
_POSTGRES_NEXT = (
    f"SELECT q.answer_id, {_READ_COLUMNS} "  # noqa: S608
    f"FROM (SELECT answer_id FROM {SentimentPending._meta.db_table} WHERE answer_id > %s "
    "ORDER BY answer_id LIMIT %s) q "
    f"LEFT JOIN {_ANSWERS} a ON a.id = q.answer_id AND a.text IS NOT NULL "
    "AND a.sentiment_label IS NULL "
    f"LEFT JOIN {_SURVEYS} s ON s.id = a.survey_id LEFT JOIN {App._meta.db_table} p "
    "ON p.id = s.app_id ORDER BY q.answer_id"
)
# What `_POSTGRES_READ` locks: the surveys of a batch, FOR KEY SHARE (see there).
_POSTGRES_LOCK = f"SELECT id FROM {_SURVEYS} WHERE id = ANY(%s::bigint[]) ORDER BY id FOR KEY SHARE"  # noqa: S608


def _score_stream(*, analyzer: SentimentAnalyzer, batch_size: int, max_batches: int | None) -> int:
    """`sentiment_pending_score` on PostgreSQL outside a transaction: one pipeline across the
    batches, so that this process analyses one batch while the server finishes the previous.

    Each batch is its own transaction, with the statements of `_score_pipelined`: the surveys
    locked FOR KEY SHARE before any score is written, the slices' guarded UPDATEs, then the
    aggregate upserts (in key order, after every answer row lock) and the queue's entries that
    no longer wait, and COMMIT. What changes is when this process waits: the next batch's rows
    are read (without a lock: the UPDATE's guard and the survey lock of the next transaction
    make that safe) while the current batch is analysed and written, so after sending a batch's
    COMMIT it goes on analysing the next batch at once, and it waits for the server only for
    the ids a batch's slices wrote. An error rolls back the batch it happened in (the batches
    before it are committed) and is raised."""
    if max_batches is not None and max_batches < 1:
        return 0
    connection.ensure_connection()
    raw = connection.connection
    preparation_allow(raw)
    identity = analyzer_identity(analyzer)[:64]
    scored = 0
    try:
        with raw.pipeline():
            head = raw.cursor()
            head.execute(_POSTGRES_NEXT, [0, batch_size], prepare=True)
            batch: list[_Read] = head.fetchall()
            done = 0
            while batch:
                done += 1
                more = max_batches is None or done < max_batches
                waiting = [row for row in batch if row[1] is not None]
                raw.execute("BEGIN")
                _batch_settings(raw)
                surveys = sorted({row[6] for row in waiting})
                if surveys:
                    raw.execute(_POSTGRES_LOCK, [surveys], prepare=True)
                following = None
                if more:  # read by the server while the first slice is analysed
                    following = raw.cursor()
                    following.execute(_POSTGRES_NEXT, [batch[-1][0], batch_size], prepare=True)
                updates, candidates = _slices_send(
                    raw, waiting, analyzer=analyzer, identity=identity
                )
                scored += _slices_finish(
                    raw, updates, candidates, read=waiting, queued=[row[0] for row in batch]
                )
                raw.execute("COMMIT")
                batch = following.fetchall() if following is not None else []
    except BaseException:
        if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raw.execute("ROLLBACK")
        raise
    return scored


def sentiment_answers_score(
    *,
    answer_ids: Sequence[int],
    rescore: bool = False,
    analyzer: SentimentAnalyzer | None = None,
) -> int:
    """Score the free-text answers `answer_ids` and count them in the aggregates.

    Before: any ids (missing rows, rows without text and, unless `rescore`, rows already
    scored are skipped). After: each scored row holds its label, score, detected language and
    the analyzer's "name version"; the aggregates count it once (a re-score withdraws the old
    score first), so running this twice never double counts. In one transaction: read the
    rows (no row lock while the batch is analysed), one UPDATE of the rows that still hold what
    was read (`_scores_write`), and one upsert per aggregate table for exactly the rows
    written, then the queue entries (`SentimentPending`) of the ids that no longer wait. A row
    that a concurrent response changed or replaced meanwhile is skipped (still pending, the
    sweeper scores it), and two workers given the same ids write and count each row once.
    Returns how many were written.
    """
    analyzer = analyzer or analyzer_get()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            return _score_pipelined(answer_ids, rescore=rescore, analyzer=analyzer)
        rows = _pending_read(answer_ids, rescore=rescore)
        written: set[int] = set()
        if rows:
            scored = _analyze(analyzer, rows)
            written = _scores_write(scored, analyzer=analyzer_identity(analyzer))
            _deltas_apply(_deltas_of(scored, written))
        _dequeue(sorted(set(answer_ids)))
    return len(written)


def sentiment_pending_ids(*, limit: int = BATCH_SIZE, after: int = 0) -> list[int]:
    """Ids of free-text answers waiting for a score (`SentimentPending`), oldest first. An id
    may name an answer gone or scored meanwhile: scoring it only drops it from the queue."""
    return list(
        SentimentPending.objects.filter(answer_id__gt=after)
        .order_by("answer_id")
        .values_list("answer_id", flat=True)[:limit]
    )


def sentiment_pending_score(*, max_batches: int | None = None, batch_size: int = BATCH_SIZE) -> int:
    """Score pending answers in batches until none is left (or `max_batches` ran).

    For answers stored while no worker ran and whose task was lost, and for bulk imports.
    Returns how many answers were scored.
    """
    analyzer = analyzer_get()
    if connection.vendor == "postgresql" and connection.get_autocommit():
        return _score_stream(analyzer=analyzer, batch_size=batch_size, max_batches=max_batches)
    total = 0
    after = 0
    for _ in itertools.count() if max_batches is None else range(max_batches):
        ids = sentiment_pending_ids(limit=batch_size, after=after)
        if not ids:
            break
        total += sentiment_answers_score(answer_ids=ids, analyzer=analyzer)
        after = ids[-1]
    return total


def sentiment_rescore(
    *,
    app_id: int | None = None,
    survey_id: int | None = None,
    everything: bool = False,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Score again the free-text answers of an App or a survey (all when neither is given)
    whose score came from another analyzer or version (every one with `everything`), then
    recount their surveys' aggregates. Returns how many answers were written."""
    analyzer = analyzer_get()
    identity = analyzer_identity(analyzer)
    answers = Answer.objects.filter(text__isnull=False)
    if app_id is not None:
        answers = answers.filter(survey__app_id=app_id)
    if survey_id is not None:
        answers = answers.filter(survey_id=survey_id)
    if not everything:
        answers = answers.exclude(sentiment_analyzer=identity)
    total = 0
    after = 0
    while True:
        ids = list(
            answers.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            break
        total += sentiment_answers_score(answer_ids=ids, rescore=True, analyzer=analyzer)
        after = ids[-1]
    surveys = Survey.objects.all()
    if app_id is not None:
        surveys = surveys.filter(app_id=app_id)
    if survey_id is not None:
        surveys = surveys.filter(pk=survey_id)
    for survey in surveys.order_by("pk"):
        sentiment_aggregates_rebuild(survey=survey)
    return total


@transaction.atomic
def sentiment_aggregates_rebuild(*, survey: Survey) -> None:
    """Recount a survey's sentiment aggregates from its scored answers.

    Locks the survey row (FOR UPDATE), so scoring and answer changes of this survey wait until
    the recount is committed. For after a manual data fix or a change of the term rules;
    scoring keeps the aggregates in step otherwise.
    """
    Survey.objects.select_for_update().filter(pk=survey.pk).first()
    SentimentDaily.objects.filter(survey=survey).delete()
    SentimentTermDaily.objects.filter(survey=survey).delete()
    deltas = _deltas()
    rows = (
        Answer.objects.filter(survey=survey, sentiment_label__isnull=False)
        .order_by()
        .values_list("created_at", "locale", "sentiment_label", "sentiment_score", "text")
    )
    for created_at, locale, label, score, text in rows.iterator(chunk_size=5000):
        assert label is not None  # noqa: S101 - filtered above
        deltas.add(
            survey_id=survey.pk,
            app_id=survey.app_id,
            created_at=created_at,
            locale=locale,
            label=label,
            score=score,
            text=text,
            sign=1,
        )
    _deltas_apply(deltas)
