"""Writes for work pools, their queues and workers (a pool is always created with its `default` queue), the
server side of a celery pool's task (claim a run, settle it after its process ended), and the two server services
that end runs nobody executes any more: `zombies` and `cancellation_cleanup`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.errors import Conflict
from apps.orchestration import engine
from apps.orchestration.rules.base import RunKind, Status
from apps.runs.models import FlowRun, TaskRun
from apps.work_pools.dispatch import flow_run_dispatch_forget, flow_run_dispatch_touch
from apps.work_pools.models import DEFAULT_QUEUE_NAME, Worker, WorkPool, WorkPoolType, WorkQueue, heartbeat_cutoff
from apps.work_pools.selectors import queue_of_run
from orchestrator.states import TERMINAL_TYPES, Cancelled, Crashed, Pending, State, StateType

POOL_EDITABLE_FIELDS = ("description", "concurrency_limit", "paused")
QUEUE_EDITABLE_FIELDS = ("description", "priority", "concurrency_limit", "paused")


def work_pool_create(
    *,
    name: str,
    # Django's TextChoices members are str at runtime; without django-stubs' plugin mypy sees the (value, label) tuple.
    type: str = WorkPoolType.PROCESS,  # type: ignore[assignment]
    description: str | None = None,
    concurrency_limit: int | None = None,
    paused: bool = False,
) -> WorkPool:
    """Create a pool and its default queue (409 if the name is taken)."""
    try:
        with transaction.atomic():
            pool = WorkPool.objects.create(
                name=name, type=type, description=description, concurrency_limit=concurrency_limit, paused=paused
            )
            WorkQueue.objects.create(pool=pool, name=DEFAULT_QUEUE_NAME, description="the pool's default queue")
    except IntegrityError:
        raise Conflict(f"a work pool named {name!r} already exists", field="name") from None
    return pool


def work_pool_ensure(*, name: str) -> tuple[WorkPool, bool]:
    """The pool named `name`, created as a `process` pool (with its default queue) if there is none yet;
    returns (pool, created). Deploying to a pool that does not exist creates it this way."""
    pool = WorkPool.objects.filter(name=name).first()
    if pool is not None:
        return pool, False
    try:
        return work_pool_create(name=name), True
    except Conflict:  # created by a concurrent request
        return WorkPool.objects.get(name=name), False


def _apply(instance: Any, values: dict[str, Any], editable: tuple[str, ...]) -> None:
    unknown = set(values) - set(editable)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    changed = [field for field, value in values.items() if getattr(instance, field) != value]
    for field in changed:
        setattr(instance, field, values[field])
    if changed:
        instance.save(update_fields=[*changed, "updated"])


def work_pool_update(*, pool: WorkPool, values: dict[str, Any]) -> WorkPool:
    """Change a pool's description, concurrency limit or paused flag."""
    _apply(pool, values, POOL_EDITABLE_FIELDS)
    return pool


def work_pool_delete(*, pool: WorkPool) -> None:
    """Delete the pool with its queues and workers; its runs keep the pool's name (and nothing polls them).
    Conflict when active deployments use it (apps/deployments/receivers.py): nothing is deleted then."""
    with transaction.atomic():  # a savepoint: a refusal leaves the caller's transaction usable
        # Lock the pool's row first. A worker's first heartbeat inserts a row that references the pool; without the
        # lock it could commit between the delete collecting the pool's workers and deleting the pool, and the
        # delete would fail on the foreign key (seen on PostgreSQL as a 500). With it, an insert in flight commits
        # before the collection, and a later one waits and then finds the pool gone (worker_heartbeat ignores it).
        list(WorkPool.objects.select_for_update().filter(pk=pool.pk).values_list("pk", flat=True))
        pool.delete()


def work_queue_create(
    *,
    pool: WorkPool,
    name: str,
    description: str | None = None,
    priority: int = 1,
    concurrency_limit: int | None = None,
    paused: bool = False,
) -> WorkQueue:
    try:
        with transaction.atomic():
            return WorkQueue.objects.create(
                pool=pool,
                name=name,
                description=description,
                priority=priority,
                concurrency_limit=concurrency_limit,
                paused=paused,
            )
    except IntegrityError:
        raise Conflict(f"work pool {pool.name!r} already has a queue named {name!r}", field="name") from None


