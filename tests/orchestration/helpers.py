"""Build runs in a given state through the real services and engine, and check what a proposal stored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from apps.events.models import Event
from apps.flows.models import Flow
from apps.orchestration import engine
from apps.runs import services
from apps.runs.models import FlowRun, TaskRun
from orchestrator.states import (
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    Paused,
    Pending,
    Running,
    Scheduled,
    State,
    utcnow,
)

StateFactory = Callable[[], State]


def _past_schedule() -> State:
    return Scheduled(scheduled_time=utcnow() - timedelta(minutes=1))


# The ordinary road to each starting state: the first entry is the run's initial state, every next one
# is proposed through the engine and must be accepted.
PATHS: dict[str, list[StateFactory]] = {
    "Scheduled": [_past_schedule],
    "Pending": [Pending],
    "Running": [Pending, Running],
    "Paused": [Pending, Running, Paused],
    "Cancelling": [Pending, Running, Cancelling],
    "Completed": [Pending, Running, Completed],
    "Failed": [Pending, Running, Failed],
    "Cancelled": [Pending, Running, Cancelling, Cancelled],
    "Crashed": [Pending, Running, Crashed],
}


def kind_of(run: FlowRun | TaskRun) -> str:
    return engine.FLOW_RUN if isinstance(run, FlowRun) else engine.TASK_RUN


def propose(run: FlowRun | TaskRun, state: State, **kwargs: Any) -> engine.OrchestrationResult:
    return engine.propose_state(kind=kind_of(run), run_id=run.id, state=state, **kwargs)


def walk(run: FlowRun | TaskRun, *states: State) -> FlowRun | TaskRun:
    """Propose each state in turn, insisting every one is accepted; return the refreshed run."""
    for state in states:
        result = propose(run, state)
        assert result.accepted, f"{state!r} was not accepted: {result.status} {result.reason}"
    run.refresh_from_db()
    return run


def flow_run_in(flow: Flow, initial: str | list[StateFactory], **create_kwargs: Any) -> FlowRun:
    """A flow run that reached `initial` (a name from PATHS, or an explicit road) through the engine."""
    road = PATHS[initial] if isinstance(initial, str) else initial
    run, _ = services.flow_run_create(flow=flow, state=road[0](), **create_kwargs)
    return walk(run, *(factory() for factory in road[1:]))


def task_run_in(
    flow_run: FlowRun | None, initial: str | list[StateFactory], *, task_key: str = "task", **create_kwargs: Any
) -> TaskRun:
    """A task run that reached `initial` through the engine."""
    road = PATHS[initial] if isinstance(initial, str) else initial
    run, _ = services.task_run_create(flow_run=flow_run, task_key=task_key, state=road[0](), **create_kwargs)
    return walk(run, *(factory() for factory in road[1:]))


def history_names(run: FlowRun | TaskRun) -> list[str]:
    return list(run.states.order_by("timestamp", "created").values_list("name", flat=True))


def check_proposal(
    run: FlowRun | TaskRun, proposal: State, status: str, stored: str, **kwargs: Any
) -> engine.OrchestrationResult:
    """Propose, then check the answer, the stored state and that history and events grew only if a state was stored."""
    before_id = run.state_id
    history_before = run.states.count()
    events_before = Event.objects.filter(resource_id=run.id).count()

    result = propose(run, proposal, **kwargs)

    assert (result.status.value, result.state.name) == (status, stored), result.reason
    run.refresh_from_db()
    assert run.state_name == stored
    written = 1 if run.state_id != before_id else 0
    if status == "ACCEPT":
        assert written == 1
    if status in ("WAIT", "ABORT"):
        assert written == 0
    assert run.states.count() == history_before + written
    assert Event.objects.filter(resource_id=run.id).count() == events_before + written
    return result
