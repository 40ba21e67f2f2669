"""Reads for tag concurrency limits: who holds their slots (for "why is my run waiting?", docs/waiting.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from apps.concurrency.models import ConcurrencyLimit


@dataclass(frozen=True)
class LimitHolders:
    tag: str  # the limit's tag (or the global limit's name)
    limit: int
    holder_run_ids: list[str]  # ids of the runs (task runs for tag limits) holding unexpired slots


def concurrency_holders(*, tags: Iterable[str]) -> list[LimitHolders]:
    """The tag limits among `tags`, each with the runs holding its slots now (ordered by tag)."""
    wanted = sorted(set(tags))
    if not wanted:
        return []
    rows = ConcurrencyLimit.objects.filter(tag__in=wanted).order_by("tag").values_list("tag", "limit", "active_slots")
    return [
        LimitHolders(tag=tag, limit=limit, holder_run_ids=[str(slot) for slot in (slots or [])])
        for tag, limit, slots in rows
    ]
