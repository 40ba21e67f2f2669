"""Driving consumers in tests: until every committed event has been handled, however long another test's open
transaction keeps them unreadable (on PostgreSQL the stream waits for the cluster's oldest transaction)."""

from __future__ import annotations

import time

from apps.events.consumers import Consumer
from apps.events.runner import consumer_run_batch
from apps.events.stream import stream_lag, stream_tail

DRIVE_TIMEOUT_SECONDS = 20.0


def drive(consumer: Consumer) -> list:
    """Run the durable consumer's batches until its lag is 0; the handler's results, in order."""
    results = []
    deadline = time.monotonic() + DRIVE_TIMEOUT_SECONDS
    while True:
        outcome = consumer_run_batch(consumer=consumer)
        if outcome is not None and outcome.handled:
            results.append(outcome.result)
            continue
        if outcome is not None and stream_lag(after=outcome.position) == 0:
            return results
        if time.monotonic() > deadline:
            raise AssertionError(f"consumer {consumer.name!r} did not catch up with the stream")
        time.sleep(0.02)


def wait_readable() -> None:
    """Wait until every committed event can be read (another test's open transaction may hold them back)."""
    deadline = time.monotonic() + DRIVE_TIMEOUT_SECONDS
    while stream_lag(after=stream_tail()):
        if time.monotonic() > deadline:
            raise AssertionError("committed events stayed unreadable")
        time.sleep(0.02)
