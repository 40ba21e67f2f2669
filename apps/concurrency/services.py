"""Writes for concurrency limits and their leases.

A lease holds slots of one limit until `expires_at`; slots in use are the sum of the unexpired leases' slots
(`selectors.slots_in_use`). Taking slots happens under the limit's row lock (PostgreSQL; SQLite's writers are
serialised by BEGIN IMMEDIATE), so two takers never both see the last free slot. Every release wakes this
process's waiting acquires once it commits (apps/concurrency/wakeup.py).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps as django_apps
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from apps.concurrency import wakeup
from apps.concurrency.models import ConcurrencyLease, ConcurrencyLimit, GlobalConcurrencyLimit
from apps.concurrency.selectors import slots_in_use
from apps.core.errors import Conflict, InvalidInput, OrchestratorError

HolderKind = ConcurrencyLease.HolderKind
MODES = ("concurrency", "rate_limit")
_waiters = threading.BoundedSemaphore(settings.ORCHESTRATOR_CONCURRENCY_ACQUIRE_WAITERS)


class SlotsUnavailable(OrchestratorError):
    """No free slot within the time the acquire could wait: the client asks again (or gives up)."""

    status_code = 423
    code = "slots_unavailable"


def lease_duration(seconds: float | None = None) -> timedelta:
    return timedelta(seconds=seconds if seconds is not None else settings.ORCHESTRATOR_CONCURRENCY_LEASE_SECONDS)


def _released() -> None:
    transaction.on_commit(wakeup.notify_released)


# -- tag limits -------------------------------------------------------------------------------------------------
def concurrency_limit_create(*, tag: str, limit: int) -> ConcurrencyLimit:
    try:
        with transaction.atomic():
            return ConcurrencyLimit.objects.create(tag=tag, limit=limit)
    except IntegrityError as exc:
        raise Conflict(f"a concurrency limit for tag {tag!r} already exists", field="tag") from exc


def concurrency_limit_update(*, limit: ConcurrencyLimit, value: int) -> ConcurrencyLimit:
    limit.limit = value
    limit.save(update_fields=["limit", "updated"])
    _released()  # a raised limit has free slots: waiting task runs look again
    return limit


def concurrency_limit_reset(*, limit: ConcurrencyLimit) -> ConcurrencyLimit:
    """Free every slot of the limit; waiting task runs take the freed slots on their next try."""
    with transaction.atomic():
        limit = ConcurrencyLimit.objects.select_for_update().get(pk=limit.pk)
        ConcurrencyLease.objects.filter(limit=limit).delete()
        limit.save(update_fields=["updated"])
        _released()
    return limit


def concurrency_tag_slots_take(*, limits: list[ConcurrencyLimit], task_run_id: str) -> ConcurrencyLimit | None:
    """One slot of each limit for the task run (the limits locked by the caller, in tag order); the first full
    limit when one is full (nothing is taken then). A slot the run already holds is renewed, not taken twice."""
    now = timezone.now()
    held = set(
        ConcurrencyLease.objects.filter(
            limit__in=limits, holder_kind=HolderKind.TASK_RUN, holder_id=task_run_id, expires_at__gt=now
        ).values_list("limit_id", flat=True)
    )
    in_use = slots_in_use(tag_limit_ids=[limit.pk for limit in limits], now=now)
    for limit in limits:
        if limit.pk not in held and in_use.get(limit.pk, 0) + 1 > limit.limit:
            return limit
    expires_at = now + lease_duration()
    for limit in limits:
        ConcurrencyLease.objects.update_or_create(
            limit=limit,
            holder_kind=HolderKind.TASK_RUN,
            holder_id=task_run_id,
            defaults={"expires_at": expires_at, "slots": 1},
        )
    return None


def concurrency_tag_slots_wait(*, tags: Iterable[str], timeout_seconds: float) -> dict[str, bool]:
    """Wait until every limited tag among `tags` has a free slot (`free`), up to `timeout_seconds` (at most
    ORCHESTRATOR_CONCURRENCY_ACQUIRE_WAIT_SECONDS): a task run answered WAIT by a full tag limit asks again as
    soon as a slot frees instead of after the WAIT's delay. `waited` is False when this server process already
    has its share of waiting requests: the caller then waits the WAIT's delay as before."""
    tags = list(tags)
    if not _waiters.acquire(blocking=False):
        return {"free": _tag_slots_free(tags), "waited": False}
    try:
        wait = max(0.0, min(timeout_seconds, settings.ORCHESTRATOR_CONCURRENCY_ACQUIRE_WAIT_SECONDS))
        deadline = time.monotonic() + wait
        while True:
            since = wakeup.generation()
            if _tag_slots_free(tags):
                return {"free": True, "waited": True}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return {"free": False, "waited": True}
            wakeup.wait_for_release(
                since=since, timeout=min(settings.ORCHESTRATOR_CONCURRENCY_ACQUIRE_POLL_SECONDS, remaining)
            )
    finally:
        _waiters.release()


