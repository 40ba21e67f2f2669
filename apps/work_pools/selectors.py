"""Reads for work pools: lookups by name, workers and their status, and a worker's poll (`flow_runs_due`)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from django.db.models import Case, Count, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from apps.core.errors import NotFound
from apps.runs.models import FlowRun
from apps.work_pools.models import DEFAULT_QUEUE_NAME, Worker, WorkPool, WorkQueue, heartbeat_cutoff
from orchestrator.states import StateType

# The states in which a run holds a slot of its pool's and queue's concurrency limits.
ACTIVE_TYPES = (StateType.PENDING, StateType.RUNNING, StateType.CANCELLING)


def work_pools_all() -> QuerySet[WorkPool]:
    return WorkPool.objects.order_by("name")


def work_pool_get(*, name: str) -> WorkPool | None:
    return WorkPool.objects.filter(name=name).first()


def work_pool_require(*, name: str) -> WorkPool:
    pool = work_pool_get(name=name)
    if pool is None:
        raise NotFound(f"no work pool named {name!r}")
    return pool


def work_queues_of(*, pool: WorkPool) -> QuerySet[WorkQueue]:
    return WorkQueue.objects.filter(pool=pool).order_by("priority", "name")


def work_queue_require(*, pool: WorkPool, name: str) -> WorkQueue:
    queue = WorkQueue.objects.filter(pool=pool, name=name).first()
    if queue is None:
        raise NotFound(f"no work queue named {name!r} in work pool {pool.name!r}")
    return queue


def workers_of(*, pool: WorkPool) -> QuerySet[Worker]:
    return Worker.objects.filter(pool=pool).order_by("name")


def work_pool_summaries(*, pools: list[WorkPool]) -> dict:
    """Per pool id: (queue count, workers online), for lists (two grouped queries for any number of pools)."""
    ids = [pool.id for pool in pools]
    queues = dict(WorkQueue.objects.filter(pool_id__in=ids).values_list("pool_id").annotate(n=Count("id")).order_by())
    online = dict(
        Worker.objects.filter(pool_id__in=ids, last_heartbeat_at__gte=heartbeat_cutoff())
        .values_list("pool_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {pool_id: (queues.get(pool_id, 0), online.get(pool_id, 0)) for pool_id in ids}


def queue_of_run(work_queue_name: str | None, queue_names: set[str]) -> str:
    """The queue a run belongs to: the one it names, or the pool's default queue when it names none or an
    unknown one."""
    return work_queue_name if work_queue_name in queue_names else DEFAULT_QUEUE_NAME


def in_queue(name: str, queue_names: set[str]) -> Q:
    """The runs of a pool that belong to its queue `name` (the default queue takes every run no other queue
    claims, a missing queue name included)."""
    if name == DEFAULT_QUEUE_NAME:
        return ~Q(work_queue_name__in=sorted(queue_names - {DEFAULT_QUEUE_NAME}))
    return Q(work_queue_name=name)


def active_runs_by_queue(*, pool_name: str, queue_names: set[str], exclude_run_id=None) -> Counter:
    """How many runs of the pool are active (Pending, Running, Cancelling), per queue they belong to."""
    rows = FlowRun.objects.filter(work_pool_name=pool_name, state_type__in=ACTIVE_TYPES)
    if exclude_run_id is not None:
        rows = rows.exclude(pk=exclude_run_id)
    counts: Counter = Counter()
    for queue_name, count in rows.values_list("work_queue_name").annotate(n=Count("id")).order_by():
        counts[queue_of_run(queue_name, queue_names)] += count
    return counts


def _free(limit: int | None, active: int) -> int | None:
    return None if limit is None else max(0, limit - active)


def flow_runs_due(
    *,
    pool: WorkPool,
    before: datetime | None = None,
    limit: int = 10,
    queue_names: list[str] | None = None,
) -> list[FlowRun]:
    """A worker's poll: the pool's Scheduled (and Late, AwaitingRetry) runs due by `before`, not claimed, by
    queue priority then next start; nothing from a paused pool or queue, and at most the free slots of the
    pool's and each queue's concurrency limit. `queue_names` (default: all) must name queues of the pool."""
    before = before or timezone.now()
    if pool.paused or limit <= 0:
        return []
    queues = list(work_queues_of(pool=pool))
    known = {queue.name for queue in queues}
    if queue_names:
        unknown = [name for name in queue_names if name not in known]
        if unknown:
            raise NotFound(f"no work queue named {unknown[0]!r} in work pool {pool.name!r}", field="work_queue_names")
        queues = [queue for queue in queues if queue.name in set(queue_names)]
    queues = [queue for queue in queues if not queue.paused]
    if not queues:
        return []

    limited = pool.concurrency_limit is not None or any(queue.concurrency_limit is not None for queue in queues)
    active = active_runs_by_queue(pool_name=pool.name, queue_names=known) if limited else Counter()
    pool_free = _free(pool.concurrency_limit, sum(active.values()))
    wanted = limit if pool_free is None else min(limit, pool_free)
    free = {queue.name: _free(queue.concurrency_limit, active[queue.name]) for queue in queues}
    queues = [queue for queue in queues if free[queue.name] != 0]
    if wanted <= 0 or not queues:
        return []

    due = FlowRun.objects.select_related("flow").filter(
        work_pool_name=pool.name, state_type=StateType.SCHEDULED, next_scheduled_start_time__lte=before
    )
    # A flow run that failed and is retried by its still running process (RetryFailedRuns) is not for other
    # workers: two processes would run it. Only when that process has not resumed it a heartbeat timeout after
    # its retry time (it died meanwhile) is it up for grabs.
    due = due.filter(
        Q(state_details__retried_by_its_process__isnull=True) | Q(next_scheduled_start_time__lte=heartbeat_cutoff())
    )
    if all(free[queue.name] is None for queue in queues):
        # No queue limit to respect: one query over the chosen queues, ordered by their priorities.
        chosen = Q()
        for queue in queues:
            chosen |= in_queue(queue.name, known)
        priority = Case(
            *[When(work_queue_name=queue.name, then=Value(queue.priority)) for queue in queues if not queue.is_default],
            default=Value(next((queue.priority for queue in queues if queue.is_default), 0)),
            output_field=IntegerField(),
        )
        ordered = due.filter(chosen).annotate(queue_priority=priority)
        return list(ordered.order_by("queue_priority", "next_scheduled_start_time")[:wanted])
    # Some queue is limited: one query per queue, in priority order, each taking at most its free slots.
    runs: list[FlowRun] = []
    for queue in queues:
        queue_free = free[queue.name]
        take = wanted - len(runs) if queue_free is None else min(wanted - len(runs), queue_free)
        if take > 0:
            runs.extend(due.filter(in_queue(queue.name, known)).order_by("next_scheduled_start_time")[:take])
        if len(runs) >= wanted:
            break
    return runs


def flow_runs_cancelling(*, run_ids: list) -> list[str]:
    """Of these flow runs, the ids of those being cancelled (their worker stops their process)."""
    if not run_ids:
        return []
    rows = FlowRun.objects.filter(pk__in=run_ids, state_type=StateType.CANCELLING).values_list("id", flat=True)
    return [str(run_id) for run_id in rows]


def flow_run_state_type(*, run_id: Any) -> str | None:
    """The run's current state type (None: the run is gone), for a worker watching it."""
    return FlowRun.objects.filter(pk=run_id).values_list("state_type", flat=True).first()
