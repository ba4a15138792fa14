"""Each person's responses and answer rows, by survey, in indexes that hold what summaries count.

A summary filtered by a segment used to scan every response and answer row of the survey and
keep the segment's (6.6M answer rows for 1,000,000 responses: about 1.1 s, over the 1 s
target). It now looks up each member's rows in these indexes and reads them from the index
alone (PostgreSQL index-only scans; `include` is ignored on other databases): 0.4-0.6 s on the
same data (`docs/benchmarks.md`). Each index leads with the person, so it also serves the
person foreign key, whose own index it replaces; it is built before that one is dropped.
Building it locks writes to the table for its duration (about 6 s for 6.6M answer rows here).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("engage", "0008_insights_kpis_dashboards"),
        ("segments", "0003_event_partitions"),
        ("surveys", "0007_answer_fillfactor_default"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="answer",
            index=models.Index(
                fields=["person", "survey"],
                include=(
                    "created_at",
                    "question_id",
                    "number",
                    "choice",
                    "first",
                    "locale",
                    "variant",
                ),
                name="answer_person_survey",
            ),
        ),
        migrations.AddIndex(
            model_name="response",
            index=models.Index(
                fields=["person", "survey"],
                include=("created_at", "completed", "last_question", "locale", "variant"),
                name="response_person_survey",
            ),
        ),
        migrations.AlterField(
            model_name="answer",
            name="person",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="survey_answers",
                to="segments.person",
            ),
        ),
        migrations.AlterField(
            model_name="response",
            name="person",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="survey_responses",
                to="segments.person",
            ),
        ),
    ]