def _tag_slots_free(tags: list[str]) -> bool:
    limits = list(ConcurrencyLimit.objects.filter(tag__in=tags))
    in_use = slots_in_use(tag_limit_ids=[limit.pk for limit in limits])
    return all(in_use.get(limit.pk, 0) < limit.limit for limit in limits)


def concurrency_slots_release(*, task_run_ids: Iterable[str] = (), flow_run_ids: Iterable[str] = ()) -> int:
    """Delete every lease these runs hold, on tag and global limits (a run that left RUNNING, was cancelled,
    crashed or was deleted). Returns the leases deleted."""
    task_run_ids, flow_run_ids = [str(i) for i in task_run_ids], [str(i) for i in flow_run_ids]
    if not task_run_ids and not flow_run_ids:
        return 0
    held = Q(holder_kind=HolderKind.TASK_RUN, holder_id__in=task_run_ids) | Q(
        holder_kind=HolderKind.FLOW_RUN, holder_id__in=flow_run_ids
    )
    deleted, _ = ConcurrencyLease.objects.filter(held).delete()  # one statement: no savepoint needed
    if deleted:
        _released()
    return deleted


# -- global limits ----------------------------------------------------------------------------------------------
def global_limit_create(*, name: str, limit: int, slot_decay_per_second: float | None = None) -> GlobalConcurrencyLimit:
    try:
        with transaction.atomic():
            return GlobalConcurrencyLimit.objects.create(
                name=name, limit=limit, slot_decay_per_second=slot_decay_per_second or None
            )
    except IntegrityError as exc:
        raise Conflict(f"a global concurrency limit named {name!r} already exists", field="name") from exc


def global_limit_update(*, global_limit: GlobalConcurrencyLimit, changes: dict[str, Any]) -> GlobalConcurrencyLimit:
    fields = [field for field in ("limit", "slot_decay_per_second") if field in changes]
    for field in fields:
        setattr(global_limit, field, changes[field] or (None if field == "slot_decay_per_second" else 0))
    global_limit.save(update_fields=[*fields, "updated"])
    _released()
    return global_limit


def global_limit_reset(*, global_limit: GlobalConcurrencyLimit) -> GlobalConcurrencyLimit:
    """Free every slot of the limit (its rate-limit slots included)."""
    with transaction.atomic():
        global_limit = GlobalConcurrencyLimit.objects.select_for_update().get(pk=global_limit.pk)
        ConcurrencyLease.objects.filter(global_limit=global_limit).delete()
        global_limit.save(update_fields=["updated"])
        _released()
    return global_limit


def global_limit_delete(*, global_limit: GlobalConcurrencyLimit) -> None:
    with transaction.atomic():
        global_limit.delete()
        _released()


def _acquire_once(
    *, global_limit: GlobalConcurrencyLimit, slots: int, mode: str, holder: tuple[str, str], lease_seconds: float | None
) -> ConcurrencyLease | None:
    now = timezone.now()
    # A read without the lock first: a waiter polling a full limit does not take the write lock every time.
    if slots_in_use(global_limit_ids=[global_limit.pk], now=now).get(global_limit.pk, 0) + slots > global_limit.limit:
        return None
    with transaction.atomic():
        locked = GlobalConcurrencyLimit.objects.select_for_update().filter(pk=global_limit.pk).first()
        if locked is None:
            return None
        now = timezone.now()
        if slots_in_use(global_limit_ids=[locked.pk], now=now).get(locked.pk, 0) + slots > locked.limit:
            return None
        if mode == "rate_limit":
            # The slots decay one after another: this lease ends `slots / rate` after the last decaying lease.
            latest = ConcurrencyLease.objects.filter(global_limit=locked, decaying=True, expires_at__gt=now).aggregate(
                latest=Max("expires_at")
            )["latest"]
            start = max(now, latest) if latest else now
            expires_at: datetime = start + timedelta(seconds=slots / float(locked.slot_decay_per_second or 1))
        else:
            expires_at = now + lease_duration(lease_seconds)
        return ConcurrencyLease.objects.create(
            global_limit=locked,
            holder_kind=holder[0],
            holder_id=holder[1],
            slots=slots,
            expires_at=expires_at,
            decaying=mode == "rate_limit",
        )


