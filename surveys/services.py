"""Writes for surveys: validating definitions and accepting responses.

`response_submit` is the one door for answers: `POST /api/v1/responses` and the widget
websocket's answer frames both call it, so a response is treated the same whichever way it
came in.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from engage import errors
from engage.deliveries import delivery_answered
from engage.models import App, CampaignStatus, Delivery
from engage.webhooks import webhook_emit
from segments.models import Person
from segments.services import person_resolve
from surveys.answers import answer_rows, answers_validate
from surveys.definition import (
    LOCALE_PATTERN,
    Definition,
    definition_validate,
    question_path,
)
from surveys.models import (
    NO_CHOICE,
    NO_NUMBER,
    Answer,
    AnswerTally,
    Response,
    ResponseTally,
    SentimentPending,
    Survey,
)
from surveys.sentiment import sentiment_answers_restore, sentiment_answers_withdraw

KIND = "survey"


def survey_definition_validate(
    *, survey: Survey | None, questions: Any, thank_you: Any, variants: Any
) -> Definition:
    """The clean questions, thank-you screen and variants of a survey; 400 naming the path.

    Besides the rules of `surveys.definition`, a question that already has answers keeps its
    type: its summaries would mix two kinds of values. Give the new question a new id.
    """
    definition = definition_validate(questions=questions, thank_you=thank_you, variants=variants)
    if survey is not None and survey.pk is not None:
        stored = Survey.objects.filter(pk=survey.pk).values_list("questions", flat=True).first()
        before = {q["id"]: q["type"] for q in stored or [] if isinstance(q, dict) and "id" in q}
        for i, question in enumerate(definition.questions):
            old_type = before.get(question["id"])
            if old_type is None or old_type == question["type"]:
                continue
            if Answer.objects.filter(survey_id=survey.pk, question_id=question["id"]).exists():
                raise errors.InvalidInput(
                    f'questions[{i}].type: "{question["id"]}" already has {old_type} answers; '
                    "give a question of another type a new id",
                    code="invalid_survey",
                )
    return definition


# --- tallies ----------------------------------------------------------------------------------

ResponseKey = tuple[date, str, str, bool, str]
AnswerKey = tuple[date, str, str, str, int, str]


@dataclass(frozen=True)
class _Counted:
    """What one response adds to the tallies: response keys and answer keys → [rows, first]."""

    responses: dict[ResponseKey, int]
    answers: dict[AnswerKey, list[int]]


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _counted(
    questions: Mapping[str, Mapping[str, Any]],
    *,
    created_at: datetime,
    locale: str,
    variant: str,
    completed: bool,
    last_question: str,
    answers: Mapping[str, Any],
) -> _Counted:
    day = _day(created_at)
    counted = _Counted({(day, locale, variant, completed, last_question): 1}, {})
    for question_id, value in answers.items():
        question = questions.get(question_id)
        if question is None:  # removed from the survey since: no longer summarised
            continue
        for row in answer_rows(question, value):
            key = (
                day,
                locale,
                variant,
                question_id,
                NO_NUMBER if row.number is None else row.number,
                NO_CHOICE if row.choice is None else row.choice,
            )
            entry = counted.answers.setdefault(key, [0, 0])
            entry[0] += 1
            entry[1] += int(row.first)
    return counted


def _upsert(
    table: str, key_columns: list[str], value_columns: list[str], rows: list[tuple[Any, ...]]
) -> None:
    """Add to counters with one INSERT … ON CONFLICT (same SQL on PostgreSQL and SQLite).

    Rows come sorted by key, so concurrent transactions lock counters in the same order
    and cannot deadlock.
    """
    if not rows:
        return
    columns = [*key_columns, *value_columns]
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in value_columns)
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - names are ours
        f"VALUES {', '.join([placeholders] * len(rows))} "
        f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {updates}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])


def _tallies_apply(survey_id: int, before: _Counted | None, after: _Counted) -> None:
    response_delta: dict[ResponseKey, int] = dict(after.responses)
    for response_key, n in (before.responses if before else {}).items():
        response_delta[response_key] = response_delta.get(response_key, 0) - n
    answer_delta: dict[AnswerKey, list[int]] = {k: list(v) for k, v in after.answers.items()}
    for answer_key, (rows, first) in (before.answers if before else {}).items():
        entry = answer_delta.setdefault(answer_key, [0, 0])
        entry[0] -= rows
        entry[1] -= first
    _upsert(
        ResponseTally._meta.db_table,
        ["survey_id", "day", "locale", "variant", "completed", "last_question"],
        ["count"],
        [(survey_id, *key, n) for key, n in sorted(response_delta.items()) if n],
    )
    _upsert(
        AnswerTally._meta.db_table,
        ["survey_id", "day", "locale", "variant", "question_id", "number", "choice"],
        ["count", "first_count"],
        [
            (survey_id, *key, rows, first)
            for key, (rows, first) in sorted(answer_delta.items())
            if rows or first
        ],
    )


@transaction.atomic
def survey_tallies_rebuild(*, survey: Survey) -> None:
    """Recount a survey's tallies from its responses and answer rows.

    For after a bulk import or a manual data fix; `response_submit` keeps them in step
    otherwise. Locks the survey row so that two rebuilds do not interleave.
    """
    Survey.objects.select_for_update().filter(pk=survey.pk).first()
    ResponseTally.objects.filter(survey=survey).delete()
    AnswerTally.objects.filter(survey=survey).delete()
    day = TruncDate("created_at", tzinfo=UTC)
    ResponseTally.objects.bulk_create(
        (
            ResponseTally(survey=survey, **row)
            for row in Response.objects.filter(survey=survey)
            .annotate(day=day)
            .values("day", "locale", "variant", "completed", "last_question")
            .annotate(count=Count("pk"))
            .order_by()
        ),
        batch_size=2000,
    )
    AnswerTally.objects.bulk_create(
        (
            AnswerTally(
                survey=survey,
                day=row["day"],
                locale=row["locale"],
                variant=row["variant"],
                question_id=row["question_id"],
                number=NO_NUMBER if row["number"] is None else row["number"],
                choice=NO_CHOICE if row["choice"] is None else row["choice"],
                count=row["count"],
                first_count=row["first_count"],
            )
            for row in _answer_groups(survey)
        ),
        batch_size=2000,
    )


def _answer_groups(survey: Survey) -> Iterable[dict[str, Any]]:
    return (
        Answer.objects.filter(survey=survey)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "locale", "variant", "question_id", "number", "choice")
        .annotate(count=Count("pk"), first_count=Count("pk", filter=Q(first=True)))
        .order_by()
    )


# --- responses --------------------------------------------------------------------------------


def _response_id(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise errors.InvalidInput("id: the response id must be a UUID") from None


def survey_get_for_answers(*, app: App, survey_id: Any) -> Survey:
    """The App's live survey that may take answers now.

    404 for an unknown survey or one of another App; 400 `survey_not_live` for a draft,
    scheduled, paused or archived survey, or one whose window has ended.
    """
    try:
        survey = Survey.objects.filter(app=app, pk=int(survey_id)).first()
    except (TypeError, ValueError):
        survey = None
    if survey is None:
        raise errors.NotFound(f"survey_id: no survey {survey_id} in this App")
    if survey.status != CampaignStatus.LIVE or (
        survey.ends_at and survey.ends_at <= timezone.now()
    ):
        raise errors.InvalidInput(
            f"survey_id: survey {survey.pk} is {survey.status} and takes no answers",
            code="survey_not_live",
        )
    return survey


def _delivery_for(*, app: App, survey: Survey, person: Person, delivery_id: Any) -> Delivery | None:
    """The delivery a response answers: the one named, else the person's open one."""
    if delivery_id in (None, ""):
        return (
            Delivery.objects.filter(
                person=person,
                kind=KIND,
                campaign_id=survey.pk,
                holdout=False,
                answered_at__isnull=True,
            )
            .order_by("-decided_at")
            .first()
        )
    try:
        delivery = Delivery.objects.filter(app=app, pk=uuid.UUID(str(delivery_id))).first()
    except (TypeError, ValueError, AttributeError):
        delivery = None
    if delivery is None or delivery.person_id != person.pk:
        raise errors.NotFound("delivery_id: no such delivery for this person in this App")
    if delivery.kind != KIND or delivery.campaign_id != survey.pk:
        raise errors.InvalidInput(
            f"delivery_id: this delivery is not of survey {survey.pk}", code="wrong_delivery"
        )
    if delivery.holdout:
        raise errors.InvalidInput(
            "delivery_id: a holdout delivery is never shown", code="holdout_delivery"
        )
    return delivery


