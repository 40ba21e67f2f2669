"""Reads for the dashboard, flows, deployments, work pools and concurrency pages.

Every read is bounded: the dashboard aggregates over an indexed time range (runs by state type and expected
start time, the index `flow_run_state_type_start`), lists are sliced, and per-row facts (a flow's last run,
a deployment's next run) come from one correlated subquery each, never from a query per row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.utils import timezone

from apps.concurrency.models import ConcurrencyLease, ConcurrencyLimit, GlobalConcurrencyLimit
from apps.concurrency.selectors import holders_by_limit
from apps.deployments.models import Deployment, DeploymentSchedule
from apps.flows.models import Flow
from apps.runs.models import FlowRun, TaskRun
from apps.work_pools.models import Worker, WorkPool, WorkQueue, heartbeat_cutoff
from orchestrator.states import StateType

CHART_HOURS = 24
# The order the chart stacks state types in, bottom first.
CHART_STATE_TYPES = [
    StateType.COMPLETED,
    StateType.FAILED,
    StateType.CRASHED,
    StateType.CANCELLED,
    StateType.CANCELLING,
    StateType.PAUSED,
    StateType.RUNNING,
    StateType.PENDING,
    StateType.SCHEDULED,
]
# A count shown on the dashboard stops here ("1000+"): counting every late run of a large backlog is not needed.
COUNT_CAP = 1000


@dataclass
class HourlyCounts:
    """Runs per hour (by expected start time) and state type over the last `CHART_HOURS` hours."""

    hours: list[datetime]
    counts: dict[str, list[int]]

    @property
    def total(self) -> int:
        return sum(sum(values) for values in self.counts.values())


def runs_by_hour(*, now: datetime | None = None) -> HourlyCounts:
    """Runs per hour and state type in one statement: a UNION ALL of one grouped count per hour, each reading only
    its range of the index (state type, expected start time), which covers it.

    Grouping by an hour computed per row, or one filtered count per hour, calls a function per row (five times
    slower on SQLite with a day of 33,000 runs); 24 ORM querysets cost more to build than the database takes to
    answer, hence the statement is written once here, with the table and columns named from the model."""
    now = now or timezone.now()
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    hours = [end - timedelta(hours=CHART_HOURS - index) for index in range(CHART_HOURS)]
    quote = connection.ops.quote_name
    table, state_type, start_time = (
        quote(FlowRun._meta.db_table),
        quote(FlowRun._meta.get_field("state_type").column),
        quote(FlowRun._meta.get_field("expected_start_time").column),
    )
    types = [state.value for state in CHART_STATE_TYPES]
    one_hour = (
        f"SELECT %s, {state_type}, COUNT(*) FROM {table} WHERE {state_type} IN ({', '.join(['%s'] * len(types))}) "
        f"AND {start_time} >= %s AND {start_time} < %s GROUP BY {state_type}"
    )
    adapt = connection.ops.adapt_datetimefield_value
    params: list[Any] = []
    for index, start in enumerate(hours):
        params += [index, *types, adapt(start), adapt(min(start + timedelta(hours=1), now))]
    counts = {state.value: [0] * CHART_HOURS for state in CHART_STATE_TYPES}
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join([one_hour] * CHART_HOURS), params)
        for hour, state, count in cursor.fetchall():
            counts[state][hour] += count
    return HourlyCounts(hours=hours, counts=counts)


def capped_count(queryset: QuerySet) -> int:
    """How many rows, counting at most COUNT_CAP + 1 of them."""
    return queryset.order_by()[: COUNT_CAP + 1].count()


def late_runs(*, limit: int = 10) -> tuple[list[FlowRun], int]:
    """The Late runs (oldest expected start first) and how many there are (capped)."""
    queryset = FlowRun.objects.filter(state_name="Late")
    runs = list(queryset.select_related("flow").order_by("expected_start_time")[:limit])
    return runs, capped_count(queryset.values("id"))


def failed_runs_recent(*, now: datetime | None = None, limit: int = 10) -> tuple[list[FlowRun], int]:
    """Failed and Crashed runs expected to start in the last 24 h (newest first) and how many (capped). One
    query per state type, each read in the order of its index range; the newest of both are kept."""
    since = (now or timezone.now()) - timedelta(hours=CHART_HOURS)
    runs: list[FlowRun] = []
    for state_type in (StateType.FAILED, StateType.CRASHED):
        runs += (
            FlowRun.objects.select_related("flow")
            .filter(state_type=state_type, expected_start_time__gte=since)
            .order_by("-expected_start_time")[:limit]
        )
    runs.sort(key=lambda run: run.expected_start_time, reverse=True)
    queryset = FlowRun.objects.filter(
        state_type__in=[StateType.FAILED, StateType.CRASHED], expected_start_time__gte=since
    )
    return runs[:limit], capped_count(queryset.values("id"))


def upcoming_runs(*, now: datetime | None = None, limit: int = 10) -> list[FlowRun]:
    """The next Scheduled runs still ahead, soonest first."""
    return list(
        FlowRun.objects.select_related("flow", "deployment")
        .filter(state_type=StateType.SCHEDULED, expected_start_time__gte=now or timezone.now())
        .order_by("expected_start_time")[:limit]
    )


@dataclass
class PoolHealth:
    pool: WorkPool
    workers: list[Worker] = field(default_factory=list)
    online: int = 0


def work_pools_health(*, now: datetime | None = None) -> list[PoolHealth]:
    """Every pool with its workers, each marked online or offline by heartbeat age (two queries)."""
    now = now or timezone.now()
    cutoff = heartbeat_cutoff(now)
    pools = list(
        WorkPool.objects.order_by("name").prefetch_related(
            Prefetch("workers", queryset=Worker.objects.order_by("-last_heartbeat_at", "name"))
        )
    )
    health = []
    for pool in pools:
        workers = list(pool.workers.all())
        for worker in workers:
            worker.is_online = worker.last_heartbeat_at >= cutoff
            worker.heartbeat_age = (now - worker.last_heartbeat_at).total_seconds()
        health.append(PoolHealth(pool=pool, workers=workers, online=sum(1 for w in workers if w.is_online)))
    return health


def work_pools_detail(*, now: datetime | None = None) -> list[PoolHealth]:
    """Pools with their queues (priority order) and workers (three queries)."""
    health = work_pools_health(now=now)
    queues: dict[uuid.UUID, list[WorkQueue]] = {}
    for queue in WorkQueue.objects.filter(pool_id__in=[item.pool.id for item in health]).order_by("priority", "name"):
        queues.setdefault(queue.pool_id, []).append(queue)
    for item in health:
        item.pool.queue_list = queues.get(item.pool.id, [])
    return health


def _last_run_subquery(column: str) -> Subquery:
    return Subquery(FlowRun.objects.filter(flow=OuterRef("pk")).order_by("-created", "-id").values(column)[:1])


def flows_overview() -> list[Flow]:
    """Flows with their deployments and their newest run (one subquery on `flow_run_flow_created`)."""
    flows = list(
        Flow.objects.order_by("name")
        .only("id", "name", "tags", "created")
        .annotate(last_run_id=_last_run_subquery("id"))
        .prefetch_related(
            Prefetch(
                "deployments", queryset=Deployment.objects.only("id", "name", "paused", "flow_id").order_by("name")
            )
        )
    )
    runs = FlowRun.objects.only("id", "name", "state_type", "state_name", "state_timestamp").in_bulk(
        [flow.last_run_id for flow in flows if flow.last_run_id]
    )
    for flow in flows:
        flow.last_run = runs.get(flow.last_run_id)
    return flows


def _next_runs_of_deployment(now: datetime) -> QuerySet[FlowRun]:
    # The index flow_run_deployment_start seeks to `now`; runs ahead of now are (nearly) all Scheduled.
    return FlowRun.objects.filter(
        deployment_id=OuterRef("pk"), state_type=StateType.SCHEDULED, expected_start_time__gte=now
    ).order_by("expected_start_time")


def deployments_overview(*, now: datetime | None = None) -> list[Deployment]:
    """Deployments with flow, schedules and the time of their next Scheduled run (three queries)."""
    now = now or timezone.now()
    schedules = DeploymentSchedule.objects.only("id", "deployment_id", "schedule", "active").order_by("created", "id")
    return list(
        Deployment.objects.select_related("flow")
        .only("id", "name", "paused", "work_pool_name", "flow__name")
        .prefetch_related(Prefetch("schedules", queryset=schedules))
        .annotate(next_run_time=Subquery(_next_runs_of_deployment(now).values("expected_start_time")[:1]))
        .order_by("flow__name", "name")
    )


def deployment_next_runs(*, deployment: Deployment, now: datetime | None = None, limit: int = 5) -> list[FlowRun]:
    return list(
        FlowRun.objects.filter(
            deployment_id=deployment.id, state_type=StateType.SCHEDULED, expected_start_time__gte=now or timezone.now()
        ).order_by("expected_start_time")[:limit]
    )


def deployment_recent_runs(*, deployment: Deployment, now: datetime | None = None, limit: int = 10) -> list[FlowRun]:
    """The deployment's newest runs but those still ahead (the next runs list them; the index
    flow_run_deployment_created, skipping the few scheduled ahead)."""
    return list(
        FlowRun.objects.filter(deployment_id=deployment.id)
        .exclude(state_type=StateType.SCHEDULED, expected_start_time__gt=now or timezone.now())
        .order_by("-created", "-id")[:limit]
    )


@dataclass
class SlotHolder:
    task_run_id: str | None
    name: str
    flow_run_id: str | None
    flow_run_name: str | None
    slots: int = 1


def _slot_holders(leases: list[ConcurrencyLease]) -> dict[str, SlotHolder]:
    """Lease id -> who holds it: a task run (with its flow run), a flow run, or a client (three queries)."""
    task_run_ids, flow_run_ids = set(), set()
    for lease in leases:
        try:
            holder_id = uuid.UUID(lease.holder_id)
        except ValueError:
            continue
        if lease.holder_kind == ConcurrencyLease.HolderKind.TASK_RUN:
            task_run_ids.add(holder_id)
        elif lease.holder_kind == ConcurrencyLease.HolderKind.FLOW_RUN:
            flow_run_ids.add(holder_id)
    task_runs = {
        str(row["id"]): row
        for row in TaskRun.objects.filter(id__in=task_run_ids).values("id", "name", "flow_run_id", "flow_run__name")
    }
    flow_runs = {
        str(row["id"]): row["name"] for row in FlowRun.objects.filter(id__in=flow_run_ids).values("id", "name")
    }
    holders = {}
    for lease in leases:
        if lease.holder_kind == ConcurrencyLease.HolderKind.TASK_RUN:
            row = task_runs.get(lease.holder_id)
            holders[str(lease.pk)] = SlotHolder(
                task_run_id=lease.holder_id,
                name=row["name"] if row else "(gone)",
                flow_run_id=str(row["flow_run_id"]) if row and row["flow_run_id"] else None,
                flow_run_name=row["flow_run__name"] if row else None,
                slots=lease.slots,
            )
        elif lease.holder_kind == ConcurrencyLease.HolderKind.FLOW_RUN and lease.holder_id in flow_runs:
            holders[str(lease.pk)] = SlotHolder(
                task_run_id=None,
                name=f"{lease.slots} slot(s)",
                flow_run_id=lease.holder_id,
                flow_run_name=flow_runs[lease.holder_id],
                slots=lease.slots,
            )
        else:
            holders[str(lease.pk)] = SlotHolder(
                task_run_id=None,
                name=f"{lease.holder_kind} {lease.holder_id[:12]}: {lease.slots} slot(s)",
                flow_run_id=None,
                flow_run_name=None,
                slots=lease.slots,
            )
    return holders


def concurrency_overview() -> list[dict[str, Any]]:
    """Tag limits with their slots in use and the task runs (and their flow runs) holding them, from the
    unexpired leases."""
    return _limits_with_holders(list(ConcurrencyLimit.objects.order_by("tag")), "limit")


def global_concurrency_overview() -> list[dict[str, Any]]:
    """Global limits with their slots in use and who holds them."""
    return _limits_with_holders(list(GlobalConcurrencyLimit.objects.order_by("name")), "global_limit")


def _limits_with_holders(limits: list[Any], field: str) -> list[dict[str, Any]]:
    leases = holders_by_limit(field=field, ids=[limit.pk for limit in limits])
    holders = _slot_holders([lease for held in leases.values() for lease in held])
    return [
        {
            "limit": limit,
            "in_use": sum(lease.slots for lease in leases[limit.pk]),
            "holders": [holders[str(lease.pk)] for lease in leases[limit.pk]],
        }
        for limit in limits
    ]
