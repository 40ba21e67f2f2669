"""Why is a run waiting? (docs/waiting.md): for a flow run or a task run that has not started, the ordered list of
what holds it, each a machine code, one sentence and the details a page or a script needs (the limit and the runs
holding its slots, the position in its pool's line, the workers and their last heartbeat, the time it waits for).

It lives in work_pools because most of a flow run's reasons are its pool's (paused, full, no worker, the line),
and work_pools may read runs and tag limits; the deployment's limit is read through the run's foreign key. Each
answer is a handful of indexed queries whatever the number of runs (the run page polls it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Case, IntegerField, Q, Value, When
from django.utils import timezone

from apps.concurrency.selectors import concurrency_holders
from apps.runs.models import FlowRun, TaskRun
from apps.work_pools.models import Worker, WorkPool, WorkPoolType, WorkQueue, heartbeat_cutoff
from apps.work_pools.selectors import ACTIVE_TYPES, active_runs_by_queue, in_queue, queue_of_run
from orchestrator.states import TERMINAL_TYPES, StateType

WAITING = "waiting"
NOT_WAITING = "not_waiting"
# The most holders of a limit an answer names (the count is always exact).
MAX_HOLDERS = 20


@dataclass(frozen=True)
class Reason:
    code: str  # e.g. "pool_paused", "tag_concurrency_full" (docs/waiting.md lists them)
    message: str  # one sentence a user can act on
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


@dataclass(frozen=True)
class Waiting:
    status: str  # WAITING or NOT_WAITING
    state_type: str | None
    state_name: str | None
    reasons: list[Reason]
    not_waiting_because: str | None = None  # "running" or "finished" when not waiting

    @property
    def waiting(self) -> bool:
        return self.status == WAITING

    @property
    def messages(self) -> list[str]:
        return [reason.message for reason in self.reasons]

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "not_waiting_because": self.not_waiting_because,
            "state_type": self.state_type,
            "state_name": self.state_name,
            "reasons": [reason.to_json() for reason in self.reasons],
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _not_waiting(run: FlowRun | TaskRun) -> Waiting | None:
    """The answer for a run that is running or finished (None: it waits)."""
    if run.state_type in TERMINAL_TYPES:
        because = "finished"
    elif run.state_type in (StateType.RUNNING, StateType.CANCELLING):
        because = "running"
    else:
        return None
    return Waiting(NOT_WAITING, run.state_type, run.state_name, [], not_waiting_because=because)


def _time_reasons(run: FlowRun | TaskRun, now: datetime) -> list[Reason]:
    """AwaitingRetry, a scheduled time to come, or Late."""
    if run.state_type != StateType.SCHEDULED:
        return []
    start = run.next_scheduled_start_time or (run.state_details or {}).get("scheduled_time")
    if isinstance(start, str):
        start = datetime.fromisoformat(start)
    seconds = int((start - now).total_seconds()) if start is not None else None
    details = {"scheduled_time": _iso(start), "seconds_from_now": seconds}
    if run.state_name == "AwaitingRetry":
        attempt = (run.run_count or 0) + 1
        when = f"in {seconds} s" if seconds is not None and seconds > 0 else "now"
        return [
            Reason(
                "awaiting_retry",
                f"it failed and waits to be retried (attempt {attempt}), {when}",
                {**details, "run_count": run.run_count},
            )
        ]
    if start is not None and start > now:
        return [Reason("scheduled_time", f"it is scheduled for {start.isoformat()} ({seconds} s from now)", details)]
    if run.state_name == "Late" and start is not None:
        late = int((now - start).total_seconds())
        return [Reason("late", f"it is Late: {late} s past its scheduled time", {**details, "seconds_late": late})]
    return []


# --------------------------------------------------------------------------------------------------------------
# Flow runs


def flow_run_waiting(*, run: FlowRun, now: datetime | None = None) -> Waiting:
    """What holds a flow run that has not started (Scheduled, Pending or Paused), in the order a user should act
    on it; an empty list of reasons for a waiting run means nothing holds it (a worker takes it on its next
    poll)."""
    done = _not_waiting(run)
    if done is not None:
        return done
    now = now or timezone.now()
    reasons: list[Reason] = []
    if run.state_type == StateType.PAUSED:
        timeout = (run.state_details or {}).get("pause_timeout")
        message = f"it is {run.state_name}: resume it (`POST /api/flow_runs/{run.id}/resume/` or the Resume button)"
        reasons.append(Reason("paused_run", message, {"pause_timeout": timeout}))
        return Waiting(WAITING, run.state_type, run.state_name, reasons)
    if run.state_type == StateType.PENDING:
        reasons.append(_pending_reason(run))
        return Waiting(WAITING, run.state_type, run.state_name, reasons)
    reasons.extend(_time_reasons(run, now))
    reasons.extend(_pool_reasons(run, now))
    return Waiting(WAITING, run.state_type, run.state_name, reasons)


def _pending_reason(run: FlowRun) -> Reason:
    worker: Worker | None = None
    if run.worker_name and run.work_pool_name:
        worker = Worker.objects.filter(pool__name=run.work_pool_name, name=run.worker_name).first()
    since = run.state_timestamp
    details = {
        "worker_name": run.worker_name,
        "last_heartbeat_at": _iso(worker.last_heartbeat_at) if worker else None,
        "worker_status": worker.status_at() if worker else None,
        "since": _iso(since),
    }
    by = f"worker {run.worker_name!r}" if run.worker_name else "a worker or the process that runs it"
    return Reason("pending_claimed", f"it was claimed by {by} and waits for its process to start it", details)


def _holders(rows: Any) -> list[dict[str, Any]]:
    return [{"id": str(row["id"]), "name": row["name"], "state_name": row["state_name"]} for row in rows[:MAX_HOLDERS]]


def _pool_reasons(run: FlowRun, now: datetime) -> list[Reason]:
    """A Scheduled run's reasons from its pool, queue, deployment and workers, and its place in the pool's line."""
    if not run.work_pool_name:
        if run.deployment_id is None:
            message = "it has no work pool: only the process that created it (the SDK, e.g. `flow.serve()`) runs it"
        else:
            message = (
                "its deployment has no work pool: a `flow.serve()` process of that deployment runs it, or redeploy "
                "it with --pool"
            )
        return [Reason("no_work_pool", message, {"deployment_id": str(run.deployment_id or "") or None})]
    pool = WorkPool.objects.filter(name=run.work_pool_name).first()
    if pool is None:
        message = f"work pool {run.work_pool_name!r} does not exist: create it or redeploy to another pool"
        return [Reason("pool_missing", message, {"work_pool": run.work_pool_name})]
    reasons: list[Reason] = []
    queues = {queue.name: queue for queue in WorkQueue.objects.filter(pool=pool)}
    queue = queues.get(queue_of_run(run.work_queue_name, set(queues)))
    pool_link = {"work_pool": pool.name}
    if pool.paused:
        message = f"work pool {pool.name!r} is paused: `orchestrator work-pool resume {pool.name}`"
        reasons.append(Reason("pool_paused", message, pool_link))
    if queue is not None and queue.paused:
        message = (
            f"work queue {queue.name!r} of pool {pool.name!r} is paused: "
            f"`orchestrator work-queue resume {queue.name} --pool {pool.name}`"
        )
        reasons.append(Reason("queue_paused", message, {**pool_link, "work_queue": queue.name}))
    reasons.extend(_limit_reasons(run, pool, queue, set(queues)))
    # A celery pool's workers heartbeat only while they run runs: an idle one is not offline.
    if pool.type == WorkPoolType.PROCESS:
        workers = list(Worker.objects.filter(pool=pool).order_by("-last_heartbeat_at")[:MAX_HOLDERS])
        cutoff = heartbeat_cutoff(now)
        if not any(worker.last_heartbeat_at >= cutoff for worker in workers):
            known = [{"name": worker.name, "last_heartbeat_at": _iso(worker.last_heartbeat_at)} for worker in workers]
            message = f"no online worker for work pool {pool.name!r}: start one with `{pool.worker_command}`"
            details = {**pool_link, "workers": known, "worker_command": pool.worker_command}
            reasons.append(Reason("no_online_worker", message, details))
    # A process pool's due runs wait in line for a worker's poll; a celery pool's are sent to Celery as they fall
    # due (apps/work_pools/dispatch.py), in no line of ours.
    start = run.next_scheduled_start_time
    in_line = pool.type == WorkPoolType.PROCESS and not pool.paused
    if in_line and queue is not None and not queue.paused and start is not None and start <= now:
        reasons.append(_queue_position(run, pool, queue, queues, now))
    return reasons


def _limit_reasons(run: FlowRun, pool: WorkPool, queue: WorkQueue | None, queue_names: set[str]) -> list[Reason]:
    """Full pool, queue and deployment concurrency limits, each with the runs holding their slots."""
    reasons: list[Reason] = []
    pool_link = {"work_pool": pool.name}
    limited = pool.concurrency_limit is not None or (queue is not None and queue.concurrency_limit is not None)
    if limited:
        active = active_runs_by_queue(pool_name=pool.name, queue_names=queue_names, exclude_run_id=run.pk)
        fields = ("id", "name", "state_name")
        holding = FlowRun.objects.filter(work_pool_name=pool.name, state_type__in=ACTIVE_TYPES).exclude(pk=run.pk)
        holding = holding.order_by("start_time", "id")
        if pool.concurrency_limit is not None and sum(active.values()) >= pool.concurrency_limit:
            count = sum(active.values())
            message = (
                f"work pool {pool.name!r} is at its concurrency limit ({count} of {pool.concurrency_limit} runs active)"
            )
            details = {
                **pool_link,
                "limit": pool.concurrency_limit,
                "active": count,
                "holders": _holders(holding.values(*fields)),
            }
            reasons.append(Reason("pool_concurrency_full", message, details))
        if queue is not None and queue.concurrency_limit is not None and active[queue.name] >= queue.concurrency_limit:
            count = active[queue.name]
            message = (
                f"work queue {queue.name!r} is at its concurrency limit ({count} of {queue.concurrency_limit} runs "
                "active)"
            )
            details = {
                **pool_link,
                "work_queue": queue.name,
                "limit": queue.concurrency_limit,
                "active": count,
                "holders": _holders(holding.filter(in_queue(queue.name, queue_names)).values(*fields)),
            }
            reasons.append(Reason("queue_concurrency_full", message, details))
    deployment = run.deployment if run.deployment_id is not None else None
    if deployment is not None and deployment.concurrency_limit is not None:
        holding = FlowRun.objects.filter(deployment_id=deployment.pk, state_type__in=ACTIVE_TYPES).exclude(pk=run.pk)
        rows = list(
            holding.order_by("start_time", "id").values("id", "name", "state_name")[: deployment.concurrency_limit + 1]
        )
        count = holding.count() if len(rows) > deployment.concurrency_limit else len(rows)
        if count >= deployment.concurrency_limit:
            message = (
                f"its deployment {deployment.name!r} is at its concurrency limit ({count} of "
                f"{deployment.concurrency_limit} runs active)"
            )
            details = {
                "deployment_id": str(deployment.pk),
                "deployment": deployment.name,
                "limit": deployment.concurrency_limit,
                "active": count,
                "holders": _holders(rows),
            }
            reasons.append(Reason("deployment_concurrency_full", message, details))
    return reasons


def _queue_position(
    run: FlowRun, pool: WorkPool, queue: WorkQueue, queues: dict[str, WorkQueue], now: datetime
) -> Reason:
    """The run's place among the pool's due runs in the order a worker's poll takes them (`flow_runs_due`): by
    queue priority (paused queues skipped), then next start; runs of one start time by id."""
    open_queues = [other for other in queues.values() if not other.paused]
    known = set(queues)
    priority = Case(
        *[When(in_queue(other.name, known), then=Value(other.priority)) for other in open_queues],
        default=Value(None),
        output_field=IntegerField(),
    )
    due = (
        FlowRun.objects.filter(
            work_pool_name=pool.name, state_type=StateType.SCHEDULED, next_scheduled_start_time__lte=now
        )
        .filter(
            Q(state_details__retried_by_its_process__isnull=True)
            | Q(next_scheduled_start_time__lte=heartbeat_cutoff(now))
        )
        .exclude(pk=run.pk)
        .annotate(queue_priority=priority)
    )
    start = run.next_scheduled_start_time
    ahead = due.filter(
        Q(queue_priority__lt=queue.priority)
        | Q(queue_priority=queue.priority, next_scheduled_start_time__lt=start)
        | Q(queue_priority=queue.priority, next_scheduled_start_time=start, pk__lt=run.pk)
    ).count()
    details = {
        "work_pool": pool.name,
        "work_queue": queue.name,
        "queue_priority": queue.priority,
        "position": ahead + 1,
        "ahead": ahead,
    }
    if ahead == 0:
        message = f"it is next in line in work pool {pool.name!r} (queue {queue.name!r})"
    else:
        message = (
            f"it is number {ahead + 1} in line in work pool {pool.name!r} (queue {queue.name!r}): {ahead} due "
            f"run{'s' if ahead != 1 else ''} ahead of it"
        )
    return Reason("queue_position", message, details)


# --------------------------------------------------------------------------------------------------------------
# Task runs


def task_run_waiting(*, run: TaskRun, now: datetime | None = None) -> Waiting:
    """What holds a task run that has not started: its flow run paused, its retry time, full tag concurrency
    limits (naming the task runs that hold their slots), upstream task runs not finished."""
    done = _not_waiting(run)
    if done is not None:
        return done
    now = now or timezone.now()
    reasons: list[Reason] = []
    flow_run = (
        FlowRun.objects.filter(pk=run.flow_run_id).values("id", "name", "state_type", "state_name").first()
        if run.flow_run_id
        else None
    )
    if flow_run is not None and flow_run["state_type"] == StateType.PAUSED:
        message = f"its flow run {flow_run['name']!r} is {flow_run['state_name']}: resume the flow run"
        details = {"flow_run_id": str(flow_run["id"]), "flow_run": flow_run["name"]}
        reasons.append(Reason("flow_run_paused", message, details))
    reasons.extend(_time_reasons(run, now))
    reasons.extend(_tag_reasons(run))
    reasons.extend(_upstream_reasons(run))
    return Waiting(WAITING, run.state_type, run.state_name, reasons)


def task_runs_waiting_brief(*, runs: list[TaskRun]) -> dict[str, str]:
    """For a table of task runs: per id of a waiting one held by something cheap to tell (its retry, a full tag
    limit), a few words; one query for any number of rows (the limits of their tags)."""
    waiting = [run for run in runs if run.state_type in (StateType.SCHEDULED, StateType.PENDING)]
    tags = {tag for run in waiting for tag in (run.tags or [])}
    full = {limit.tag: limit for limit in concurrency_holders(tags=tags) if len(limit.holder_run_ids) >= limit.limit}
    briefs: dict[str, str] = {}
    for run in waiting:
        run_id = str(run.id)
        if run.state_name == "AwaitingRetry":
            briefs[run_id] = "awaiting its retry"
            continue
        blocking = [tag for tag in sorted(run.tags or []) if tag in full and run_id not in full[tag].holder_run_ids]
        if blocking:
            briefs[run_id] = f"tag {blocking[0]!r} limit full ({full[blocking[0]].limit} running)"
    return briefs


def _tag_reasons(run: TaskRun) -> list[Reason]:
    tags = list(run.tags or [])
    if not tags:
        return []
    run_id = str(run.id)
    full = [
        limit
        for limit in concurrency_holders(tags=tags)
        if run_id not in limit.holder_run_ids and len(limit.holder_run_ids) >= limit.limit
    ]
    if not full:
        return []
    ids = {holder for limit in full for holder in limit.holder_run_ids[:MAX_HOLDERS]}
    known = {
        str(row["id"]): row
        for row in TaskRun.objects.filter(pk__in=ids).values("id", "name", "state_name", "flow_run_id")
    }
    reasons = []
    for limit in full:
        holders = []
        for holder in limit.holder_run_ids[:MAX_HOLDERS]:
            row = known.get(holder)
            holders.append(
                {
                    "id": holder,
                    "name": row["name"] if row else None,
                    "state_name": row["state_name"] if row else None,
                    "flow_run_id": str(row["flow_run_id"]) if row and row["flow_run_id"] else None,
                }
            )
        names = ", ".join(repr(holder["name"] or holder["id"]) for holder in holders)
        message = f"the concurrency limit for tag {limit.tag!r} is full ({limit.limit} running: {names})"
        details = {"tag": limit.tag, "limit": limit.limit, "active": len(limit.holder_run_ids), "holders": holders}
        reasons.append(Reason("tag_concurrency_full", message, details))
    return reasons


def _upstream_reasons(run: TaskRun) -> list[Reason]:
    if run.state_type not in (StateType.PENDING, StateType.SCHEDULED):
        return []
    upstream: set[str] = set()
    for inputs in (run.task_inputs or {}).values():
        for item in inputs or []:
            if isinstance(item, dict) and item.get("input_type") == "task_run" and item.get("id"):
                upstream.add(str(item["id"]))
    if not upstream:
        return []
    rows = list(
        TaskRun.objects.filter(pk__in=upstream)
        .exclude(state_type__in=TERMINAL_TYPES)
        .order_by("created")
        .values("id", "name", "state_name")
    )
    if not rows:
        return []
    names = ", ".join(repr(row["name"]) for row in rows)
    message = f"it waits for {len(rows)} upstream task run{'s' if len(rows) != 1 else ''} to finish: {names}"
    return [Reason("upstream_not_finished", message, {"upstream": _holders(rows)})]
