"""The orchestration policies: reading these lists tells you everything the engine enforces, in order.

A forced proposal (`force=True`) skips the policy but is still stored with its bookkeeping and event.
"""

from apps.deployments.rules import EnforceDeploymentConcurrencyLimit
from apps.orchestration.rules.caching import AnswerFromCache
from apps.orchestration.rules.concurrency import EnforceConcurrencyLimits
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
from apps.work_pools.rules import EnforceWorkPoolConcurrencyLimits

FLOW_RUN_POLICY = [
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
    EnforceDeploymentConcurrencyLimit,
    EnforceWorkPoolConcurrencyLimits,
]

TASK_RUN_POLICY = [
    RejectDuplicateTransitions,
    RejectStaleProposals,
    CancellingOnlyActiveRuns,
    PreventLeavingTerminalTaskRuns,
    ResetRetriesOfTasksRerunByFlow,
    WaitForScheduledTime,
    RetryFailedRuns,
    AnswerFromCache,
    EnforceConcurrencyLimits,
]
