"""Tables the engine owns: the task result cache (the event outbox is apps/events)."""

from django.db import models

from apps.core.models import BaseModel


class CacheEntry(BaseModel):
    """The Completed state a cache key answers with, until it expires."""

    cache_key = models.CharField(max_length=500, unique=True)
    task_run_state = models.ForeignKey("runs.TaskRunState", on_delete=models.CASCADE, related_name="+")
    expiration = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "cache entries"

    def __str__(self) -> str:
        return str(self.cache_key)
