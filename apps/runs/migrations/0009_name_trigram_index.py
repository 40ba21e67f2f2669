"""PostgreSQL: a trigram index for "name contains" (the runs list's `name` filter, Django's `icontains`, which
compares UPPER(name) with LIKE '%...%'): without it a rare name reads every run. Needs the pg_trgm extension
(trusted since PostgreSQL 13: a database owner may create it); where it cannot be created the index is skipped
and the filter still works, reading the table. SQLite has no such index (docs/ui.md, "Scale")."""

from django.db import migrations, transaction
from django.db.utils import DatabaseError


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError:
        return
    schema_editor.execute(
        'CREATE INDEX IF NOT EXISTS "flow_run_name_trigram" ON "runs_flowrun" USING gin (UPPER("name"::text) gin_trgm_ops)'
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute('DROP INDEX IF EXISTS "flow_run_name_trigram"')


class Migration(migrations.Migration):
    dependencies = [("runs", "0008_admin_list_indexes")]
    operations = [migrations.RunPython(create, drop)]
