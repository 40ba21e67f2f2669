"""Cache rules: a task whose cache key has a valid Completed result is answered with Cached."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q

from apps.orchestration.models import CacheEntry
from apps.orchestration.rules.base import Rule, RunKind, TransitionContext
from orchestrator.states import Cached, StateType


def _as_datetime(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


class AnswerFromCache(Rule):
    """-> RUNNING with a cache key that has an unexpired Completed result: store Cached with that result."""

    TO_STATES = frozenset({StateType.RUNNING})

    def before_transition(self, context: TransitionContext) -> None:
        details = context.proposed_state.state_details
        run = context.task_run
        if details.get("cache_key"):
            context.set_run_field("cache_key", str(details["cache_key"])[:500])
            context.set_run_field("cache_expiration", _as_datetime(details.get("cache_expiration")))
        if not run.cache_key or details.get("refresh_cache"):
            return
        entry = (
            CacheEntry.objects.filter(cache_key=run.cache_key)
            .filter(Q(expiration__isnull=True) | Q(expiration__gt=context.now))
            .select_related("task_run_state")
            .first()
        )
        if entry is None:
            return
        cached = entry.task_run_state
        context.reject(
            "a valid cached result exists for this cache key",
            state=Cached(
                message=f"Cached result of task run {cached.task_run_id}",
                data=cached.data,
                cache_key=run.cache_key,
                cache_expiration=entry.expiration,
            ),
        )


def store_cache_entry(context: TransitionContext, state_row: Any) -> None:
    """After a task run completes with a cache key, remember its result for later runs (newest wins). A
    state-stored hook (apps/orchestration/policies.py): forced Completed states count too."""
    if context.kind != RunKind.TASK_RUN or context.validated_type != StateType.COMPLETED:
        return
    run = context.task_run
    if not run.cache_key or context.to_state.name == "Cached":
        return
    CacheEntry.objects.update_or_create(
        cache_key=run.cache_key,
        defaults={"task_run_state": state_row, "expiration": run.cache_expiration},
    )
