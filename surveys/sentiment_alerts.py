"""Sentiment alerts: rules judged on the last complete week, firing once per week.

A rule (`SentimentAlertRule`) watches one survey or a whole App. Beat runs
`sentiment_alerts_evaluate` every hour; a rule that fires stores a `SentimentAlert` (shown in
the admin) and sends a signed `sentiment.alert` webhook in the same transaction. The unique
(rule, week) key makes a second evaluation of the same week a no-op.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from engage.webhooks import webhook_emit
from surveys.models import SentimentAlert, SentimentAlertKind, SentimentAlertRule
from surveys.selectors import ResponseFilters
from surveys.sentiment_selectors import SentimentQuery, sentiment_trend

WEBHOOK_TYPE = "sentiment.alert"


def last_complete_week(now: datetime) -> date:
    """The Monday (UTC) of the last week that has ended before `now`."""
    today = now.astimezone(UTC).date()
    return today - timedelta(days=today.weekday() + 7)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _judge(rule: SentimentAlertRule, week: date) -> dict[str, Any] | None:
    """What the rule says of the week starting `week`: the alert's fields, or None."""
    survey = rule.survey
    trend = sentiment_trend(
        app=rule.app,
        survey=survey,
        query=SentimentQuery(
            interval="week",
            filters=ResponseFilters(
                since=_midnight(week - timedelta(days=7)), until=_midnight(week + timedelta(days=7))
            ),
            terms=5,
        ),
    )
    by_start = {b["start"]: b for b in trend.buckets}
    this = by_start.get(week.isoformat())
    before = by_start.get((week - timedelta(days=7)).isoformat())
    if this is None:
        return None
    scope = f'survey "{survey.name}"' if survey else f'App "{rule.app.name}"'
    if rule.kind == SentimentAlertKind.SENTIMENT_DROP:
        if (
            before is None
            or this["scored"] < rule.min_answers
            or before["scored"] < rule.min_answers
        ):
            return None
        drop = before["mean_score"] - this["mean_score"]
        if drop <= rule.threshold:
            return None
        return {
            "value": this["mean_score"],
            "previous_value": before["mean_score"],
            "answers": this["scored"],
            "top_negative_terms": this["top_negative_terms"],
            "message": (
                f"Mean sentiment of {scope} fell from {before['mean_score']:+.2f} to "
                f"{this['mean_score']:+.2f} in the week of {week.isoformat()}"
            )[:500],
        }
    if this["nps"] is None or this["nps_responses"] < rule.min_answers:
        return None
    if this["nps"] >= rule.threshold:
        return None
    return {
        "value": this["nps"],
        "previous_value": before["nps"] if before else None,
        "answers": this["nps_responses"],
        "top_negative_terms": this["top_negative_terms"],
        "message": (
            f"NPS of {scope} was {this['nps']:.0f} in the week of {week.isoformat()}, "
            f"below {rule.threshold:g}"
        )[:500],
    }


def _payload(alert: SentimentAlert, rule: SentimentAlertRule, terms: Any) -> dict[str, Any]:
    return {
        "alert_id": alert.pk,
        "rule": {
            "id": rule.pk,
            "name": rule.name,
            "kind": rule.kind,
            "threshold": rule.threshold,
            "survey_id": rule.survey_id,
        },
        "period": {
            "start": alert.period_start,
            "end": alert.period_start + timedelta(days=7),
            "interval": "week",
        },
        "value": alert.value,
        "previous_value": alert.previous_value,
        "answers": alert.answers,
        "top_negative_terms": terms,
        "message": alert.message,
    }


def sentiment_alert_rule_evaluate(
    *, rule: SentimentAlertRule, now: datetime | None = None
) -> SentimentAlert | None:
    """Judge one rule on the last complete week; fire it at most once for that week.

    After: when the rule's condition holds and it has not fired for that week, one
    `SentimentAlert` is stored and a `sentiment.alert` webhook queued (sent after commit);
    otherwise nothing changes. Returns the new alert, or None.
    """
    now = now or timezone.now()
    week = last_complete_week(now)
    if SentimentAlert.objects.filter(rule=rule, period_start=week).exists():
        return None
    found = _judge(rule, week)
    if found is None:
        return None
    terms = found.pop("top_negative_terms")
    try:
        with transaction.atomic():
            alert = SentimentAlert.objects.create(
                rule=rule, app_id=rule.app_id, period_start=week, fired_at=now, **found
            )
            webhook_emit(
                app=rule.app, type=WEBHOOK_TYPE, payload=_payload(alert, rule, terms), at=now
            )
    except IntegrityError:
        return None  # another evaluation fired it for this week meanwhile
    return alert


def sentiment_alerts_evaluate(*, now: datetime | None = None) -> list[SentimentAlert]:
    """Judge every active rule (see `sentiment_alert_rule_evaluate`); the alerts fired."""
    fired = []
    for rule in SentimentAlertRule.objects.filter(active=True).select_related("app", "survey"):
        alert = sentiment_alert_rule_evaluate(rule=rule, now=now)
        if alert is not None:
            fired.append(alert)
    return fired
