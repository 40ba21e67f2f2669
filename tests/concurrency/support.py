"""Helpers for tests that look at concurrency slots: who holds a limit's unexpired leases, and a way to hold one."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.concurrency.models import ConcurrencyLease, ConcurrencyLimit
from apps.concurrency.selectors import concurrency_holders


def slots_of(tag: str) -> list[str]:
    """The ids of the runs holding unexpired slots of the tag limit, oldest lease first."""
    return next(holders.holder_run_ids for holders in concurrency_holders(tags=[tag]))


def hold(tag: str, *task_run_ids: str, seconds: float = 60) -> None:
    """Leases of one slot of the tag limit for these task run ids (which need not exist), expiring in `seconds`."""
    limit = ConcurrencyLimit.objects.get(tag=tag)
    for task_run_id in task_run_ids:
        ConcurrencyLease.objects.create(
            limit=limit,
            holder_kind="task_run",
            holder_id=task_run_id,
            expires_at=timezone.now() + timedelta(seconds=seconds),
        )
