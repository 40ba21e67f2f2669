"""Tag concurrency limits: a task run waits for a free slot on each of its limited tags (the rule is listed in
apps/orchestration/policies.py). A slot is a lease (docs/concurrency.md): the SDK process running the task
renews it; leaving RUNNING (`release_slots_on_leaving_running`, a state-stored hook) deletes it at once."""

from __future__ import annotations

from django.conf import settings

from apps.concurrency.models import ConcurrencyLimit
from apps.concurrency.services import concurrency_slots_release, concurrency_tag_slots_take
from apps.orchestration.rules.base import OrchestratedRun, Rule, RunKind, TransitionContext
from orchestrator.states import StateType


def _locked_limits(tags: list[str]) -> list[ConcurrencyLimit]:
    return list(ConcurrencyLimit.objects.select_for_update().filter(tag__in=tags).order_by("tag"))


class EnforceConcurrencyLimits(Rule):
    """-> RUNNING takes a slot (a lease) on every limited tag, or WAITs when one of them is full."""

    TO_STATES = frozenset({StateType.RUNNING})

    def before_transition(self, context: TransitionContext) -> None:
        tags = list(context.run.tags or [])
        if not tags or context.initial_type == StateType.RUNNING:
            return
        full = concurrency_tag_slots_take(limits=_locked_limits(tags), task_run_id=str(context.run.id))
        if full is not None:
            context.wait(
                settings.ORCHESTRATION_CONCURRENCY_WAIT_SECONDS,
                f"concurrency limit for tag {full.tag!r} is full ({full.limit} running)",
            )

    def cleanup(self, context: TransitionContext) -> None:
        release_slots(context.run)


def release_slots(run: OrchestratedRun) -> None:
    """Free the slots the task run holds (its tags' and any global limit's)."""
    concurrency_slots_release(task_run_ids=[str(run.id)])


def release_slots_on_leaving_running(context: TransitionContext, state_row: object) -> None:
    """A run that leaves RUNNING (by any stored state, forced ones included: cancel, crash) frees its slots."""
    if context.initial_type != StateType.RUNNING or context.validated_type == StateType.RUNNING:
        return
    if context.kind == RunKind.TASK_RUN:
        if context.run.tags:  # only its tags' limits give a task run leases
            release_slots(context.run)
    else:
        concurrency_slots_release(flow_run_ids=[str(context.run.id)])
