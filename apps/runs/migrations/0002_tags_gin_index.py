"""GIN indexes on run tags for PostgreSQL (SQLite filters tags with json_each and needs none)."""

from django.db import migrations

TABLES = ("runs_flowrun", "runs_taskrun")


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{table}_tags_gin" ON "{table}" USING gin ("tags" jsonb_path_ops)')


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{table}_tags_gin"')


class Migration(migrations.Migration):
    dependencies = [("runs", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
