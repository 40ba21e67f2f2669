"""Tables the engine owns: the event outbox and the task result cache."""

from django.db import models
from django.utils import timezone

from apps.core.models import BaseModel


class Event(BaseModel):
    """An outbox row, written in the same transaction as the change it describes.

    Publishers (websockets, notifications) read unpublished rows after commit, so an event is never
    sent for a change that rolled back and never lost for one that committed.
    """

    name = models.CharField(max_length=100)  # e.g. "flow_run.state_changed"
    resource_type = models.CharField(max_length=50)
    resource_id = models.UUIDField()
    payload = models.JSONField(default=dict)
    occurred = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["occurred", "created"]
        indexes = [
            models.Index(fields=["published_at", "occurred"], name="event_unpublished"),
            models.Index(fields=["resource_id", "occurred"], name="event_resource"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.resource_id}"


class CacheEntry(BaseModel):
    """The Completed state a cache key answers with, until it expires."""

    cache_key = models.CharField(max_length=500, unique=True)
    task_run_state = models.ForeignKey("runs.TaskRunState", on_delete=models.CASCADE, related_name="+")
    expiration = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "cache entries"

    def __str__(self) -> str:
        return str(self.cache_key)