def _response_lock(*, response_id: uuid.UUID, defaults: Mapping[str, Any]) -> tuple[Response, bool]:
    """The response row, locked for this transaction, created if new.

    Two retries racing on a new id: one inserts, the other's insert fails on the primary key
    and reads the winner's row (FOR UPDATE waits until it commits), so there is never a
    duplicate and never a lost answer.
    """
    for attempt in range(3):
        row = Response.objects.select_for_update().filter(pk=response_id).first()
        if row is not None:
            return row, False
        try:
            with transaction.atomic():
                return Response.objects.create(pk=response_id, **defaults), True
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _furthest(questions: list[dict[str, Any]], answers: Mapping[str, Any]) -> str:
    last = ""
    for question in questions:
        if question["id"] in answers:
            last = question["id"]
    return last


def response_payload(response: Response, survey: Survey, person: Person) -> dict[str, Any]:
    """The `data` of a `response.completed` webhook."""
    return {
        "response_id": str(response.pk),
        "survey_id": survey.pk,
        "survey_name": survey.name,
        "delivery_id": str(response.delivery_id) if response.delivery_id else None,
        "person": {"user_id": person.user_id},
        "variant": response.variant,
        "locale": response.locale,
        "answers": response.answers,
        "completed": response.completed,
        "created_at": response.created_at,
        "completed_at": response.completed_at,
    }


