"""The event stream's tables. On PostgreSQL the events table also gets `transaction_id xid8 DEFAULT
pg_current_xact_id()` and an index on (transaction_id, id): the stream's commit order (docs/events.md). The
outbox rows of apps.orchestration (never read by anything) are copied over in their order, then dropped there."""

import django.utils.timezone
from django.db import migrations, models

BATCH = 2000


def add_transaction_id(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "ALTER TABLE events_event ADD COLUMN transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id()"
    )
    schema_editor.execute("CREATE INDEX events_event_commit_order ON events_event (transaction_id, id)")


def drop_transaction_id(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS events_event_commit_order")
    schema_editor.execute("ALTER TABLE events_event DROP COLUMN IF EXISTS transaction_id")


def copy_outbox_rows(apps, schema_editor):
    """Rows written before the stream existed, oldest first (they describe changes already made)."""
    Old = apps.get_model("orchestration", "Event")
    New = apps.get_model("events", "Event")
    alias = schema_editor.connection.alias
    rows = Old.objects.using(alias).order_by("occurred", "created").values_list(
        "name", "resource_type", "resource_id", "payload", "occurred"
    )
    batch = []
    for name, resource_type, resource_id, payload, occurred in rows.iterator(chunk_size=BATCH):
        batch.append(
            New(name=name, resource_type=resource_type, resource_id=resource_id, payload=payload, occurred=occurred)
        )
        if len(batch) >= BATCH:
            New.objects.using(alias).bulk_create(batch)
            batch = []
    New.objects.using(alias).bulk_create(batch)


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("orchestration", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="ConsumerCursor",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("transaction_id", models.BigIntegerField(default=0)),
                ("event_id", models.BigIntegerField(default=0)),
                ("handled", models.BigIntegerField(default=0)),
                ("updated", models.DateTimeField(auto_now=True)),
                ("last_error", models.TextField(blank=True, default="")),
            ],
        ),
        migrations.CreateModel(
            name="Event",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=100)),
                ("resource_type", models.CharField(max_length=50)),
                ("resource_id", models.UUIDField()),
                ("payload", models.JSONField(default=dict)),
                ("occurred", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "ordering": ["id"],
                "indexes": [
                    models.Index(fields=["resource_id", "occurred"], name="events_event_resource"),
                    models.Index(fields=["occurred"], name="events_event_occurred"),
                ],
            },
        ),
        migrations.RunPython(add_transaction_id, drop_transaction_id),
        migrations.RunPython(copy_outbox_rows, migrations.RunPython.noop),
    ]