def work_queue_update(*, queue: WorkQueue, values: dict[str, Any]) -> WorkQueue:
    _apply(queue, values, QUEUE_EDITABLE_FIELDS)
    return queue


def work_queue_delete(*, queue: WorkQueue) -> None:
    """Delete a queue; its runs fall back to the pool's default queue, which cannot be deleted."""
    if queue.is_default:
        raise Conflict("the default queue of a work pool cannot be deleted (delete the pool instead)")
    queue.delete()


def worker_heartbeat(*, pool: WorkPool, name: str, now: datetime | None = None) -> None:
    """Record that worker `name` of `pool` is alive (one UPDATE; the first heartbeat inserts its row)."""
    now = now or timezone.now()
    if Worker.objects.filter(pool=pool, name=name).update(last_heartbeat_at=now, updated=now):
        return
    try:
        with transaction.atomic():
            Worker.objects.create(pool=pool, name=name, last_heartbeat_at=now)
    except IntegrityError:  # its first two heartbeats raced
        Worker.objects.filter(pool=pool, name=name).update(last_heartbeat_at=now, updated=now)


# --------------------------------------------------------------------------------------------------------------
# Server services (apps/server_services/registry.py): runs whose worker is gone, and cancellations to finish.

UNFINISHED_TYPES = (
    StateType.SCHEDULED,
    StateType.PENDING,
    StateType.RUNNING,
    StateType.PAUSED,
    StateType.CANCELLING,
)
# Rounds of cancelling children per pass: a subflow cancelled in one round has its own children cancelled in the
# next, so nested subflows end in one pass.
CANCELLATION_ROUNDS = 10


def _heartbeats() -> dict[tuple[str, str], datetime]:
    """The last heartbeat of every worker, by (pool name, worker name)."""
    rows = Worker.objects.values_list("pool__name", "name", "last_heartbeat_at")
    return {(pool, name): last for pool, name, last in rows}


def _silent_worker(pool_name: str, worker_name: str, heartbeats: dict, cutoff: datetime) -> str | None:
    """Why the worker counts as gone (a sentence naming it), or None while it is online."""
    last = heartbeats.get((pool_name, worker_name))
    if last is None:
        return f"worker {worker_name!r} of pool {pool_name!r} is not known to the server (it never heartbeated)"
    if last >= cutoff:
        return None
    return f"worker {worker_name!r} stopped heartbeating at {last.isoformat(timespec='seconds')}"


def _propose(kind: RunKind, run_id, state: State, seen_at: datetime, *, force_if_refused: bool = False) -> bool:
    """Propose `state` as of the state seen at `seen_at`: a run that moved on meanwhile is left alone (the engine
    rejects the proposal as stale). With `force_if_refused`, a proposal the policy refuses while the run is
    where it was seen is forced. True when a state was stored."""
    result = engine.propose_state(kind=kind, run_id=run_id, state=state, proposed_at=seen_at)
    run = result.run
    if run is None:
        return False
    if run.state_timestamp != seen_at:
        return True
    if not force_if_refused or run.state_type in {t.value for t in TERMINAL_TYPES}:
        return False
    forced = engine.propose_state(kind=kind, run_id=run_id, state=state, force=True)
    return forced.accepted