def _sentiment_queue(answer_ids: list[int]) -> None:
    """List new free-text answers as waiting for a score (`SentimentPending`, in this
    transaction) and score them after commit (a worker never sees uncommitted rows)."""
    if not answer_ids:
        return
    from surveys.tasks import sentiment_score  # the tasks module imports services' modules

    SentimentPending.objects.bulk_create(SentimentPending(answer_id=pk) for pk in answer_ids)

    # robust: a broker that is down must not fail a response already stored; the sweeper
    # (`sentiment_score_pending`, every 5 minutes) scores what a lost task left.
    transaction.on_commit(lambda: sentiment_score.delay(answer_ids=answer_ids), robust=True)


def _preview_delivery(*, app: App, delivery_id: Any) -> Delivery | None:
    """The test delivery (a preview on a test user or through a preview link) named, if any."""
    if delivery_id in (None, ""):
        return None
    try:
        pk = uuid.UUID(str(delivery_id))
    except ValueError:
        return None
    return Delivery.objects.filter(app=app, pk=pk, is_test=True).first()


def _preview_response(
    *,
    app: App,
    survey_id: Any,
    response_id: uuid.UUID,
    user_id: str | None,
    anonymous_id: str | None,
    delivery: Delivery,
    answers: Any,
    completed: bool,
    locale: str | None,
    now: datetime,
) -> Response:
    """Answers to a preview: validated like real ones, acknowledged, never stored.

    A preview may show a draft, so the survey need not be live. Nothing is written but the
    delivery's `answered_at` (test deliveries are left out of every result): no response,
    no tallies, no sentiment, no webhook, so results stay clean, as in the peers' previews.
    Each submission is checked on its own (earlier partial answers are not kept), so the
    required-question check of a completed response does not apply.
    """
    survey = Survey.objects.filter(app=app, pk=delivery.campaign_id).first()
    if survey is None or delivery.kind != KIND or str(delivery.campaign_id) != str(survey_id):
        raise errors.InvalidInput(
            f"delivery_id: this preview delivery is not of survey {survey_id}",
            code="wrong_delivery",
        )
    clean = answers_validate(survey.questions, answers)
    person = person_resolve(app=app, user_id=user_id, anonymous_id=anonymous_id, create=False)
    if person is None or person.pk != delivery.person_id:
        raise errors.NotFound("delivery_id: no such delivery for this person in this App")
    kept = {question_id: value for question_id, value in clean.items() if value is not None}
    if completed:
        delivery_answered(delivery=delivery, at=now)
    return Response(
        id=response_id,
        app=app,
        survey=survey,
        person=person,
        delivery=delivery,
        variant=delivery.variant,
        locale=locale or "",
        answers=kept,
        completed=completed,
        last_question=_furthest(survey.questions, kept),
        created_at=now,
        updated_at=now,
        completed_at=now if completed else None,
    )


