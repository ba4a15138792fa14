"""Surveys, their responses, and one row per answer for fast summaries."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from engage import errors
from engage.models import Campaign


class Survey(Campaign):
    """A survey campaign, shown as a modal.

    `questions` is the ordered list described in `surveys.definition` (ids, types, localized
    texts, choices, `required`, branching `logic`); `thank_you` maps a locale to
    `{"title", "body" (markdown)}`; `variants` are A/B variants of the question wording.
    Both are validated on every save (`clean`), with errors naming the path.
    """

    questions = models.JSONField(
        default=list,
        help_text='Ordered questions: [{"id", "type", "text": {locale: text}, "required", '
        '"logic": [{"if": {"op", "value"}, "jump_to": QUESTION_ID | "end"}], …}]',
    )
    thank_you = models.JSONField(
        default=dict,
        blank=True,
        help_text='{locale: {"title", "body" (markdown)}}; empty means no thank-you screen.',
    )
    variants = models.JSONField(
        default=list,
        blank=True,
        help_text='A/B wording: [{"key", "weight", "texts": {QUESTION_ID: {locale: text}}}].',
    )

    class Meta(Campaign.Meta):
        indexes = [models.Index(fields=["app", "status"], name="survey_app_status")]

    def clean(self) -> None:
        from surveys.services import survey_definition_validate

        try:
            definition = survey_definition_validate(
                survey=self if self.pk else None,
                questions=self.questions,
                thank_you=self.thank_you,
                variants=self.variants,
            )
        except errors.InvalidInput as exc:
            field = exc.message.split(":")[0].split(".")[0].split("[")[0]
            if field not in ("questions", "thank_you", "variants"):
                field = "questions"
            raise ValidationError({field: exc.message}, code=exc.code) from exc
        self.questions = definition.questions
        self.thank_you = definition.thank_you
        self.variants = definition.variants


class Response(models.Model):
    """One person's answers to one survey, keyed by the id the client made.

    Sending the same id again merges answers into this row (see `response_submit`).
    `last_question` is the furthest question answered, in survey order: where a respondent
    who did not complete dropped off.
    """

    id = models.UUIDField(primary_key=True, help_text="Made by the client; retries reuse it.")
    app = models.ForeignKey("engage.App", on_delete=models.CASCADE, related_name="+")
    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="responses")
    # Indexed by `response_person_survey` (person first: it serves the foreign key too).
    person = models.ForeignKey(
        "segments.Person",
        on_delete=models.CASCADE,
        related_name="survey_responses",
        db_index=False,
    )
    delivery = models.ForeignKey(
        "engage.Delivery",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="survey_responses",
    )
    variant = models.CharField(max_length=64, blank=True, default="")
    locale = models.CharField(max_length=35, blank=True, default="")
    answers = models.JSONField(default=dict, blank=True)
    completed = models.BooleanField(default=False)
    last_question = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["survey", "created_at"], name="response_survey_created"),
            # A summary filtered by a segment looks up each member's responses here and reads
            # what it counts from the index alone (PostgreSQL; `include` is ignored elsewhere),
            # instead of scanning every response of the survey (surveys.selectors).
            models.Index(
                fields=["person", "survey"],
                include=["created_at", "completed", "last_question", "locale", "variant"],
                name="response_person_survey",
            ),
        ]

    def __str__(self) -> str:
        return f"response {self.pk} to survey #{self.survey_id}"


class Answer(models.Model):
    """One answer value of a response, normalised so that summaries aggregate in SQL.

    Scores (NPS, rating, CSAT) and yes/no (1/0) go in `number`; choices and CTA outcomes in
    `choice` (a multiple-choice answer has one row per picked choice, `first` on one of
    them); free text (open text, the "other" option) in `text`. The response's survey,
    person, time, locale and variant are copied here so that filtered summaries need no join.
    Rows are replaced whenever the response's answer to that question changes.
    """

    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="answer_rows")
    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="+", db_index=False)
    # Indexed by `answer_person_survey` (person first: it serves the foreign key too).
    person = models.ForeignKey(
        "segments.Person", on_delete=models.CASCADE, related_name="survey_answers", db_index=False
    )
    question_id = models.CharField(max_length=64)
    number = models.SmallIntegerField(null=True, blank=True)
    choice = models.CharField(max_length=64, null=True, blank=True)
    text = models.TextField(null=True, blank=True)
    first = models.BooleanField(default=True)
    created_at = models.DateTimeField()
    locale = models.CharField(max_length=35, blank=True, default="")
    variant = models.CharField(max_length=64, blank=True, default="")
    # Sentiment of `text` (see surveys.sentiment): null until scored; `unsupported` (and no
    # score) for a language the analyzer does not read. `sentiment_analyzer` is "name version".
    sentiment_label = models.CharField(max_length=12, null=True, blank=True)
    sentiment_score = models.FloatField(null=True, blank=True)
    # Database defaults too, so that bulk loads (COPY) that predate these columns still work.
    sentiment_language = models.CharField(max_length=8, blank=True, default="", db_default="")
    sentiment_analyzer = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta:
        ordering = ["id"]
        # Time ranges of a survey's answers: the cut days of a summary, the newest free-text
        # answers (results page, search), one question's latest answers.
        indexes = [
            # No index names a sentiment column: writing a score then changes no indexed
            # column, so on PostgreSQL it is a HOT update (the new row version on the same
            # page, no new index entry) wherever the page has room (20% of each page is kept
            # free for them, migration 0009).
            # Answers waiting for a score are listed in `SentimentPending` instead.
            models.Index(fields=["survey", "created_at"], name="answer_survey_created"),
            # A summary filtered by a segment reads each member's answer rows from this index
            # alone (an index-only scan on PostgreSQL) instead of all the survey's rows.
            models.Index(
                fields=["person", "survey"],
                include=[
                    "created_at",
                    "question_id",
                    "number",
                    "choice",
                    "first",
                    "locale",
                    "variant",
                ],
                name="answer_person_survey",
            ),
        ]

    def __str__(self) -> str:
        value = self.number if self.number is not None else self.choice or self.text
        return f"{self.question_id} = {value}"


# Sentinels in tallies, whose unique keys must not contain NULL (NULLs never conflict).
NO_NUMBER = -1
NO_CHOICE = ""


class ResponseTally(models.Model):
    """How many responses a survey has per UTC day, locale, variant, completion and the
    furthest question answered; kept in step with responses by `response_submit`.

    Summaries without a segment filter read these (a few thousand rows) instead of scanning
    every response.
    """

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    locale = models.CharField(max_length=35, blank=True, default="")
    variant = models.CharField(max_length=64, blank=True, default="")
    completed = models.BooleanField()
    last_question = models.CharField(max_length=64, blank=True, default="")
    count = models.IntegerField(default=0)

    class Meta:
        ordering = ["survey", "day"]
        constraints = [
            models.UniqueConstraint(
                fields=["survey", "day", "locale", "variant", "completed", "last_question"],
                name="response_tally_key",
            )
        ]

    def __str__(self) -> str:
        return f"survey #{self.survey_id} {self.day}: {self.count}"


class AnswerTally(models.Model):
    """How many answer rows a survey has per UTC day, locale, variant, question and value
    (`number` or `choice`, with -1 and "" for none), and how many respondents they are
    (`first_count`); kept in step with the per-answer rows by `response_submit`."""

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    locale = models.CharField(max_length=35, blank=True, default="")
    variant = models.CharField(max_length=64, blank=True, default="")
    question_id = models.CharField(max_length=64)
    number = models.SmallIntegerField(default=NO_NUMBER)
    choice = models.CharField(max_length=64, blank=True, default=NO_CHOICE)
    count = models.IntegerField(default=0)
    first_count = models.IntegerField(default=0)

    class Meta:
        ordering = ["survey", "day"]
        constraints = [
            models.UniqueConstraint(
                fields=["survey", "day", "locale", "variant", "question_id", "number", "choice"],
                name="answer_tally_key",
            )
        ]

    def __str__(self) -> str:
        return f"survey #{self.survey_id} {self.day} {self.question_id}: {self.count}"


class SentimentPending(models.Model):
    """A free-text answer waiting for its sentiment score: the sweeper's queue.

    Inserted with the answer (`response_submit`), deleted by the transaction that scores it
    (or that finds it gone, without text or scored already). Kept apart from `Answer` so that
    no index of the answer table names a sentiment column (see `Answer.Meta`). No foreign key:
    deleting answers never has to look here; the sweeper drops entries whose answer is gone.
    """

    answer_id = models.BigIntegerField(primary_key=True)

    class Meta:
        ordering = ["answer_id"]

    def __str__(self) -> str:
        return f"answer #{self.answer_id} waiting for a score"


class SentimentDaily(models.Model):
    """Scored free-text answers of a survey per UTC day and locale: counts by label and the
    sum of scores in units of 1e-4 (exact, so adding and withdrawing answers never drifts).

    Kept in step by `surveys.sentiment` whenever a score is written or an answer replaced, so
    trends read these rows instead of the answers.
    """

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="+", db_index=False)
    # Indexed by `sentiment_daily_app_day` (app first): a separate app index would only cost
    # every write of a score.
    app = models.ForeignKey(
        "engage.App", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField()
    locale = models.CharField(max_length=35, blank=True, default="")
    positive = models.IntegerField(default=0)
    neutral = models.IntegerField(default=0)
    negative = models.IntegerField(default=0)
    unsupported = models.IntegerField(default=0)
    score_sum_e4 = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["survey", "day"]
        constraints = [
            models.UniqueConstraint(fields=["survey", "day", "locale"], name="sentiment_daily_key")
        ]
        indexes = [models.Index(fields=["app", "day"], name="sentiment_daily_app_day")]

    def __str__(self) -> str:
        return f"survey #{self.survey_id} {self.day} {self.locale or '-'}"


class SentimentTermDaily(models.Model):
    """How many negative answers of a survey used a term, per UTC day and locale (each answer
    counts a term once); kept in step with the scores like `SentimentDaily`."""

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="+", db_index=False)
    # Indexed by `sentiment_term_app_day`, as in `SentimentDaily`.
    app = models.ForeignKey(
        "engage.App", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField()
    locale = models.CharField(max_length=35, blank=True, default="")
    term = models.CharField(max_length=64)
    count = models.IntegerField(default=0)

    class Meta:
        ordering = ["survey", "day"]
        constraints = [
            models.UniqueConstraint(
                fields=["survey", "day", "locale", "term"], name="sentiment_term_daily_key"
            )
        ]
        indexes = [models.Index(fields=["app", "day"], name="sentiment_term_app_day")]

    def __str__(self) -> str:
        return f"survey #{self.survey_id} {self.day} {self.term}: {self.count}"


class SentimentAlertKind(models.TextChoices):
    SENTIMENT_DROP = "sentiment_drop", "Weekly mean sentiment drops by more than the threshold"
    NPS_BELOW = "nps_below", "Weekly NPS is below the threshold"


class SentimentAlertRule(models.Model):
    """A rule checked every hour on the last complete week (Monday to Sunday, UTC), for one
    survey or, without a survey, for the whole App.

    `sentiment_drop`: the week's mean score is lower than the week before's by more than
    `threshold` (on the -1..1 scale, e.g. 0.2). `nps_below`: the week's NPS is below
    `threshold` (-100..100). Weeks with fewer than `min_answers` scored answers (NPS answers)
    are not judged.
    """

    app = models.ForeignKey("engage.App", on_delete=models.CASCADE, related_name="+")
    survey = models.ForeignKey(
        Survey,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="sentiment_alert_rules",
        help_text="Empty: all surveys of the App.",
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=SentimentAlertKind.choices)
    threshold = models.FloatField(
        help_text="sentiment_drop: a drop of the mean score (0 to 2, e.g. 0.2); "
        "nps_below: an NPS (-100 to 100)."
    )
    min_answers = models.PositiveIntegerField(
        default=10, help_text="Weeks with fewer answers are not judged."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["app", "name"]
        indexes = [models.Index(fields=["active"], name="sentiment_rule_active")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        survey = self.survey if self.survey_id else None
        if survey is not None and self.app_id and survey.app_id != self.app_id:
            raise ValidationError({"survey": "This survey belongs to another App."})
        if self.kind == SentimentAlertKind.SENTIMENT_DROP and not 0 < self.threshold <= 2:
            raise ValidationError({"threshold": "A drop between 0 (exclusive) and 2."})
        if self.kind == SentimentAlertKind.NPS_BELOW and not -100 <= self.threshold <= 100:
            raise ValidationError({"threshold": "An NPS between -100 and 100."})


class SentimentAlert(models.Model):
    """A rule that fired for one week; at most one per rule and week (`period_start`)."""

    rule = models.ForeignKey(SentimentAlertRule, on_delete=models.CASCADE, related_name="alerts")
    app = models.ForeignKey("engage.App", on_delete=models.CASCADE, related_name="+")
    period_start = models.DateField(help_text="Monday (UTC) of the week judged.")
    value = models.FloatField(help_text="The week's mean score, or its NPS.")
    previous_value = models.FloatField(null=True, blank=True)
    answers = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=500)
    fired_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "period_start"], name="sentiment_alert_once")
        ]
        indexes = [models.Index(fields=["app", "-fired_at"], name="sentiment_alert_app")]

    def __str__(self) -> str:
        return self.message
