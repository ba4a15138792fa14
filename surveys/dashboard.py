"""The surveys' panels of the App overview (see `engage.dashboard`), registered in
`SurveysConfig.ready()`: responses, sentiment and NPS per day or week, what negative answers
mention, the newest negative answers and the latest sentiment alerts."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from engage.dashboard import DashboardPanel, DashboardPeriod, dashboard_panel_register
from engage.models import App
from surveys.models import SentimentAlert, Survey
from surveys.selectors import ResponseFilters
from surveys.sentiment_selectors import (
    SentimentQuery,
    SentimentTrend,
    negative_answers_newest,
    sentiment_trend,
)

POSITIVE, NEUTRAL, NEGATIVE = "#2e7d32", "#9e9e9e", "#c62828"
RECENT_NEGATIVE = 8


def _trend(app: App, period: DashboardPeriod, terms: int = 0) -> SentimentTrend:
    return sentiment_trend(
        app=app,
        query=SentimentQuery(
            interval=period.interval,
            filters=ResponseFilters(since=period.since_at, until=period.until_at),
            terms=terms,
        ),
    )


def responses_panel(app: App, period: DashboardPeriod) -> dict[str, Any]:
    trend = _trend(app, period)
    return {
        "type": "bar",
        "labels": [b["start"] for b in trend.buckets],
        "series": [{"label": "Responses", "data": [b["responses"] for b in trend.buckets]}],
        "note": f"{trend.totals['responses']:,} responses to all surveys",
    }


def sentiment_panel(app: App, period: DashboardPeriod) -> dict[str, Any]:
    trend = _trend(app, period)
    buckets = trend.buckets
    totals = trend.totals
    mean = totals["mean_score"]
    return {
        "type": "bar",
        "stacked": True,
        "labels": [b["start"] for b in buckets],
        "series": [
            {
                "label": "Mean score",
                "type": "line",
                "axis": "y2",
                "color": "#417690",
                "data": [b["mean_score"] for b in buckets],
            },
            {
                "label": "Positive",
                "color": POSITIVE,
                "stack": "s",
                "data": [b["positive"] for b in buckets],
            },
            {
                "label": "Neutral",
                "color": NEUTRAL,
                "stack": "s",
                "data": [b["neutral"] for b in buckets],
            },
            {
                "label": "Negative",
                "color": NEGATIVE,
                "stack": "s",
                "data": [b["negative"] for b in buckets],
            },
        ],
        "y2": {"min": -1, "max": 1},
        "note": (
            f"{totals['scored']:,} scored answers, mean {mean:+.2f}"
            if mean is not None
            else "No scored answer in this period"
        )
        + (
            f"; {totals['unsupported']:,} in unsupported languages" if totals["unsupported"] else ""
        ),
    }


def nps_panel(app: App, period: DashboardPeriod) -> dict[str, Any]:
    trend = _trend(app, period)
    nps = trend.totals["nps"]
    return {
        "type": "line",
        "labels": [b["start"] for b in trend.buckets],
        "series": [
            {"label": "NPS", "color": "#6a1b9a", "data": [b["nps"] for b in trend.buckets]},
        ],
        "y": {"min": -100, "max": 100, "beginAtZero": False},
        "note": (
            f"NPS {nps:.0f} over {trend.totals['nps_responses']:,} answers"
            if nps is not None
            else "No NPS answer in this period"
        ),
    }


def negative_terms_panel(app: App, period: DashboardPeriod) -> dict[str, Any]:
    trend = _trend(app, period, terms=10)
    return {
        "type": "table",
        "columns": ["Term", "Negative answers"],
        "rows": [[t["term"], t["count"]] for t in trend.totals["top_negative_terms"]],
        "empty": "No negative answer in this period.",
    }


def negative_answers_panel(app: App, period: DashboardPeriod) -> dict[str, Any]:
    surveys = dict(Survey.objects.filter(app=app).values_list("pk", "name"))
    rows = [
        (row["survey_id"], row["text"], row["sentiment_score"], row["locale"], row["created_at"])
        for row in negative_answers_newest(
            surveys, limit=RECENT_NEGATIVE, since=period.since_at, until=period.until_at
        )
    ]
    return {
        "type": "quotes",
        "items": [
            {
                "text": text,
                "score": score,
                "meta": " · ".join(
                    part
                    for part in (
                        surveys.get(survey_id, ""),
                        timezone.localtime(created_at).strftime("%d %b %Y %H:%M"),
                        locale,
                    )
                    if part
                ),
            }
            for survey_id, text, score, locale, created_at in rows
        ],
        "empty": "No negative answer in this period.",
    }


def alerts_panel(app: App, period: DashboardPeriod) -> dict[str, Any]:
    alerts = SentimentAlert.objects.filter(app=app).select_related("rule")[:5]
    return {
        "type": "table",
        "columns": ["Fired", "Rule", "Alert"],
        "rows": [
            [timezone.localtime(a.fired_at).strftime("%d %b %Y"), a.rule.name, a.message]
            for a in alerts
        ],
        "empty": "No sentiment alert has fired.",
    }


def dashboard_panels_register() -> None:
    for panel in (
        DashboardPanel("responses", "Survey responses", responses_panel, order=40),
        DashboardPanel(
            "nps",
            "NPS",
            nps_panel,
            order=50,
            description="Net Promoter Score of every NPS question.",
        ),
        DashboardPanel(
            "sentiment",
            "Sentiment of free-text answers",
            sentiment_panel,
            order=60,
            wide=True,
            description="Answers by label (bars) and their mean score from -1 to 1 (line).",
        ),
        DashboardPanel(
            "negative_terms",
            "What negative answers mention",
            negative_terms_panel,
            order=70,
            description="Most frequent words of negative answers, stop words removed.",
        ),
        DashboardPanel(
            "negative_answers", "Recent negative answers", negative_answers_panel, order=80
        ),
        DashboardPanel("sentiment_alerts", "Sentiment alerts", alerts_panel, order=90, wide=True),
    ):
        dashboard_panel_register(panel)
