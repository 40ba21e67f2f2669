"""A run's life as recorded: full state history, crashes, bad parameters, logs, and runs in parallel threads."""

from __future__ import annotations

import datetime
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from apps.runs.models import FlowRun, TaskRun
from orchestrator import flow, get_run_logger, task
from orchestrator.sdk.exceptions import MissingContextError, ParameterValidationError
from tests.sdk.helpers import flow_run_named, flow_runs_of, history, log_messages, task_runs_of

pytestmark = pytest.mark.django_db(transaction=True)


def _assert_history_is_complete(run: FlowRun | TaskRun, names: list[str]) -> None:
    rows = list(run.states.order_by("timestamp", "created"))
    assert [row.name for row in rows] == names
    timestamps = [row.timestamp for row in rows]
    assert all(stamp is not None for stamp in timestamps)
    assert timestamps == sorted(timestamps)
    # The run's current state is the newest history row, and its details match the history.
    assert (run.state_id, run.state_name) == (rows[-1].id, rows[-1].name)
    assert run.start_time == next(row.timestamp for row in rows if row.type == "RUNNING")
    assert run.end_time == rows[-1].timestamp


def test_every_run_keeps_its_full_state_history():
    """Pending, Running and the final state are all stored with their times, for flows and for tasks."""

    @task
    def step(x: int) -> int:
        return x + 1

    @flow(name="history")
    def history_flow() -> int:
        return step(1) + step.submit(2).result()

    assert history_flow() == 5
    run = flow_run_named("history")
    _assert_history_is_complete(run, ["Pending", "Running", "Completed"])
    assert run.run_count == 1
    assert run.total_run_time > 0
    for task_run in task_runs_of(run):
        _assert_history_is_complete(task_run, ["Pending", "Running", "Completed"])


def test_keyboard_interrupt_crashes_the_run_and_is_raised_again():
    """Ctrl+C must stop the program as usual, and the run must not stay Running forever: it is Crashed."""
    entered: list[str] = []

    @task
    def interrupted() -> None:
        entered.append("task")
        raise KeyboardInterrupt

    @flow(name="interrupted", retries=2)
    def interrupted_flow() -> None:
        interrupted()

    with pytest.raises(KeyboardInterrupt):
        interrupted_flow()
    run = flow_run_named("interrupted")
    assert history(run) == ["Pending", "Running", "Crashed"]  # never retried
    assert run.state_message == "Execution was interrupted by KeyboardInterrupt"
    assert task_runs_of(run)[0].state_name == "Crashed"
    assert entered == ["task"]


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"limit": "many"}, "limit: Input should be a valid integer"),
        ({"limit": 5, "when": "not a date"}, "when: Input should be a valid date"),
        ({}, "missing a required argument: 'limit'"),
        ({"limit": 1, "colour": "red"}, "got an unexpected keyword argument 'colour'"),
    ],
)
def test_bad_parameters_fail_the_run_before_any_user_code(arguments, words):
    """A bad parameter must fail fast with a message naming it, and the flow body must never start."""
    started: list[bool] = []

    @flow(name="strict")
    def strict(limit: int, when: datetime.date | None = None) -> None:
        started.append(True)

    state = strict(**arguments, return_state=True)
    assert started == []
    run = flow_run_named("strict")
    assert history(run) == ["Pending", "Failed"]
    assert words in run.state_message
    assert state.name == "Failed"
    with pytest.raises(ParameterValidationError, match=words):
        state.result()
    with pytest.raises(ParameterValidationError, match=words):
        strict(**arguments)


def test_a_hint_that_cannot_be_resolved_leaves_the_other_parameters_checked():
    """A flow defined inside a function may name a local type in a hint that cannot be resolved later;
    that one parameter goes unchecked, the others are still validated."""

    class LocalRecord:
        pass

    @flow(name="partly-typed")
    def partly_typed(limit: int, record: LocalRecord | None = None) -> int:
        return limit

    assert partly_typed("4") == 4
    state = partly_typed("four", return_state=True)
    assert state.name == "Failed"
    assert "limit: Input should be a valid integer" in state.message


def test_run_logger_lines_are_stored_for_the_right_run():
    """get_run_logger() lines end up in the database with the run that wrote them, by the run's end."""

    @task
    def load(table: str) -> None:
        get_run_logger().info("loading %s", table)
        get_run_logger().warning("table %s is large", table)

    @flow(name="logging")
    def logging_flow() -> None:
        get_run_logger().info("starting the load")
        load("users")
        load.submit("orders").wait()

    logging_flow()
    run = flow_run_named("logging")
    flow_lines = log_messages(flow_run=run)
    assert "starting the load" in flow_lines
    assert not any("loading" in line for line in flow_lines)
    by_task = {task_run.name: log_messages(task_run=task_run) for task_run in task_runs_of(run)}
    assert [line for line in by_task["load-0"] if "users" in line] == ["loading users", "table users is large"]
    assert [line for line in by_task["load-1"] if "orders" in line] == ["loading orders", "table orders is large"]
    warning = run.logs.get(message="table users is large")
    assert warning.level == 30
    assert warning.task_run.name == "load-0"


def test_get_run_logger_outside_a_run_raises():
    """Outside a run there is nowhere to store the lines: say so instead of dropping them."""
    with pytest.raises(MissingContextError, match="outside a flow run or task run"):
        get_run_logger()


def test_several_flows_run_concurrently_in_threads_of_one_process():
    """A service may run flows from many threads: each run keeps its own context, tasks and logs."""

    @task
    def square(x: int) -> int:
        get_run_logger().info("squaring %s", x)
        return x * x

    @flow(name="parallel")
    def parallel(n: int) -> int:
        get_run_logger().info("flow for %s", n)
        return sum(future.result() for future in square.map(range(n))) + square(n)

    barrier = threading.Barrier(6, timeout=10)

    def run_one(n: int) -> int:
        barrier.wait()
        return parallel(n)

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(run_one, range(1, 7)))
    assert results == [sum(x * x for x in range(n)) + n * n for n in range(1, 7)]
    runs = flow_runs_of("parallel")
    assert len(runs) == 6
    for run in runs:
        n = run.parameters["n"]
        assert (run.state_name, len(task_runs_of(run))) == ("Completed", n + 1)
        assert history(run) == ["Pending", "Running", "Completed"]
        assert log_messages(flow_run=run)[1] == f"flow for {n}"
        assert all(task_run.state_name == "Completed" for task_run in task_runs_of(run))
