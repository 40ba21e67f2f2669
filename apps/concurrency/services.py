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
