"""Survey results benchmark: summaries and the CSV export over 1,000,000 responses.

    .venv/bin/python bench/survey_summary.py [--responses 1000000] [--reuse]

What it does, bounded (loading 1,000,000 responses takes most of it: about 5 minutes on an
idle 2-core machine, 14 on a busy one; `--reuse` skips it on later runs):
1. (Re)creates the PostgreSQL database `engage_bench_surveys` on 127.0.0.1 (user postgres,
   trust auth) and migrates it; with `--reuse` keeps a database already loaded with the same
   number of responses (migrating it, so new indexes and planner statistics apply).
2. Creates an App, 200,000 people (a fifth with `plan: pro`, the segment `pro`) and one live
   survey of eight questions (NPS with logic, open text, CSAT, single and multiple choice with
   "other", rating, yes/no, CTA) in two wording variants, then bulk-loads the responses and
   their per-answer rows with COPY (85% completed, the rest stopped part-way; four locales;
   180 days), then VACUUM ANALYZE.
3. Times `survey_summary` (the selector behind `GET …/summary` and the admin results page)
   without filters and with each filter, best and median of 5 runs; beside them, as a
   baseline, hand-written SQL that only counts the rows the segment filter must read.
4. Streams the whole CSV export (`survey_responses_csv` through the same chunk writer the
   API streams) and, in the same run, a plain `COPY (SELECT … the same rows …) TO STDOUT`
   read by psycopg, and prints rows/s of both and their ratio.

Targets (issue 7): summary < 1 s; CSV export ≥ 30% of COPY's rows/s.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg import sql as pgsql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = "engage_bench_surveys"
PG = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qtA"]
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "engage.settings")
os.environ["DEBUG"] = "false"
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("ALLOWED_HOSTS", "*")

PEOPLE = 200_000
DAYS = 180
LOCALES = (("en", 60), ("de", 25), ("fr", 10), ("pt-BR", 5))
COMMENTS = (
    "Too slow, especially the reports page",
    'The "export" button, it is hidden',
    "Prix trop élevé — mais ça marche",
    '=HYPERLINK("http://x") please',
    "Line one\nline two",
    "日本語のサポートが欲しい",
    "Support took 3 days, 2 of them a weekend",
    "Nothing, it's great 👍",
)
QUESTIONS: list[dict[str, Any]] = [
    {
        "id": "recommend",
        "type": "nps",
        "required": True,
        "text": {"en": "How likely are you to recommend us?", "de": "Würden Sie uns empfehlen?"},
        "logic": [{"if": {"op": "gte", "value": 9}, "jump_to": "satisfaction"}],
    },
    {"id": "why", "type": "open_text", "text": {"en": "What should we improve?"}},
    {"id": "satisfaction", "type": "csat", "required": True, "text": {"en": "How satisfied?"}},
    {
        "id": "plan",
        "type": "single_choice",
        "text": {"en": "Which plan are you on?"},
        "choices": [
            {"id": "free", "label": {"en": "Free"}},
            {"id": "team", "label": {"en": "Team"}},
            {"id": "business", "label": {"en": "Business, yearly"}},
        ],
        "other": True,
    },
    {
        "id": "features",
        "type": "multiple_choice",
        "text": {"en": "What do you use?"},
        "choices": [
            {"id": "export", "label": {"en": "Export"}},
            {"id": "reports", "label": {"en": "Reports"}},
            {"id": "alerts", "label": {"en": "Alerts"}},
            {"id": "api", "label": {"en": "API"}},
        ],
        "other": True,
    },
    {"id": "stars", "type": "rating", "scale": 5, "display": "stars", "text": {"en": "Rate us"}},
    {"id": "again", "type": "yes_no", "text": {"en": "Would you buy again?"}},
    {"id": "call", "type": "cta", "text": {"en": "Talk to us?"}, "button": {"en": "Book"}},
]
NPS_WEIGHTS = (3, 2, 2, 3, 3, 5, 7, 10, 15, 25, 25)
# Cumulative weights, so that random.choices does not re-add them for every response.
NPS_CUMULATIVE = tuple(sum(NPS_WEIGHTS[: i + 1]) for i in range(len(NPS_WEIGHTS)))
CSAT_CUMULATIVE = (5, 13, 30, 70, 100)


def log(text: str) -> None:
    print(text, flush=True)


def psql(sql: str, database: str = "postgres") -> str:
    result = subprocess.run([*PG, "-d", database, "-c", sql], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"psql failed: {result.stderr.strip()}")
    return result.stdout.strip()


def database_prepare(responses: int, reuse: bool) -> bool:
    """True when a loaded database of this size is reused."""
    exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'") == "1"  # noqa: S608
    if reuse and exists:
        try:
            count = psql("SELECT count(*) FROM surveys_response", DB_NAME)
        except SystemExit:
            count = "0"
        if count == str(responses):
            return True
    if exists:
        psql(f"DROP DATABASE {DB_NAME} WITH (FORCE)")
    psql(f"CREATE DATABASE {DB_NAME}")
    return False


# --- data -------------------------------------------------------------------------------------


def _escape(text: str) -> str:
    """A value in COPY's text format."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _answers(rng: random.Random) -> tuple[dict[str, Any], bool]:
    answers: dict[str, Any] = {}
    nps = rng.choices(range(11), cum_weights=NPS_CUMULATIVE)[0]
    answers["recommend"] = nps
    if nps <= 8 and rng.random() < 0.8:
        answers["why"] = rng.choice(COMMENTS)
    answers["satisfaction"] = rng.choices((1, 2, 3, 4, 5), cum_weights=CSAT_CUMULATIVE)[0]
    if rng.random() < 0.85:
        answers["plan"] = (
            {"other": "Enterprise, custom"}
            if rng.random() < 0.05
            else rng.choice(("free", "team", "business"))
        )
    if rng.random() < 0.75:
        picked: list[Any] = rng.sample(["export", "reports", "alerts", "api"], rng.randint(1, 3))
        if rng.random() < 0.05:
            picked.append({"other": "webhooks"})
        answers["features"] = picked
    if rng.random() < 0.7:
        answers["stars"] = rng.randint(1, 5)
    if rng.random() < 0.7:
        answers["again"] = rng.random() < 0.8
    answers["call"] = "clicked" if rng.random() < 0.3 else "dismissed"
    completed = rng.random() < 0.85
    if not completed:
        order = [q["id"] for q in QUESTIONS if q["id"] in answers]
        keep = rng.randint(1, max(1, len(order) - 1))
        answers = {k: answers[k] for k in order[:keep]}
    return answers, completed


