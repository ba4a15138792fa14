"""Writing a score becomes a HOT update of the answer row on PostgreSQL.

An UPDATE is HOT (the new row version on the same page, no new entry in any index) only when
no indexed column changes, including the columns of a partial index's condition, and the page
has room. Two partial indexes named `sentiment_label`, so every score added an entry to each of
the answer table's indexes:

- `answer_sentiment_pending` (the sweeper's queue) becomes the table `SentimentPending`, filled
  here with the answers waiting now;
- `answer_negative_recent` goes: the newest negative answers are read per survey through
  `answer_survey_created` (`sentiment_negative_recent`).

On PostgreSQL the answer table keeps 20% of each page free (fillfactor 80) for the scored row
versions. Pages written before this migration get the free space when the table is rewritten
(VACUUM FULL, pg_repack) or as VACUUM frees old row versions; elsewhere this part does nothing.
"""

from django.db import migrations, models


def pending_fill(apps, schema_editor) -> None:
    Answer = apps.get_model("surveys", "Answer")
    SentimentPending = apps.get_model("surveys", "SentimentPending")
    waiting = Answer.objects.filter(text__isnull=False, sentiment_label__isnull=True)
    SentimentPending.objects.bulk_create(
        (SentimentPending(answer_id=pk) for pk in waiting.values_list("pk", flat=True)),
        batch_size=5000,
    )


def fillfactor_set(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE surveys_answer SET (fillfactor = 80)")


def fillfactor_reset(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE surveys_answer RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("surveys", "0005_sentiment_write_path")]

    operations = [
        migrations.CreateModel(
            name="SentimentPending",
            fields=[
                ("answer_id", models.BigIntegerField(primary_key=True, serialize=False)),
            ],
            options={"ordering": ["answer_id"]},
        ),
        migrations.RunPython(pending_fill, migrations.RunPython.noop, elidable=False),
        migrations.RemoveIndex(model_name="answer", name="answer_sentiment_pending"),
        migrations.RemoveIndex(model_name="answer", name="answer_negative_recent"),
        migrations.RunPython(fillfactor_set, fillfactor_reset, elidable=False),
    ]
