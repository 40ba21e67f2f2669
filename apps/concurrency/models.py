"""Tag concurrency limits: at most `limit` task runs carrying `tag` may be RUNNING at once."""

from django.db import models

from apps.core.models import BaseModel


class ConcurrencyLimit(BaseModel):
    tag = models.CharField(max_length=200, unique=True)
    limit = models.PositiveIntegerField()
    # Ids (as strings) of the task runs holding a slot; the engine adds and removes them under the row lock.
    active_slots = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["tag"]

    def __str__(self) -> str:
        return f"{self.tag} ({len(self.active_slots)}/{self.limit})"
