"""The celery pool type, server side: a flow run of a `celery` pool is sent to its pool's Celery queue when it
becomes Scheduled, instead of waiting for a worker's poll (docs/workers.md, "Celery pools").

The engine's bookkeeping calls `flow_run_dispatch_mark` for every flow run entering SCHEDULED with a work pool:
for a run of a celery pool due within ORCHESTRATOR_CELERY_DISPATCH_HORIZON_SECONDS it sets `dispatched_at`
(in the same write as the state), and `flow_run_dispatch_on_commit` sends the Celery task
`orchestrator.work_pools.execute_flow_run` to `pool-<name>` with `eta` = the run's start time once the
transaction has committed. The `celery_dispatch` service (`flow_runs_dispatch_due`) sends what the fast path
did not: runs that came within the horizon, runs a paused pool or queue left, runs whose sending failed, and
runs still Scheduled well after their time (a lost message). Sending twice is harmless: the task claims the run
through the engine, and only one claim succeeds.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.orchestration.rules.base import TransitionContext
from apps.runs.models import FlowRun
from apps.work_pools.models import WorkPool, WorkPoolType, WorkQueue
from apps.work_pools.selectors import in_queue
from orchestrator.states import StateType

logger = logging.getLogger("apps.work_pools.dispatch")

EXECUTE_TASK_NAME = "orchestrator.work_pools.execute_flow_run"
QUEUE_PREFIX = "pool-"
# A pool's type rarely changes (it is not editable): one lookup per pool name and process every few seconds keeps
# the engine's hot path free of a query per state change.
POOL_TYPE_CACHE_SECONDS = 5.0
# Runs the service sends per pass and pool (the rest on its next pass).
DISPATCH_BATCH = 1000
# A send that cannot reach the broker gives up quickly: the service sends the run again.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}

_pool_types: dict[str, tuple[bool, float]] = {}
_pool_types_lock = threading.Lock()


def celery_queue_name(pool_name: str) -> str:
    """The Celery queue of a celery pool: its Celery workers consume it (`orchestrator worker start --pool P`)."""
    return f"{QUEUE_PREFIX}{pool_name}"


def is_celery_pool(pool_name: str) -> bool:
    """Whether the pool of that name is a celery pool (cached per process for POOL_TYPE_CACHE_SECONDS)."""
    now = time.monotonic()
    cached = _pool_types.get(pool_name)
    if cached is not None and cached[1] > now:
        return cached[0]
    found = WorkPool.objects.filter(name=pool_name).values_list("type", flat=True).first()
    answer = found == WorkPoolType.CELERY
    with _pool_types_lock:
        _pool_types[pool_name] = (answer, now + POOL_TYPE_CACHE_SECONDS)
    return answer


def _followed_by_its_executor(context: TransitionContext) -> bool:
    """A Running run that failed with retries left (AwaitingRetry): the process executing it waits for the retry
    and runs it again itself, so sending it would start a second execution."""
    return context.initial_type == StateType.RUNNING and context.proposed_type == StateType.FAILED


def flow_run_dispatch_mark(context: TransitionContext) -> None:
    """Bookkeeping for a flow run with a work pool whose stored state will be SCHEDULED (called before the run's
    row is written): set `dispatched_at` for a celery pool's run due within the horizon, clear it for one due later
    (the service sends it when it comes within the horizon). A Late run (same start time) is left as it was; a
    retry its executor follows counts as sent (the service only sends it if it is still Scheduled well after its
    time, i.e. the executor died)."""
    run = context.run
    state = context.validated_state
    if context.initial_type == StateType.SCHEDULED and context.initial_state.scheduled_time == state.scheduled_time:
        return
    if not is_celery_pool(run.work_pool_name):
        return
    scheduled_time = state.scheduled_time or context.now
    horizon = timedelta(seconds=settings.ORCHESTRATOR_CELERY_DISPATCH_HORIZON_SECONDS)
    due_soon = scheduled_time <= context.now + horizon
    context.set_run_field("dispatched_at", context.now if due_soon or _followed_by_its_executor(context) else None)


def flow_run_dispatch_on_commit(context: TransitionContext) -> None:
    """After the state is stored: if `flow_run_dispatch_mark` marked the run as sent just now, send it once the
    transaction commits (never inside it: a rolled-back run must not be executed)."""
    run = context.run
    if "dispatched_at" not in context.changed_fields or run.dispatched_at is None:
        return
    if _followed_by_its_executor(context):
        return
    run_id, pool_name, dispatched_at = run.id, run.work_pool_name, run.dispatched_at
    eta = run.next_scheduled_start_time
    transaction.on_commit(lambda: _send(run_id, pool_name, eta, dispatched_at))


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
