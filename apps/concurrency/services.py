"""Writes for tag concurrency limits."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps.concurrency.models import ConcurrencyLimit
from apps.core.errors import Conflict


def concurrency_limit_create(*, tag: str, limit: int) -> ConcurrencyLimit:
    try:
        with transaction.atomic():
            return ConcurrencyLimit.objects.create(tag=tag, limit=limit)
    except IntegrityError as exc:
        raise Conflict(f"a concurrency limit for tag {tag!r} already exists", field="tag") from exc


def concurrency_limit_update(*, limit: ConcurrencyLimit, value: int) -> ConcurrencyLimit:
    limit.limit = value
    limit.save(update_fields=["limit", "updated"])
    return limit


def concurrency_limit_reset(*, limit: ConcurrencyLimit) -> ConcurrencyLimit:
    """Free every slot of the limit (runs stuck holding one after their process died); waiting task runs take
    the freed slots on their next try."""
    with transaction.atomic():
        limit = ConcurrencyLimit.objects.select_for_update().get(pk=limit.pk)
        limit.active_slots = []
        limit.save(update_fields=["active_slots", "updated"])
    return limit


def concurrency_slots_release(*, task_run_ids: set[str], tags: set[str]) -> None:
    """Free the slots these task runs hold on these tags (for runs deleted while RUNNING: no state change
    will ever release them)."""
    if not task_run_ids or not tags:
        return
    with transaction.atomic():
        for limit in ConcurrencyLimit.objects.select_for_update().filter(tag__in=tags).order_by("tag"):
            kept = [slot for slot in limit.active_slots if slot not in task_run_ids]
            if len(kept) != len(limit.active_slots):
                limit.active_slots = kept
                limit.save(update_fields=["active_slots", "updated"])
