from typing import Any

from django.apps import AppConfig


class SurveysConfig(AppConfig):
    name = "surveys"
    verbose_name = "Surveys"

    def ready(self) -> None:
        from engage.campaigns import CampaignKind, campaign_kind_register
        from surveys.definition import content_render
        from surveys.models import Survey

        def content(survey: Any, locale: str | None, variant: str) -> dict[str, Any]:
            return content_render(
                name=survey.name,
                questions=survey.questions,
                thank_you=survey.thank_you,
                variants=survey.variants,
                locale=locale,
                variant=variant,
                default_locale=survey.app.default_locale,
            )

        campaign_kind_register(
            CampaignKind(
                name="survey",
                model=Survey,
                content=content,
                variants=lambda s: [(v["key"], v["weight"]) for v in s.variants or []],
                # Surveys always show as modals: at most one modal is shown at a time.
                display=lambda s: "modal",
            )
        )

        # Answers sent over the widget websocket (`answer` frames) go to the same service as
        # POST /api/v1/responses; engage never imports surveys, so surveys registers here.
        from engage.realtime.services import answer_handler_register
        from surveys.services import response_submit

        answer_handler_register(response_submit)

        # The App overview's survey panels; engage never imports surveys.
        from surveys.dashboard import dashboard_panels_register

        dashboard_panels_register()

        # Survey tiles of custom dashboards (engage.dashboard_tiles).
        from surveys.dashboard_tiles import dashboard_tiles_register

        dashboard_tiles_register()
