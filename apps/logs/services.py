"""Writes for logs: bulk creation, as clients ship logs in batches."""

from __future__ import annotations

from apps.logs.models import Log


def logs_create(*, entries: list[dict]) -> int:
    Log.objects.bulk_create([Log(**entry) for entry in entries], batch_size=500)
    return len(entries)
