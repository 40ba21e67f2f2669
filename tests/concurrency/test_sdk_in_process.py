"""`concurrency()` and `rate_limit()` with the in-process client (no server): the same views answer, and a waiter
in this process wakes on the release's notification, well within 250 ms (p95, printed)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time

import pytest

from apps.concurrency import services
from apps.concurrency.selectors import slots_in_use
from orchestrator import concurrency, rate_limit
from orchestrator.sdk.concurrency import ConcurrencySlotError

pytestmark = pytest.mark.django_db(transaction=True)  # the in-process client reads committed rows


def test_sync_and_async_blocks_hold_their_slots_and_free_them() -> None:
    limit = services.global_limit_create(name="db", limit=3)
    with concurrency("db", occupy=2):
        assert slots_in_use(global_limit_ids=[limit.pk]) == {limit.pk: 2}

    async def block() -> None:
        async with concurrency("db", occupy=3):
            assert await asyncio.to_thread(slots_in_use, global_limit_ids=[limit.pk]) == {limit.pk: 3}

    asyncio.run(block())
    assert slots_in_use(global_limit_ids=[limit.pk]) == {}


def test_errors_are_one_readable_line() -> None:
    services.global_limit_create(name="db", limit=1)
    with pytest.raises(ConcurrencySlotError, match="global-concurrency-limit create nope N"):
        with concurrency("nope"):
            pass
    with concurrency("db"):
        with pytest.raises(ConcurrencySlotError, match="no 1 free slot.*within 0.2 s"):
            with concurrency("db", timeout_seconds=0.2):
                pass
    with pytest.raises(ConcurrencySlotError, match="not a rate limit"):
        rate_limit("db")


def test_rate_limit_lets_through_the_decay_rate() -> None:
    services.global_limit_create(name="api", limit=2, slot_decay_per_second=20)
    start = time.monotonic()
    for _ in range(6):
        rate_limit("api")
    assert 0.15 <= time.monotonic() - start < 2  # 2 at once, then 4 at 20 per second


def test_a_waiter_wakes_within_250_ms_of_a_release_in_this_process() -> None:
    services.global_limit_create(name="wake", limit=1)
    latencies = []
    for _ in range(12):
        entered = threading.Event()
        released_at: list[float] = []
        woke_at: list[float] = []

        def waiter(woke_at: list[float] = woke_at, entered: threading.Event = entered) -> None:
            entered.set()
            with concurrency("wake", timeout_seconds=10):
                woke_at.append(time.monotonic())

        with concurrency("wake"):
            thread = threading.Thread(target=waiter)
            thread.start()
            entered.wait()
            time.sleep(0.05)  # the acquire is waiting
            released_at.append(time.monotonic())
        thread.join(timeout=15)
        latencies.append(woke_at[0] - released_at[0])
    p95 = min(statistics.quantiles(latencies, n=20)[-1], max(latencies))
    print(f"\nsame-process wake after release: p95 {p95 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    assert p95 < 0.25


def test_a_task_waiting_on_a_full_tag_limit_starts_soon_after_the_slot_frees() -> None:
    """The WAIT is followed by a wait on the server for the slot, not by the WAIT's 1 s delay."""
    from orchestrator import flow, task

    services.concurrency_limit_create(tag="gate", limit=1)
    marks: dict[tuple[str, int], float] = {}

    @task(tags=["gate"])
    def step(index: int) -> None:
        marks[("start", index)] = time.monotonic()
        time.sleep(0.3)
        marks[("end", index)] = time.monotonic()

    @flow
    def gated() -> None:
        futures = [step.submit(index) for index in range(2)]
        for future in futures:
            future.result()

    gated()
    first, second = sorted(range(2), key=lambda index: marks[("start", index)])
    gap = marks[("start", second)] - marks[("end", first)]
    print(f"\ntag-limit waiter started {gap * 1000:.0f} ms after the slot's holder ended")
    assert gap < 0.5  # the first task's Completed, the wake, the second's Running: well under the 1 s WAIT
