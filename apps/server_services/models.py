"""What the server services leave behind: a record of each run, and the interval each schedule was given."""

from __future__ import annotations

from django.db import models
from django_celery_beat.models import PeriodicTask

from apps.core.models import BaseModel


class ServiceRun(BaseModel):
    """One run of a service: when, how long, what its function returned or the error it raised."""

    class Trigger(models.TextChoices):
        CELERY = "celery", "Celery"
        CLI = "cli", "command line"

    service = models.CharField(max_length=100)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.CELERY)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    duration_seconds = models.FloatField()
    result = models.JSONField(null=True, blank=True, help_text="what the service function returned")
    error = models.TextField(null=True, blank=True, help_text="the exception it raised, if any")
    traceback = models.TextField(null=True, blank=True, help_text="where it was raised")
    runner = models.CharField(max_length=200, blank=True, help_text="the host and process that ran it")
    skipped = models.BooleanField(
        default=False, help_text="another process was running this service: this pass did nothing"
    )

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["service", "-started_at"], name="service_run_service_started"),
            models.Index(fields=["started_at"], name="service_run_started"),
        ]

    @property
    def succeeded(self) -> bool:
        return self.error is None

    def __str__(self) -> str:
        return f"{self.service} at {self.started_at:%Y-%m-%d %H:%M:%S}"


class ServiceSchedule(BaseModel):
    """The Beat entry made for a service and the interval the registry last gave it.

    An entry whose interval differs from `interval_seconds` was changed in the admin, and is left as it is.
    """

    service = models.CharField(max_length=100, unique=True)
    periodic_task = models.OneToOneField(PeriodicTask, on_delete=models.CASCADE, related_name="service_schedule")
    interval_seconds = models.PositiveIntegerField()

    def __str__(self) -> str:
        return self.service


class ServiceLease(BaseModel):
    """Who runs a singleton service's pass right now, on SQLite (PostgreSQL uses an advisory lock instead).

    A pass takes the row when its lease has expired and renews it while it runs; a process that dies stops
    renewing, so another takes over once `expires_at` passes (docs/services.md, "Leadership").
    """

    service = models.CharField(max_length=100, unique=True)
    holder = models.CharField(max_length=200, help_text="the pass holding it: host, process, and a random token")
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.service} held by {self.holder} until {self.expires_at:%H:%M:%S}"
