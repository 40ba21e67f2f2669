"""The outbox moved to apps.events (its 0001 migration copied the rows)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("orchestration", "0001_initial"),
        ("events", "0001_initial"),
    ]

    operations = [
        migrations.DeleteModel(
            name="Event",
        ),
    ]
