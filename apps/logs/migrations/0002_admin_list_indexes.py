"""Indexes for the admin's changelist at scale: its filters in its default newest-first order (docs/ui.md, "Scale")."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('logs', '0001_initial'),
        ('runs', '0007_flow_run_dispatched_at'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='log',
            name='log_time',
        ),
        migrations.AddIndex(
            model_name='log',
            index=models.Index(fields=['timestamp', 'id'], name='log_time_id'),
        ),
        migrations.AddIndex(
            model_name='log',
            index=models.Index(fields=['level', 'timestamp', 'id'], name='log_level_time'),
        ),
    ]
