"""`local_settings`: PostgreSQL settings for one block, put back after it."""

from __future__ import annotations

import pytest
from django.db import connection

from engage.db import local_settings

pytestmark = pytest.mark.django_db


def _show(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {name}")
        return str(cursor.fetchone()[0])


def test_settings_hold_for_the_block_and_the_callers_values_return(postgres) -> None:
    with connection.cursor() as cursor:  # the test's transaction: a caller's own value
        cursor.execute("SET LOCAL work_mem = '7MB'")
    with local_settings(work_mem="96MB", enable_hashjoin="off"):
        assert (_show("work_mem"), _show("enable_hashjoin")) == ("96MB", "off")
    assert (_show("work_mem"), _show("enable_hashjoin")) == ("7MB", "on")


def test_a_block_that_raises_takes_its_settings_with_it(postgres) -> None:
    before = _show("jit")
    seen = []

    def fail() -> None:
        with local_settings(jit="off" if before == "on" else "on"):
            seen.append(_show("jit"))
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail()
    assert seen != [before]
    assert _show("jit") == before


def test_a_value_travels_as_a_parameter(postgres) -> None:
    with pytest.raises(Exception, match="work_mem"), local_settings(work_mem="1MB'; DROP TABLE x"):
        pass


def test_other_databases_run_the_block_as_is() -> None:
    if connection.vendor == "postgresql":
        pytest.skip("SQLite's path")
    ran = []
    with local_settings(jit="off"):
        ran.append(True)
    assert ran == [True]
