"""Bookkeeping: run details the engine keeps on every stored state, forced ones included.

These are not decisions (they never refuse a proposal); they keep start and end times, run counts,
total run time and start lateness true to the state history.
"""

from __future__ import annotations

from typing import Any

from apps.core.db import fetch_value
from apps.orchestration.rules.base import RunKind, TransitionContext
from apps.work_pools.dispatch import flow_run_dispatch_mark, flow_run_dispatch_on_commit
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
        flow_run_dispatch_mark(context)  # a celery pool's run is sent to its Celery queue (after commit)


def after_state_stored(context: TransitionContext, state_row: Any) -> None:
    """A celery pool's run marked as sent is sent once the transaction commits (a state-stored hook)."""
    if context.kind == RunKind.FLOW_RUN and getattr(context.run, "dispatched_at", None) is not None:
        flow_run_dispatch_on_commit(context)


def _flow_run_model(task_run: Any) -> Any:
    """The model of a task run's flow run, found through its foreign key (the engine imports no other app)."""
    return task_run._meta.get_field("flow_run").related_model
