"""Rules every run obeys: no duplicate or stale proposals, one claim, final terminal states, start times."""

from __future__ import annotations

from django.conf import settings

from apps.orchestration.rules.base import Rule, RunKind, TransitionContext
from orchestrator.states import ALL_TYPES, TERMINAL_TYPES, StateType


class RejectDuplicateTransitions(Rule):
    """A client retrying a request (same `transition_id`) gets the stored state back; nothing is doubled."""

    def before_transition(self, context: TransitionContext) -> None:
        transition_id = context.proposed_state.state_details.get("transition_id")
        if context.initial_state is None or not transition_id:
            return
        if context.initial_state.state_details.get("transition_id") == transition_id:
            context.reject("this transition was already applied (same transition_id)")


class RejectStaleProposals(Rule):
    """A proposal made before the run's current state was stored comes from a client that is behind."""

    FROM_STATES = ALL_TYPES

    def before_transition(self, context: TransitionContext) -> None:
        if context.proposed_at is None or context.initial_state is None:
            return
        if context.proposed_at < context.initial_state.timestamp:
            context.reject(f"stale proposal: the run moved to {context.from_state.name} after this state was proposed")


class AbortSecondClaim(Rule):
    """Only one client moves a run to PENDING: anyone else claiming it is told to stop."""

    FROM_STATES = frozenset({StateType.PENDING, StateType.RUNNING, StateType.CANCELLING}) | TERMINAL_TYPES
    TO_STATES = frozenset({StateType.PENDING})

    def before_transition(self, context: TransitionContext) -> None:
        context.abort(f"the run is already {context.from_state.name}; another client claimed it")


class PreventLeavingTerminalFlowRuns(Rule):
    """Terminal flow runs stay final; a Failed, Crashed or Cancelled run may only be retried (AwaitingRetry)."""

    FROM_STATES = TERMINAL_TYPES

    def before_transition(self, context: TransitionContext) -> None:
        is_retry = context.proposed_type == StateType.SCHEDULED and context.proposed_state.name == "AwaitingRetry"
        if is_retry and context.initial_type != StateType.COMPLETED:
            return
        context.reject(f"the run is already {context.from_state.name}, a final state")


class PreventLeavingTerminalTaskRuns(Rule):
    """Terminal task runs stay final, except when their flow run is retrying and runs them again."""

    FROM_STATES = TERMINAL_TYPES

    def before_transition(self, context: TransitionContext) -> None:
        if is_rerun_by_flow_retry(context):
            return
        context.reject(f"the run is already {context.from_state.name}, a final state")


def is_rerun_by_flow_retry(context: TransitionContext) -> bool:
    """An unsuccessful task run asked to run again by its flow run's newer attempt."""
    if context.kind != RunKind.TASK_RUN:
        return False
    run = context.task_run
    flow_run = run.flow_run
    return (
        flow_run is not None
        and flow_run.run_count > run.flow_run_run_count
        and context.initial_type in TERMINAL_TYPES - {StateType.COMPLETED}
        and context.proposed_type in (StateType.PENDING, StateType.RUNNING)
    )


class WaitForScheduledTime(Rule):
    """A run does not start before its scheduled time: the client is told how long to wait."""

    FROM_STATES = frozenset({StateType.SCHEDULED, StateType.PENDING})
    TO_STATES = frozenset({StateType.RUNNING})

    def before_transition(self, context: TransitionContext) -> None:
        if context.initial_type == StateType.SCHEDULED:
            scheduled_time = context.from_state.scheduled_time
        else:
            scheduled_time = context.run.next_scheduled_start_time
        if scheduled_time is None:
            return
        delay = (scheduled_time - context.now).total_seconds()
        if delay > settings.ORCHESTRATION_SCHEDULED_START_TOLERANCE_SECONDS:
            context.wait(delay, f"the run is scheduled to start at {scheduled_time.isoformat()}")
