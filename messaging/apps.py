from typing import Any

from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messages"

    def ready(self) -> None:
        from engage.campaigns import CampaignKind, campaign_kind_register
        from messaging.content import content_render
        from messaging.models import Message

        def content(message: Any, locale: str | None, variant: str) -> dict[str, Any]:
            source = message.content
            for v in message.variants or []:
                if v["key"] == variant and v.get("content"):
                    source = v["content"]
            rendered = content_render(
                source, locale=locale, default_locale=message.app.default_locale
            )
            return {"type": message.kind, "name": message.name, **rendered}

        campaign_kind_register(
            CampaignKind(
                name="message",
                model=Message,
                content=content,
                variants=lambda m: [(v["key"], v["weight"]) for v in m.variants or []],
                display=lambda m: m.kind,
            )
        )
