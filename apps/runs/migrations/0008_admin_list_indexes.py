"""Indexes for the admin's and the UI's run lists at scale (docs/ui.md, "Scale"): each filter in the default
newest-first order, and on PostgreSQL a `varchar_pattern_ops` index for the search by the start of a run's name
(its ordinary index follows the collation, which LIKE 'prefix%' cannot use; SQLite reads a range of the
ordinary one)."""

from django.db import migrations, models


def create_name_pattern_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            'CREATE INDEX IF NOT EXISTS "flow_run_name_pattern" ON "runs_flowrun" ("name" varchar_pattern_ops)'
        )


def drop_name_pattern_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute('DROP INDEX IF EXISTS "flow_run_name_pattern"')


class Migration(migrations.Migration):
    dependencies = [("runs", "0007_flow_run_dispatched_at")]

    operations = [
        migrations.RemoveIndex(model_name="taskrun", name="task_run_state_name"),
        migrations.AddIndex(
            model_name="flowrun",
            index=models.Index(fields=["work_pool_name", "-created", "-id"], name="flow_run_pool_created"),
        ),
        migrations.AddIndex(
            model_name="taskrun",
            index=models.Index(fields=["state_name", "-created", "-id"], name="task_run_state_name_created"),
        ),
        migrations.RunPython(create_name_pattern_index, drop_name_pattern_index),
    ]
