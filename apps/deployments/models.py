"""Deployments (a flow packaged to run on a server: entrypoint, defaults, pool) and their schedules."""

from __future__ import annotations

from django.db import models

from apps.core.models import BaseModel


class CollisionStrategy(models.TextChoices):
    """What a run of a deployment at its concurrency limit does: wait for a slot, or end Cancelled."""

    ENQUEUE = "ENQUEUE", "Enqueue"
    CANCEL_NEW = "CANCEL_NEW", "Cancel new"


class Deployment(BaseModel):
    flow = models.ForeignKey("flows.Flow", on_delete=models.CASCADE, related_name="deployments")
    name = models.CharField(max_length=200)
    description = models.TextField(null=True, blank=True)
    version = models.CharField(max_length=200, null=True, blank=True)
    entrypoint = models.CharField(max_length=1000, null=True, blank=True, help_text="path/to/file.py:function")
    path = models.CharField(max_length=1000, null=True, blank=True, help_text="directory the entrypoint is under")
    storage_block = models.CharField(max_length=200, null=True, blank=True)
    # Where the code is in the storage block: the content-hash prefix `deploy --storage` uploaded it under.
    storage_path = models.CharField(
        max_length=64, null=True, blank=True, help_text="content-hash prefix of the code in the storage block"
    )
    parameters = models.JSONField(default=dict, blank=True, help_text="default parameters of every run")
    parameter_openapi_schema = models.JSONField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    work_pool_name = models.CharField(max_length=200, null=True, blank=True)
    work_queue_name = models.CharField(max_length=200, null=True, blank=True)
    paused = models.BooleanField(default=False)
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    collision_strategy = models.CharField(
        max_length=16, choices=CollisionStrategy.choices, default=CollisionStrategy.ENQUEUE
    )
    # The flow's retry settings, copied onto each run (the engine's retry rules read them from the run).
    empirical_policy = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["flow__name", "name"]
        constraints = [models.UniqueConstraint(fields=["flow", "name"], name="deployment_unique_flow_name")]
        indexes = [
            models.Index(fields=["name"], name="deployment_name"),
            models.Index(fields=["work_pool_name"], name="deployment_work_pool"),
            models.Index(fields=["paused"], name="deployment_paused"),
        ]

    def __str__(self) -> str:
        return f"{self.flow.name}/{self.name}" if self.flow_id else self.name


class DeploymentSchedule(BaseModel):
    """One schedule of a deployment; `schedule` is the normalised JSON of apps/deployments/schedules.py."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="schedules")
    schedule = models.JSONField()
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["created", "id"]
        indexes = [models.Index(fields=["deployment", "active"], name="deployment_schedule_active")]

    def __str__(self) -> str:
        from apps.deployments.schedules import describe

        return describe(self.schedule)