def _rows(question_id: str, value: Any) -> Iterator[tuple[str, str, str, str]]:
    """(question_id, number, choice, text) in COPY text format, as the service stores them."""
    null = "\\N"
    if isinstance(value, bool):
        yield question_id, "1" if value else "0", null, null
    elif isinstance(value, int):
        yield question_id, str(value), null, null
    elif isinstance(value, dict):
        yield question_id, null, "other", _escape(value["other"])
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                yield question_id, null, "other", _escape(item["other"])
            else:
                yield question_id, null, item, null
    elif question_id == "why":
        yield question_id, null, null, _escape(value)
    else:
        yield question_id, null, value, null


def load(responses: int) -> tuple[int, int]:
    """Create the App, people, segment and survey; COPY the responses and answers in."""
    from django.db import connection

    from engage.models import CampaignStatus
    from engage.services import app_create
    from segments.models import Segment
    from surveys.models import Survey
    from surveys.services import survey_tallies_rebuild

    app = app_create(name="Bench", origins=["https://bench.example"]).app
    Segment.objects.create(
        app=app,
        slug="pro",
        name="Pro",
        condition={"attribute": "plan", "op": "eq", "value": "pro"},
    )
    survey = Survey(
        app=app,
        name="NPS bench",
        status=CampaignStatus.LIVE,
        questions=QUESTIONS,
        variants=[
            {"key": "a", "weight": 50},
            {"key": "b", "weight": 50, "texts": {"recommend": {"en": "Recommend us?"}}},
        ],
        trigger={"on": "api"},
    )
    survey.full_clean()
    survey.save()
    rng = random.Random(7)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=DAYS)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.connection
        # A bulk load of generated, consistent rows: skip the per-row foreign key triggers,
        # and build the secondary indexes once at the end rather than row by row.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
            "('surveys_response', 'surveys_answer') AND indexname NOT LIKE '%%_pkey'"
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(pgsql.SQL("DROP INDEX {}").format(pgsql.Identifier(name)))
        with (
            raw.cursor() as c,
            c.copy(
                "COPY segments_person (app_id, user_id, attributes, first_seen, last_seen) "
                "FROM STDIN"
            ) as copy,
        ):
            buffer = io.StringIO()
            for i in range(PEOPLE):
                plan = "pro" if i % 5 == 0 else "free"
                buffer.write(f'{app.pk}\tu{i}\t{{"plan": "{plan}"}}\t{start}\t{now}\n')
            copy.write(buffer.getvalue())
        with raw.cursor() as c:
            c.execute("SELECT min(id) FROM segments_person WHERE app_id = %s", [app.pk])
            first_person = c.fetchone()[0]
        locales = [tag for tag, _ in LOCALES]
        weights = list(itertools.accumulate(w for _, w in LOCALES))
        answer_count = 0
        # One COPY at a time per connection: answers are spooled to a file, then copied.
        spool = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed below
        with (
            raw.cursor() as c,
            c.copy(
                "COPY surveys_response (id, app_id, survey_id, person_id, variant, locale, "
                "answers, completed, last_question, created_at, updated_at, completed_at) "
                "FROM STDIN"
            ) as responses_copy,
        ):
            r_lines: list[str] = []
            a_lines: list[str] = []
            # Responses arrive in time order, as they do in production.
            moments = sorted(rng.randrange(DAYS * 86_400) for _ in range(responses))
            for n, second in enumerate(moments):
                rid = uuid.UUID(int=rng.getrandbits(128), version=4)
                person = first_person + rng.randrange(PEOPLE)
                created = start + timedelta(seconds=second)
                locale = rng.choices(locales, cum_weights=weights)[0]
                variant = "a" if rng.random() < 0.5 else "b"
                answers, completed = _answers(rng)
                last = [q["id"] for q in QUESTIONS if q["id"] in answers][-1]
                updated = created + timedelta(seconds=rng.randrange(30, 300))
                done = str(updated) if completed else "\\N"
                payload = _escape(json.dumps(answers, ensure_ascii=False))
                r_lines.append(
                    f"{rid}\t{app.pk}\t{survey.pk}\t{person}\t{variant}\t{locale}\t{payload}\t"
                    f"{'t' if completed else 'f'}\t{last}\t{created}\t{updated}\t{done}\n"
                )
                for question_id, value in answers.items():
                    first = "t"
                    for qid, number, choice, text in _rows(question_id, value):
                        a_lines.append(
                            f"{rid}\t{survey.pk}\t{person}\t{qid}\t{number}\t{choice}\t{text}\t"
                            f"{first}\t{created}\t{locale}\t{variant}\n"
                        )
                        first = "f"
                        answer_count += 1
                if len(r_lines) >= 20_000:
                    responses_copy.write("".join(r_lines))
                    spool.write("".join(a_lines))
                    r_lines.clear()
                    a_lines.clear()
                if n and n % 250_000 == 0:
                    log(f"  … {n:,} responses generated ({time.perf_counter() - started:.0f} s)")
            responses_copy.write("".join(r_lines))
            spool.write("".join(a_lines))
        spool.seek(0)
        with (
            raw.cursor() as c,
            c.copy(
                "COPY surveys_answer (response_id, survey_id, person_id, question_id, number, "
                "choice, text, first, created_at, locale, variant) FROM STDIN"
            ) as answers_copy,
        ):
            while block := spool.read(1 << 20):
                answers_copy.write(block)
        spool.close()
        log(f"  … copied in {time.perf_counter() - started:.0f} s; building indexes")
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute("SET session_replication_role = DEFAULT")
    log(
        f"loaded {PEOPLE:,} people, {responses:,} responses, {answer_count:,} answer rows "
        f"in {time.perf_counter() - started:.1f} s"
    )
    started = time.perf_counter()
    survey_tallies_rebuild(survey=survey)
    log(f"tallies rebuilt from the rows in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    psql("VACUUM ANALYZE", DB_NAME)
    log(f"VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")
    return survey.pk, answer_count


# --- measurements -----------------------------------------------------------------------------


def timed(run: Callable[[], Any], repeat: int = 5) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--responses", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep an already loaded database")
    args = parser.parse_args()

    reused = database_prepare(args.responses, args.reuse)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from surveys.exports import csv_chunks
    from surveys.models import Survey
    from surveys.selectors import ResponseFilters, survey_responses_csv, survey_summary

    if reused:
        # Migrations added since the load (indexes, planner statistics) apply to it too.
        call_command("migrate", verbosity=0)
        survey_pk = Survey.objects.get().pk
        log(f"reusing {DB_NAME} with {args.responses:,} responses (migrated)")
    else:
        call_command("migrate", verbosity=0)
        survey_pk, _ = load(args.responses)
    survey = Survey.objects.select_related("app").get(pk=survey_pk)

    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    cases = [
        ("no filter", ResponseFilters()),
        ("from/to: 30 whole days", ResponseFilters(since=today - timedelta(days=30), until=today)),
        ("from/to: at a time of day (rows)", ResponseFilters(since=now - timedelta(days=30))),
        ("locale de", ResponseFilters(locale="de")),
        ("variant b", ResponseFilters(variant="b")),
        ("segment pro (people in it now)", ResponseFilters(segment="pro")),
        (
            "all filters",
            ResponseFilters(
                since=today - timedelta(days=90),
                until=today,
                locale="en",
                variant="a",
                segment="pro",
            ),
        ),
    ]
    log("")
    log(f"survey_summary over {args.responses:,} responses (best / median of 5):")
    for label, filters in cases:
        result = survey_summary(survey=survey, filters=filters)
        best, median = timed(lambda f=filters: survey_summary(survey=survey, filters=f))
        verdict = "ok" if best < 1.0 else "OVER TARGET"
        log(
            f"  {label:<34} {best * 1000:7.0f} ms / {median * 1000:7.0f} ms  "
            f"({result.responses:,} responses, NPS {result.nps and result.nps['score']}) {verdict}"
        )

    # Baseline for the segment filter, which must read the rows: the same responses and answer
    # rows only counted, by hand-written SQL (no grouping, no day buckets).
    members = (
        "SELECT id FROM segments_person WHERE app_id = %(app)s AND attributes->>'plan' = 'pro'"
    )

    def rows_counted() -> int:
        with connection.cursor() as cursor:
            total = 0
            for table in ("surveys_response", "surveys_answer"):
                cursor.execute(
                    f"SELECT count(*) FROM {table} WHERE survey_id = %(survey)s "  # noqa: S608
                    f"AND person_id IN ({members})",
                    {"survey": survey.pk, "app": survey.app_id},
                )
                total += cursor.fetchone()[0]
            return total

    counted = rows_counted()
    best, median = timed(rows_counted)
    log(
        f"  {'baseline: same rows only counted':<34} {best * 1000:7.0f} ms / {median * 1000:7.0f} ms  "
        f"({counted:,} response and answer rows of segment pro, hand SQL)"
    )

    log("")
    log("CSV export vs COPY of the same rows:")
    started = time.perf_counter()
    export = survey_responses_csv(survey=survey)
    size = rows = 0
    for chunk in csv_chunks(export):
        size += len(chunk)
        rows += chunk.count("\r\n")  # good enough for a rate: newlines inside cells are few
    csv_seconds = time.perf_counter() - started
    csv_rate = args.responses / csv_seconds

    copy_sql = pgsql.SQL(
        "COPY (SELECT r.id, r.created_at, r.updated_at, r.completed, p.user_id, r.locale, "
        "r.variant, r.delivery_id, r.answers FROM surveys_response r "
        "JOIN segments_person p ON p.id = r.person_id "
        "WHERE r.survey_id = {} ORDER BY r.created_at, r.id) TO STDOUT WITH CSV"
    ).format(pgsql.Literal(survey.pk))
    started = time.perf_counter()
    copy_bytes = 0
    with connection.cursor() as cursor, cursor.connection.cursor() as c, c.copy(copy_sql) as copy:
        for block in copy:
            copy_bytes += len(block)
    copy_seconds = time.perf_counter() - started
    copy_rate = args.responses / copy_seconds
    ratio = csv_rate / copy_rate
    log(
        f"  CSV export  {args.responses:,} rows in {csv_seconds:6.2f} s = "
        f"{csv_rate:>10,.0f} rows/s ({size / 1e6:,.0f} MB)"
    )
    log(
        f"  COPY        {args.responses:,} rows in {copy_seconds:6.2f} s = "
        f"{copy_rate:>10,.0f} rows/s ({copy_bytes / 1e6:,.0f} MB)"
    )
    log(f"  ratio {ratio:.0%} of COPY (target ≥ 30%) {'ok' if ratio >= 0.3 else 'UNDER TARGET'}")


if __name__ == "__main__":
    main()
