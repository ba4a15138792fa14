"""Planner statistics for the summaries read from the rows (segment filter, cut days).

Those queries group responses and answer rows by UTC day. PostgreSQL knows nothing of the
number of distinct days and takes it to be the number of distinct instants, so it expects
hundreds of thousands of groups where there are a few thousand: it then sorts instead of
hashing, gives up the parallel partial aggregation and compiles the query with JIT. Extended
statistics on the grouping keys, the day expression among them, give it the true number.
They need PostgreSQL 14 (statistics on expressions); elsewhere this migration does nothing.
The expression must stay the one `surveys.selectors` groups by (Django's `TruncDate` in UTC).
"""

from django.db import migrations

STATISTICS = {
    "response_summary_groups": (
        "surveys_response",
        "completed, last_question, ((created_at AT TIME ZONE 'UTC')::date)",
    ),
    "answer_summary_groups": (
        "surveys_answer",
        "question_id, number, choice, ((created_at AT TIME ZONE 'UTC')::date)",
    ),
}


def _supported(schema_editor) -> bool:
    connection = schema_editor.connection
    return connection.vendor == "postgresql" and connection.pg_version >= 140000


def statistics_create(apps, schema_editor) -> None:
    if not _supported(schema_editor):
        return
    for name, (table, keys) in STATISTICS.items():
        schema_editor.execute(
            f"CREATE STATISTICS IF NOT EXISTS {name} (ndistinct) ON {keys} FROM {table}"
        )
    # Statistics objects are filled by ANALYZE (autovacuum would do it later).
    schema_editor.execute("ANALYZE surveys_response, surveys_answer")


def statistics_drop(apps, schema_editor) -> None:
    if not _supported(schema_editor):
        return
    for name in STATISTICS:
        schema_editor.execute(f"DROP STATISTICS IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("surveys", "0003_experiment_setup")]

    operations = [migrations.RunPython(statistics_create, statistics_drop, elidable=False)]
