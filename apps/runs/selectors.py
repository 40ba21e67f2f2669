"""Reads for runs."""

from __future__ import annotations

import uuid

from django.db import connection
from django.db.models import Q, QuerySet

from apps.runs.models import FlowRun, FlowRunState, TaskRun, TaskRunState


def filter_by_tags(queryset: QuerySet, tags: list[str]) -> QuerySet:
    """Runs carrying every one of `tags` (a JSON containment test; SQLite has no JSON `contains`)."""
    table = queryset.model._meta.db_table
    for tag in tags:
        if connection.vendor == "postgresql":
            queryset = queryset.filter(tags__contains=[tag])
        else:
            queryset = queryset.extra(
                where=[f'EXISTS (SELECT 1 FROM json_each("{table}"."tags") WHERE json_each.value = %s)'],
                params=[tag],
            )
    return queryset


def flow_run_states(*, run: FlowRun) -> QuerySet[FlowRunState]:
    return run.states.order_by("timestamp", "created")


def task_run_states(*, run: TaskRun) -> QuerySet[TaskRunState]:
    return run.states.order_by("timestamp", "created")


def flow_run_graph(*, run: FlowRun) -> dict:
    """The flow run's task runs and the dependency edges recorded in their task inputs."""
    task_runs = list(
        TaskRun.objects.filter(flow_run=run)
        .order_by("created")
        .values("id", "name", "task_key", "state_type", "state_name", "start_time", "end_time", "task_inputs")
    )
    known = {str(task_run["id"]) for task_run in task_runs}
    nodes, edges = [], []
    for task_run in task_runs:
        upstream = []
        for argument, inputs in (task_run.pop("task_inputs") or {}).items():
            for item in inputs or []:
                if isinstance(item, dict) and item.get("input_type") == "task_run" and str(item.get("id")) in known:
                    upstream.append(str(item["id"]))
                    edges.append({"from": str(item["id"]), "to": str(task_run["id"]), "argument": argument})
        nodes.append({**task_run, "id": str(task_run["id"]), "upstream": sorted(set(upstream))})
    subflows = list(
        FlowRun.objects.filter(parent_task_run__flow_run=run).values("id", "name", "parent_task_run_id", "state_type")
    )
    return {
        "flow_run": str(run.id),
        "nodes": nodes,
        "edges": edges,
        "subflow_runs": [
            {**row, "id": str(row["id"]), "parent_task_run_id": str(row["parent_task_run_id"])} for row in subflows
        ],
    }


def flow_runs_recent(
    *,
    state_types: list[str] | None = None,
    state_names: list[str] | None = None,
    flow_name: str | None = None,
    limit: int = 20,
) -> list[FlowRun]:
    """The newest flow runs, optionally in any of the given state types or names, of one flow."""
    queryset = FlowRun.objects.select_related("flow").order_by("-created", "-id")
    if state_types or state_names:
        queryset = queryset.filter(Q(state_type__in=state_types or []) | Q(state_name__in=state_names or []))
    if flow_name:
        queryset = queryset.filter(flow__name=flow_name)
    return list(queryset[:limit])


def flow_run_get(*, run_id: uuid.UUID) -> FlowRun | None:
    return FlowRun.objects.select_related("flow").filter(pk=run_id).first()
