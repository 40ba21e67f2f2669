"""Each @task argument of SPEC §5 has its real effect on the task runs recorded in the database."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest

from orchestrator import flow, task
from orchestrator.tasks import task_input_hash
from tests.sdk.helpers import (
    SlowBody,
    flow_run_named,
    flow_runs_of,
    history,
    log_messages,
    seconds_running,
    task_runs_of,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _retry_delays(task_run) -> list[float]:
    """The delay each stored AwaitingRetry state scheduled, in seconds, oldest first."""
    return [
        (row.as_state().scheduled_time - row.timestamp).total_seconds()
        for row in task_run.states.filter(name="AwaitingRetry").order_by("timestamp")
    ]


def _failing_until(attempt_that_succeeds: int):
    calls: list[float] = []

    def body() -> str:
        calls.append(time.monotonic())
        if len(calls) < attempt_that_succeeds:
            raise ConnectionError(f"attempt {len(calls)} failed")
        return f"ok after {len(calls)}"

    return body, calls


def test_task_retries_with_a_fixed_delay():
    """A failing task is retried `retries` times, waiting retry_delay_seconds; the history shows each try."""
    body, calls = _failing_until(3)
    flaky = task(name="flaky", retries=2, retry_delay_seconds=0.05)(body)

    @flow(name="task-retries")
    def task_retries() -> str:
        return flaky()

    assert task_retries() == "ok after 3"
    task_run = task_runs_of(flow_run_named("task-retries"))[0]
    assert history(task_run) == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]
    assert task_run.run_count == 3
    assert [round(delay, 2) for delay in _retry_delays(task_run)] == [0.05, 0.05]
    assert all(later - earlier >= 0.045 for earlier, later in zip(calls, calls[1:], strict=False))


def test_task_retries_with_a_list_of_delays_use_one_per_attempt():
    """retry_delay_seconds=[a, b] waits a before the first retry and b before the second (backoff)."""
    body, calls = _failing_until(3)
    flaky = task(name="backoff", retries=2, retry_delay_seconds=[0.05, 0.15])(body)

    @flow(name="task-backoff")
    def task_backoff() -> str:
        return flaky()

    assert task_backoff() == "ok after 3"
    task_run = task_runs_of(flow_run_named("task-backoff"))[0]
    assert [round(delay, 2) for delay in _retry_delays(task_run)] == [0.05, 0.15]
    assert calls[1] - calls[0] >= 0.045
    assert calls[2] - calls[1] >= 0.145


def test_retry_jitter_factor_spreads_the_delays():
    """Jitter adds up to delay * factor at random so many failing tasks do not retry in lockstep."""
    body, _ = _failing_until(4)
    flaky = task(name="jittery", retries=3, retry_delay_seconds=0.02, retry_jitter_factor=3)(body)

    @flow(name="task-jitter")
    def task_jitter() -> str:
        return flaky()

    assert task_jitter() == "ok after 4"
    task_run = task_runs_of(flow_run_named("task-jitter"))[0]
    delays = _retry_delays(task_run)
    assert task_run.empirical_policy["retry_jitter_factor"] == 3
    assert len(delays) == 3
    assert all(0.02 - 1e-3 <= delay <= 0.08 + 1e-3 for delay in delays), delays
    assert any(delay > 0.0201 for delay in delays), delays


def test_a_task_out_of_retries_fails_its_flow_with_its_exception():
    """When retries are used up the task is Failed and calling it raises its exception in the flow."""
    body, calls = _failing_until(99)
    hopeless = task(name="hopeless", retries=1, retry_delay_seconds=0)(body)

    @flow(name="task-gives-up")
    def task_gives_up() -> None:
        hopeless()

    with pytest.raises(ConnectionError, match="attempt 2 failed"):
        task_gives_up()
    run = flow_run_named("task-gives-up")
    task_run = task_runs_of(run)[0]
    assert (task_run.state_name, task_run.run_count, len(calls)) == ("Failed", 2, 2)
    assert task_run.state_message == "Task run encountered an exception ConnectionError: attempt 2 failed"
    assert run.state_name == "Failed"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_task_timeout_ends_timed_out(kind):
    """A task past timeout_seconds is Failed, named TimedOut, with Prefect's message, and stops."""
    body = SlowBody()
    if kind == "sync":

        @task(name="slow-task", timeout_seconds=0.1)
        def slow_task() -> None:
            body.run()

        @flow(name=f"task-timeout-{kind}")
        def task_timeout():
            return slow_task(return_state=True)

        state = task_timeout(return_state=True)
    else:

        @task(name="slow-task", timeout_seconds=0.1)
        async def slow_task() -> None:
            await body.run_async()

        @flow(name=f"task-timeout-{kind}")
        async def task_timeout():
            return await slow_task(return_state=True)

        state = asyncio.run(task_timeout(return_state=True))
    task_run = task_runs_of(flow_run_named(f"task-timeout-{kind}"))[0]
    assert (task_run.state_type, task_run.state_name) == ("FAILED", "TimedOut")
    assert task_run.state_message == "Task run exceeded timeout of 0.1 second(s)"
    assert 0.1 <= seconds_running(task_run) < 2.0  # well before the 3 s body would have ended
    assert (state.name, state.message) == ("Failed", "Task run exceeded timeout of 0.1 second(s)")
    body.assert_stopped()


