"""The answer table keeps 20% of each page free again (fillfactor 80), for HOT score updates.

Migration 0007 filled the pages (fillfactor 100) because a summary filtered by a segment read
every answer row of the survey, and free space made that scan slower. Since 0008 that summary
reads each member's rows from the `answer_person_survey` index alone, so the table's size no
longer costs it; and that index is wide, so a score written on a full page (not a HOT update)
now adds a wide entry to it. With room on the page, writing a score changes no indexed column
and is a HOT update: no index entry at all. Measured on the sentiment benchmark with the index
(fresh loads, two runs each): 13,732 and 13,822 answers/s with the free space, 13,370 and
12,283 without (`docs/benchmarks.md`). The table grows by up to 25%. Pages written before this
migration get the free space when the table is rewritten (VACUUM FULL, pg_repack) or as VACUUM
frees old row versions; elsewhere this does nothing.
"""

from django.db import migrations


def fillfactor_set(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE surveys_answer SET (fillfactor = 80)")


def fillfactor_reset(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE surveys_answer RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("surveys", "0008_person_covering_indexes")]

    operations = [migrations.RunPython(fillfactor_set, fillfactor_reset, elidable=False)]
