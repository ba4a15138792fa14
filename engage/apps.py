from django.apps import AppConfig


class EngageConfig(AppConfig):
    name = "engage"
    verbose_name = "Engage"

    def ready(self) -> None:
        from corsheaders.signals import check_request_enabled

        from engage.cors import cors_allow_app_origins

        check_request_enabled.connect(cors_allow_app_origins, dispatch_uid="engage-cors")

        from engage.campaigns import campaigns_changed, campaigns_using_segment
        from engage.deliveries import deliveries_convert, person_deliveries
        from segments.selectors import person_section_register
        from segments.services import (
            events_listener_register,
            segment_usage_register,
            segments_listener_register,
        )

        person_section_register("deliveries", person_deliveries)
        events_listener_register(deliveries_convert)
        segments_listener_register(campaigns_changed)
        segment_usage_register(campaigns_using_segment)

        from engage.deliveries import delivery_listener_register
        from engage.webhooks import webhook_delivery_listener

        delivery_listener_register(webhook_delivery_listener)

        # Realtime: pushes to open widgets (events from any door, publish/pause/archive) and
        # the Celery tasks of the publish fan-out (engage.realtime is not autodiscovered).
        import engage.realtime.tasks  # noqa: F401
        from engage.campaigns import campaign_status_listener_register
        from engage.realtime.push import campaign_status_push, events_push

        events_listener_register(events_push)
        campaign_status_listener_register(campaign_status_push)