def flow_runs_crash_zombies(*, now: datetime | None = None) -> int:
    """The `zombies` service: Pending and Running flow runs of a work pool whose worker went offline (no
    heartbeat within ORCHESTRATOR_WORKER_HEARTBEAT_TIMEOUT_SECONDS) are proposed Crashed, naming the worker;
    the engine's retry rule makes a Running one AwaitingRetry when its flow has retries left. A Pending run no
    worker recorded itself on within the timeout of its claim is crashed the same way, so nothing stays Pending
    forever. Returns how many runs were ended or rescheduled.

    A Running run with no worker recorded is left alone: something other than a process worker runs it (a
    Celery worker, a script), and nothing tells the server whether it is alive."""
    now = now or timezone.now()
    cutoff = heartbeat_cutoff(now)
    candidates = FlowRun.objects.filter(
        work_pool_name__isnull=False, state_type__in=(StateType.PENDING, StateType.RUNNING)
    ).values_list("id", "work_pool_name", "worker_name", "state_type", "state_timestamp")
    heartbeats: dict | None = None
    crashed = 0
    for run_id, pool_name, worker_name, state_type, seen_at in candidates.iterator():
        if worker_name:
            if heartbeats is None:
                heartbeats = _heartbeats()
            reason = _silent_worker(pool_name, worker_name, heartbeats, cutoff)
        elif state_type == StateType.PENDING and seen_at < cutoff:
            seconds = settings.ORCHESTRATOR_WORKER_HEARTBEAT_TIMEOUT_SECONDS
            reason = f"no worker recorded itself on the run within {seconds:g} seconds of its claim"
        else:
            reason = None
        if reason is None:
            continue
        if _propose(engine.FLOW_RUN, run_id, Crashed(message=reason), seen_at):
            crashed += 1
    return crashed


def flow_runs_finish_cancellations(*, now: datetime | None = None) -> dict[str, int]:
    """The `cancellation_cleanup` service.

    A Cancelling flow run nobody will stop ends Cancelled: its worker is offline, or it has none (a run of no
    pool at once; a run of a pool once the heartbeat timeout has passed, so the executor has its chance). Then
    the unfinished task runs and subflow runs of every Cancelled flow run are Cancelled (forced where the
    policy refuses), subflows' own children included. Returns the counts per kind."""
    now = now or timezone.now()
    cutoff = heartbeat_cutoff(now)
    counts = {"flow_runs": 0, "task_runs": 0, "subflow_runs": 0}
    heartbeats: dict | None = None
    cancelling = FlowRun.objects.filter(state_type=StateType.CANCELLING).values_list(
        "id", "work_pool_name", "worker_name", "state_timestamp"
    )
    for run_id, pool_name, worker_name, seen_at in cancelling.iterator():
        if pool_name and worker_name:
            if heartbeats is None:
                heartbeats = _heartbeats()
            reason = _silent_worker(pool_name, worker_name, heartbeats, cutoff)
        elif pool_name and seen_at >= cutoff:
            reason = None  # a worker that has not recorded itself may still stop it
        else:
            reason = "no worker is executing the run"
        if reason is None:
            continue
        if _propose(engine.FLOW_RUN, run_id, Cancelled(message=f"Cancelled: {reason}"), seen_at):
            counts["flow_runs"] += 1

    for _ in range(CANCELLATION_ROUNDS):
        changed = 0
        task_runs = TaskRun.objects.filter(
            flow_run__state_type=StateType.CANCELLED, state_type__in=UNFINISHED_TYPES
        ).values_list("id", "state_timestamp")
        for run_id, seen_at in task_runs.iterator():
            state = Cancelled(message="Cancelled with its flow run")
            if _propose(engine.TASK_RUN, run_id, state, seen_at, force_if_refused=True):
                counts["task_runs"] += 1
                changed += 1
        subflow_runs = FlowRun.objects.filter(
            parent_task_run__flow_run__state_type=StateType.CANCELLED, state_type__in=UNFINISHED_TYPES
        ).values_list("id", "state_timestamp")
        for run_id, seen_at in subflow_runs.iterator():
            state = Cancelled(message="Cancelled with its parent flow run")
            if _propose(engine.FLOW_RUN, run_id, state, seen_at, force_if_refused=True):
                counts["subflow_runs"] += 1
                changed += 1
        if not changed:
            break
    return counts


@dataclass
class CeleryClaim:
    """What a celery pool's task may do with a run: `run` and `pool` once it claimed the run; otherwise why not,
    and `retry_in`: send the task again after that many seconds."""

    message: str
    run: FlowRun | None = None
    pool: WorkPool | None = None
    retry_in: float | None = None


