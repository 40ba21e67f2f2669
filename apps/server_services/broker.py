"""The embedded Celery broker: messages are files under `$ORCHESTRATOR_HOME/broker`, so no broker server is needed.

It is kombu's filesystem transport with changes that make it safe and prompt between processes on one machine:
a message is written under a staging name and renamed into the queue folder (a consumer never reads a
half-written file); a consumer claims a message by renaming it into its own folder on the same file system
(exactly one consumer wins the rename; kombu moves it to the temporary directory, which is a copy when that is
another file system); and a worker waits in short slices, so it stops at once when asked. Its folders are
created on first use. docs/services.md explains the choice.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic

from celery.signals import worker_shutting_down
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

# Seconds between two looks at the queue folder when it is empty (kombu's default is 1), unless the transport
# options say otherwise (settings.ORCHESTRATOR_BROKER_POLL_SECONDS).
POLLING_INTERVAL = 0.5


class Channel(filesystem.Channel):
    """One connection's view of the folders: `messages/` (queued), `staging/`, `claimed/`, `exchanges/`."""

    @cached_property
    def folder(self) -> Path:
        folder = Path(self.transport_options.get("folder") or "broker")
        for name in ("messages", "staging", "claimed", "exchanges"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        return folder

    @cached_property
    def data_folder_in(self) -> str:
        return str(self.folder / "messages")

    @cached_property
    def data_folder_out(self) -> str:
        return str(self.folder / "messages")

    @property
    def control_folder(self) -> Path:
        return self.folder / "exchanges"

    # The signature of kombu's filesystem Channel, which this extends; kombu's AbstractChannel names the second
    # argument `message` instead, so mypy sees kombu's own override as incompatible.
    def _put(self, queue: str, payload: dict, **kwargs: object) -> None:  # type: ignore[override]
        # Zero-padded milliseconds keep the folder's sorted order the order messages were sent in.
        name = f"{int(monotonic() * 1000):016d}_{uuid.uuid4().hex}.{queue}.msg"
        staged = self.folder / "staging" / name
        staged.write_bytes(str_to_bytes(dumps(payload)))
        os.replace(staged, Path(self.data_folder_out) / name)

    def _get(self, queue: str, timeout: float | None = None) -> dict:
        wanted = f"{queue}.msg"
        claimed_folder = self.folder / "claimed"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = claimed_folder / f"{os.getpid()}-{name}"
            try:
                os.rename(Path(self.data_folder_in) / name, claimed)
            except FileNotFoundError:
                continue  # another consumer took it first
            try:
                return loads(bytes_to_str(claimed.read_bytes()))
            finally:
                claimed.unlink(missing_ok=True)
        raise Empty()


_shutting_down = threading.Event()


@worker_shutting_down.connect
def _stop_waiting(**kwargs: object) -> None:
    _shutting_down.set()


class Transport(filesystem.Transport):
    Channel = Channel
    polling_interval = POLLING_INTERVAL

    # The signature of kombu's virtual Transport, which this extends; kombu's base Transport declares
    # (connection, **kwargs) instead, so mypy sees kombu's own override as incompatible.
    def drain_events(self, connection: object, timeout: float | None = None) -> None:  # type: ignore[override]
        """Wait for messages in short slices: Celery's worker looks for a shutdown request only between two
        waits (2 s each), so a stop would otherwise take seconds longer than on Redis or RabbitMQ."""
        deadline = None if timeout is None else monotonic() + timeout
        interval = self.polling_interval or POLLING_INTERVAL
        while True:
            remaining = interval if deadline is None else min(interval, deadline - monotonic())
            try:
                return super().drain_events(connection, timeout=max(remaining, 0.001))
            except TimeoutError:
                if _shutting_down.is_set() or (deadline is not None and monotonic() >= deadline):
                    raise
