from django.apps import AppConfig


class EngageConfig(AppConfig):
    name = "engage"
    verbose_name = "Engage"

    def ready(self) -> None:
        from corsheaders.signals import check_request_enabled

        from engage.cors import cors_allow_app_origins

        check_request_enabled.connect(cors_allow_app_origins, dispatch_uid="engage-cors")

        from engage.deliveries import deliveries_convert, person_deliveries
        from segments.selectors import person_section_register
        from segments.services import events_listener_register

        person_section_register("deliveries", person_deliveries)
        events_listener_register(deliveries_convert)
