import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("engage", "0005_secret_key_previous"),
    ]

    operations = [
        migrations.AddField(
            model_name="app",
            name="event_retention_days",
            field=models.PositiveIntegerField(
                default=395,
                help_text="Events that happened longer ago than this are deleted (docs/ingestion.md, Retention).",
                validators=[django.core.validators.MinValueValidator(1)],
            ),
        ),
    ]
