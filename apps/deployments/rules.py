"""The orchestration rule a deployment adds: its concurrency limit (listed in apps/orchestration/policies.py)."""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from apps.deployments.models import CollisionStrategy, Deployment
from apps.orchestration.rules.base import Rule, TransitionContext
from apps.runs.models import FlowRun
from orchestrator.states import Cancelled, StateType

ACTIVE_TYPES = (StateType.PENDING, StateType.RUNNING, StateType.CANCELLING)


class EnforceDeploymentConcurrencyLimit(Rule):
    """Claiming a run of a deployment with a concurrency limit (SCHEDULED -> PENDING) needs a free slot: with
    `limit` runs of it already active, the claim WAITs (ENQUEUE) or the new run ends Cancelled (CANCEL_NEW)."""

    FROM_STATES = frozenset({StateType.SCHEDULED})
    TO_STATES = frozenset({StateType.PENDING})

    def before_transition(self, context: TransitionContext) -> None:
        deployment_id = getattr(context.run, "deployment_id", None)
        if deployment_id is None:
            return
        # The deployment's row lock serialises claims of its runs, so two claims cannot both take the last slot.
        query = Deployment.objects.filter(pk=deployment_id).values_list("concurrency_limit", "collision_strategy")
        if connection.features.has_select_for_update:
            query = query.select_for_update()
        found = query.first()
        if found is None or found[0] is None:
            return
        limit, strategy = found
        active = (
            FlowRun.objects.filter(deployment_id=deployment_id, state_type__in=ACTIVE_TYPES)
            .exclude(pk=context.run.pk)
            .count()
        )
        if active < limit:
            return
        reason = f"the deployment's concurrency limit is reached ({active} of {limit} runs active)"
        if strategy == CollisionStrategy.CANCEL_NEW:
            context.reject(reason, state=Cancelled(message=reason))
        else:
            context.wait(settings.ORCHESTRATION_CONCURRENCY_WAIT_SECONDS, reason)
