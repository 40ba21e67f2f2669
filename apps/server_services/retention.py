"""The retention service: finished runs, logs and events older than settings.RETENTION_DAYS are deleted (events
only once every durable consumer has handled them)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.events.consumers import consumers_registered
from apps.events.stream import events_passed
from apps.logs.models import Log
from apps.notifications.models import DeliveryStatus, NotificationDelivery
from apps.runs.models import FlowRun, TaskRun
from apps.server_services.models import ServiceRun
from orchestrator.states import TERMINAL_TYPES

# Rows deleted per transaction: short transactions keep SQLite's write lock free for the API in between.
BATCH_SIZE = 500


def _delete_in_batches(queryset: QuerySet) -> int:
    deleted = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:BATCH_SIZE])
        if not ids:
            return deleted
        with transaction.atomic():
            queryset.model.objects.filter(pk__in=ids).delete()  # with what cascades (states, task runs, logs)
        deleted += len(ids)


def _durable_consumers() -> list[str]:
    return [consumer.name for consumer in consumers_registered() if consumer.durable]


def retention_delete_expired(*, now: datetime | None = None) -> dict[str, int]:
    """Delete what finished before the retention period; return how many of each were deleted.

    A run counts from the moment it entered its final state, so a long run is kept for the whole period after
    it ends. Runs that are not finished are never deleted; their old log lines are.
    """
    days = settings.RETENTION_DAYS
    if not days:
        return {}
    cutoff = (now or timezone.now()) - timedelta(days=days)
    terminal = [state_type.value for state_type in TERMINAL_TYPES]
    return {
        "flow_runs": _delete_in_batches(FlowRun.objects.filter(state_type__in=terminal, state_timestamp__lt=cutoff)),
        "task_runs": _delete_in_batches(
            TaskRun.objects.filter(flow_run__isnull=True, state_type__in=terminal, state_timestamp__lt=cutoff)
        ),
        "logs": _delete_in_batches(Log.objects.filter(timestamp__lt=cutoff)),
        # Never an event a durable consumer has not handled yet (a consumer stuck for longer keeps them all).
        "events": _delete_in_batches(events_passed(consumer_names=_durable_consumers()).filter(occurred__lt=cutoff)),
        "service_runs": _delete_in_batches(ServiceRun.objects.filter(started_at__lt=cutoff)),
        # Sent and failed ones; a pending delivery is still owed.
        "notification_deliveries": _delete_in_batches(
            NotificationDelivery.objects.filter(created__lt=cutoff).exclude(status=DeliveryStatus.PENDING)
        ),
    }
