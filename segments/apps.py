from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "segments"
    verbose_name = "People, events and segments"

    def ready(self) -> None:
        from segments.selectors import person_section_register, person_segments

        person_section_register("segments", person_segments)
