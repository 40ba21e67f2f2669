"""The celery pool type, server side: a flow run of a `celery` pool is sent to its pool's Celery queue when it
becomes Scheduled, instead of waiting for a worker's poll (docs/workers.md, "Celery pools").

The `celery_dispatch` event consumer (`flow_runs_dispatch_scheduled`, registered in apps.py; docs/events.md) reads
the stream's SCHEDULED state changes after they commit: for a run of an unpaused celery pool (and queue) that is
still Scheduled, not sent, and due within ORCHESTRATOR_CELERY_DISPATCH_HORIZON_SECONDS, it sets `dispatched_at`
with a conditional UPDATE and sends the Celery task `orchestrator.work_pools.execute_flow_run` to `pool-<name>`
with `eta` = the run's start time. The `celery_dispatch` service (`flow_runs_dispatch_due`) sends what the
consumer did not: runs that came within the horizon, runs a paused pool or queue left, runs whose sending failed,
and runs still Scheduled well after their time (a lost message). Sending twice is harmless: the task claims the
run through the engine, and only one claim succeeds.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from apps.events.stream import StreamEvent
from apps.runs.models import FlowRun
from apps.work_pools.models import WorkPool, WorkPoolType, WorkQueue
from apps.work_pools.selectors import in_queue, queue_of_run
from orchestrator.states import StateType

logger = logging.getLogger("apps.work_pools.dispatch")

EXECUTE_TASK_NAME = "orchestrator.work_pools.execute_flow_run"
QUEUE_PREFIX = "pool-"
# Runs the service sends per pass and pool (the rest on its next pass).
DISPATCH_BATCH = 1000
# A send that cannot reach the broker gives up quickly: the service sends the run again.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def celery_queue_name(pool_name: str) -> str:
    """The Celery queue of a celery pool: its Celery workers consume it (`orchestrator worker start --pool P`)."""
    return f"{QUEUE_PREFIX}{pool_name}"


def _send(run_id: uuid.UUID, pool_name: str, eta: datetime | None, dispatched_at: datetime) -> bool:
    """Publish the task for one run; on failure forget the dispatch so the service sends it again. Never raises
    (it runs after a commit, inside the request or service that made the change)."""
    from orchestrator.celery import app

    now = timezone.now()
    try:
        app.send_task(
            EXECUTE_TASK_NAME,
            args=[str(run_id)],
            queue=celery_queue_name(pool_name),
            eta=eta if eta is not None and eta > now else None,
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
        )
        return True
    except Exception as exc:  # the broker is down or misconfigured: the run stays Scheduled, the service retries
        logger.warning(
            "could not send flow run %s to Celery queue %r (%s: %s); the celery_dispatch service will send it again",
            run_id,
            celery_queue_name(pool_name),
            type(exc).__name__,
            exc,
        )
        FlowRun.objects.filter(pk=run_id, dispatched_at=dispatched_at).update(dispatched_at=None)
        return False


def flow_run_dispatch_forget(*, run_id: uuid.UUID | str) -> None:
    """A task found the run's pool or queue paused and left it: the service sends it again once it is resumed."""
    FlowRun.objects.filter(pk=run_id, state_type=StateType.SCHEDULED).update(dispatched_at=None)


def flow_run_dispatch_touch(*, run_id: uuid.UUID | str) -> None:
    """A task is still trying to claim the run (a concurrency limit made it wait): its message is not lost."""
    FlowRun.objects.filter(pk=run_id, state_type=StateType.SCHEDULED).update(dispatched_at=timezone.now())


def _sent_long_enough_ago(scheduled: datetime, dispatched_at: datetime, now: datetime) -> bool:
    """A run still Scheduled after its time: send it again once its last sending is ORCHESTRATOR_CELERY_
    REDISPATCH_SECONDS old and at least as old as the run was late when it was sent, so a pool without a Celery
    worker gets its runs sent at doubling intervals, not every pass."""
    since_sent = (now - dispatched_at).total_seconds()
    late_when_sent = (dispatched_at - scheduled).total_seconds()
    return since_sent >= max(settings.ORCHESTRATOR_CELERY_REDISPATCH_SECONDS, late_when_sent)


def made_a_flow_run_scheduled(event: StreamEvent) -> bool:
    """The events the celery_dispatch consumer acts on: a flow run's state change to SCHEDULED."""
    return event.resource_type == "flow_run" and (event.payload.get("state") or {}).get("type") == StateType.SCHEDULED


