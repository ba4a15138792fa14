"""Database settings for one block of queries (PostgreSQL's `SET LOCAL`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper


@contextmanager
def local_settings(**values: str) -> Iterator[None]:
    """Run the block in one transaction with PostgreSQL's run-time settings `values`.

    `set_config(name, value, true)` is `SET LOCAL` with bound parameters: the settings end
    with the transaction. Inside a caller's transaction (the block is then a savepoint) they
    would outlive the block, so the values seen before it are put back at its end; a block
    that raises is rolled back, its settings with it. Other databases run the block as is.
    """
    if connection.vendor != "postgresql" or not values:
        yield
        return
    names = list(values)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT " + ", ".join("current_setting(%s)" for _ in names), names)
            before = cursor.fetchone()
            _set(cursor, values.items())
        yield
        with connection.cursor() as cursor:
            _set(cursor, zip(names, before, strict=True))


def _set(cursor: CursorWrapper, pairs: Iterable[tuple[str, str]]) -> None:
    params = [v for pair in pairs for v in pair]
    cursor.execute(
        "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in range(len(params) // 2)),
        params,
    )
