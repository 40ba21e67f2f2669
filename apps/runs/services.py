"""Writes for flow runs and task runs. State changes always go through the orchestration engine."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import IntegrityError, transaction

from apps.concurrency.services import concurrency_slots_release
from apps.core.errors import Conflict, InvalidInput
from apps.core.names import generate_run_name
from apps.flows.models import Flow
from apps.orchestration import engine
from apps.orchestration.rules.base import RunKind, Status
from apps.runs.models import FlowRun, TaskRun
from orchestrator.states import Pending, State, StateType


def flow_run_create(
    *,
    flow: Flow,
    name: str | None = None,
    parameters: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    state: State | None = None,
    next_state: State | None = None,
    deployment_id: uuid.UUID | None = None,
    parent_task_run: TaskRun | None = None,
    idempotency_key: str | None = None,
    work_pool_name: str | None = None,
    work_queue_name: str | None = None,
    flow_version: str | None = None,
    empirical_policy: dict[str, Any] | None = None,
) -> tuple[FlowRun, bool]:
    """Create a flow run with its first state (Pending unless given); returns (run, created).

    With an idempotency key already used for this flow, the existing run is returned instead.
    """
    if idempotency_key:
        existing = FlowRun.objects.filter(flow=flow, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            run = FlowRun(
                flow=flow,
                name=name or generate_run_name(),
                parameters=parameters or {},
                tags=tags or [],
                deployment_id=deployment_id,
                parent_task_run=parent_task_run,
                idempotency_key=idempotency_key,
                work_pool_name=work_pool_name,
                work_queue_name=work_queue_name,
                flow_version=flow_version,
                empirical_policy=empirical_policy or {},
            )
            _give_initial_state(engine.FLOW_RUN, run, state, next_state)
    except IntegrityError:
        if idempotency_key:
            existing = FlowRun.objects.filter(flow=flow, idempotency_key=idempotency_key).first()
            if existing is not None:
                return existing, False
        raise
    return run, True


def _give_initial_state(
    kind: RunKind, run: FlowRun | TaskRun, state: State | None, next_state: State | None = None
) -> None:
    """The first state goes through the policy too; one it makes wait (e.g. a full concurrency limit) starts
    the run as Pending, and the client proposes it again. With `next_state` (a client starting the run at
    once: Pending, then Running) both are decided and written in the same transaction."""
    states = [state or Pending(), *([next_state] if next_state is not None else [])]
    result = engine.set_initial_states(kind=kind, run=run, states=states)
    if result.state is None and result.status == Status.WAIT:
        result = engine.set_initial_state(kind=kind, run=run, state=Pending(message=result.reason))
    if result.state is None:
        raise InvalidInput(f"the initial state was refused: {result.reason}", field="state")


def flow_run_update(
    *,
    run: FlowRun,
    name: str | None = None,
    tags: list[str] | None = None,
    parameters: dict | None = None,
    worker_name: str | None = None,
    infrastructure_pid: str | None = None,
) -> FlowRun:
    """Change the fields given (None: keep). A worker records itself and the run's process with
    `worker_name` and `infrastructure_pid`."""
    fields = []
    values = (
        ("name", name),
        ("tags", tags),
        ("parameters", parameters),
        ("worker_name", worker_name),
        ("infrastructure_pid", infrastructure_pid),
    )
    for field, value in values:
        if value is not None:
            setattr(run, field, value)
            fields.append(field)
    if fields:
        run.save(update_fields=[*fields, "updated"])
    return run


def flow_run_delete(*, run: FlowRun) -> None:
    """Delete the run with its task runs, freeing the concurrency slots they hold."""
    with transaction.atomic():
        concurrency_slots_release(
            task_run_ids=[str(pk) for pk in TaskRun.objects.filter(flow_run=run).values_list("pk", flat=True)],
            flow_run_ids=[str(run.pk)],
        )
        run.delete()


def task_run_delete(*, run: TaskRun) -> None:
    """Delete the task run, freeing the concurrency slots it holds."""
    with transaction.atomic():
        concurrency_slots_release(task_run_ids=[str(run.pk)])
        run.delete()


def flow_run_resume(*, run: FlowRun, run_input: dict[str, Any] | None = None) -> engine.OrchestrationResult:
    """Resume a paused run: a Suspended run is rescheduled for a worker, a Paused one continues in place.
    `run_input` (what a pause that asked for typed input receives, already validated) travels in the new
    state's details as `run_input`."""
    if run.state_type != StateType.PAUSED:
        raise Conflict(f"only a paused run can be resumed; this run is {run.state_name}")
    details = {"run_input": run_input} if run_input is not None else {}
    if run.state_name == "Suspended":
        from orchestrator.states import Scheduled

        proposal = Scheduled(message="Resumed", state_details=details)
    else:
        from orchestrator.states import Running

        proposal = Running(message="Resumed", state_details=details)
    return engine.propose_state(kind=engine.FLOW_RUN, run_id=run.id, state=proposal)


def _task_run_name(task_key: str) -> str:
    """A readable name for a task run nobody named: the task's function name and a generated suffix."""
    return f"{task_key.rsplit('.', 1)[-1]}-{generate_run_name()}"