def test_cache_hits_across_flow_runs_are_cached_and_skip_the_work():
    """task_input_hash + cache_expiration: the same inputs in a later flow run are answered from the cache."""
    calls: list[int] = []

    @task(cache_key_fn=task_input_hash, cache_expiration=timedelta(minutes=5))
    def expensive(x: int) -> int:
        calls.append(x)
        return x * 10

    @flow(name="caching")
    def caching(x: int) -> int:
        return expensive(x)

    assert [caching(1), caching(1), caching(2)] == [10, 10, 20]
    assert calls == [1, 2]
    first, second, third = (task_runs_of(run)[0] for run in flow_runs_of("caching"))
    assert (first.state_name, second.state_name, third.state_name) == ("Completed", "Cached", "Completed")
    assert second.state_type == "COMPLETED"
    assert history(second) == ["Pending", "Cached"]
    assert first.cache_key == second.cache_key != third.cache_key
    assert log_messages(task_run=second).count("Finished in state Cached()") == 1


def test_an_expired_cache_entry_is_not_used():
    """After cache_expiration the work is done again: stale results must not be served forever."""
    calls: list[int] = []

    @task(cache_key_fn=task_input_hash, cache_expiration=timedelta(seconds=0.5))
    def expensive(x: int) -> int:
        calls.append(x)
        return x

    @flow(name="expiring-cache")
    def expiring_cache() -> int:
        return expensive(1)

    expiring_cache()
    expiring_cache()
    time.sleep(0.55)
    expiring_cache()
    assert calls == [1, 1]
    names = [task_runs_of(run)[0].state_name for run in flow_runs_of("expiring-cache")]
    assert names == ["Completed", "Cached", "Completed"]


def test_refresh_cache_recomputes_and_replaces_the_entry():
    """refresh_cache=True ignores a valid entry and stores the new result for the next callers."""
    values = iter(["old", "new"])

    @task(cache_key_fn=lambda context, arguments: "fixed-key", persist_result=True)
    def source() -> str:
        return next(values)

    @flow(name="refreshing")
    def refreshing(refresh: bool) -> str:
        return source.with_options(refresh_cache=refresh)()

    assert refreshing(False) == "old"
    assert refreshing(True) == "new"
    assert refreshing(False) == "new"
    names = [task_runs_of(run)[0].state_name for run in flow_runs_of("refreshing")]
    assert names == ["Completed", "Completed", "Cached"]


@pytest.mark.parametrize(("fails", "hook_kind"), [(False, "on_completion"), (True, "on_failure")])
def test_task_hooks_are_called_with_task_run_and_state(fails, hook_kind):
    """Task hooks get (task, task_run, state) so they can report which run ended how."""
    calls: list[tuple] = []

    def on_completion(owner, run, state) -> None:
        calls.append(("on_completion", owner.name, run.id, state.name))

    def on_failure(owner, run, state) -> None:
        calls.append(("on_failure", owner.name, run.id, state.name))

    @task(name="watched", on_completion=[on_completion], on_failure=[on_failure])
    def watched() -> None:
        if fails:
            raise ValueError("broken")

    @flow(name=f"task-hooks-{hook_kind}")
    def task_hooks():
        return watched(return_state=True)

    task_hooks(return_state=True)
    task_run = task_runs_of(flow_run_named(f"task-hooks-{hook_kind}"))[0]
    assert calls == [(hook_kind, "watched", str(task_run.id), task_run.state_name)]


def test_a_raising_task_hook_is_logged_and_changes_nothing():
    """A hook's error is written to the task run's log; the task stays Completed and the flow too."""

    def broken(owner, run, state) -> None:
        raise RuntimeError("cannot notify")

    @task(on_completion=[broken])
    def fine() -> int:
        return 1

    @flow(name="task-hook-raises")
    def task_hook_raises() -> int:
        return fine()

    assert task_hook_raises() == 1
    run = flow_run_named("task-hook-raises")
    task_run = task_runs_of(run)[0]
    assert (run.state_name, task_run.state_name) == ("Completed", "Completed")
    assert any("running hook 'broken'" in line and "cannot notify" in line for line in log_messages(task_run=task_run))


def test_an_unpicklable_persisted_result_fails_the_task_with_a_clear_message():
    """A result that cannot be stored fails the run and says why, instead of a pickling traceback."""

    @task(name="returns-a-lock", persist_result=True)
    def returns_a_lock():
        return threading.Lock()

    @flow(name="unpicklable")
    def unpicklable():
        return returns_a_lock(return_state=True)

    state = unpicklable(return_state=True)
    task_run = task_runs_of(flow_run_named("unpicklable"))[0]
    assert task_run.state_name == "Failed"
    assert task_run.state_message.startswith("the result could not be serialized with 'pickle'")
    assert "cannot pickle '_thread.lock' object" in task_run.state_message
    assert state.name == "Failed"


def test_a_tag_concurrency_limit_makes_submitted_tasks_take_turns(settings):
    """A limit of 1 on a tag (set on the server) is obeyed by the SDK: tasks WAIT for the slot, none overlap."""
    from apps.concurrency.services import concurrency_limit_create

    settings.ORCHESTRATION_CONCURRENCY_WAIT_SECONDS = 0.05  # how long the engine tells a waiting task to wait
    concurrency_limit_create(tag="warehouse", limit=1)
    active = {"now": 0, "most": 0}
    lock = threading.Lock()

    @task(tags=["warehouse"])
    def query(number: int) -> int:
        with lock:
            active["now"] += 1
            active["most"] = max(active["most"], active["now"])
        time.sleep(0.03)
        with lock:
            active["now"] -= 1
        return number

    @flow(name="limited")
    def limited() -> list[int]:
        return [future.result() for future in query.map(range(4))]

    assert limited() == [0, 1, 2, 3]
    assert active["most"] == 1
    assert all(task_run.state_name == "Completed" for task_run in task_runs_of(flow_run_named("limited")))
