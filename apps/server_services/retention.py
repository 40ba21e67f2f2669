"""The retention service: what grows without bound is deleted once older than settings.RETENTION_DAYS.

RETENTION_ENTRIES is the whole policy: one entry per kind of row, each naming the rows that have expired. A new
table that grows gets one line there. Deletion goes in batches of settings.RETENTION_BATCH_SIZE rows, each in
its own short transaction, and a pass stops after settings.RETENTION_PASS_SECONDS (the next pass goes on).
Design: docs/retention.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.events.consumers import consumers_registered
from apps.events.stream import events_passed
from apps.logs.models import Log
from apps.notifications.models import DeliveryStatus, NotificationDelivery
from apps.orchestration.models import CacheEntry
from apps.runs.models import FlowRun, TaskRun
from apps.server_services.models import ServiceRun
from apps.work_pools.models import Worker
from orchestrator.states import TERMINAL_TYPES

# The key of a pass's result that says it stopped at its time bound with rows still to delete.
UNFINISHED = "unfinished"


@dataclass(frozen=True)
class RetentionEntry:
    """A kind of row and which of them have expired, given the cutoff (now minus the retention period)."""

    name: str
    expired: Callable[[datetime], QuerySet]


def _terminal() -> list[str]:
    return [state_type.value for state_type in TERMINAL_TYPES]


def _flow_runs_expired(cutoff: datetime) -> QuerySet:
    # A run counts from the moment it entered its final state: a long run is kept the whole period after it ends.
    return FlowRun.objects.filter(state_type__in=_terminal(), state_timestamp__lt=cutoff)


def _task_runs_expired(cutoff: datetime) -> QuerySet:
    # The task runs of expired flow runs go first, in their own batches: deleting a flow run then cascades to
    # its states only, and no transaction carries a whole flow run's tree.
    lone = Q(flow_run__isnull=True, state_type__in=_terminal(), state_timestamp__lt=cutoff)
    of_expired_flow_run = Q(flow_run__state_type__in=_terminal(), flow_run__state_timestamp__lt=cutoff)
    return TaskRun.objects.filter(lone | of_expired_flow_run)


def _events_expired(cutoff: datetime) -> QuerySet:
    # Never an event a durable consumer has not handled yet (a consumer stuck for longer keeps them all).
    durable = [consumer.name for consumer in consumers_registered() if consumer.durable]
    return events_passed(consumer_names=durable).filter(occurred__lt=cutoff)


# In this order: leaves first (log lines), then task runs, then flow runs, so each batch stays small.
# States are not an entry: a run's states are its history, kept as long as the run and deleted with it.
RETENTION_ENTRIES: tuple[RetentionEntry, ...] = (
    RetentionEntry("logs", lambda cutoff: Log.objects.filter(timestamp__lt=cutoff)),
    RetentionEntry("events", _events_expired),
    RetentionEntry("task_runs", _task_runs_expired),
    RetentionEntry("flow_runs", _flow_runs_expired),
    RetentionEntry("service_runs", lambda cutoff: ServiceRun.objects.filter(started_at__lt=cutoff)),
    # Workers not heard from during the whole period (a worker per container restart leaves one row each).
    RetentionEntry("workers", lambda cutoff: Worker.objects.filter(last_heartbeat_at__lt=cutoff)),
    RetentionEntry("cache_entries", lambda cutoff: CacheEntry.objects.filter(expiration__lt=cutoff)),
    # Sent and failed ones; a pending delivery is still owed.
    RetentionEntry(
        "notification_deliveries",
        lambda cutoff: NotificationDelivery.objects.filter(created__lt=cutoff).exclude(status=DeliveryStatus.PENDING),
    ),
)


def _delete_in_batches(queryset: QuerySet, *, deadline: float) -> tuple[int, bool]:
    """Delete the rows in batches until none is left or the deadline passes; return (deleted, all done)."""
    deleted = 0
    batch_size = settings.RETENTION_BATCH_SIZE
    while True:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted, True
        with transaction.atomic():
            queryset.model.objects.filter(pk__in=ids).delete()  # with what cascades (states, cache entries)
        deleted += len(ids)
        if time.monotonic() >= deadline:
            return deleted, False


def retention_delete_expired(*, now: datetime | None = None) -> dict[str, int]:
    """Delete what expired before the retention period, entry by entry; return how many of each were deleted.

    Runs that are not finished are never deleted; their old log lines are. When the pass reaches its time bound,
    the result has UNFINISHED: 1 and the next pass continues where this one stopped.
    """
    days = settings.RETENTION_DAYS
    if not days:
        return {}
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deadline = time.monotonic() + settings.RETENTION_PASS_SECONDS
    deleted: dict[str, int] = {}
    for entry in RETENTION_ENTRIES:
        deleted[entry.name], done = _delete_in_batches(entry.expired(cutoff), deadline=deadline)
        if not done:
            deleted[UNFINISHED] = 1
            break
    return deleted
