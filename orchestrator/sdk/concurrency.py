"""Global concurrency limits from code: `with concurrency("db", occupy=1):` and `rate_limit("api")`, and the
heartbeat that renews this process's leases (docs/concurrency.md).

A slot is a lease that expires unless renewed: one `LeaseRenewer` thread per client renews, in one call, every
lease this process holds (those `concurrency()` took and the tag-limit slots of its RUNNING task runs) at a third
of the server's lease time. A process that dies stops renewing, and its slots free themselves.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from orchestrator.client import ClientError, NotFound, get_client
from orchestrator.sdk.context import flow_run_context

logger = logging.getLogger("orchestrator.concurrency")

# The renewal period before the server has said its lease time (the first renewal asks at once).
FIRST_RENEWAL_SECONDS = 0.0
# How a WAIT for a full tag limit begins (apps/concurrency/rules.py), and how long one wait for its slots lasts.
TAG_LIMIT_WAIT = "concurrency limit for tag"
TAG_WAIT_SECONDS = 5.0


class ConcurrencySlotError(Exception):
    """A global limit that does not exist, or no slot within the timeout: one readable line."""


class LeaseRenewer:
    """Renews the leases one client's process holds, from a daemon thread that runs while it holds any."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._lease_ids: set[str] = set()
        self._task_run_ids: set[str] = set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.period: float | None = None  # a third of the server's lease time, once known

    def hold(self, *, lease_id: str | None = None, task_run_id: str | None = None) -> None:
        with self._lock:
            if lease_id:
                self._lease_ids.add(lease_id)
            if task_run_id:
                self._task_run_ids.add(task_run_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="orchestrator-lease-renewer", daemon=True)
                self._thread.start()

    def drop(self, *, lease_id: str | None = None, task_run_id: str | None = None) -> None:
        with self._lock:
            self._lease_ids.discard(lease_id or "")
            self._task_run_ids.discard(task_run_id or "")
            if not self._lease_ids and not self._task_run_ids:
                self._wake.set()  # the thread sees nothing held and ends

    def _held(self) -> tuple[list[str], list[str]]:
        with self._lock:
            return sorted(self._lease_ids), sorted(self._task_run_ids)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.period if self.period is not None else FIRST_RENEWAL_SECONDS)
            self._wake.clear()
            lease_ids, task_run_ids = self._held()
            if not lease_ids and not task_run_ids:
                with self._lock:
                    if not self._lease_ids and not self._task_run_ids:
                        self._thread = None
                        return
                continue
            try:
                answer = self.client.renew_concurrency_leases(lease_ids=lease_ids, task_run_ids=task_run_ids)
            except ClientError as exc:  # the server is away: try again next period; the lease may expire
                logger.warning("could not renew concurrency leases: %s", exc)
                continue
            self.period = max(0.2, float(answer.get("lease_seconds") or 30) / 3)
            lost = set(lease_ids) - set(answer.get("renewed") or [])
            if lost:
                logger.warning("concurrency lease(s) %s expired before renewal: their slots may be taken", sorted(lost))


def wait_for_tag_slots(client: Any, tags: list[str]) -> bool:
    """After a WAIT for a full tag limit: wait on the server (up to TAG_WAIT_SECONDS) for a free slot on the
    run's tags. True when the run should propose Running again now; False to wait the WAIT's delay (the server
    had no waiting thread to spare, or does not offer the call)."""
    try:
        answer = client.wait_for_tag_slots(tags, timeout_seconds=TAG_WAIT_SECONDS)
    except ClientError:
        return False
    return bool(answer.get("free") or answer.get("waited"))


_renewers: dict[int, LeaseRenewer] = {}
_renewers_lock = threading.Lock()


def renewer_for(client: Any) -> LeaseRenewer:
    with _renewers_lock:
        renewer = _renewers.get(id(client))
        if renewer is None or renewer.client is not client:
            renewer = _renewers[id(client)] = LeaseRenewer(client)
        return renewer


def _holder() -> tuple[str, str]:
    """Leases taken inside a flow run are the flow run's (its end, cancel or crash frees them at once)."""
    context = flow_run_context.get()
    if context is not None:
        return ("flow_run", str(context.flow_run.id))
    return ("client", str(uuid.uuid4()))


def _acquire(name: str, occupy: int, mode: str, timeout_seconds: float | None) -> tuple[Any, dict[str, Any]]:
    client = get_client()
    try:
        lease = client.acquire_concurrency_slots(
            name,
            occupy,
            mode=mode,
            timeout_seconds=timeout_seconds,
            # Rate-limit slots outlive their taker: they decay at the limit's rate, whoever took them.
            holder=_holder() if mode == "concurrency" else ("client", str(uuid.uuid4())),
        )
    except NotFound as exc:
        raise ConcurrencySlotError(str(exc)) from None
    except ClientError as exc:
        raise ConcurrencySlotError(f"cannot take {occupy} slot(s) of {name!r}: {exc}") from None
    return client, lease


def _release(client: Any, lease: dict[str, Any]) -> None:
    renewer_for(client).drop(lease_id=lease["id"])
    try:
        client.release_concurrency_lease(lease["id"])
    except NotFound:  # expired and reaped, or the limit was reset: nothing left to free
        pass


@contextmanager
def _concurrency_sync(name: str, occupy: int, timeout_seconds: float | None) -> Iterator[None]:
    client, lease = _acquire(name, occupy, "concurrency", timeout_seconds)
    renewer_for(client).hold(lease_id=lease["id"])
    try:
        yield
    finally:
        _release(client, lease)


class concurrency:  # noqa: N801  (used like a function: `with concurrency("db"):`)
    """Hold `occupy` slots of the global limit `name` for the block, waiting for them (forever, or
    `timeout_seconds`). Works as `with` and `async with`."""

    def __init__(self, name: str, occupy: int = 1, timeout_seconds: float | None = None) -> None:
        self.name, self.occupy, self.timeout_seconds = name, occupy, timeout_seconds
        self._sync: Any = None
        self._async: Any = None

    def __enter__(self) -> None:
        self._sync = _concurrency_sync(self.name, self.occupy, self.timeout_seconds)
        self._sync.__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        self._sync.__exit__(*exc_info)

    async def __aenter__(self) -> None:
        self._async = _concurrency_async(self.name, self.occupy, self.timeout_seconds)
        await self._async.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._async.__aexit__(*exc_info)


@asynccontextmanager
async def _concurrency_async(name: str, occupy: int, timeout_seconds: float | None) -> AsyncIterator[None]:
    import asyncio

    client, lease = await asyncio.to_thread(_acquire, name, occupy, "concurrency", timeout_seconds)
    renewer_for(client).hold(lease_id=lease["id"])
    try:
        yield
    finally:
        await asyncio.to_thread(_release, client, lease)


def rate_limit(name: str, occupy: int = 1, timeout_seconds: float | None = None) -> None:
    """Wait until `occupy` slots of the rate limit `name` are free and take them; they free themselves at the
    limit's `slot_decay_per_second` (nothing to release)."""
    _acquire(name, occupy, "rate_limit", timeout_seconds)