@transaction.atomic
def response_submit(
    *,
    app: App,
    survey_id: Any,
    response_id: Any,
    user_id: str | None,
    anonymous_id: str | None,
    delivery_id: Any,
    answers: Any,
    completed: bool,
    locale: str | None = None,
    now: datetime | None = None,
) -> Response:
    """Create or update the response `response_id` of a person to a live survey.

    Before: `survey_id` names a live survey of `app` (else 404 / 400 `survey_not_live`);
    `answers` is `{QUESTION_ID: value}` valid for each question's type (see
    `surveys.answers`), `null` clearing an answer; a `user_id` or an `anonymous_id` names
    the person (created if new); `delivery_id`, when given, is that person's delivery of
    this survey (without it, the person's latest unanswered delivery is linked).
    After: the response holds the earlier answers merged with these (a retry of the same
    body changes nothing, concurrent retries never duplicate); the per-answer rows match;
    once `completed` it stays completed, every required question on the path the logic
    takes is answered (else 400 naming it), its delivery is marked answered and a
    `response.completed` webhook is queued in the same transaction (sent after commit),
    once. Any error leaves the stored response exactly as it was.
    """
    now = now or timezone.now()
    rid = _response_id(response_id)
    if not isinstance(completed, bool):
        raise errors.InvalidInput("completed: true or false")
    if locale is not None and (not isinstance(locale, str) or not LOCALE_PATTERN.match(locale)):
        raise errors.InvalidInput("locale: a locale tag like en or pt-BR")
    if not user_id and not anonymous_id:
        raise errors.InvalidInput("user_id: give a user_id or an anonymous_id")
    preview = _preview_delivery(app=app, delivery_id=delivery_id)
    if preview is not None:
        return _preview_response(
            app=app,
            survey_id=survey_id,
            response_id=rid,
            user_id=user_id,
            anonymous_id=anonymous_id,
            delivery=preview,
            answers=answers,
            completed=completed,
            locale=locale,
            now=now,
        )
    survey = survey_get_for_answers(app=app, survey_id=survey_id)
    clean = answers_validate(survey.questions, answers)
    person = person_resolve(app=app, user_id=user_id, anonymous_id=anonymous_id, create=True)
    assert person is not None  # noqa: S101 - created when missing
    delivery = _delivery_for(app=app, survey=survey, person=person, delivery_id=delivery_id)

    response, _created = _response_lock(
        response_id=rid,
        defaults={
            "app": app,
            "survey": survey,
            "person": person,
            "delivery": delivery,
            "variant": delivery.variant if delivery else "",
            "locale": locale or "",
            "answers": {},
            "created_at": now,
            "updated_at": now,
        },
    )
    by_id = {q["id"]: q for q in survey.questions}
    before = (
        None
        if _created
        else _counted(
            by_id,
            created_at=response.created_at,
            locale=response.locale,
            variant=response.variant,
            completed=response.completed,
            last_question=response.last_question,
            answers=response.answers,
        )
    )
    if response.app_id != app.pk or response.survey_id != survey.pk:
        raise errors.Conflict(
            "id: this response id is already used by a response to another survey",
            code="response_id_taken",
        )
    if response.person_id != person.pk:
        raise errors.Conflict(
            "id: this response id is already used by another person", code="response_id_taken"
        )

    changed: list[str] = []
    if response.delivery_id is None and delivery is not None:
        response.delivery = delivery
        response.variant = delivery.variant
        changed += ["delivery", "variant"]
    if locale and not response.locale:
        response.locale = locale
        changed.append("locale")
    if changed and not _created:
        # Sentiment aggregates are kept per locale: move this response's scored answers.
        sentiment_answers_withdraw(answers=Answer.objects.filter(response=response))
        Answer.objects.filter(response=response).update(
            variant=response.variant, locale=response.locale
        )
        sentiment_answers_restore(answers=Answer.objects.filter(response=response))

    merged = dict(response.answers)
    touched: list[str] = []
    for question_id, value in clean.items():
        if value is None:
            if question_id in merged:
                del merged[question_id]
                touched.append(question_id)
        elif merged.get(question_id) != value:
            merged[question_id] = value
            touched.append(question_id)

    finishing = completed and not response.completed
    if completed or response.completed:
        required = {q["id"] for q in survey.questions if q["required"]}
        missing = [
            q for q in question_path(survey.questions, merged) if q in required and q not in merged
        ]
        if missing:
            raise errors.InvalidInput(
                f"answers.{missing[0]}: a completed response must answer this required question",
                code="required_answer",
                details={"missing": missing},
            )

    if touched:
        response.answers = merged
        response.last_question = _furthest(survey.questions, merged)
        changed += ["answers", "last_question"]
        replaced = Answer.objects.filter(response=response, question_id__in=touched)
        sentiment_answers_withdraw(answers=replaced)
        replaced.delete()
        created_rows = Answer.objects.bulk_create(
            Answer(
                response=response,
                survey_id=survey.pk,
                person_id=person.pk,
                question_id=row.question_id,
                number=row.number,
                choice=row.choice,
                text=row.text,
                first=row.first,
                created_at=response.created_at,
                locale=response.locale,
                variant=response.variant,
            )
            for question_id in touched
            if question_id in merged
            for row in answer_rows(by_id[question_id], merged[question_id])
        )
        _sentiment_queue([row.pk for row in created_rows if row.text is not None])
    if finishing:
        response.completed = True
        response.completed_at = now
        changed += ["completed", "completed_at"]
    if changed and not _created:
        response.updated_at = now
        response.save(update_fields=[*changed, "updated_at"])
    elif changed:
        response.save(update_fields=changed)
    if changed or _created:
        after = _counted(
            by_id,
            created_at=response.created_at,
            locale=response.locale,
            variant=response.variant,
            completed=response.completed,
            last_question=response.last_question,
            answers=response.answers,
        )
        _tallies_apply(survey.pk, before, after)

    if finishing:
        if response.delivery is not None:
            delivery_answered(delivery=response.delivery, at=now)
        webhook_emit(
            app=app,
            type="response.completed",
            payload=response_payload(response, survey, person),
            at=now,
        )
    return response
