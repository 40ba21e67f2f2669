"""The orchestration rule a work pool adds: its and its queues' concurrency limits (listed in
apps/orchestration/policies.py)."""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from apps.orchestration.rules.base import Rule, TransitionContext
from apps.work_pools.models import WorkPool, WorkQueue
from apps.work_pools.selectors import active_runs_by_queue, queue_of_run
from orchestrator.states import StateType


class EnforceWorkPoolConcurrencyLimits(Rule):
    """Claiming a run of a work pool (SCHEDULED -> PENDING) needs a free slot in the pool and in the run's queue:
    with the limit's count of the pool's (or queue's) runs already Pending, Running or Cancelling, the claim WAITs.
    A paused pool or queue does not refuse claims: its workers' polls simply return none of its runs."""

    FROM_STATES = frozenset({StateType.SCHEDULED})
    TO_STATES = frozenset({StateType.PENDING})

    def before_transition(self, context: TransitionContext) -> None:
        pool_name = getattr(context.run, "work_pool_name", None)
        if not pool_name:
            return
        # The pool's row lock serialises the claims of its runs, so two claims cannot both take the last slot.
        query = WorkPool.objects.filter(name=pool_name).values_list("id", "concurrency_limit")
        if connection.features.has_select_for_update:
            query = query.select_for_update()
        found = query.first()
        if found is None:
            return
        pool_id, pool_limit = found
        queue_limits = dict(WorkQueue.objects.filter(pool_id=pool_id).values_list("name", "concurrency_limit"))
        queue_name = queue_of_run(context.flow_run.work_queue_name, set(queue_limits))
        queue_limit = queue_limits.get(queue_name)
        if pool_limit is None and queue_limit is None:
            return
        active = active_runs_by_queue(pool_name=pool_name, queue_names=set(queue_limits), exclude_run_id=context.run.pk)
        pool_active = sum(active.values())
        if pool_limit is not None and pool_active >= pool_limit:
            reason = f"work pool {pool_name!r} is at its concurrency limit ({pool_active} of {pool_limit} runs active)"
        elif queue_limit is not None and active[queue_name] >= queue_limit:
            reason = (
                f"work queue {queue_name!r} of pool {pool_name!r} is at its concurrency limit "
                f"({active[queue_name]} of {queue_limit} runs active)"
            )
        else:
            return
        context.wait(settings.ORCHESTRATION_CONCURRENCY_WAIT_SECONDS, reason)
