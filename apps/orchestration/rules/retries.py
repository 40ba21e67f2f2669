"""Retry rules: a failed run with retries left is rescheduled (AwaitingRetry) after its delay."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from apps.orchestration.rules.base import Rule, TransitionContext
from apps.orchestration.rules.core import is_rerun_by_flow_retry
from orchestrator.states import TERMINAL_TYPES, AwaitingRetry, StateType

MAX_RETRY_DELAY_SECONDS = 10**9  # about 31 years


def retry_delay_seconds(policy: dict[str, Any], run_count: int) -> float:
    """The delay before attempt `run_count + 1`: a number, or the list entry for this attempt (last repeats)."""
    delay = policy.get("retry_delay") or 0
    if isinstance(delay, list):
        delay = delay[min(run_count - 1, len(delay) - 1)] if delay else 0
    delay = float(delay)
    jitter = policy.get("retry_jitter_factor")
    if jitter and delay > 0:
        delay += random.uniform(0, delay * float(jitter))
    # A stored time must stay below year 9999, whatever a client configured.
    return min(delay, MAX_RETRY_DELAY_SECONDS)


class RetryFailedRuns(Rule):
    """RUNNING -> FAILED with retries left becomes AwaitingRetry, scheduled after the configured delay. So does a
    flow run's RUNNING -> CRASHED (its process or worker died): a worker picks the retry up again."""

    FROM_STATES = frozenset({StateType.RUNNING})
    TO_STATES = frozenset({StateType.FAILED, StateType.CRASHED})

    def before_transition(self, context: TransitionContext) -> None:
        if context.proposed_type == StateType.CRASHED and context.kind != "flow_run":
            return  # a task run crashes with its flow run's process; the flow run's retry runs it again
        policy = context.run.empirical_policy or {}
        retries = int(policy.get("retries") or 0)
        if context.run.run_count > retries:
            return
        delay = retry_delay_seconds(policy, context.run.run_count)
        retry = AwaitingRetry(
            scheduled_time=context.now + timedelta(seconds=delay),
            message=context.proposed_state.message,
            data=context.proposed_state.data,
        )
        if context.proposed_type == StateType.FAILED and context.kind == "flow_run":
            # The process that failed is alive and runs the retry itself: no worker may claim it meanwhile.
            retry.state_details["retried_by_its_process"] = True
        context.reject(
            f"retry {context.run.run_count} of {retries} in {delay:.3g} second(s)",
            state=retry,
        )
        context.delay_seconds = delay


class ResetRetriesOfTasksRerunByFlow(Rule):
    """Task retries count per flow attempt: a task run re-run by its retried flow starts counting again."""

    FROM_STATES = TERMINAL_TYPES
    TO_STATES = frozenset({StateType.PENDING, StateType.RUNNING})

    def before_transition(self, context: TransitionContext) -> None:
        if is_rerun_by_flow_retry(context):
            context.set_run_field("run_count", 0)
