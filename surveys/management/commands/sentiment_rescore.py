"""`manage.py sentiment_rescore [--app ID] [--survey ID] [--all]`: score free-text answers
again after a change of analyzer (ENGAGE_SENTIMENT_ANALYZER) or of its version."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from engage.models import App
from surveys.models import Survey
from surveys.sentiment import sentiment_rescore
from surveys.sentiment_analysis import analyzer_get, analyzer_identity


class Command(BaseCommand):
    help = (
        "Score free-text answers again with the configured analyzer: those scored by another "
        "analyzer or version (every one with --all), then recount the daily aggregates."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--app", type=int, help="Only this App's answers (its id).")
        parser.add_argument("--survey", type=int, help="Only this survey's answers (its id).")
        parser.add_argument(
            "--all", action="store_true", help="Also answers already scored by this analyzer."
        )
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        app_id, survey_id = options["app"], options["survey"]
        if app_id is not None and not App.objects.filter(pk=app_id).exists():
            raise CommandError(f"--app: no App {app_id}")
        if survey_id is not None:
            survey = Survey.objects.filter(pk=survey_id).first()
            if survey is None or (app_id is not None and survey.app_id != app_id):
                raise CommandError(
                    f"--survey: no survey {survey_id}" + (" in that App" if app_id else "")
                )
        if options["batch_size"] < 1:
            raise CommandError("--batch-size: at least 1")
        identity = analyzer_identity(analyzer_get())
        written = sentiment_rescore(
            app_id=app_id,
            survey_id=survey_id,
            everything=options["all"],
            batch_size=options["batch_size"],
        )
        self.stdout.write(f"{written} answers scored with {identity}; aggregates recounted.")
