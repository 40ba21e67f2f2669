"""The registry of event consumers: a name and a handler that takes a batch of events in commit order.

A durable consumer has a cursor row (it resumes where it stopped, in any process; one process at a time handles
its batches). A per-process consumer (durable=False) starts at the stream's tail when its process starts and
keeps its position in memory (the websocket publisher is one). Handlers must be idempotent: an event is handled
at least once (again after a failure or a crash before the cursor moved). Apps register their consumers in
their AppConfig.ready, so the events app knows none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apps.events.stream import StreamEvent

BATCH_SIZE = 500


@dataclass(frozen=True)
class Consumer:
    """`wants`: which events the handler acts on (None: all). A durable consumer's runner steps over a batch with
    none of them without locking or writing its cursor (it saves the position at most every few seconds), so the
    events a consumer ignores cost it one read. `start_at_tail`: a durable consumer whose cursor is created now
    starts after the last committed event instead of at the oldest one kept (the websocket publisher has no use
    for the past)."""

    name: str
    handler: Callable[[list[StreamEvent]], Any]
    durable: bool = True
    batch_size: int = BATCH_SIZE
    wants: Callable[[StreamEvent], bool] | None = None
    start_at_tail: bool = False


_registry: dict[str, Consumer] = {}


def consumer_register(
    *,
    name: str,
    handler: Callable[[list[StreamEvent]], Any],
    durable: bool = True,
    batch_size: int = BATCH_SIZE,
    wants: Callable[[StreamEvent], bool] | None = None,
    start_at_tail: bool = False,
) -> Consumer:
    """Register (or replace) the consumer called `name`."""
    consumer = Consumer(
        name=name, handler=handler, durable=durable, batch_size=batch_size, wants=wants, start_at_tail=start_at_tail
    )
    _registry[name] = consumer
    return consumer


def consumers_registered() -> list[Consumer]:
    return list(_registry.values())


def consumer_get(name: str) -> Consumer:
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise KeyError(f"no event consumer named {name!r} (registered: {known})") from None
