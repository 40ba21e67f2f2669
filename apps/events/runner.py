"""Running the consumers: one batch at a time (`consumer_run_batch`), or a loop in a daemon thread of each
server process (`EventRunner`), woken by the process's own commits and polling every
ORCHESTRATOR_EVENTS_POLL_SECONDS for the others' (docs/events.md)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from apps.events.consumers import Consumer, consumers_registered
from apps.events.stream import (
    Position,
    StreamEvent,
    cursor_advance,
    cursor_ensure,
    cursor_lock,
    cursor_record_error,
    cursor_step_over,
    events_committed,
    position_of,
    stream_read,
    stream_tail,
)

logger = logging.getLogger("apps.events")

# How often a runner saves the position it stepped to over events its consumer does not want.
STEP_OVER_SAVE_SECONDS = 2.0
# A consumer whose handler failed is retried from its cursor after this delay, doubling up to the maximum.
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0


@dataclass
class BatchOutcome:
    handled: int  # events handed to the handler
    position: Position  # the consumer's position afterwards
    result: Any = None  # what the handler returned


def consumer_run_batch(
    *, consumer: Consumer, after: Position | None = None, read: Callable[..., list[StreamEvent]] = stream_read
) -> BatchOutcome | None:
    """Hand the next batch of events after the consumer's position to its handler. A durable consumer's cursor is
    locked, read and advanced in the handler's transaction (None when another process holds it); a failing handler
    raises and moves nothing. A per-process consumer gives its position as `after`. `read` reads the stream (a
    runner shares one read among its consumers at the same position)."""
    if not consumer.durable:
        if after is None:
            raise ValueError(f"consumer {consumer.name!r} is not durable: give the position to read after")
        events = read(after=after, limit=consumer.batch_size)
        if not events:
            return BatchOutcome(0, after)
        result = consumer.handler(events)
        return BatchOutcome(len(events), position_of(events[-1]), result)
    cursor_ensure(name=consumer.name, at_tail=consumer.start_at_tail)
    with transaction.atomic():
        cursor = cursor_lock(name=consumer.name)
        if cursor is None:
            return None
        events = read(after=cursor.position, limit=consumer.batch_size)
        if not events:
            return BatchOutcome(0, cursor.position)
        result = consumer.handler(events)
        cursor_advance(cursor=cursor, to=position_of(events[-1]), handled=len(events))
        return BatchOutcome(len(events), cursor.position, result)


# After a wake-up by a commit, how long the runner waits for more commits before it reads (part of the latency).
COALESCE_SECONDS = 0.02


class EventRunner:
    """Runs consumers until stopped. Per-process consumers start at the stream's tail when the runner starts;
    durable ones where their cursor is. A failing consumer is retried from its position after a growing delay;
    the others go on."""

    def __init__(self, consumers: list[Consumer] | None = None, *, poll_seconds: float | None = None) -> None:
        self.consumers = consumers if consumers is not None else consumers_registered()
        self.poll_seconds = poll_seconds if poll_seconds is not None else settings.ORCHESTRATOR_EVENTS_POLL_SECONDS
        # Durable consumers: the last position this process saw (a cheap read tells whether there is anything
        # after it before the cursor is locked). Per-process consumers: their position.
        self.positions: dict[str, Position] = {}
        self._stepped_over: dict[str, tuple[Position, int]] = {}  # not saved yet: position, count
        self._saved_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        # The stream reads of the current pass: consumers at the same position (the usual case) share one.
        self._reads: dict[tuple[Position, int], list[StreamEvent]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """One pass over the consumers; returns how many events were handled."""
        handled = 0
        now = time.monotonic()
        try:
            for consumer in self.consumers:
                if self._retry_at.get(consumer.name, 0.0) > now:
                    continue
                try:
                    handled += self._run_consumer(consumer)
                except Exception as exc:  # the handler or the database failed: retry from the same position later
                    self._failed(consumer, exc)
                else:
                    self._failures.pop(consumer.name, None)
                    self._retry_at.pop(consumer.name, None)
        finally:
            self._reads.clear()
        return handled

    def _read(self, *, after: Position, limit: int) -> list[StreamEvent]:
        """The committed events after `after`, read once per pass: events never change once committed, and one
        read that a later read would find longer is still a prefix of it."""
        events = self._reads.get((after, limit))
        if events is None:
            events = self._reads[(after, limit)] = stream_read(after=after, limit=limit)
        return events

    def _run_consumer(self, consumer: Consumer) -> int:
        if not consumer.durable:
            if consumer.name not in self.positions:
                self.positions[consumer.name] = stream_tail()
            outcome = consumer_run_batch(consumer=consumer, after=self.positions[consumer.name], read=self._read)
        else:
            known = self.positions.get(consumer.name)
            if known is not None:
                events = self._read(after=known, limit=consumer.batch_size)
                if not events:
                    self._save_stepped_over(consumer, force=False)
                    return 0
                if consumer.wants is not None and not any(consumer.wants(event) for event in events):
                    return self._step_over(consumer, events)
            outcome = consumer_run_batch(consumer=consumer, read=self._read)
            self._stepped_over.pop(consumer.name, None)
        if outcome is None:  # another process is handling this consumer's batch
            return 0
        self.positions[consumer.name] = outcome.position
        return outcome.handled

    def _step_over(self, consumer: Consumer, events: list) -> int:
        """Events the consumer does not want: move past them in memory; save the position now and then."""
        position = position_of(events[-1])
        self.positions[consumer.name] = position
        _, count = self._stepped_over.get(consumer.name, (position, 0))
        self._stepped_over[consumer.name] = (position, count + len(events))
        self._save_stepped_over(consumer, force=False)
        return len(events)

    def _save_stepped_over(self, consumer: Consumer, *, force: bool) -> None:
        pending = self._stepped_over.get(consumer.name)
        if pending is None:
            return
        now = time.monotonic()
        if not force and now - self._saved_at.get(consumer.name, 0.0) < STEP_OVER_SAVE_SECONDS:
            return
        cursor_ensure(name=consumer.name, at_tail=consumer.start_at_tail)
        cursor_step_over(name=consumer.name, to=pending[0], count=pending[1])
        self._stepped_over.pop(consumer.name, None)
        self._saved_at[consumer.name] = now

    def save_positions(self) -> None:
        """Save what the durable consumers stepped over (when the runner stops)."""
        for consumer in self.consumers:
            if consumer.durable:
                self._save_stepped_over(consumer, force=True)

    def _failed(self, consumer: Consumer, exc: Exception) -> None:
        failures = self._failures.get(consumer.name, 0) + 1
        self._failures[consumer.name] = failures
        delay = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** (failures - 1))
        self._retry_at[consumer.name] = time.monotonic() + delay
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        logger.warning(
            "event consumer %r failed (%s); it retries from its position in %.1f s", consumer.name, error, delay
        )
        if consumer.durable:
            try:
                cursor_record_error(name=consumer.name, error=error)
            except Exception:  # the database itself is down: the log line says enough
                connection.close()

    def run_forever(self) -> None:
        while not self._stop.is_set():
            events_committed.clear()  # before reading: a commit during the pass wakes the next wait at once
            try:
                handled = self.run_once()
            except Exception as exc:  # never let the thread die: the next pass tries again
                logger.warning("event runner pass failed (%s: %s)", type(exc).__name__, exc)
                handled = 0
                close_old_connections()
            if handled:
                continue  # there may be more
            if events_committed.wait(self.poll_seconds):
                # Woken by a commit: let the commits of the next few milliseconds join this pass, so a busy server
                # reads the stream a few dozen times a second, not once per transition.
                self._stop.wait(COALESCE_SECONDS)
        try:
            self.save_positions()
        finally:
            connection.close()

    def start(self) -> threading.Thread:
        """Run in a daemon thread (it dies with its process; a batch cut short is handled again)."""
        self._thread = threading.Thread(target=self.run_forever, name="event-runner", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        events_committed.set()
        if self._thread is not None:
            self._thread.join(timeout)


def start_server_runner() -> EventRunner | None:
    """The server process's runner (orchestrator/server.py calls it in each Daphne worker, never the CLI or the
    SDK): every registered consumer, in a daemon thread."""
    runner = EventRunner()
    if not runner.consumers:
        return None
    runner.start()
    return runner
