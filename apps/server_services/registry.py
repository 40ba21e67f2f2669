"""The server services: reading this list tells you everything the server does on its own, and how often.

Each service is a plain function (no arguments, returns what it changed) named by its dotted path, imported
only when it runs. Celery Beat schedules each one (`service_schedules_sync` in apps/server_services/services.py copies
this list into django-celery-beat's tables); `orchestrator server services run NAME` runs one in the foreground.
A service is added here only when its function exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from apps.core.errors import NotFound


@dataclass(frozen=True)
class Service:
    name: str
    function: str
    interval_seconds: int
    description: str
    # One pass at a time across every process and host sharing the database (apps/server_services/leadership.py).
    singleton: bool = True


SERVICES: tuple[Service, ...] = (
    Service(
        "scheduler",
        "apps.deployments.services.schedule_upcoming_runs",
        10,
        "creates the upcoming Scheduled runs of active deployment schedules (idempotent)",
    ),
    Service(
        "late_runs",
        "apps.deployments.services.mark_late_runs",
        5,
        "marks Scheduled runs past their start time and grace period as Late",
    ),
    Service(
        "zombies",
        "apps.work_pools.services.flow_runs_crash_zombies",
        10,
        "crashes Pending and Running runs of a work pool whose worker stopped heartbeating",
    ),
    Service(
        "cancellation_cleanup",
        "apps.work_pools.services.flow_runs_finish_cancellations",
        10,
        "cancels Cancelling runs no worker will stop, and the unfinished task and subflow runs of cancelled runs",
    ),
    Service(
        "celery_dispatch",
        "apps.work_pools.dispatch.flow_runs_dispatch_due",
        10,
        "sends due runs of celery pools to their Celery queue that were not sent, or whose message may be lost",
    ),
    Service(
        "pause_timeouts",
        "apps.server_services.pauses.paused_flow_runs_fail_expired",
        10,
        "fails paused flow runs whose pause timeout has passed",
    ),
    Service(
        "notifications",
        "apps.notifications.sender.deliveries_send_due",
        10,
        "sends the notifications due from the durable outbox (retries too) that no server process sent yet",
    ),
    Service(
        "concurrency_leases",
        "apps.concurrency.services.concurrency_leases_reap",
        10,
        "deletes expired concurrency leases and those of runs already final or gone",
    ),
    Service(
        "retention",
        "apps.server_services.retention.retention_delete_expired",
        3600,
        "deletes finished runs, task runs, logs, events and other records older than ORCHESTRATOR_RETENTION_DAYS",
    ),
)


def services_all() -> tuple[Service, ...]:
    return SERVICES


def service_get(*, name: str) -> Service:
    for service in SERVICES:
        if service.name == name:
            return service
    raise NotFound(f"unknown service {name!r}; services: {', '.join(s.name for s in SERVICES)}", field="name")


def service_default_interval(service: Service) -> int:
    """The interval Beat starts with: the registry's, unless settings.SERVICE_INTERVALS names another."""
    return int(settings.SERVICE_INTERVALS.get(service.name, service.interval_seconds))
