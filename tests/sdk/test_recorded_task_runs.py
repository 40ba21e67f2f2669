"""Simple task runs (no cache key, no tags, no retries) run at once and are recorded in the background, in
batches, with the client's times; everything else still asks the server first. Both end up with the same
records: a full state history, real start and end times, logs attached to the right run."""

from __future__ import annotations

import time

import pytest

from apps.concurrency.services import concurrency_limit_create
from apps.runs.models import TaskRun
from orchestrator import flow, get_run_logger, task
from tests.sdk.helpers import flow_run_named, history, log_messages, task_runs_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_simple_task_runs_are_recorded_with_their_history_times_and_logs():
    """Running a task without waiting for the server must not cost the record anything users read."""

    @task
    def nap(seconds: float) -> float:
        get_run_logger().info(f"napping {seconds}")
        time.sleep(seconds)
        return seconds

    @flow(name="recorded-naps")
    def naps() -> float:
        return nap(0.2) + nap(0.1)

    assert naps() == pytest.approx(0.3)
    run = flow_run_named("recorded-naps")
    first, second = task_runs_of(run)
    for task_run, seconds in ((first, 0.2), (second, 0.1)):
        assert history(task_run) == ["Pending", "Running", "Completed"]
        assert task_run.run_count == 1
        assert seconds <= task_run.total_run_time < seconds + 0.5
        assert task_run.start_time <= task_run.end_time <= run.end_time
        assert log_messages(task_run=task_run) == [f"napping {seconds}", "Finished in state Completed()"]
    assert first.end_time <= second.start_time


def test_a_long_simple_task_shows_up_running_while_it_runs():
    """Recording in the background must not hide a task from the UI until it ends."""

    @task
    def watch_myself() -> str:
        from orchestrator.sdk.context import task_run_context

        my_id = task_run_context.get().task_run.id
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = TaskRun.objects.filter(pk=my_id).values_list("state_type", flat=True).first()
            if found is not None:
                return found
            time.sleep(0.05)
        return "never recorded"

    @flow(name="recorded-live")
    def live() -> str:
        return watch_myself()

    assert live() == "RUNNING"


def test_a_failing_simple_task_is_recorded_failed_and_fails_the_flow():
    @task
    def explode() -> None:
        raise ValueError("no good")

    @flow(name="recorded-failure")
    def failing() -> None:
        explode()

    state = failing(return_state=True)
    assert state.type == "FAILED"
    (task_run,) = task_runs_of(flow_run_named("recorded-failure"))
    assert history(task_run) == ["Pending", "Running", "Failed"]
    assert "ValueError: no good" in task_run.state_message


def test_tasks_the_server_may_refuse_still_ask_it_first():
    """A tag with a concurrency limit of 0 must stop the task before it runs: tagged tasks are never run on
    the client's own authority."""
    concurrency_limit_create(tag="frozen", limit=0)
    ran = []

    @task(tags=["frozen"], timeout_seconds=5)
    def limited() -> None:
        ran.append(True)

    @flow(name="recorded-limited", timeout_seconds=1.5)
    def blocked() -> None:
        limited()

    state = blocked(return_state=True)
    assert state.type == "FAILED" and ran == []
    (task_run,) = task_runs_of(flow_run_named("recorded-limited"))
    assert task_run.state_type == "PENDING"  # waiting for a slot, never Running


def test_a_thousand_mapped_simple_tasks_are_all_recorded():
    @task
    def double(x: int) -> int:
        return 2 * x

    @flow(name="recorded-map")
    def mapped() -> int:
        return sum(future.result() for future in double.map(range(1000)))

    assert mapped() == 999_000
    run = flow_run_named("recorded-map")
    assert TaskRun.objects.filter(flow_run=run, state_type="COMPLETED").count() == 1000
    assert TaskRun.objects.filter(flow_run=run).count() == 1000
