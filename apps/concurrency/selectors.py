"""Reads of concurrency limits: slots in use and their holders, computed from the unexpired leases."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Sum
from django.utils import timezone

from apps.concurrency.models import ConcurrencyLease, ConcurrencyLimit


def slots_in_use(
    *,
    tag_limit_ids: Iterable[uuid.UUID] = (),
    global_limit_ids: Iterable[uuid.UUID] = (),
    now: datetime | None = None,
) -> dict[uuid.UUID, int]:
    """Limit id -> the slots its unexpired leases hold (limits with none are missing)."""
    now = now or timezone.now()
    in_use: dict[uuid.UUID, int] = {}
    for field, ids in (("limit", list(tag_limit_ids)), ("global_limit", list(global_limit_ids))):
        if not ids:
            continue
        rows = (
            ConcurrencyLease.objects.filter(**{f"{field}__in": ids}, expires_at__gt=now)
            .values(field)
            .annotate(total=Sum("slots"))
            .order_by()
        )
        in_use.update({row[field]: row["total"] for row in rows})
    return in_use


def holders_by_limit(*, field: str, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[ConcurrencyLease]]:
    """Limit id (`field` is "limit" or "global_limit") -> its unexpired leases, oldest first."""
    ids = list(ids)
    holders: dict[uuid.UUID, list[ConcurrencyLease]] = {pk: [] for pk in ids}
    if ids:
        leases = ConcurrencyLease.objects.filter(**{f"{field}__in": ids}, expires_at__gt=timezone.now())
        for lease in leases.order_by("created"):
            holders[getattr(lease, f"{field}_id")].append(lease)
    return holders


@dataclass(frozen=True)
class LimitHolders:
    tag: str  # the limit's tag (or the global limit's name)
    limit: int
    holder_run_ids: list[str]  # ids of the runs (task runs for tag limits) holding unexpired slots


def concurrency_holders(*, tags: Iterable[str]) -> list[LimitHolders]:
    """The tag limits among `tags`, each with the runs holding its slots now (ordered by tag)."""
    limits = list(ConcurrencyLimit.objects.filter(tag__in=set(tags)).order_by("tag"))
    holders = holders_by_limit(field="limit", ids=[limit.pk for limit in limits])
    return [
        LimitHolders(
            tag=limit.tag,
            limit=limit.limit,
            holder_run_ids=[
                lease.holder_id
                for lease in holders[limit.pk]
                if lease.holder_kind in (ConcurrencyLease.HolderKind.TASK_RUN, ConcurrencyLease.HolderKind.FLOW_RUN)
            ],
        )
        for limit in limits
    ]
