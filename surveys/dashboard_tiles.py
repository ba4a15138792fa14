"""Survey tiles of custom dashboards (see `engage.dashboard_tiles`), registered in
`SurveysConfig.ready()`: a survey's NPS per day and its answers' sentiment per day."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.utils import timezone

from engage import errors
from engage.dashboard_tiles import TileType, config_id, dashboard_tile_register
from engage.models import App
from surveys.dashboard import NEGATIVE, NEUTRAL, POSITIVE
from surveys.models import Survey
from surveys.selectors import ResponseFilters
from surveys.sentiment_selectors import SentimentQuery, SentimentTrend, sentiment_trend

DEFAULT_DAYS = 30
MAX_DAYS = 366


def _check(app: App, config: Mapping[str, Any], path: str) -> dict[str, Any]:
    survey_id = config_id(config, "survey_id", path)
    if not Survey.objects.filter(app=app, pk=survey_id).exists():
        raise errors.InvalidInput(f"{path}.survey_id: no survey {survey_id} in this App")
    days = config.get("last_days", DEFAULT_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise errors.InvalidInput(f"{path}.last_days: a whole number from 1 to {MAX_DAYS}")
    return {"survey_id": survey_id, "last_days": days}


def _trend(app: App, config: Mapping[str, Any]) -> tuple[Survey, SentimentTrend]:
    survey = Survey.objects.filter(app=app, pk=config["survey_id"]).first()
    if survey is None:
        raise errors.NotFound("The survey of this tile was deleted.")
    until = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    since = until - timedelta(days=int(config.get("last_days", DEFAULT_DAYS)))
    trend = sentiment_trend(
        app=app,
        survey=survey,
        query=SentimentQuery(interval="day", filters=ResponseFilters(since=since, until=until)),
    )
    return survey, trend


def nps_tile(app: App, config: Mapping[str, Any]) -> dict[str, Any]:
    survey, trend = _trend(app, config)
    nps = trend.totals["nps"]
    return {
        "type": "line",
        "labels": [b["start"] for b in trend.buckets],
        "series": [{"label": "NPS", "color": "#6a1b9a", "data": [b["nps"] for b in trend.buckets]}],
        "y": {"min": -100, "max": 100, "beginAtZero": False},
        "note": (
            f"{survey.name}: NPS {nps:.0f} over {trend.totals['nps_responses']:,} answers"
            if nps is not None
            else f"{survey.name}: no NPS answer in this period"
        ),
    }


def sentiment_tile(app: App, config: Mapping[str, Any]) -> dict[str, Any]:
    survey, trend = _trend(app, config)
    buckets = trend.buckets
    mean = trend.totals["mean_score"]
    return {
        "type": "bar",
        "stacked": True,
        "labels": [b["start"] for b in buckets],
        "series": [
            {"label": "Positive", "color": POSITIVE, "data": [b["positive"] for b in buckets]},
            {"label": "Neutral", "color": NEUTRAL, "data": [b["neutral"] for b in buckets]},
            {"label": "Negative", "color": NEGATIVE, "data": [b["negative"] for b in buckets]},
        ],
        "note": (
            f"{survey.name}: {trend.totals['scored']:,} scored answers, mean {mean:+.2f}"
            if mean is not None
            else f"{survey.name}: no scored answer in this period"
        ),
    }


def _name(suffix: str) -> Any:
    def title_of(app: App, config: Mapping[str, Any]) -> str | None:
        survey_id = config.get("survey_id")
        if not isinstance(survey_id, int):
            return None
        name = Survey.objects.filter(app=app, pk=survey_id).values_list("name", flat=True).first()
        return f"{name}: {suffix}" if name else None

    return title_of


def dashboard_tiles_register() -> None:
    dashboard_tile_register(
        TileType(
            "survey_nps", "Survey NPS", _check, nps_tile, "A survey's NPS per day.", _name("NPS")
        )
    )
    dashboard_tile_register(
        TileType(
            "sentiment",
            "Sentiment",
            _check,
            sentiment_tile,
            "A survey's answers by sentiment.",
            _name("sentiment"),
        )
    )
