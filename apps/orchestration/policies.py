"""The orchestration policies: reading these lists tells you everything the engine enforces, in order.

A forced proposal (`force=True`) skips the policy but is still stored with its bookkeeping, its event and the
state-stored hooks. Rules that belong to a domain app (a deployment's, a work pool's, a tag concurrency limit)
live in that app and are named here by dotted path, the way Django names middleware: the engine imports no
other app, and `manage.py check` reports a name that does not resolve to a Rule (apps/orchestration/checks.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.utils.module_loading import import_string

from apps.orchestration.rules.base import Rule, RunKind, TransitionContext
from apps.orchestration.rules.caching import AnswerFromCache
from apps.orchestration.rules.core import (
    AbortSecondClaim,
    PreventLeavingTerminalFlowRuns,
    PreventLeavingTerminalTaskRuns,
    RejectDuplicateTransitions,
    RejectStaleProposals,
    WaitForScheduledTime,
)
from apps.orchestration.rules.pausing import (
    CancellingOnlyActiveRuns,
    CancelRunsNotStarted,
    FailExpiredPauses,
    OnlyPauseRunningRuns,
)
from apps.orchestration.rules.retries import ResetRetriesOfTasksRerunByFlow, RetryFailedRuns

# A policy entry: a rule class, or the dotted path of one in a domain app.
Policy = list[type[Rule] | str]

FLOW_RUN_POLICY: Policy = [
    RejectDuplicateTransitions,
    RejectStaleProposals,
    AbortSecondClaim,
    CancellingOnlyActiveRuns,
    PreventLeavingTerminalFlowRuns,
    CancelRunsNotStarted,
    OnlyPauseRunningRuns,
    FailExpiredPauses,
    WaitForScheduledTime,
    RetryFailedRuns,
    "apps.deployments.rules.EnforceDeploymentConcurrencyLimit",
    "apps.work_pools.rules.EnforceWorkPoolConcurrencyLimits",
]

TASK_RUN_POLICY: Policy = [
    RejectDuplicateTransitions,
    RejectStaleProposals,
    CancellingOnlyActiveRuns,
    PreventLeavingTerminalTaskRuns,
    ResetRetriesOfTasksRerunByFlow,
    WaitForScheduledTime,
    RetryFailedRuns,
    AnswerFromCache,
    "apps.concurrency.rules.EnforceConcurrencyLimits",
]

POLICIES: dict[RunKind, Policy] = {RunKind.FLOW_RUN: FLOW_RUN_POLICY, RunKind.TASK_RUN: TASK_RUN_POLICY}

# Each kind's run model, state history model (as Django app labels) and the history's field naming the run.
RUN_MODELS: dict[RunKind, tuple[str, str, str]] = {
    RunKind.FLOW_RUN: ("runs.FlowRun", "runs.FlowRunState", "flow_run"),
    RunKind.TASK_RUN: ("runs.TaskRun", "runs.TaskRunState", "task_run"),
}

# Called with (context, state_row) for every stored state, forced ones included, in the same transaction, after
# the rules' after_transition hooks. Each hook checks the kind and transition it cares about.
STATE_STORED_HOOKS: list[str] = [
    "apps.concurrency.rules.release_slots_on_leaving_running",
    "apps.orchestration.rules.caching.store_cache_entry",
]


def resolve_policy(policy: Policy) -> list[type[Rule]]:
    """The policy's rule classes, in order (dotted paths imported); a name that is not a Rule raises."""
    rules: list[type[Rule]] = []
    for entry in policy:
        rule = import_string(entry) if isinstance(entry, str) else entry
        if not (isinstance(rule, type) and issubclass(rule, Rule)):
            raise TypeError(f"policy entry {entry!r} is not a Rule class")
        rules.append(rule)
    return rules


@functools.cache
def state_stored_hooks() -> list[Callable[[TransitionContext, Any], None]]:
    """STATE_STORED_HOOKS imported once."""
    return [import_string(path) for path in STATE_STORED_HOOKS]
