"""What the consumers and the publisher share, kept light (the ASGI application imports it at start): the group
names, the channel layer message type, and the event loop the publisher sends on."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

from channels.layers import InMemoryChannelLayer

# Every flow run created or changed; and one group per flow run (its changes, its task runs', its log lines).
FLOW_RUNS_GROUP = "flow_runs"
# The event consumer that publishes (its cursor's name, with Redis).
PUBLISHER_NAME = "live_publish"
# The channel layer message type; consumers handle it in `live_message`.
MESSAGE_TYPE = "live.message"


def flow_run_group(flow_run_id: uuid.UUID | str) -> str:
    return f"flow_run.{flow_run_id}"


_loop: asyncio.AbstractEventLoop | None = None
_private_loop: asyncio.AbstractEventLoop | None = None
_private_loop_lock = threading.Lock()


def publish_loop_set(loop: asyncio.AbstractEventLoop) -> None:
    """The event loop serving this process's websockets (a consumer gives it when it connects): the in-memory
    layer's queues belong to it, so the publisher's sends run there."""
    global _loop
    _loop = loop


def publishing_loop(layer: Any) -> asyncio.AbstractEventLoop | None:
    """The loop to send on: the websockets' loop, or (a Redis layer in a process that serves none) a loop of the
    publisher's own. None: an in-memory layer with no connection ever made in this process (nobody to send to)."""
    global _private_loop
    if _loop is not None and not _loop.is_closed():
        return _loop
    if isinstance(layer, InMemoryChannelLayer):
        return None
    with _private_loop_lock:
        if _private_loop is None:
            _private_loop = asyncio.new_event_loop()
            threading.Thread(target=_private_loop.run_forever, name="live-publisher-loop", daemon=True).start()
        return _private_loop