def _paused_part(pool: WorkPool, run: FlowRun) -> str | None:
    """What is paused of the run's pool and queue, as words (None: nothing)."""
    if pool.paused:
        return f"work pool {pool.name!r}"
    queues = dict(WorkQueue.objects.filter(pool=pool).values_list("name", "paused"))
    queue = queue_of_run(run.work_queue_name, set(queues))
    return f"work queue {queue!r} of pool {pool.name!r}" if queues.get(queue) else None


def flow_run_claim_for_celery(*, flow_run_id: str, worker_name: str) -> CeleryClaim:
    """A celery pool's task claims its run (docs/workers.md, "Celery pools"): a run not Scheduled any more or not of
    a celery pool is left alone; one of a paused pool or queue is left for the `celery_dispatch` service (sent
    again on resume); one not due yet is retried at its time. Then the worker heartbeats and proposes Pending
    through the engine: ABORT or REJECT leave it, WAIT retries after the delay (its message is alive)."""
    try:
        run = FlowRun.objects.filter(pk=flow_run_id).first()
    except (ValidationError, ValueError):
        run = None
    if run is None:
        return CeleryClaim(f"flow run {flow_run_id} does not exist (deleted?)")
    if run.state_type != StateType.SCHEDULED:
        return CeleryClaim(f"flow run {flow_run_id} left alone: it is {run.state_name}")
    pool = WorkPool.objects.filter(name=run.work_pool_name).first() if run.work_pool_name else None
    if pool is None or pool.type != WorkPoolType.CELERY:
        return CeleryClaim(f"flow run {flow_run_id} left alone: it is not a run of a celery pool")
    paused = _paused_part(pool, run)
    if paused:
        flow_run_dispatch_forget(run_id=run.id)
        return CeleryClaim(f"flow run {flow_run_id} left for later: {paused} is paused (it is sent again on resume)")
    if run.next_scheduled_start_time is not None:
        delay = (run.next_scheduled_start_time - timezone.now()).total_seconds()
        if delay > settings.ORCHESTRATION_SCHEDULED_START_TOLERANCE_SECONDS:
            return CeleryClaim(f"flow run {flow_run_id} is not due for {delay:.1f}s", retry_in=delay)

    worker_heartbeat(pool=pool, name=worker_name)  # before the claim: the zombies service must know this worker
    claim = engine.propose_state(
        kind=engine.FLOW_RUN, run_id=run.id, state=Pending(message=f"Claimed by Celery worker {worker_name!r}")
    )
    if claim.status == Status.WAIT:
        flow_run_dispatch_touch(run_id=run.id)
        return CeleryClaim(f"flow run {flow_run_id} waits: {claim.reason}", retry_in=max(claim.delay_seconds, 0.1))
    if not claim.accepted:
        return CeleryClaim(f"flow run {flow_run_id} not claimed ({claim.status}: {claim.reason})")
    return CeleryClaim(f"flow run {flow_run_id} claimed", run=run, pool=pool)


def flow_run_settle_after_process(
    *, run_id: Any, label: str, ended: str, cancelling: bool, worker_name: str, could_not_start: bool = False
) -> str:
    """After a celery pool's run process ended (`ended`: how, in words), a run left unfinished becomes Cancelled (it
    was being cancelled) or Crashed; a Scheduled or Paused one is left (a suspension, or a retry whose process died
    while it waited: the service sends it again once it is due). Returns what became of the run, in words."""
    row = FlowRun.objects.filter(pk=run_id).values_list("state_type", "state_name").first()
    if row is None:
        return f"{label}: deleted while it ran"
    state_type, state_name = row
    if state_type in {t.value for t in TERMINAL_TYPES}:
        return f"{label}: {state_name}"
    if cancelling or state_type == StateType.CANCELLING:
        proposal: State = Cancelled(message=f"Cancelled by Celery worker {worker_name!r}: {ended}")
    elif state_type in (StateType.SCHEDULED, StateType.PAUSED):
        return f"{label}: left {state_name}"
    else:
        proposal = Crashed(message=f"Celery worker {worker_name!r} {ended}" if could_not_start else ended)
    result = engine.propose_state(kind=engine.FLOW_RUN, run_id=run_id, state=proposal)
    final = result.state.name if result.state is not None else state_name
    return f"{label}: {final} ({proposal.message})"
