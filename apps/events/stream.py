"""Reading the event stream in commit order, and the durable cursors of its consumers (docs/events.md).

A position is (transaction id, event id). On PostgreSQL an id taken at INSERT may commit after a higher one, so
the stream is ordered by the writing transaction's id (`transaction_id xid8 DEFAULT pg_current_xact_id()`) and
only rows of transactions older than every transaction still in progress (`pg_snapshot_xmin`) are read: no row
can appear later before a position already passed. On SQLite writers are serialised (BEGIN IMMEDIATE), so the
id order is the commit order and the transaction id is 0.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField, F, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from apps.events.models import ConsumerCursor, Event

Position = tuple[int, int]
START: Position = (0, 0)

# Set after every commit that wrote events in this process: the process's runner reads at once.
events_committed = threading.Event()

_EVENT_COLUMNS = "id, name, resource_type, resource_id, payload, occurred"
_SQLITE_READ = f"SELECT {_EVENT_COLUMNS}, 0 FROM events_event WHERE id > %s ORDER BY id LIMIT %s"
_POSTGRESQL_READ = (
    f"SELECT {_EVENT_COLUMNS}, transaction_id::text::bigint AS transaction_id FROM events_event"
    " WHERE (transaction_id, id) > (%s::text::xid8, %s)"
    " AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
    " ORDER BY transaction_id, id LIMIT %s"
)
_POSTGRESQL_TAIL = (
    "SELECT transaction_id::text::bigint, id FROM events_event"
    " WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
    " ORDER BY transaction_id DESC, id DESC LIMIT 1"
)


def wake_on_commit() -> None:
    """Called by the engine with every event it writes: wake this process's runner once the transaction commits."""
    transaction.on_commit(events_committed.set)


class StreamEvent:
    """An event as a consumer reads it: the row's values, with its resource id, time and payload converted on
    first use. Most consumers look only at the name and resource type of most events (the live publisher with
    nobody watching, the celery dispatch at flow runs only), and building model instances was most of the
    runner's time on a busy server."""

    __slots__ = ("id", "name", "resource_type", "transaction_id", "_resource_id", "_payload", "_occurred")

    def __init__(self, row: tuple[Any, ...]) -> None:
        self.id, self.name, self.resource_type, self._resource_id, self._payload, self._occurred = row[:6]
        self.transaction_id: int = int(row[6])

    @property
    def resource_id(self) -> uuid.UUID:
        if not isinstance(self._resource_id, uuid.UUID):  # SQLite keeps the 32 hex digits
            self._resource_id = uuid.UUID(self._resource_id)
        return self._resource_id

    @property
    def payload(self) -> dict[str, Any]:
        if isinstance(self._payload, str | bytes):  # JSON text on both databases (Django loads jsonb as text)
            self._payload = json.loads(self._payload)
        return self._payload

    @property
    def occurred(self) -> datetime:
        occurred = self._occurred
        if isinstance(occurred, str):
            occurred = datetime.fromisoformat(occurred)
        if occurred.tzinfo is None:  # SQLite: UTC without an offset
            occurred = occurred.replace(tzinfo=UTC)
        self._occurred = occurred
        return self._occurred

    def __repr__(self) -> str:
        return f"<StreamEvent {self.id} {self.name} {self.resource_type}>"


def position_of(event: StreamEvent) -> Position:
    return (event.transaction_id, event.id)


def stream_read(*, after: Position, limit: int) -> list[StreamEvent]:
    """The committed events after `after`, in commit order, at most `limit`."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_POSTGRESQL_READ, [str(after[0]), after[1], limit])
        else:
            cursor.execute(_SQLITE_READ, [after[1], limit])
        return [StreamEvent(row) for row in cursor.fetchall()]


def stream_tail() -> Position:
    """The position of the last committed event (where a consumer that only wants new events starts)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_POSTGRESQL_TAIL)
            row = cursor.fetchone()
            return (int(row[0]), int(row[1])) if row else START
        cursor.execute("SELECT MAX(id) FROM events_event")
        row = cursor.fetchone()
        return (0, int(row[0])) if row and row[0] is not None else START


def stream_lag(*, after: Position) -> int:
    """How many committed events lie after `after`, those not readable yet included (on PostgreSQL an event
    becomes readable once every transaction older than its own has ended): a consumer's lag."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM events_event WHERE (transaction_id, id) > (%s::text::xid8, %s)",
                [str(after[0]), after[1]],
            )
            return int(cursor.fetchone()[0])
    return Event.objects.filter(id__gt=after[1]).count()


def cursor_ensure(*, name: str, at_tail: bool = False) -> None:
    """Create the consumer's cursor if it has none, at the start of the stream (or, with `at_tail`, after the last
    committed event), in its own transaction, so that a failing first batch does not take it away."""
    if not ConsumerCursor.objects.filter(name=name).exists():
        transaction_id, event_id = stream_tail() if at_tail else START
        try:
            with transaction.atomic():
                ConsumerCursor.objects.create(name=name, transaction_id=transaction_id, event_id=event_id)
        except IntegrityError:  # another process created it meanwhile
            pass


def cursor_lock(*, name: str) -> ConsumerCursor | None:
    """The consumer's cursor row (see `cursor_ensure`), locked until the current transaction ends; None while
    another process holds it. Call inside `transaction.atomic()`."""
    return ConsumerCursor.objects.select_for_update(skip_locked=True).filter(name=name).first()


def cursor_advance(*, cursor: ConsumerCursor, to: Position, handled: int) -> None:
    """Move a locked cursor past the events just handled (in the same transaction as their handling)."""
    cursor.transaction_id, cursor.event_id = to
    cursor.handled += handled
    cursor.last_error = ""
    cursor.save(update_fields=["transaction_id", "event_id", "handled", "last_error", "updated"])


def cursor_step_over(*, name: str, to: Position, count: int) -> None:
    """Move a cursor forward over events its consumer does not want, without locking it: only forward (another
    process may have moved it further meanwhile)."""
    transaction_id, event_id = to
    behind = Q(transaction_id__lt=transaction_id) | Q(transaction_id=transaction_id, event_id__lt=event_id)
    ConsumerCursor.objects.filter(behind, name=name).update(
        transaction_id=transaction_id, event_id=event_id, handled=F("handled") + count, updated=timezone.now()
    )


def cursor_record_error(*, name: str, error: str) -> None:
    """Say on the cursor why its consumer is stuck (it retries from where it is)."""
    ConsumerCursor.objects.filter(name=name).update(last_error=error[:2000])


def events_passed(*, consumer_names: list[str]) -> QuerySet:
    """The events every one of these durable consumers has handled (what retention may delete). A consumer
    without a cursor yet holds nothing back: it starts at the oldest event still kept."""
    events = Event.objects.all()
    for transaction_id, event_id in ConsumerCursor.objects.filter(name__in=consumer_names).values_list(
        "transaction_id", "event_id"
    ):
        if connection.vendor == "postgresql":
            passed = RawSQL(
                "(transaction_id, id) <= (%s::text::xid8, %s)", [str(transaction_id), event_id], BooleanField()
            )
            events = events.filter(passed)
        else:
            events = events.filter(id__lte=event_id)
    return events
