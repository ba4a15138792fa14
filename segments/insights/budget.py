"""A time budget for insight queries: past it the database stops, and the client gets a 422.

PostgreSQL: `SET LOCAL statement_timeout` inside the query's own transaction, so the setting
ends with it. The same transaction also gets `work_mem` (ENGAGE_INSIGHT_WORK_MEM, 128MB by
default; empty keeps the server's) so that the sorts and hashes of one insight stay in memory
instead of spilling to temporary files, and `jit = off`: compiling the expressions of these
statements costs more than the rows they process save.
SQLite: a progress handler that interrupts the statement once the deadline has passed.
Either way `QueryTooExpensive` (HTTP 422, code `query_too_expensive`) is raised.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection, transaction

from engage.db import local_settings
from engage.errors import EngageError

DEFAULT_TIMEOUT_MS = 10_000
DEFAULT_WORK_MEM = "128MB"
_WORK_MEM = re.compile(r"^\d{1,7}\s*(kB|MB|GB)?$")
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a cancelled statement


class QueryTooExpensive(EngageError):
    code = "query_too_expensive"
    status = 422


def timeout_ms() -> int:
    return int(getattr(settings, "ENGAGE_INSIGHT_TIMEOUT_MS", DEFAULT_TIMEOUT_MS))


def work_mem() -> str:
    """ENGAGE_INSIGHT_WORK_MEM as PostgreSQL reads it ("128MB", "65536" in kB), or "" for the
    server's own. Anything else is a configuration error, raised at the first insight."""
    value = str(getattr(settings, "ENGAGE_INSIGHT_WORK_MEM", DEFAULT_WORK_MEM) or "").strip()
    if value and not _WORK_MEM.match(value):
        raise ImproperlyConfigured(
            f'ENGAGE_INSIGHT_WORK_MEM: "{value}" is not a size such as 128MB, 1GB or 65536 (kB)'
        )
    return value


def _cancelled(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc.__context__
    if getattr(cause, "sqlstate", None) == QUERY_CANCELED:
        return True
    return "interrupted" in str(exc) or "statement timeout" in str(exc)


@contextmanager
def insight_budget(*, ms: int | None = None) -> Iterator[None]:
    """Run the block's queries in one transaction limited to `ms` (the setting by default).

    After: nothing is changed by the budget itself; a statement that ran past it raised
    `QueryTooExpensive` naming the limit.
    """
    limit = timeout_ms() if ms is None else ms
    try:
        if connection.vendor == "postgresql":
            memory = work_mem()
            # An int and a checked size: the settings of this block only.
            values = {"statement_timeout": str(int(limit)), "jit": "off"}
            if memory:
                values["work_mem"] = memory
            with local_settings(**values):
                yield
        else:
            with transaction.atomic():
                if connection.vendor == "sqlite":
                    connection.ensure_connection()
                    raw = connection.connection
                    deadline = time.monotonic() + limit / 1000

                    def over_budget() -> int:
                        return 1 if time.monotonic() > deadline else 0

                    raw.set_progress_handler(over_budget, 10_000)
                    try:
                        yield
                    finally:
                        raw.set_progress_handler(None, 0)
                else:
                    yield
    except DatabaseError as exc:
        if _cancelled(exc):
            raise QueryTooExpensive(
                f"This insight took longer than its time budget of {limit} ms and was stopped. "
                "Narrow the date range, use fewer steps or breakdown values, or add filters.",
                details={"timeout_ms": limit},
            ) from exc
        raise
