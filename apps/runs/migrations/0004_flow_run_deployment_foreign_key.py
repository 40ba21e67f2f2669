"""FlowRun.deployment_id (a plain UUID until deployments existed) becomes a foreign key on the same column.

No deployment rows exist before this migration, so any value in the column points nowhere: it is cleared
before the constraint is added. The field is renamed in the migration state only; the column keeps its name.
"""

import django.db.models.deletion
from django.db import migrations, models


def clear_dangling_deployment_ids(apps, schema_editor):
    apps.get_model("runs", "FlowRun").objects.exclude(deployment_id=None).update(deployment_id=None)


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0001_initial"),
        ("flows", "0001_initial"),
        ("runs", "0003_list_order_indexes"),
    ]

    operations = [
        migrations.RunPython(clear_dangling_deployment_ids, migrations.RunPython.noop, elidable=True),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RenameField(model_name="flowrun", old_name="deployment_id", new_name="deployment"),
                migrations.AlterField(
                    model_name="flowrun",
                    name="deployment",
                    field=models.UUIDField(blank=True, null=True, db_column="deployment_id"),
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterField(
            model_name="flowrun",
            name="deployment",
            field=models.ForeignKey(
                blank=True,
                db_column="deployment_id",
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="flow_runs",
                to="deployments.deployment",
            ),
        ),
        migrations.AddField(
            model_name="flowrun",
            name="auto_scheduled",
            field=models.BooleanField(default=False),
        ),
        migrations.AddIndex(
            model_name="flowrun",
            index=models.Index(
                fields=["state_name", "next_scheduled_start_time"], name="flow_run_state_name_next_start"
            ),
        ),
    ]