def task_run_create(
    *,
    flow_run: FlowRun | None = None,
    flow_run_id: uuid.UUID | str | None = None,
    task_key: str,
    dynamic_key: str = "0",
    name: str | None = None,
    tags: list[str] | None = None,
    cache_key: str | None = None,
    cache_expiration=None,
    task_inputs: dict[str, Any] | None = None,
    task_version: str | None = None,
    empirical_policy: dict[str, Any] | None = None,
    state: State | None = None,
    next_state: State | None = None,
) -> tuple[TaskRun, bool]:
    """Create a task run with its first state; the same (flow run, task key, dynamic key) returns the existing one.

    The common case (a new run) costs one transaction and no lookup: a duplicate is caught by the unique
    constraint and answered with the run that exists."""
    try:
        with transaction.atomic():
            run = TaskRun(
                flow_run_id=flow_run_id if flow_run_id is not None else (flow_run.pk if flow_run else None),
                task_key=task_key,
                dynamic_key=dynamic_key,
                name=name or _task_run_name(task_key),
                tags=tags or [],
                cache_key=cache_key,
                cache_expiration=cache_expiration,
                task_inputs=task_inputs or {},
                task_version=task_version,
                empirical_policy=empirical_policy or {},
            )
            _give_initial_state(engine.TASK_RUN, run, state, next_state)
    except IntegrityError:
        existing = TaskRun.objects.filter(
            flow_run_id=run.flow_run_id, task_key=task_key, dynamic_key=dynamic_key
        ).first()
        if existing is not None:
            return existing, False
        raise
    return run, True


def task_run_update(*, run: TaskRun, name: str | None = None, tags: list[str] | None = None) -> TaskRun:
    fields = []
    for field, value in (("name", name), ("tags", tags)):
        if value is not None:
            setattr(run, field, value)
            fields.append(field)
    if fields:
        run.save(update_fields=[*fields, "updated"])
    return run


def task_runs_record(
    *, task_runs: list[dict[str, Any]], states: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Record what clients already did: new task runs with the states they went through, then later states
    of task runs. The SDK runs simple tasks (no cache key, no tags, no retries) without waiting for the server,
    whose policy cannot refuse them, and sends batches of these records in the background.

    Each state still goes through the engine's policy, at the client's time (kept between the run's current
    state and now). Runs already recorded (a batch sent twice) and runs of unknown flow runs are skipped and
    reported; answers are `(task run answers, state answers)`, in the order given."""
    try:
        return _task_runs_record(task_runs, states)
    except IntegrityError as exc:
        raise Conflict(
            "a task run with the same flow run, task key and dynamic key is already recorded", field="task_runs"
        ) from exc


def _task_runs_record(
    task_runs: list[dict[str, Any]], states: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    run_answers: list[dict[str, Any]] = []
    state_answers: list[dict[str, Any]] = []
    with transaction.atomic():
        ids = [item["id"] for item in task_runs]
        existing = {str(pk) for pk in TaskRun.objects.filter(pk__in=ids).values_list("pk", flat=True)}
        flow_run_ids = {item["flow_run"] for item in task_runs if item.get("flow_run")}
        known_flow_runs = {str(pk) for pk in FlowRun.objects.filter(pk__in=flow_run_ids).values_list("pk", flat=True)}
        new_runs, histories, positions = [], [], []
        for item in task_runs:
            run_id = str(item["id"])
            if run_id in existing:
                run_answers.append({"id": run_id, "status": "EXISTS"})
                continue
            if item.get("flow_run") and str(item["flow_run"]) not in known_flow_runs:
                run_answers.append({"id": run_id, "status": "NOT_FOUND", "reason": "no such flow run"})
                continue
            existing.add(run_id)  # the same id twice in one batch: the first one counts
            task_key = item["task_key"]
            new_runs.append(
                TaskRun(
                    id=item["id"],
                    flow_run_id=item.get("flow_run"),
                    task_key=task_key,
                    dynamic_key=item.get("dynamic_key") or "0",
                    name=item.get("name") or _task_run_name(task_key),
                    tags=item.get("tags") or [],
                    task_inputs=item.get("task_inputs") or {},
                    task_version=item.get("task_version"),
                    empirical_policy=item.get("empirical_policy") or {},
                )
            )
            histories.append([(state, state.timestamp) for state in item["states"]])
            positions.append(len(run_answers))
            run_answers.append({})
        if new_runs:
            results = engine.set_initial_histories_in_bulk(kind=engine.TASK_RUN, runs=new_runs, histories=histories)
            for position, run, result in zip(positions, new_runs, results, strict=True):
                run_answers[position] = {
                    "id": str(run.id),
                    "status": result.status.value,
                    "state": result.state.to_json() if result.state else None,
                    "reason": result.reason,
                }
        for item in states:
            state = item["state"]
            result = engine.propose_state(
                kind=engine.TASK_RUN, run_id=item["task_run"], state=state, occurred_at=state.timestamp
            )
            state_answers.append(
                {
                    "task_run": str(item["task_run"]),
                    "status": result.status.value,
                    "state": result.state.to_json() if result.state else None,
                    "reason": result.reason,
                }
            )
    return run_answers, state_answers
