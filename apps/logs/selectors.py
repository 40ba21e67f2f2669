"""Reads for logs."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime

from apps.logs.models import Log

MAX_LINES = 1000
# What a log line is shown with: its own fields and the name of the task run that wrote it (not the whole run).
LOG_FIELDS = ("id", "flow_run_id", "task_run_id", "task_run__name", "name", "level", "message", "timestamp", "created")


def logs_for_flow_run(*, flow_run_id: uuid.UUID, since: str | None = None, limit: int = MAX_LINES) -> QuerySet[Log]:
    """A flow run's log lines (its task runs' included), oldest first, from `since` (an ISO time) on."""
    lines = (
        Log.objects.filter(flow_run_id=flow_run_id)
        .select_related("task_run")
        .only(*LOG_FIELDS)
        .order_by("timestamp", "created")
    )
    if since:
        moment = parse_datetime(since)
        if moment is not None:
            lines = lines.filter(timestamp__gte=moment)
    return lines[:limit]
