"""Wake the acquires waiting in this process when slots free here (a release committed by this process).

Releases made by other processes are not seen here: waiters also re-read the database every
ORCHESTRATOR_CONCURRENCY_ACQUIRE_POLL_SECONDS (docs/concurrency.md).
"""

from __future__ import annotations

import threading

_condition = threading.Condition()
_generation = 0


def generation() -> int:
    """The count of releases so far; a waiter reads it before it looks for a free slot."""
    with _condition:
        return _generation


def notify_released() -> None:
    global _generation
    with _condition:
        _generation += 1
        _condition.notify_all()


def wait_for_release(*, since: int, timeout: float) -> bool:
    """Wait until a release after generation `since` (True), or `timeout` seconds (False)."""
    with _condition:
        return _condition.wait_for(lambda: _generation != since, timeout=timeout)
