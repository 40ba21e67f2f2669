"""Bookkeeping: run details the engine keeps on every stored state, forced ones included.

These are not decisions (they never refuse a proposal); they keep start and end times, run counts,
total run time and start lateness true to the state history.
"""

from __future__ import annotations

from typing import Any

from apps.core.db import fetch_value
from apps.orchestration.rules.base import RunKind, TransitionContext
from orchestrator.states import TERMINAL_TYPES, StateType


def update_run_details(context: TransitionContext) -> None:
    """Apply the stored state's effect on the run's detail fields (before the run row is saved)."""
    run = context.run
    state = context.to_state
    now = context.now
    initial_type = context.initial_type

    if state.type == StateType.SCHEDULED:
        scheduled_time = state.scheduled_time or now
        if run.expected_start_time is None:
            context.set_run_field("expected_start_time", scheduled_time)
        context.set_run_field("next_scheduled_start_time", scheduled_time)
    elif run.expected_start_time is None:
        context.set_run_field("expected_start_time", now)

    if state.type == StateType.RUNNING and initial_type != StateType.RUNNING:
        context.set_run_field("run_count", run.run_count + 1)
        context.set_run_field("next_scheduled_start_time", None)
        if run.start_time is None:
            context.set_run_field("start_time", now)
            lateness = (now - run.expected_start_time).total_seconds() if run.expected_start_time else 0.0
            context.set_run_field("estimated_start_time_delta", max(0.0, lateness))
        if context.kind == RunKind.TASK_RUN and context.task_run.flow_run_id is not None:
            flow_run_count = fetch_value(_flow_run_model(run), context.task_run.flow_run_id, "run_count")
            context.set_run_field("flow_run_run_count", flow_run_count or 0)

    # Count the stretch spent in the RUNNING state being replaced, even by another RUNNING state (Retrying).
    if initial_type == StateType.RUNNING:
        elapsed = (now - context.from_state.timestamp).total_seconds()
        context.set_run_field("total_run_time", run.total_run_time + max(0.0, elapsed))

    if state.type in TERMINAL_TYPES:
        context.set_run_field("end_time", now)
        context.set_run_field("next_scheduled_start_time", None)
    elif initial_type in TERMINAL_TYPES:
        context.set_run_field("end_time", None)

    if state.type == StateType.SCHEDULED and context.kind == RunKind.FLOW_RUN and context.flow_run.work_pool_name:
        _new_schedule_not_dispatched(context)


def _new_schedule_not_dispatched(context: TransitionContext) -> None:
    """A flow run scheduled anew has not been handed to an executor (`dispatched_at`, which the celery pool's
    dispatch consumer sets when it sends the run): except a retry after a failed attempt, which the process that
    ran the attempt waits for and runs itself. A Late run (same start time) keeps what it had."""
    run = context.flow_run
    if context.initial_type == StateType.SCHEDULED:
        if context.from_state.scheduled_time == context.to_state.scheduled_time:
            return
    followed_by_its_executor = context.initial_type == StateType.RUNNING and context.proposed_type == StateType.FAILED
    dispatched_at = context.now if followed_by_its_executor else None
    if run.dispatched_at != dispatched_at:
        context.set_run_field("dispatched_at", dispatched_at)


def _flow_run_model(task_run: Any) -> Any:
    """The model of a task run's flow run, found through its foreign key (the engine imports no other app)."""
    return task_run._meta.get_field("flow_run").related_model
