"""Work pools, their queues and the workers polling them (docs/workers.md).

A deployment names its pool by name (`work_pool_name`) and its runs copy it, so runs and pools are joined by
name, not by a foreign key: a run keeps its pool's name after the pool is deleted, and a deployment may name a
pool before it exists (deploying creates it).
"""

from __future__ import annotations

import shlex
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.core.models import BaseModel

DEFAULT_QUEUE_NAME = "default"


class WorkPoolType(models.TextChoices):
    PROCESS = "process", "Process (a worker polls and runs each flow run in a subprocess)"
    CELERY = "celery", "Celery (flow runs are sent to Celery workers)"


class WorkPool(BaseModel):
    name = models.CharField(max_length=200, unique=True)
    type = models.CharField(max_length=16, choices=WorkPoolType.choices, default=WorkPoolType.PROCESS)
    description = models.TextField(null=True, blank=True)
    concurrency_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="most flow runs of the pool active at once (Pending, Running, Cancelling)"
    )
    paused = models.BooleanField(default=False, help_text="a paused pool gives its workers no runs")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def worker_command(self) -> str:
        return f"orchestrator worker start --pool {shlex.quote(self.name)}"


class WorkQueue(BaseModel):
    pool = models.ForeignKey(WorkPool, on_delete=models.CASCADE, related_name="queues")
    name = models.CharField(max_length=200)
    description = models.TextField(null=True, blank=True)
    priority = models.PositiveIntegerField(default=1, help_text="1 is the highest; lower priorities wait for it")
    concurrency_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="most flow runs of the queue active at once"
    )
    paused = models.BooleanField(default=False, help_text="a paused queue gives workers none of its runs")

    class Meta:
        ordering = ["pool__name", "priority", "name"]
        constraints = [
            models.UniqueConstraint(fields=["pool", "name"], name="work_queue_unique_pool_name"),
            models.CheckConstraint(condition=models.Q(priority__gte=1), name="work_queue_priority_positive"),
        ]
        indexes = [models.Index(fields=["pool", "priority", "name"], name="work_queue_pool_priority")]

    def __str__(self) -> str:
        return f"{self.pool.name}/{self.name}" if self.pool_id else self.name

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_QUEUE_NAME


def heartbeat_cutoff(now: datetime | None = None) -> datetime:
    """Workers whose last heartbeat is older than this are offline."""
    return (now or timezone.now()) - timedelta(seconds=settings.ORCHESTRATOR_WORKER_HEARTBEAT_TIMEOUT_SECONDS)


class Worker(BaseModel):
    """A worker process as the server knows it: its name in a pool and when it was last heard from."""

    ONLINE = "online"
    OFFLINE = "offline"

    pool = models.ForeignKey(WorkPool, on_delete=models.CASCADE, related_name="workers")
    name = models.CharField(max_length=200)
    last_heartbeat_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pool__name", "name"]
        constraints = [models.UniqueConstraint(fields=["pool", "name"], name="worker_unique_pool_name")]
        indexes = [models.Index(fields=["pool", "last_heartbeat_at"], name="worker_pool_heartbeat")]

    def __str__(self) -> str:
        return self.name

    def status_at(self, now: datetime | None = None) -> str:
        return self.ONLINE if self.last_heartbeat_at >= heartbeat_cutoff(now) else self.OFFLINE

    @property
    def status(self) -> str:
        return self.status_at()
