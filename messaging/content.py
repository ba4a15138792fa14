"""Message content: validation and server-side rendering of markdown (markdown-it-py + nh3).

The widget inserts only `body_html` made here, never raw markdown or client HTML.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import nh3
from markdown_it import MarkdownIt

from engage import errors

BUTTON_ACTIONS = ("url", "dismiss", "event")
ALLOWED_TAGS = {
    "p", "br", "strong", "em", "b", "i", "u", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "hr", "span",
}  # fmt: skip
SAFE_SCHEMES = {"http", "https", "mailto"}
MAX_BODY = 20_000

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).disable("image")


@lru_cache(maxsize=4096)
def markdown_render(text: str) -> str:
    """Markdown to sanitised HTML: raw HTML is escaped, links keep only safe schemes."""
    html = _markdown.render(text)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes=SAFE_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )


def _url_safe(url: str) -> bool:
    lowered = url.strip().lower()
    if lowered.startswith(("/", "#", "?")) and not lowered.startswith("//"):
        return True
    return lowered.split(":", 1)[0] in {"http", "https", "mailto"} and ":" in lowered


def content_validate(content: Any, *, path: str = "content") -> dict[str, Any]:
    """A clean `{locale: {"title", "body", "buttons"}}`; 400 naming the bad field."""
    if not isinstance(content, dict) or not content:
        raise errors.InvalidInput(f'{path}: needs at least one locale, e.g. {{"en": {{…}}}}')
    clean: dict[str, Any] = {}
    for locale, entry in content.items():
        where = f"{path}.{locale}"
        if not isinstance(locale, str) or not 1 <= len(locale) <= 35:
            raise errors.InvalidInput(f"{path}: locale keys are language tags like en or pt-BR")
        if not isinstance(entry, dict):
            raise errors.InvalidInput(f"{where}: must be an object")
        unknown = set(entry) - {"title", "body", "buttons"}
        if unknown:
            raise errors.InvalidInput(f"{where}: unknown field {sorted(unknown)[0]!r}")
        title = entry.get("title", "")
        body = entry.get("body", "")
        if not isinstance(title, str) or len(title) > 300:
            raise errors.InvalidInput(f"{where}.title: a string of at most 300 characters")
        if not isinstance(body, str) or len(body) > MAX_BODY:
            raise errors.InvalidInput(f"{where}.body: markdown of at most {MAX_BODY} characters")
        if not title and not body:
            raise errors.InvalidInput(f"{where}: needs a title or a body")
        buttons = entry.get("buttons", [])
        if not isinstance(buttons, list) or len(buttons) > 4:
            raise errors.InvalidInput(f"{where}.buttons: a list of at most 4 buttons")
        clean_buttons = []
        for i, button in enumerate(buttons):
            bpath = f"{where}.buttons[{i}]"
            if not isinstance(button, dict):
                raise errors.InvalidInput(f"{bpath}: must be an object")
            label = button.get("label")
            if not isinstance(label, str) or not label.strip() or len(label) > 80:
                raise errors.InvalidInput(f"{bpath}.label: 1 to 80 characters")
            action = button.get("action")
            if action not in BUTTON_ACTIONS:
                raise errors.InvalidInput(f"{bpath}.action: one of url, dismiss, event")
            clean_button: dict[str, Any] = {"label": label, "action": action}
            if action == "url":
                url = button.get("url")
                if not isinstance(url, str) or not _url_safe(url):
                    raise errors.InvalidInput(
                        f"{bpath}.url: an http(s), mailto or relative URL", code="unsafe_url"
                    )
                clean_button["url"] = url
            if action == "event":
                event = button.get("event")
                if not isinstance(event, str) or not event.strip():
                    raise errors.InvalidInput(f"{bpath}.event: the event name to track")
                clean_button["event"] = event
            clean_buttons.append(clean_button)
        clean[locale] = {"title": title, "body": body, "buttons": clean_buttons}
    return clean


def variants_validate(variants: Any) -> list[dict[str, Any]]:
    """A/B variants: keys unique, weights positive whole numbers summing to 100."""
    if variants in (None, []):
        return []
    if not isinstance(variants, list) or len(variants) < 2:
        raise errors.InvalidInput("variants: at least two variants, or none")
    seen: set[str] = set()
    clean = []
    for i, variant in enumerate(variants):
        path = f"variants[{i}]"
        if not isinstance(variant, dict):
            raise errors.InvalidInput(f"{path}: must be an object")
        key = variant.get("key")
        if not isinstance(key, str) or not key.strip() or len(key) > 64:
            raise errors.InvalidInput(f"{path}.key: 1 to 64 characters")
        if key in seen:
            raise errors.InvalidInput(f'{path}.key: "{key}" is used twice')
        seen.add(key)
        weight = variant.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int) or weight <= 0:
            raise errors.InvalidInput(f"{path}.weight: a positive whole number")
        entry: dict[str, Any] = {"key": key, "weight": weight}
        if variant.get("content") is not None:
            entry["content"] = content_validate(variant["content"], path=f"{path}.content")
        clean.append(entry)
    total = sum(v["weight"] for v in clean)
    if total != 100:
        raise errors.InvalidInput(f"variants: weights must sum to 100, not {total}")
    return clean


def locale_pick(content: dict[str, Any], locale: str | None, default: str) -> str:
    """The best locale of `content`: exact, then language (pt-BR → pt), then default, then any."""
    if locale:
        if locale in content:
            return locale
        base = locale.split("-")[0].split("_")[0].lower()
        for key in content:
            if key.split("-")[0].split("_")[0].lower() == base:
                return key
    if default in content:
        return default
    return next(iter(content))


def content_render(
    content: dict[str, Any], *, locale: str | None, default_locale: str
) -> dict[str, Any]:
    """What the widget shows for one locale: title, sanitised `body_html`, buttons."""
    chosen = locale_pick(content, locale, default_locale)
    entry = content[chosen]
    return {
        "locale": chosen,
        "title": entry.get("title", ""),
        "body_html": markdown_render(entry.get("body", "")),
        "buttons": entry.get("buttons", []),
    }
