"""The answer table fills its pages again (PostgreSQL's default fillfactor, 100).

Migration 0006 kept 20% of each page free so that writing a sentiment score would be a HOT
update. That space is paid by every read that scans a survey's answer rows: a summary with a
segment filter reads all of them, and on 1,000,000 responses (6.6M answer rows) the table grew
from 767 MB to 962 MB and the summary from 926 to 1,124 ms (`docs/benchmarks.md`), over its 1 s
target, for a gain of about a tenth on background scoring. Scores are still HOT updates wherever
a page has room (no index names a sentiment column). Pages written before this migration keep
their free space until the table is rewritten (VACUUM FULL, pg_repack); elsewhere this does
nothing.
"""

from django.db import migrations


def fillfactor_reset(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE surveys_answer RESET (fillfactor)")


def fillfactor_set(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE surveys_answer SET (fillfactor = 80)")


class Migration(migrations.Migration):
    dependencies = [("surveys", "0006_sentiment_hot_updates")]

    operations = [migrations.RunPython(fillfactor_reset, fillfactor_set, elidable=False)]