def flow_runs_dispatch_scheduled(events: list[StreamEvent]) -> int:
    """The `celery_dispatch` event consumer: send the celery pools' runs that these events made Scheduled (see the
    module docstring). Idempotent: a run is sent only by the UPDATE that sets its `dispatched_at`. Returns how many
    runs were sent."""
    run_ids = {event.resource_id for event in events if made_a_flow_run_scheduled(event)}
    if not run_ids:
        return 0
    now = timezone.now()
    horizon_end = now + timedelta(seconds=settings.ORCHESTRATOR_CELERY_DISPATCH_HORIZON_SECONDS)
    candidates = list(
        FlowRun.objects.filter(
            pk__in=run_ids,
            state_type=StateType.SCHEDULED,
            dispatched_at__isnull=True,
            next_scheduled_start_time__lte=horizon_end,
        )
        .exclude(work_pool_name="")
        .values_list("id", "work_pool_name", "work_queue_name", "next_scheduled_start_time")
    )
    if not candidates:
        return 0
    pools = {name for _, name, _, _ in candidates}
    celery_pools = dict(
        WorkPool.objects.filter(name__in=pools, type=WorkPoolType.CELERY, paused=False).values_list("name", "id")
    )
    queues: dict[str, dict[str, bool]] = {name: {} for name in celery_pools}
    for pool_name, queue_name, paused in WorkQueue.objects.filter(pool__name__in=celery_pools).values_list(
        "pool__name", "name", "paused"
    ):
        queues[pool_name][queue_name] = paused
    sent = 0
    for run_id, pool_name, queue_name, scheduled in candidates:
        if pool_name not in celery_pools or _in_paused_queue(queue_name, queues[pool_name]):
            continue  # the service sends it after the resume
        marked = FlowRun.objects.filter(pk=run_id, state_type=StateType.SCHEDULED, dispatched_at__isnull=True)
        if marked.update(dispatched_at=now) and _send(run_id, pool_name, scheduled, now):
            sent += 1
    return sent


def _in_paused_queue(queue_name: str | None, queues: dict[str, bool]) -> bool:
    """Whether a run with that queue name is in a paused queue of its pool."""
    return queues.get(queue_of_run(queue_name, set(queues)), False)


def flow_runs_dispatch_due(*, now: datetime | None = None) -> int:
    """The `celery_dispatch` service: send the Scheduled runs of unpaused celery pools (and queues) that are due
    within the horizon and were not sent, or are late and whose message may be lost (see the module docstring).
    Returns how many runs were sent."""
    now = now or timezone.now()
    horizon_end = now + timedelta(seconds=settings.ORCHESTRATOR_CELERY_DISPATCH_HORIZON_SECONDS)
    lost_before = now - timedelta(seconds=settings.ORCHESTRATOR_CELERY_REDISPATCH_SECONDS)
    sent = 0
    for pool in WorkPool.objects.filter(type=WorkPoolType.CELERY, paused=False):
        queues = dict(WorkQueue.objects.filter(pool=pool).values_list("name", "paused"))
        due = FlowRun.objects.filter(
            work_pool_name=pool.name, state_type=StateType.SCHEDULED, next_scheduled_start_time__lte=horizon_end
        )
        for name, paused in queues.items():
            if paused:
                due = due.exclude(in_queue(name, set(queues)))
        never_sent = due.filter(dispatched_at__isnull=True)
        maybe_lost = due.filter(next_scheduled_start_time__lte=lost_before, dispatched_at__lte=lost_before)
        rows = [
            *never_sent.order_by("next_scheduled_start_time").values_list(
                "id", "next_scheduled_start_time", "dispatched_at"
            )[:DISPATCH_BATCH],
            *(
                row
                for row in maybe_lost.order_by("dispatched_at").values_list(
                    "id", "next_scheduled_start_time", "dispatched_at"
                )[:DISPATCH_BATCH]
                if _sent_long_enough_ago(row[1], row[2], now)
            ),
        ]
        for run_id, scheduled, previous in rows:
            # Conditional: a run claimed or sent by someone else meanwhile is left alone.
            marked = FlowRun.objects.filter(pk=run_id, state_type=StateType.SCHEDULED, dispatched_at=previous)
            if previous is None:
                marked = FlowRun.objects.filter(pk=run_id, state_type=StateType.SCHEDULED, dispatched_at__isnull=True)
            if marked.update(dispatched_at=now) and _send(run_id, pool.name, scheduled, now):
                sent += 1
    return sent
