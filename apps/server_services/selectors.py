"""Reads about the server services: their effective schedule and their last run."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q
from django_celery_beat.models import PeriodicTask

from apps.server_services.models import ServiceRun
from apps.server_services.registry import Service, service_default_interval, services_all
from apps.server_services.services import interval_seconds, periodic_task_name


@dataclass(frozen=True)
class ServiceStatus:
    service: Service
    # Seconds between runs as Beat has them (the default until Beat's entry exists); None: not an interval.
    interval_seconds: float | None
    schedule: str  # how Beat's entry is described when it is not an interval (a crontab, ...)
    enabled: bool
    last_run: ServiceRun | None


def service_last_run(*, name: str) -> ServiceRun | None:
    return ServiceRun.objects.filter(service=name).order_by("-started_at").first()


def service_status(*, service: Service) -> ServiceStatus:
    # The entry the sync made for this service (an admin may have renamed it), else one by the expected name.
    task = (
        PeriodicTask.objects.select_related("interval", "crontab", "solar", "clocked")
        .filter(Q(service_schedule__service=service.name) | Q(name=periodic_task_name(service.name)))
        .first()
    )
    if task is None:
        seconds: float | None = service_default_interval(service)
        schedule, enabled = "", True
    else:
        seconds, enabled = interval_seconds(task), task.enabled
        other = task.crontab or task.solar or task.clocked
        schedule = str(other) if seconds is None and other is not None else ""
    return ServiceStatus(service, seconds, schedule, enabled, service_last_run(name=service.name))


def services_status() -> list[ServiceStatus]:
    return [service_status(service=service) for service in services_all()]
