"""Rules for pausing and cancelling runs."""

from __future__ import annotations

from datetime import datetime

from apps.orchestration.rules.base import Rule, TransitionContext
from orchestrator.states import Cancelled, Failed, StateType


class OnlyPauseRunningRuns(Rule):
    """Only a RUNNING run can pause (a Scheduled run that should not start is simply left Scheduled)."""

    TO_STATES = frozenset({StateType.PAUSED})

    def before_transition(self, context: TransitionContext) -> None:
        if context.initial_type not in (StateType.RUNNING, StateType.PAUSED):
            current = context.initial_state.name if context.initial_state else "without a state"
            context.reject(f"only a running run can pause; this run is {current}")


class FailExpiredPauses(Rule):
    """A paused run resumed after its pause timeout has failed instead."""

    FROM_STATES = frozenset({StateType.PAUSED})
    TO_STATES = frozenset({StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING})

    def before_transition(self, context: TransitionContext) -> None:
        timeout = context.from_state.state_details.get("pause_timeout")
        if not timeout:
            return
        deadline = datetime.fromisoformat(timeout) if isinstance(timeout, str) else timeout
        if deadline < context.now:
            context.reject("the pause timed out before the run was resumed", state=Failed(message="Pause timed out"))


class CancelRunsNotStarted(Rule):
    """Cancelling a run that nothing is executing ends it Cancelled at once (no process to stop)."""

    FROM_STATES = frozenset({None, StateType.SCHEDULED, StateType.PAUSED})
    TO_STATES = frozenset({StateType.CANCELLING})

    def before_transition(self, context: TransitionContext) -> None:
        context.reject(
            "the run had not started, so it is cancelled at once",
            state=Cancelled(message=context.proposed_state.message or "Cancelled before it started"),
        )


class CancellingOnlyActiveRuns(Rule):
    """Cancelling applies to runs that are not finished yet."""

    TO_STATES = frozenset({StateType.CANCELLING})

    def before_transition(self, context: TransitionContext) -> None:
        if context.initial_state is not None and context.initial_state.is_terminal:
            context.reject(f"the run is already {context.initial_state.name}; there is nothing to cancel")
