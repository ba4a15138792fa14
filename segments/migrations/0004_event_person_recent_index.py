"""A person's events newest first, with the App and the name: funnels read them by index alone.

Replaces `event_person_ts` (person, timestamp), which served a person's newest events (the
people API); the new index serves the same reads. A funnel over many events now runs as
several statements over ranges of people at once (segments/insights/funnels.py): each reads
its people's events from this index alone, in the order its window passes need, instead of
scanning and sorting all the App's events. On PostgreSQL the index is built on every monthly
partition (`include` is ignored on other databases); building it locks writes to the events
table for its duration (about 2 s for 1,000,000 events here). It is built before the old one
is dropped.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("engage", "0008_insights_kpis_dashboards"),
        ("segments", "0003_event_partitions"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="event",
            index=models.Index(
                fields=["person", "-timestamp", "-id"],
                include=("app", "name"),
                name="event_person_recent",
            ),
        ),
        migrations.RemoveIndex(model_name="event", name="event_person_ts"),
    ]
