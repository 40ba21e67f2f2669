"""Indexes for the admin's changelist at scale: its filters in its default newest-first order (docs/ui.md, "Scale")."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0001_initial'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='event',
            index=models.Index(fields=['name', 'id'], name='events_event_name'),
        ),
        migrations.AddIndex(
            model_name='event',
            index=models.Index(fields=['resource_type', 'id'], name='events_event_resource_type'),
        ),
    ]
