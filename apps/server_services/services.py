"""Running a server service, and keeping Beat's schedule (django-celery-beat's tables) in step with the registry."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.server_services.leadership import service_lock
from apps.server_services.models import ServiceRun, ServiceSchedule
from apps.server_services.registry import Service, service_default_interval, service_get, services_all

logger = logging.getLogger(__name__)

# The one Celery task every Beat entry sends, with the service's name as its argument (apps/server_services/tasks.py).
TASK_NAME = "orchestrator.services.run"

# A message Beat sent is dropped by the worker once it is this old (or one interval, if longer): after a worker
# outage, a few queued runs are done, not hours of them. Not shorter, so clocks a little apart between the Beat
# host and a worker host never make every message look expired.
MIN_EXPIRE_SECONDS = 60

SECONDS_PER_PERIOD = {
    IntervalSchedule.DAYS: 86400.0,
    IntervalSchedule.HOURS: 3600.0,
    IntervalSchedule.MINUTES: 60.0,
    IntervalSchedule.SECONDS: 1.0,
    IntervalSchedule.MICROSECONDS: 1e-6,
}


def runner_name() -> str:
    """Which process ran a pass: with several servers on one database, the records say which one did the work."""
    return f"{socket.gethostname()[:100]} pid {os.getpid()}"


def periodic_task_name(service_name: str) -> str:
    return f"service: {service_name}"


# Django's TextChoices members are str at runtime; without django-stubs' plugin mypy sees the (value, label) tuple.
def service_run(*, name: str, trigger: str = ServiceRun.Trigger.CELERY) -> ServiceRun:  # type: ignore[assignment]
    """Call the service's function once and record when, how long, and what it returned or raised.

    A singleton service's pass holds the service's database lock (apps/server_services/leadership.py): when
    another process holds it, nothing runs and the record says the pass was skipped.

    A failing service is recorded, not raised: the next run is the retry. The log gets one line per failure (a
    broken service fails every few seconds); the traceback is kept with the record (admin: Service runs).
    """
    service = service_get(name=name)
    result: Any = None
    error: str | None = None
    where: str | None = None
    with service_lock(name=service.name) if service.singleton else nullcontext(True) as held:
        # Timed from the moment the lock is held: the records of one service's passes never overlap.
        started_at = timezone.now()
        started = time.monotonic()
        if held:
            try:
                result = import_string(service.function)()
            except Exception as exc:
                error = f"{exc.__class__.__name__}: {exc}"
                where = traceback.format_exc()
                logger.warning("service %s failed: %s", service.name, error)
        finished_at = timezone.now()
    duration = time.monotonic() - started
    record = ServiceRun.objects.create(
        service=service.name,
        trigger=trigger,
        started_at=started_at,
        finished_at=finished_at,
        duration_seconds=duration,
        result=json.loads(json.dumps(result, default=str)),
        error=error,
        traceback=where,
        # Not held: another process (a second server, a second Beat) is running this service's pass right now.
        skipped=not held,
        runner=runner_name(),
    )
    _history_prune(service=service.name)
    logger.debug("service %s: %s in %.3fs", service.name, error or result, duration)
    return record


def _history_prune(*, service: str) -> None:
    """Keep the newest settings.SERVICE_RUN_HISTORY records of a service."""
    keep = max(1, int(settings.SERVICE_RUN_HISTORY))
    newest = ServiceRun.objects.filter(service=service).order_by("-started_at")
    oldest_kept = list(newest.values_list("started_at", flat=True)[keep - 1 : keep])
    if oldest_kept:
        ServiceRun.objects.filter(service=service, started_at__lt=oldest_kept[0]).delete()


@dataclass(frozen=True)
class ScheduleSync:
    service: str
    action: str  # created, updated (to the registry's interval), kept (changed in the admin), unchanged, removed


def interval_seconds(task: PeriodicTask) -> float | None:
    """A Beat entry's interval in seconds; None when the admin gave it another kind of schedule (crontab...)."""
    if task.interval_id is None:
        return None
    return task.interval.every * SECONDS_PER_PERIOD[task.interval.period]


def _interval_schedule(seconds: int) -> IntervalSchedule:
    existing = IntervalSchedule.objects.filter(every=seconds, period=IntervalSchedule.SECONDS).order_by("id").first()
    return existing or IntervalSchedule.objects.create(every=seconds, period=IntervalSchedule.SECONDS)


def service_schedules_sync() -> list[ScheduleSync]:
    """Give every registered service a Beat entry, and remove the entries of services no longer registered.

    New entries get the default interval. An existing entry gets a new default only if its interval is still
    the one the registry gave it: an interval changed in the admin (or a disabled entry) is never overwritten.
    """
    try:
        return _schedules_sync()
    except IntegrityError:  # another process (a second server, a Beat) created an entry at the same moment
        return _schedules_sync()


@transaction.atomic
def _schedules_sync() -> list[ScheduleSync]:
    outcomes = [_schedule_sync(service) for service in services_all()]
    registered = [service.name for service in services_all()]
    for schedule in ServiceSchedule.objects.exclude(service__in=registered).select_related("periodic_task"):
        schedule.periodic_task.delete()  # cascades to the ServiceSchedule row
        outcomes.append(ScheduleSync(schedule.service, "removed"))
    return outcomes


def _schedule_sync(service: Service) -> ScheduleSync:
    default = service_default_interval(service)
    schedule = ServiceSchedule.objects.select_related("periodic_task__interval").filter(service=service.name).first()
    if schedule is not None:
        task = schedule.periodic_task
    else:
        task = PeriodicTask.objects.select_related("interval").filter(name=periodic_task_name(service.name)).first()
    if task is None:
        task = PeriodicTask.objects.create(
            name=periodic_task_name(service.name),
            task=TASK_NAME,
            args=json.dumps([service.name]),
            interval=_interval_schedule(default),
            expire_seconds=max(default, MIN_EXPIRE_SECONDS),
            description=service.description,
        )
        ServiceSchedule.objects.update_or_create(
            service=service.name, defaults={"periodic_task": task, "interval_seconds": default}
        )
        return ScheduleSync(service.name, "created")

    # What the entry runs is ours, whatever was edited: the task, its argument and the description.
    changed = []
    for field, value in (("task", TASK_NAME), ("args", json.dumps([service.name])), ("kwargs", "{}")):
        if getattr(task, field) != value:
            setattr(task, field, value)
            changed.append(field)
    if task.description != service.description:
        task.description = service.description
        changed.append("description")

    given = schedule.interval_seconds if schedule is not None else default
    current = interval_seconds(task)
    action = "unchanged"
    if current != given:
        action = "kept"  # an admin chose this interval (or another kind of schedule)
    elif current != default:
        task.interval = _interval_schedule(default)
        task.expire_seconds = max(default, MIN_EXPIRE_SECONDS)
        changed += ["interval", "expire_seconds"]
        given = default
        action = "updated"
    if changed:
        task.save()
    if schedule is None:
        ServiceSchedule.objects.create(service=service.name, periodic_task=task, interval_seconds=given)
    elif schedule.interval_seconds != given:
        schedule.interval_seconds = given
        schedule.save(update_fields=["interval_seconds", "updated"])
    return ScheduleSync(service.name, action)
