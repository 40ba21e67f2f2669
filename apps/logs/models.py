"""Log lines shipped by runs."""

from django.db import models
from django.utils import timezone

from apps.core.models import BaseModel


class Log(BaseModel):
    flow_run = models.ForeignKey("runs.FlowRun", null=True, blank=True, on_delete=models.CASCADE, related_name="logs")
    task_run = models.ForeignKey("runs.TaskRun", null=True, blank=True, on_delete=models.CASCADE, related_name="logs")
    name = models.CharField(max_length=200, default="orchestrator")
    level = models.PositiveSmallIntegerField(default=20)
    message = models.TextField()
    timestamp = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["timestamp"]
        indexes = [
            models.Index(fields=["flow_run", "timestamp"], name="log_flow_run_time"),
            models.Index(fields=["task_run", "timestamp"], name="log_task_run_time"),
            # The admin's newest-first list (its order ends with the id), whole and by level.
            models.Index(fields=["timestamp", "id"], name="log_time_id"),
            models.Index(fields=["level", "timestamp", "id"], name="log_level_time"),
        ]

    def __str__(self) -> str:
        return self.message[:80]
