"""Writes for work pools, their queues and workers. A pool is always created with its `default` queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.errors import Conflict
from apps.work_pools.models import DEFAULT_QUEUE_NAME, Worker, WorkPool, WorkPoolType, WorkQueue

POOL_EDITABLE_FIELDS = ("description", "concurrency_limit", "paused")
QUEUE_EDITABLE_FIELDS = ("description", "priority", "concurrency_limit", "paused")


def work_pool_create(
    *,
    name: str,
    type: str = WorkPoolType.PROCESS,
    description: str | None = None,
    concurrency_limit: int | None = None,
    paused: bool = False,
) -> WorkPool:
    """Create a pool and its default queue (409 if the name is taken)."""
    try:
        with transaction.atomic():
            pool = WorkPool.objects.create(
                name=name, type=type, description=description, concurrency_limit=concurrency_limit, paused=paused
            )
            WorkQueue.objects.create(pool=pool, name=DEFAULT_QUEUE_NAME, description="the pool's default queue")
    except IntegrityError:
        raise Conflict(f"a work pool named {name!r} already exists", field="name") from None
    return pool


def work_pool_ensure(*, name: str) -> tuple[WorkPool, bool]:
    """The pool named `name`, created as a `process` pool (with its default queue) if there is none yet;
    returns (pool, created). Deploying to a pool that does not exist creates it this way."""
    pool = WorkPool.objects.filter(name=name).first()
    if pool is not None:
        return pool, False
    try:
        return work_pool_create(name=name), True
    except Conflict:  # created by a concurrent request
        return WorkPool.objects.get(name=name), False


def _apply(instance: Any, values: dict[str, Any], editable: tuple[str, ...]) -> None:
    unknown = set(values) - set(editable)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    changed = [field for field, value in values.items() if getattr(instance, field) != value]
    for field in changed:
        setattr(instance, field, values[field])
    if changed:
        instance.save(update_fields=[*changed, "updated"])


def work_pool_update(*, pool: WorkPool, values: dict[str, Any]) -> WorkPool:
    """Change a pool's description, concurrency limit or paused flag."""
    _apply(pool, values, POOL_EDITABLE_FIELDS)
    return pool


def work_pool_delete(*, pool: WorkPool) -> None:
    """Delete the pool with its queues and workers; its runs keep the pool's name (and nothing polls them)."""
    pool.delete()


def work_queue_create(
    *,
    pool: WorkPool,
    name: str,
    description: str | None = None,
    priority: int = 1,
    concurrency_limit: int | None = None,
    paused: bool = False,
) -> WorkQueue:
    try:
        with transaction.atomic():
            return WorkQueue.objects.create(
                pool=pool,
                name=name,
                description=description,
                priority=priority,
                concurrency_limit=concurrency_limit,
                paused=paused,
            )
    except IntegrityError:
        raise Conflict(f"work pool {pool.name!r} already has a queue named {name!r}", field="name") from None


def work_queue_update(*, queue: WorkQueue, values: dict[str, Any]) -> WorkQueue:
    _apply(queue, values, QUEUE_EDITABLE_FIELDS)
    return queue


def work_queue_delete(*, queue: WorkQueue) -> None:
    """Delete a queue; its runs fall back to the pool's default queue, which cannot be deleted."""
    if queue.is_default:
        raise Conflict("the default queue of a work pool cannot be deleted (delete the pool instead)")
    queue.delete()


def worker_heartbeat(*, pool: WorkPool, name: str, now: datetime | None = None) -> None:
    """Record that worker `name` of `pool` is alive (one UPDATE; the first heartbeat inserts its row)."""
    now = now or timezone.now()
    if Worker.objects.filter(pool=pool, name=name).update(last_heartbeat_at=now, updated=now):
        return
    try:
        with transaction.atomic():
            Worker.objects.create(pool=pool, name=name, last_heartbeat_at=now)
    except IntegrityError:  # its first two heartbeats raced
        Worker.objects.filter(pool=pool, name=name).update(last_heartbeat_at=now, updated=now)
