from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('engage', '0004_identity_preview_quiet_hours'),
    ]

    operations = [
        migrations.AddField(
            model_name='app',
            name='secret_key_hash_previous',
            field=models.CharField(blank=True, default='', max_length=64),
        ),
        migrations.AddField(
            model_name='app',
            name='secret_key_previous_until',
            field=models.DateTimeField(blank=True, help_text='After a rotation the previous secret key keeps working until then.', null=True),
        ),
    ]
