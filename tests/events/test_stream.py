"""The event stream on a real database: commit order under concurrent writers, durable cursors that survive a
restart, a failing consumer that retries from its cursor, two runners that never handle one event twice,
per-process consumers that start at the tail, and retention that keeps what a consumer has not handled."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.events.consumers import Consumer
from apps.events.models import ConsumerCursor, Event
from apps.events.runner import EventRunner, consumer_run_batch
from apps.events.stream import START, events_passed, stream_lag, stream_read
from tests.events.support import drive, wait_readable

pytestmark = pytest.mark.django_db(transaction=True)


def write_event(label: str) -> Event:
    return Event.objects.create(
        name="test.happened", resource_type="test", resource_id=uuid.uuid4(), payload={"label": label}
    )


def labels(events: list[Event]) -> list[str]:
    return [event.payload["label"] for event in events]


class Recorder:
    """A handler that records the labels it was given (and can be told to fail)."""

    def __init__(self, fail_times: int = 0) -> None:
        self.seen: list[str] = []
        self.fail_times = fail_times
        self.lock = threading.Lock()

    def __call__(self, events: list[Event]) -> int:
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("the handler broke")
        with self.lock:
            self.seen.extend(labels(events))
        return len(events)


def consumer(name: str, handler, **kwargs) -> Consumer:
    return Consumer(name=name, handler=handler, **kwargs)


@pytest.mark.skipif("connection.vendor != 'postgresql'")
class TestCommitOrderOnPostgresql:
    def test_an_event_that_commits_after_a_higher_id_is_not_skipped(self):
        """On PostgreSQL the id is taken at INSERT: an "id > cursor" reader would pass id 1 while it is still
        uncommitted and skip it for ever. The stream shows nothing until the older transaction has ended."""
        first_inserted = threading.Event()
        release_first = threading.Event()
        errors: list[BaseException] = []

        def slow_writer() -> None:
            try:
                with transaction.atomic():
                    write_event("first")
                    first_inserted.set()
                    assert release_first.wait(20)
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)
            finally:
                connections.close_all()

        thread = threading.Thread(target=slow_writer)
        thread.start()
        try:
            assert first_inserted.wait(20)
            second = write_event("second")  # a higher id, committed at once (autocommit)
            assert stream_read(after=START, limit=10) == []  # not even "second": "first" may still commit
            assert stream_lag(after=START) == 1  # "first" is not committed; only "second" is counted
        finally:
            release_first.set()
            thread.join(30)
        assert not errors
        wait_readable()
        events = stream_read(after=START, limit=10)
        assert labels(events) == ["first", "second"]
        assert events[0].id < second.id  # the id order was not the commit order

    def test_many_concurrent_writers_are_all_read_once_in_order(self):
        """Sixteen threads write while a consumer drives the stream: it handles every event exactly once."""
        recorder = Recorder()
        reader = consumer("test-concurrent", recorder)
        barrier = threading.Barrier(9)
        stop = threading.Event()

        def writer(index: int) -> None:
            try:
                barrier.wait(20)
                for step in range(25):
                    with transaction.atomic():
                        write_event(f"{index}-{step}")
            finally:
                connections.close_all()

        def reading() -> None:
            try:
                barrier.wait(20)
                while not stop.is_set():
                    consumer_run_batch(consumer=reader)
            finally:
                connections.close_all()

        writers = [threading.Thread(target=writer, args=(index,)) for index in range(8)]
        reader_thread = threading.Thread(target=reading)
        for thread in [*writers, reader_thread]:
            thread.start()
        for thread in writers:
            thread.join(60)
        stop.set()
        reader_thread.join(60)
        drive(reader)
        assert len(recorder.seen) == 200 and len(set(recorder.seen)) == 200


class TestDurableCursor:
    def test_a_failing_handler_retries_from_its_cursor(self):
        """Nothing is skipped: the batch that failed is handed over again, whole, once the handler works."""
        write_event("a")
        write_event("b")
        wait_readable()
        recorder = Recorder(fail_times=1)
        reader = consumer("test-failing", recorder)
        runner = EventRunner([reader])
        assert runner.run_once() == 0
        cursor = ConsumerCursor.objects.get(name="test-failing")
        assert cursor.position == START and "the handler broke" in cursor.last_error
        assert runner.run_once() == 0  # waiting before the retry
        runner._retry_at.clear()  # the retry delay has passed
        assert runner.run_once() == 2
        assert recorder.seen == ["a", "b"]
        cursor.refresh_from_db()
        assert cursor.event_id == Event.objects.get(payload__label="b").id and cursor.last_error == ""

    def test_the_cursor_survives_a_restart(self):
        """A new process (a new runner, nothing in memory) goes on after the last event the consumer handled."""
        write_event("before")
        first = Recorder()
        drive(consumer("test-restart", first))
        write_event("after")
        wait_readable()
        second = Recorder()
        runner = EventRunner([consumer("test-restart", second)])
        assert runner.run_once() == 1
        assert first.seen == ["before"] and second.seen == ["after"]
        assert ConsumerCursor.objects.get(name="test-restart").handled == 2

    def test_two_runners_never_handle_one_event_twice(self):
        """Two server processes run the same durable consumer: the cursor lock lets one at a time handle a batch,
        and the other reads the cursor it moved."""
        for index in range(60):
            write_event(str(index))
        recorder = Recorder()
        reader = consumer("test-two-runners", recorder, batch_size=7)
        barrier = threading.Barrier(2)

        def run() -> None:
            try:
                barrier.wait(20)
                runner = EventRunner([reader])
                for _ in range(40):
                    runner.run_once()
            finally:
                connections.close_all()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        drive(reader)
        assert sorted(recorder.seen, key=int) == [str(index) for index in range(60)]

    def test_a_consumer_handling_nothing_new_leaves_its_cursor(self):
        recorder = Recorder()
        outcome = consumer_run_batch(consumer=consumer("test-empty", recorder))
        assert outcome is not None and outcome.handled == 0 and outcome.position == START


class TestEventsAConsumerDoesNotWant:
    def test_they_are_stepped_over_without_the_handler_and_the_position_is_saved(self):
        """Most events concern no consumer (the celery dispatch wants only SCHEDULED flow runs): the runner must
        not lock and write the cursor for each, yet a new process must not read them again for ever."""
        wants = lambda event: event.payload["label"].startswith("wanted")  # noqa: E731
        recorder = Recorder()
        runner = EventRunner([consumer("test-wants", recorder, wants=wants)])
        assert runner.run_once() == 0  # creates the cursor at the start
        write_event("ignored-1")
        write_event("ignored-2")
        wait_readable()
        assert runner.run_once() == 2
        assert recorder.seen == []
        runner.save_positions()
        cursor = ConsumerCursor.objects.get(name="test-wants")
        assert cursor.event_id == Event.objects.get(payload__label="ignored-2").id and cursor.handled == 2
        write_event("wanted-1")
        wait_readable()
        assert runner.run_once() == 1
        assert recorder.seen == ["wanted-1"]
        assert ConsumerCursor.objects.get(name="test-wants").handled == 3


class TestPerProcessConsumer:
    def test_it_starts_at_the_tail_and_keeps_its_position_in_memory(self):
        """The websocket publisher's kind: only what happens after its process started, no cursor row."""
        write_event("old")
        wait_readable()
        recorder = Recorder()
        runner = EventRunner([consumer("test-live", recorder, durable=False)])
        assert runner.run_once() == 0
        write_event("new")
        wait_readable()
        assert runner.run_once() == 1
        assert recorder.seen == ["new"]
        assert not ConsumerCursor.objects.filter(name="test-live").exists()

    def test_a_position_is_required(self):
        with pytest.raises(ValueError, match="not durable"):
            consumer_run_batch(consumer=consumer("test-live", Recorder(), durable=False))


