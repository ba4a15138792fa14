"""A router whose routes answer with and without a trailing slash (DESIGN.md)."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    def __init__(self) -> None:
        super().__init__()
        # SimpleRouter only knows "/" or ""; a regex path takes the optional slash as is.
        self.trailing_slash = "/?"
