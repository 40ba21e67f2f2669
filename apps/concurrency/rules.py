"""Tag concurrency limits: a task run waits for a free slot on each of its limited tags (the rule is listed in
apps/orchestration/policies.py; its slots are freed by `release_slots_on_leaving_running`, a state-stored hook)."""

from __future__ import annotations

from django.conf import settings

from apps.concurrency.models import ConcurrencyLimit
from apps.concurrency.services import concurrency_slots_release
from apps.orchestration.rules.base import OrchestratedRun, Rule, RunKind, TransitionContext
from orchestrator.states import StateType


def _locked_limits(tags: list[str]) -> list[ConcurrencyLimit]:
    return list(ConcurrencyLimit.objects.select_for_update().filter(tag__in=tags).order_by("tag"))


class EnforceConcurrencyLimits(Rule):
    """-> RUNNING takes a slot on every limited tag, or WAITs when one of them is full."""

    TO_STATES = frozenset({StateType.RUNNING})

    def before_transition(self, context: TransitionContext) -> None:
        tags = list(context.run.tags or [])
        if not tags or context.initial_type == StateType.RUNNING:
            return
        run_id = str(context.run.id)
        limits = _locked_limits(tags)
        for limit in limits:
            if run_id not in limit.active_slots and len(limit.active_slots) >= limit.limit:
                context.wait(
                    settings.ORCHESTRATION_CONCURRENCY_WAIT_SECONDS,
                    f"concurrency limit for tag {limit.tag!r} is full ({limit.limit} running)",
                )
                return
        for limit in limits:
            if run_id not in limit.active_slots:
                limit.active_slots = [*limit.active_slots, run_id]
                limit.save(update_fields=["active_slots", "updated"])

    def cleanup(self, context: TransitionContext) -> None:
        release_slots(context.run)


def release_slots(run: OrchestratedRun) -> None:
    """Free the run's slots on all its tags."""
    concurrency_slots_release(task_run_ids={str(run.id)}, tags=set(run.tags or []))


def release_slots_on_leaving_running(context: TransitionContext, state_row: object) -> None:
    """A task run that leaves RUNNING (by any stored state, forced ones included) frees its slots."""
    if context.kind == RunKind.TASK_RUN and context.initial_type == StateType.RUNNING:
        if context.validated_type != StateType.RUNNING:
            release_slots(context.run)