def test_a_read_event_has_the_values_of_its_row():
    """Consumers get StreamEvents (converted on first use), with the same values as the model's."""
    written = write_event("values")
    wait_readable()
    (read,) = [event for event in stream_read(after=START, limit=1000) if event.id == written.id]
    row = Event.objects.get(pk=written.pk)
    assert (read.name, read.resource_type, read.resource_id, read.payload, read.occurred) == (
        row.name,
        row.resource_type,
        row.resource_id,
        row.payload,
        row.occurred,
    )
    assert isinstance(read.resource_id, uuid.UUID) and read.occurred.utcoffset() is not None


class TestConsumersShareReads:
    def test_consumers_at_one_position_read_the_stream_once_per_pass(self):
        """The server runs every consumer in one thread per process: reading each batch once for all of them
        keeps the runner's share of a busy server small."""
        write_event("before")
        wait_readable()
        live, other = Recorder(), Recorder()
        runner = EventRunner(
            [consumer("test-live-a", live, durable=False), consumer("test-live-b", other, durable=False)]
        )
        assert runner.run_once() == 0
        write_event("shared-1")
        write_event("shared-2")
        wait_readable()
        with CaptureQueriesContext(connection) as queries:
            assert runner.run_once() == 4
        reads = [
            query["sql"] for query in queries.captured_queries if "FROM events_event" in query["sql"].replace('"', "")
        ]
        assert len(reads) == 1, reads
        assert live.seen == other.seen == ["shared-1", "shared-2"]


class TestRetention:
    @override_settings(RETENTION_DAYS=1)
    def test_events_a_durable_consumer_has_not_handled_are_kept(self):
        """Retention deletes old events only once every durable consumer has passed them."""
        from apps.server_services.retention import retention_delete_expired

        old = timezone.now() - timedelta(days=3)
        handled = write_event("handled")
        drive(consumer("celery_dispatch", Recorder()))  # a registered durable consumer
        pending = write_event("pending")
        Event.objects.filter(pk__in=[handled.pk, pending.pk]).update(occurred=old)
        assert list(events_passed(consumer_names=["celery_dispatch"]).values_list("pk", flat=True)) == [handled.pk]
        assert retention_delete_expired()["events"] == 1
        assert list(Event.objects.values_list("pk", flat=True)) == [pending.pk]


def test_the_engine_wakes_its_process_runner_after_commit(django_capture_on_commit_callbacks, db):
    """A state change in this process wakes the runner at once (not at its next poll)."""
    from apps.events.stream import events_committed
    from apps.flows.services import flow_get_or_create
    from apps.runs.services import flow_run_create
    from orchestrator.states import Scheduled

    events_committed.clear()
    flow = flow_get_or_create(name="wake")[0]
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            flow_run_create(flow=flow, state=Scheduled())
            assert not events_committed.is_set()
    assert events_committed.is_set()
    assert connection.vendor in {"sqlite", "postgresql"}
