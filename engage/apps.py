from django.apps import AppConfig


class EngageConfig(AppConfig):
    name = "engage"
    verbose_name = "Engage"

    def ready(self) -> None:
        from corsheaders.signals import check_request_enabled

        from engage.cors import cors_allow_app_origins

        check_request_enabled.connect(cors_allow_app_origins, dispatch_uid="engage-cors")
