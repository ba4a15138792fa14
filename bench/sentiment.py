"""Sentiment benchmark: scoring throughput and trend query time.

    .venv/bin/python bench/sentiment.py [--score 100000] [--trend 1000000] [--reuse] [--batch N]

What it does, bounded (the 1,000,000-answer load takes most of it: a few minutes):
1. (Re)creates the PostgreSQL database `engage_bench_sentiment` on 127.0.0.1 (user postgres,
   trust auth) and migrates it; `--reuse` keeps a database already loaded with the same sizes
   (and applies any newer migration to it).
2. Loads, with COPY, one survey ("scoring") with `--score` responses each holding an unscored
   open-text answer (generated English answers of one to three sentences, positive, negative
   and neutral, and 15% in German, French or Spanish) and an NPS answer, and one survey
   ("trends") with `--trend` responses whose open-text answers are already scored (365 days,
   four locales), then rebuilds the tallies and the sentiment aggregates with the product's
   own rebuild functions, and VACUUM ANALYZE.
3. Scoring: reads the `--score` texts, times raw VADER (`polarity_scores`) on them, then times
   the real pipeline on the same answers, alternating with it on slices of 10,000 answers: the
   sweeper `sentiment_pending_score` (what the Celery task `sentiment_score_pending` runs for
   answers stored while no worker ran), in batches (`--batch`, default 500), each batch one
   transaction that writes the scores, updates the aggregates and takes the answers out of the
   queue; on PostgreSQL it reads the next batch while the server writes the current one.
   Prints answers/s of both and the ratio (target ≥ 70%). Also times 1,000 answers scored one
   task per answer, as `response_submit` queues them for a single response.
4. Trends: times `sentiment_trend` over the `--trend` answers (by day and by week, the whole
   survey, the App, and with a locale filter), best and median of 5, beside two hand-written
   SQL queries in the same run: the same figures straight from the answer rows (a scan) and
   from the aggregate table (the floor). Target < 300 ms.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = "engage_bench_sentiment"
PG = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qtA"]
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "engage.settings")
os.environ["DEBUG"] = "false"
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("ALLOWED_HOSTS", "*")
os.environ.pop("CELERY_BROKER_URL", None)  # tasks run in-process

PEOPLE = 50_000
DAYS = 365
LOCALES = ("en", "en", "en", "en-GB", "de", "fr")
QUESTIONS = [
    {"id": "recommend", "type": "nps", "text": {"en": "How likely are you to recommend us?"}},
    {"id": "why", "type": "open_text", "text": {"en": "Why?"}},
]
POSITIVE = (
    "I love the new reports",
    "Great app, really easy to use",
    "The export works perfectly now",
    "Support was fast and friendly",
    "Dashboards are beautiful and clear",
    "Setting up alerts took two minutes, amazing",
    "Best tool we have used for onboarding",
)
NEGATIVE = (
    "The export is slow and crashes with big files",
    "Terrible update, I lost my saved filters",
    "Support never answered my ticket",
    "Pricing is too expensive for small teams",
    "The mobile app is buggy and confusing",
    "Login fails every morning, very annoying",
    "Reports are wrong since last week and nobody cares",
)
NEUTRAL = (
    "I use it for weekly reports",
    "We switched from spreadsheets last month",
    "Mostly the calendar view",
    "It does what it says",
    "My manager asked me to fill this in",
)
FOREIGN = (
    "Die App ist langsam und stürzt oft ab, sehr ärgerlich",
    "Super Werkzeug, die Berichte sind klar und schnell",
    "L'export est trop lent et plante souvent",
    "J'adore les nouveaux tableaux de bord, merci",
    "La aplicación es muy lenta y confusa",
    "Me encanta, funciona perfectamente",
)
ENDINGS = ("", ".", "!", "!!", " :(", " :)", " 👍", "...")


def log(text: str) -> None:
    print(text, flush=True)


def psql(sql: str, database: str = "postgres") -> str:
    result = subprocess.run([*PG, "-d", database, "-c", sql], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"psql failed: {result.stderr.strip()}")
    return result.stdout.strip()


def database_prepare(marker: str, reuse: bool) -> bool:
    exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'") == "1"  # noqa: S608
    if reuse and exists:
        try:
            found = psql("SELECT name FROM engage_app LIMIT 1", DB_NAME)
        except SystemExit:
            found = ""
        if found == marker:
            return True
    if exists:
        psql(f"DROP DATABASE {DB_NAME} WITH (FORCE)")
    psql(f"CREATE DATABASE {DB_NAME}")
    return False


def text_of(rng: random.Random) -> tuple[str, str]:
    """A generated answer and its kind: one to three sentences."""
    kind = rng.choices(("pos", "neg", "neu", "foreign"), weights=(35, 35, 15, 15))[0]
    pool = {"pos": POSITIVE, "neg": NEGATIVE, "neu": NEUTRAL, "foreign": FOREIGN}[kind]
    parts = rng.sample(pool, k=rng.choice((1, 1, 2, 3)))
    return ". ".join(parts) + rng.choice(ENDINGS), kind


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def flush(raw: Any, responses: io.StringIO, answers: io.StringIO) -> None:
    """COPY one slice of responses and answer rows (foreign keys are off during the load)."""
    with (
        raw.cursor() as c,
        c.copy(
            "COPY surveys_response (id, app_id, survey_id, person_id, variant, locale, "
            "answers, completed, last_question, created_at, updated_at, completed_at) "
            "FROM STDIN"
        ) as copy,
    ):
        copy.write(responses.getvalue())
    with (
        raw.cursor() as c,
        c.copy(
            "COPY surveys_answer (response_id, survey_id, person_id, question_id, number, "
            "choice, text, first, created_at, locale, variant, sentiment_label, "
            "sentiment_score, sentiment_language, sentiment_analyzer) FROM STDIN"
        ) as copy,
    ):
        copy.write(answers.getvalue())


def load(*, score: int, trend: int, marker: str) -> tuple[int, int]:
    """The App, people and two surveys; COPY responses and answer rows in."""
    from django.db import connection

    from engage.models import CampaignStatus
    from engage.services import app_create
    from surveys.models import Survey
    from surveys.sentiment import sentiment_aggregates_rebuild
    from surveys.sentiment_analysis import VaderAnalyzer
    from surveys.services import survey_tallies_rebuild

    app = app_create(name=marker, origins=["https://bench.example"]).app
    surveys = []
    for name in ("scoring", "trends"):
        survey = Survey(
            app=app,
            name=name,
            status=CampaignStatus.LIVE,
            questions=QUESTIONS,
            trigger={"on": "api"},
        )
        survey.full_clean()
        survey.save()
        surveys.append(survey)
    rng = random.Random(11)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=DAYS)
    identity = VaderAnalyzer().identity
    # Scores of the pre-scored survey: VADER once per distinct text, not a million times.
    vader = VaderAnalyzer()
    cache: dict[str, tuple[str, str]] = {}
    started = time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.connection
        cursor.execute("SET session_replication_role = replica")
        with (
            raw.cursor() as c,
            c.copy(
                "COPY segments_person (app_id, user_id, attributes, first_seen, last_seen) FROM STDIN"
            ) as copy,
        ):
            buffer = io.StringIO()
            for i in range(PEOPLE):
                buffer.write(f"{app.pk}\tu{i}\t{{}}\t{start}\t{now}\n")
            copy.write(buffer.getvalue())
        with raw.cursor() as c:
            c.execute("SELECT min(id) FROM segments_person WHERE app_id = %s", [app.pk])
            first_person = c.fetchone()[0]
        for survey, count, scored in ((surveys[0], score, False), (surveys[1], trend, True)):
            responses = io.StringIO()
            answers = io.StringIO()
            moments = sorted(rng.randrange(DAYS * 86_400) for _ in range(count))
            for n, second in enumerate(moments):
                if n and n % 50_000 == 0:  # bounded memory: COPY in slices
                    flush(raw, responses, answers)
                    responses, answers = io.StringIO(), io.StringIO()
                rid = uuid.UUID(int=rng.getrandbits(128), version=4)
                person = first_person + rng.randrange(PEOPLE)
                created = start + timedelta(seconds=second)
                locale = rng.choice(LOCALES)
                text, kind = text_of(rng)
                nps = rng.randrange(0, 7) if kind == "neg" else rng.randrange(6, 11)
                payload = _escape(json.dumps({"recommend": nps, "why": text}, ensure_ascii=False))
                responses.write(
                    f"{rid}\t{app.pk}\t{survey.pk}\t{person}\t\t{locale}\t{payload}\tt\twhy\t"
                    f"{created}\t{created}\t{created}\n"
                )
                answers.write(
                    f"{rid}\t{survey.pk}\t{person}\trecommend\t{nps}\t\\N\t\\N\tt\t{created}\t"
                    f"{locale}\t\t\\N\t\\N\t\t\n"
                )
                if scored:
                    if text not in cache:
                        result = vader.analyze(text, locale)
                        cache[text] = (
                            result.label,
                            "\\N" if result.score is None else repr(result.score),
                            result.language,
                        )
                    label, value, language = cache[text]
                    answers.write(
                        f"{rid}\t{survey.pk}\t{person}\twhy\t\\N\t\\N\t{_escape(text)}\tt\t"
                        f"{created}\t{locale}\t\t{label}\t{value}\t{language}\t{identity}\n"
                    )
                else:
                    answers.write(
                        f"{rid}\t{survey.pk}\t{person}\twhy\t\\N\t\\N\t{_escape(text)}\tt\t"
                        f"{created}\t{locale}\t\t\\N\t\\N\t\t\n"
                    )
            flush(raw, responses, answers)
            log(
                f"  {survey.name}: {count:,} responses copied ({time.perf_counter() - started:.0f} s)"
            )
        cursor.execute("SET session_replication_role = DEFAULT")
    for survey in surveys:
        survey_tallies_rebuild(survey=survey)
    started = time.perf_counter()
    sentiment_aggregates_rebuild(survey=surveys[1])
    log(
        f"  sentiment aggregates rebuilt from {trend:,} scored answers in {time.perf_counter() - started:.1f} s"
    )
    psql("VACUUM ANALYZE", DB_NAME)
    return surveys[0].pk, surveys[1].pk


def timed(run: Callable[[], Any], repeat: int = 5) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--score", type=int, default=100_000)
    parser.add_argument("--trend", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument(
        "--batch", type=int, default=0, help="answers per task (default: the sweeper's)"
    )
    args = parser.parse_args()
    marker = f"bench {args.score} {args.trend}"
    reused = database_prepare(marker, args.reuse)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from surveys.models import (
        Answer,
        SentimentDaily,
        SentimentPending,
        SentimentTermDaily,
        Survey,
    )
    from surveys.selectors import ResponseFilters
    from surveys.sentiment import BATCH_SIZE, sentiment_pending_score
    from surveys.sentiment_analysis import analyzer_get
    from surveys.sentiment_selectors import SentimentQuery, sentiment_trend
    from surveys.tasks import sentiment_score

    if reused:
        scoring_pk, trend_pk = (
            Survey.objects.get(name="scoring").pk,
            Survey.objects.get(name="trends").pk,
        )
        call_command("migrate", verbosity=0)
        log(f"reusing {DB_NAME}")
    else:
        call_command("migrate", verbosity=0)
        log(f"loading {args.score:,} + {args.trend:,} responses …")
        scoring_pk, trend_pk = load(score=args.score, trend=args.trend, marker=marker)
    scoring = Survey.objects.select_related("app").get(pk=scoring_pk)
    trends = Survey.objects.select_related("app").get(pk=trend_pk)
    app = scoring.app

    # --- scoring ---------------------------------------------------------------------------
    # Unscore the scoring survey (a --reuse run starts from the same state).
    Answer.objects.filter(survey=scoring, text__isnull=False).update(
        sentiment_label=None, sentiment_score=None, sentiment_language="", sentiment_analyzer=""
    )
    SentimentDaily.objects.filter(survey=scoring).delete()
    SentimentTermDaily.objects.filter(survey=scoring).delete()
    # Every one of them waits for a score: the queue the sweeper reads, as `response_submit`
    # fills it.
    SentimentPending.objects.all().delete()
    SentimentPending.objects.bulk_create(
        SentimentPending(answer_id=pk)
        for pk in Answer.objects.filter(survey=scoring, text__isnull=False).values_list(
            "pk", flat=True
        )
    )
    psql("VACUUM ANALYZE surveys_answer", DB_NAME)  # the same start as a fresh load
    pending = list(
        Answer.objects.filter(survey=scoring, text__isnull=False)
        .order_by("pk")
        .values_list("pk", "text", "locale")
    )
    texts = [text for _, text, _ in pending]
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    analyzer = analyzer_get()
    analyzer.analyze("warm up the language model", "en")  # a worker has it loaded
    # Slices of 10,000: raw VADER on a slice's texts, the analyzer alone (language gate and
    # VADER, no database) on them, then the pipeline on the same answers, so that all three
    # see the same load on a shared machine.
    batch = args.batch or BATCH_SIZE
    raw_seconds = analyzer_seconds = pipeline_seconds = 0.0
    scored = 0
    for start in range(0, len(pending), 10_000):
        chunk = pending[start : start + 10_000]
        started = time.perf_counter()
        for _, text, _ in chunk:
            vader.polarity_scores(text)
        raw_seconds += time.perf_counter() - started
        started = time.perf_counter()
        for part in range(0, len(chunk), batch):
            analyzer.analyze_many(
                [
                    (text, locale or app.default_locale)
                    for _, text, locale in chunk[part : part + batch]
                ]
            )
        analyzer_seconds += time.perf_counter() - started
        # The sweeper, as a worker runs it for answers stored while none ran: the queue's
        # next entries (all of this chunk's, and only those: the earlier ones are scored) in
        # batches, each one transaction.
        started = time.perf_counter()
        scored += sentiment_pending_score(max_batches=-(-len(chunk) // batch), batch_size=batch)
        pipeline_seconds += time.perf_counter() - started
    raw_rate = len(texts) / raw_seconds
    analyzer_rate = len(texts) / analyzer_seconds
    pipeline_rate = scored / pipeline_seconds

    # One task per answer, as a single response queues it (1,000 answers).
    single = list(
        Answer.objects.filter(survey=scoring, text__isnull=False)
        .order_by("pk")
        .values_list("pk", flat=True)[:1000]
    )
    Answer.objects.filter(pk__in=single).update(
        sentiment_label=None
    )  # aggregates: off by these, not read below
    SentimentPending.objects.bulk_create(SentimentPending(answer_id=pk) for pk in single)
    started = time.perf_counter()
    for pk in single:
        sentiment_score([pk])
    single_rate = len(single) / (time.perf_counter() - started)

    log("")
    log(f"Scoring {len(texts):,} stored answers (same texts):")
    log(f"  raw VADER polarity_scores          {raw_rate:10,.0f} answers/s")
    log(
        f"  analyzer alone (language + VADER)  {analyzer_rate:10,.0f} answers/s   "
        f"{100 * analyzer_rate / raw_rate:5.1f}% of raw  (no database: the ceiling)"
    )
    log(
        f"  pipeline (sweeper, batches of {batch:<4}) {pipeline_rate:8,.0f} answers/s   "
        f"{100 * pipeline_rate / raw_rate:5.1f}% of raw  "
        f"{'ok' if pipeline_rate >= 0.7 * raw_rate else 'UNDER TARGET (70%)'}"
    )
    log(
        f"  pipeline, one task per answer      {single_rate:10,.0f} answers/s   ({len(single):,} answers)"
    )
    labels = dict(
        Answer.objects.filter(survey=scoring, text__isnull=False)
        .values_list("sentiment_label")
        .annotate(n=django.db.models.Count("pk"))
        .order_by()
    )
    log(f"  labels: {labels}")

    # --- trends ----------------------------------------------------------------------------
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    cases = [
        ("survey, by day, all time", trends, SentimentQuery(interval="day")),
        ("survey, by week, all time", trends, SentimentQuery(interval="week")),
        (
            "survey, by day, last 90 days",
            trends,
            SentimentQuery(filters=ResponseFilters(since=today - timedelta(days=90), until=today)),
        ),
        (
            "survey, by week, locale en",
            trends,
            SentimentQuery(interval="week", filters=ResponseFilters(locale="en")),
        ),
        ("App, by week, all time", None, SentimentQuery(interval="week")),
    ]
    answers = Answer.objects.filter(survey=trends, sentiment_label__isnull=False).count()
    log("")
    log(f"Trend queries over {answers:,} scored answers (best / median of 5):")
    for label, survey, query in cases:
        result = sentiment_trend(app=app, survey=survey, query=query)
        best, median = timed(lambda s=survey, q=query: sentiment_trend(app=app, survey=s, query=q))
        log(
            f"  {label:<32} {best * 1000:7.1f} ms / {median * 1000:7.1f} ms  "
            f"({len(result.buckets)} buckets) {'ok' if best < 0.3 else 'OVER TARGET'}"
        )

    scan_sql = """
        SELECT date_trunc('week', created_at AT TIME ZONE 'UTC') AS bucket,
               count(*) FILTER (WHERE sentiment_label = 'positive'),
               count(*) FILTER (WHERE sentiment_label = 'neutral'),
               count(*) FILTER (WHERE sentiment_label = 'negative'),
               avg(sentiment_score)
        FROM surveys_answer
        WHERE survey_id = %s AND sentiment_label IS NOT NULL
        GROUP BY 1 ORDER BY 1
    """
    floor_sql = """
        SELECT date_trunc('week', day) AS bucket, sum(positive), sum(neutral), sum(negative),
               sum(score_sum_e4)::float / nullif(sum(positive + neutral + negative), 0) / 10000
        FROM surveys_sentimentdaily WHERE survey_id = %s GROUP BY 1 ORDER BY 1
    """

    def run(sql: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql, [trends.pk])
            cursor.fetchall()

    for label, sql in (
        ("reference SQL: scan of the answers", scan_sql),
        ("reference SQL: aggregate table", floor_sql),
    ):
        best, median = timed(lambda s=sql: run(s))
        log(
            f"  {label:<32} {best * 1000:7.1f} ms / {median * 1000:7.1f} ms  (by week, no terms, no NPS)"
        )


if __name__ == "__main__":
    main()
