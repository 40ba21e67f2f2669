"""The event stream: the outbox the engine writes in the same transaction as every state change, and the
durable cursors of the consumers that read it (docs/events.md)."""

from django.db import models
from django.utils import timezone


class Event(models.Model):
    """One row of the stream, written in the same transaction as the change it describes.

    Consumers read rows in commit order after their cursor (apps/events/stream.py), so an event is never handled
    for a change that rolled back and never lost for one that committed. The id is a sequence: on SQLite (one
    writer at a time) it is the commit order; on PostgreSQL the table also has a `transaction_id` column (xid8,
    added by the migration, not a model field) that orders commits safely.
    """

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=100)  # e.g. "flow_run.state_changed"
    resource_type = models.CharField(max_length=50)
    resource_id = models.UUIDField()
    payload = models.JSONField(default=dict)
    occurred = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["resource_id", "occurred"], name="events_event_resource"),
            models.Index(fields=["occurred"], name="events_event_occurred"),
            # The admin's filters, newest first.
            models.Index(fields=["name", "id"], name="events_event_name"),
            models.Index(fields=["resource_type", "id"], name="events_event_resource_type"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.resource_id}"


class ConsumerCursor(models.Model):
    """Where a durable consumer is in the stream: the last event it handled (its transaction id on PostgreSQL,
    0 on SQLite, and its id). One row per consumer name; the row is locked while a batch is handled, so one
    process at a time handles a consumer's events."""

    name = models.CharField(max_length=100, unique=True)
    transaction_id = models.BigIntegerField(default=0)
    event_id = models.BigIntegerField(default=0)
    handled = models.BigIntegerField(default=0)  # events handled so far, for the admin and the benchmark
    updated = models.DateTimeField(auto_now=True)
    last_error = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"{self.name} at {self.transaction_id}:{self.event_id}"

    @property
    def position(self) -> tuple[int, int]:
        return (self.transaction_id, self.event_id)