def concurrency_lease_acquire(
    *,
    global_limit: GlobalConcurrencyLimit,
    slots: int,
    mode: str = "concurrency",
    holder_kind: str = "client",
    holder_id: str | None = None,
    timeout_seconds: float | None = None,
    lease_seconds: float | None = None,
) -> ConcurrencyLease:
    """Take `slots` slots of the global limit, waiting for them up to `timeout_seconds` (at most
    ORCHESTRATOR_CONCURRENCY_ACQUIRE_WAIT_SECONDS: the client then asks again); SlotsUnavailable after that.

    The wait wakes at once on a release in this process and re-reads the database every
    ORCHESTRATOR_CONCURRENCY_ACQUIRE_POLL_SECONDS for releases (and decayed slots) elsewhere."""
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}, not {mode!r}", field="mode")
    if slots > global_limit.limit:
        raise InvalidInput(
            f"{slots} slot(s) can never be free: global concurrency limit {global_limit.name!r} has "
            f"{global_limit.limit}",
            field="slots",
        )
    if mode == "rate_limit" and not global_limit.slot_decay_per_second:
        raise InvalidInput(
            f"global concurrency limit {global_limit.name!r} has no slot_decay_per_second: it is not a rate limit "
            f"(`orchestrator global-concurrency-limit create NAME N --slot-decay-per-second R`)",
            field="mode",
        )
    holder = (holder_kind, holder_id or str(uuid.uuid4()))
    bound = settings.ORCHESTRATOR_CONCURRENCY_ACQUIRE_WAIT_SECONDS
    wait = bound if timeout_seconds is None else max(0.0, min(timeout_seconds, bound))
    poll = settings.ORCHESTRATOR_CONCURRENCY_ACQUIRE_POLL_SECONDS
    # A waiting acquire holds one of the server's few request threads: past WAITERS at once in this process, an
    # acquire waits one poll interval at most and the client asks again (docs/concurrency.md).
    long_poll = _waiters.acquire(blocking=False)
    if not long_poll:
        wait = min(wait, poll)
    try:
        return _acquire_waiting(
            global_limit=global_limit, slots=slots, mode=mode, holder=holder, lease_seconds=lease_seconds, wait=wait
        )
    finally:
        if long_poll:
            _waiters.release()


def _acquire_waiting(
    *,
    global_limit: GlobalConcurrencyLimit,
    slots: int,
    mode: str,
    holder: tuple[str, str],
    lease_seconds: float | None,
    wait: float,
) -> ConcurrencyLease:
    deadline = time.monotonic() + wait
    poll = settings.ORCHESTRATOR_CONCURRENCY_ACQUIRE_POLL_SECONDS
    while True:
        since = wakeup.generation()
        lease = _acquire_once(
            global_limit=global_limit, slots=slots, mode=mode, holder=holder, lease_seconds=lease_seconds
        )
        if lease is not None:
            return lease
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SlotsUnavailable(
                f"no {slots} free slot(s) on global concurrency limit {global_limit.name!r} within {wait:g} s"
            )
        wakeup.wait_for_release(since=since, timeout=min(poll, remaining))


def concurrency_lease_release(*, lease: ConcurrencyLease) -> None:
    if lease.decaying:
        raise Conflict("a rate-limit lease is not released: its slots free themselves as the limit decays")
    with transaction.atomic():
        ConcurrencyLease.objects.filter(pk=lease.pk).delete()
        _released()


def concurrency_leases_renew(
    *, lease_ids: Iterable[str] = (), task_run_ids: Iterable[str] = (), lease_seconds: float | None = None
) -> list[str]:
    """Push back the expiry of these unexpired leases and of those the task runs hold (the SDK's one call for
    all it holds). Returns the ids of the leases renewed: an expired lease is lost (its slots may be taken)."""
    now = timezone.now()
    lease_ids, task_run_ids = list(lease_ids), [str(i) for i in task_run_ids]
    leases = ConcurrencyLease.objects.filter(
        Q(pk__in=lease_ids) | Q(holder_kind=HolderKind.TASK_RUN, holder_id__in=task_run_ids),
        expires_at__gt=now,
        decaying=False,
    )
    renewed = [str(pk) for pk in leases.values_list("pk", flat=True)]
    if renewed:
        ConcurrencyLease.objects.filter(pk__in=renewed).update(
            expires_at=now + lease_duration(lease_seconds), updated=now
        )
    return renewed


def concurrency_leases_reap() -> dict[str, int]:
    """The reaper service: delete expired leases, and leases of runs already final or gone (their slots are
    free already, or freed now)."""
    # By name: apps.runs imports this app (to free the slots of deleted runs), so an import would be a cycle.
    flow_run_model, task_run_model = django_apps.get_model("runs", "FlowRun"), django_apps.get_model("runs", "TaskRun")
    now = timezone.now()
    with transaction.atomic():
        expired, _ = ConcurrencyLease.objects.filter(expires_at__lte=now).delete()
        orphaned = 0
        for kind, model in ((HolderKind.TASK_RUN, task_run_model), (HolderKind.FLOW_RUN, flow_run_model)):
            holders = list(
                ConcurrencyLease.objects.filter(holder_kind=kind).values_list("holder_id", flat=True).distinct()
            )
            if not holders:
                continue
            running = {
                str(pk)
                for pk in model.objects.filter(pk__in=_uuids(holders), state_type="RUNNING").values_list(
                    "pk", flat=True
                )
            }
            gone = [holder for holder in holders if holder not in running]
            if gone:
                orphaned += ConcurrencyLease.objects.filter(holder_kind=kind, holder_id__in=gone).delete()[0]
        if orphaned:
            _released()
    return {"expired": expired, "orphaned": orphaned}


def _uuids(values: Iterable[str]) -> list[uuid.UUID]:
    """The values that are UUIDs (a client may send any holder id: such a holder is no run)."""
    found = []
    for value in values:
        try:
            found.append(uuid.UUID(value))
        except ValueError:
            continue
    return found
