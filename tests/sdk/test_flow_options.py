"""Each @flow argument of SPEC §5 has its real effect on a run recorded in the database (ephemeral mode)."""

from __future__ import annotations

import asyncio
import json
import pickle
import threading
import time
from pathlib import Path

import pydantic
import pytest

from apps.runs.models import FlowRun
from orchestrator import flow, tags, task
from orchestrator.sdk.context import get_run_context
from orchestrator.states import Cancelled, Completed
from orchestrator.task_runners import SequentialTaskRunner, ThreadPoolTaskRunner
from tests.sdk.helpers import (
    SlowBody,
    flow_run_named,
    history,
    log_messages,
    seconds_running,
    task_run_named,
    task_runs_of,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_runs_land_in_the_test_database():
    """In-process runs must use the test process's database settings, so the suite can read them back."""
    seen: dict[str, str] = {}

    @flow(name="lands-in-test-db")
    def recorded() -> int:
        seen["flow_run_id"] = get_run_context().flow_run.id
        return 7

    assert recorded() == 7
    run = FlowRun.objects.get(pk=seen["flow_run_id"])
    assert (run.flow.name, run.state_type, run.state_name) == ("lands-in-test-db", "COMPLETED", "Completed")


def test_name_and_version_are_recorded():
    """The flow name groups runs in the UI and the version tells which code produced a run."""

    @flow(name="nightly-etl", version="2.1")
    def anything() -> None:
        pass

    anything()
    run = flow_run_named("nightly-etl")
    assert run.flow_version == "2.1"


def test_flow_retries_rerun_the_flow_after_the_delay():
    """A flow that fails with retries left runs again after retry_delay_seconds, and the history shows it."""
    attempts: list[float] = []

    @flow(name="flaky-flow", retries=2, retry_delay_seconds=0.05)
    def flaky() -> str:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError("source unavailable")
        return "loaded"

    assert flaky() == "loaded"
    run = flow_run_named("flaky-flow")
    assert history(run) == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]
    assert run.run_count == 3
    assert all(later - earlier >= 0.045 for earlier, later in zip(attempts, attempts[1:], strict=False))
    waiting = run.states.filter(name="AwaitingRetry").first()
    assert 0.04 <= (waiting.as_state().scheduled_time - waiting.timestamp).total_seconds() <= 0.2


def test_flow_without_retries_left_ends_failed_with_the_exception():
    """Once retries are used up the run is Failed and the caller gets the flow's own exception."""

    @flow(name="always-fails", retries=1, retry_delay_seconds=0)
    def always_fails() -> None:
        raise ValueError("bad input file")

    with pytest.raises(ValueError, match="bad input file"):
        always_fails()
    run = flow_run_named("always-fails")
    assert history(run) == ["Pending", "Running", "AwaitingRetry", "Retrying", "Failed"]
    assert run.state_message == "Flow run encountered an exception: ValueError: bad input file"


def test_a_retried_flow_runs_its_tasks_again():
    """Each flow attempt runs its tasks anew; the runs of the failed attempt keep their states as evidence."""
    calls: list[str] = []

    @task
    def prepare() -> int:
        calls.append("prepare")
        return 1

    @task
    def publish() -> int:
        calls.append("publish")
        if calls.count("publish") == 1:
            raise OSError("disk full")
        return 2

    @flow(name="retried-with-tasks", retries=1)
    def retried_with_tasks() -> int:
        return prepare() + publish()

    assert retried_with_tasks() == 3
    assert calls == ["prepare", "publish", "prepare", "publish"]
    run = flow_run_named("retried-with-tasks")
    assert [(task_run.name, task_run.state_name) for task_run in task_runs_of(run)] == [
        ("prepare-0", "Completed"),
        ("publish-0", "Failed"),
        ("prepare-1", "Completed"),
        ("publish-1", "Completed"),
    ]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_flow_timeout_ends_timed_out_and_stops_the_code(kind):
    """A flow past timeout_seconds is Failed, named TimedOut, with Prefect's message; its code stops."""
    body = SlowBody()
    if kind == "sync":

        @flow(name=f"slow-{kind}", timeout_seconds=0.1)
        def slow() -> None:
            body.run()

        state = slow(return_state=True)
    else:

        @flow(name=f"slow-{kind}", timeout_seconds=0.1)
        async def slow() -> None:
            await body.run_async()

        state = asyncio.run(slow(return_state=True))
    assert (state.type, state.name) == ("FAILED", "TimedOut")
    assert state.message == "Flow run exceeded timeout of 0.1 second(s)"
    run = flow_run_named(f"slow-{kind}")
    assert (run.state_name, run.state_message) == ("TimedOut", "Flow run exceeded timeout of 0.1 second(s)")
    assert 0.1 <= seconds_running(run) < 2.0  # well before the 3 s body would have ended
    with pytest.raises(TimeoutError, match="exceeded timeout of 0.1 second"):
        state.result()
    body.assert_stopped()


def test_log_prints_sends_print_to_the_run_log(capsys):
    """With log_prints=True a plain print() becomes a log line of the run; without it, print is untouched."""

    @task
    def shout(word: str) -> None:
        print(f"task says {word}")

    @flow(name="printing", log_prints=True)
    def printing() -> None:
        print("flow says hello")
        shout("hi")

    @flow(name="quiet")
    def quiet() -> None:
        print("only on stdout")

    printing()
    quiet()
    run = flow_run_named("printing")
    assert "flow says hello" in log_messages(flow_run=run)
    assert "task says hi" in log_messages(task_run=task_runs_of(run)[0])
    assert not any("only on stdout" in line for line in log_messages(flow_run=flow_run_named("quiet")))
    assert "only on stdout" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("serializer", "recorded", "decode"),
    [("pickle", "cloudpickle", pickle.loads), ("json", "json", lambda blob: json.loads(blob.decode()))],
)
def test_persisted_results_are_written_to_the_result_storage(tmp_path: Path, serializer, recorded, decode):
    """persist_result=True writes the result to result_storage so another process can read it back; "pickle" is
    cloudpickle (a dependency), recorded as such."""

    @task(persist_result=True, result_storage=tmp_path / "tasks", result_serializer=serializer)
    def count_rows() -> dict:
        return {"rows": 3, "tables": ["a", "b"]}

    @flow(name=f"persisting-{serializer}", persist_result=True, result_storage=tmp_path, result_serializer=serializer)
    def persisting() -> dict:
        return {"total": count_rows()["rows"]}

    assert persisting() == {"total": 3}
    run = flow_run_named(f"persisting-{serializer}")
    reference = run.state_data
    assert reference["serializer"] == recorded
    assert Path(reference["path"]).parent == tmp_path
    assert decode(Path(reference["path"]).read_bytes()) == {"total": 3}
    # A state read back from the database (as another process would) loads the result from storage.
    assert FlowRun.objects.get(pk=run.pk).state.result() == {"total": 3}
    task_reference = task_runs_of(run)[0].state_data
    assert Path(task_reference["path"]).parent == tmp_path / "tasks"
    assert decode(Path(task_reference["path"]).read_bytes()) == {"rows": 3, "tables": ["a", "b"]}


def test_results_are_not_persisted_unless_asked(tmp_path: Path):
    """Without persist_result nothing is written: results stay in memory and the state holds no data."""

    @flow(name="not-persisting", result_storage=tmp_path)
    def not_persisting() -> int:
        return 1

    assert not_persisting() == 1
    assert flow_run_named("not-persisting").state_data is None
    assert list(tmp_path.iterdir()) == []


def test_thread_pool_task_runner_runs_submitted_tasks_concurrently():
    """The default runner overlaps submitted tasks: two tasks that wait for each other both finish."""
    barrier = threading.Barrier(2, timeout=5)

    @task
    def meet(side: str) -> str:
        barrier.wait()
        return side

    @flow(name="concurrent", task_runner=ThreadPoolTaskRunner(max_workers=4))
    def concurrent() -> list[str]:
        left, right = meet.submit("left"), meet.submit("right")
        return [left.result(), right.result()]

    assert concurrent() == ["left", "right"]


def test_sequential_task_runner_runs_tasks_one_by_one_in_order():
    """SequentialTaskRunner runs each submitted task at once in the flow's thread, for debugging."""
    order: list[tuple[str, int]] = []

    @task
    def step(name: str) -> None:
        time.sleep(0.01 if name == "first" else 0)
        order.append((name, threading.get_ident()))

    @flow(name="sequential", task_runner=SequentialTaskRunner())
    def sequential() -> int:
        step.submit("first")
        step.submit("second")
        step.submit("third")
        return threading.get_ident()

    flow_thread = sequential()
    assert order == [("first", flow_thread), ("second", flow_thread), ("third", flow_thread)]


class Window(pydantic.BaseModel):
    start: int
    end: int


def test_parameters_are_coerced_from_type_hints():
    """Parameters from a schedule or the CLI arrive as strings and dicts; type hints turn them into values."""
    received: dict = {}

    @flow(name="typed")
    def typed(limit: int, ratio: float, window: Window) -> None:
        received.update(limit=limit, ratio=ratio, window=window)

    typed("5", ratio="0.5", window={"start": 1, "end": 2})
    assert received == {"limit": 5, "ratio": 0.5, "window": Window(start=1, end=2)}
    assert flow_run_named("typed").parameters == {"limit": 5, "ratio": 0.5, "window": {"start": 1, "end": 2}}


def test_validate_parameters_false_passes_values_unchanged():
    """validate_parameters=False turns coercion off: the function sees exactly what the caller passed."""
    received: dict = {}

    @flow(name="untyped", validate_parameters=False)
    def untyped(limit: int) -> None:
        received["limit"] = limit

    untyped("5")
    assert received == {"limit": "5"}
    assert flow_run_named("untyped").state_name == "Completed"


def test_flow_and_task_run_names_come_from_their_templates():
    """flow_run_name / task_run_name make runs findable by what they processed."""

    @task(task_run_name="fetch-page-{page}")
    def fetch(page: int) -> int:
        return page

    @flow(name="named-runs", flow_run_name="import-{source}-{day}")
    def named_runs(source: str, day: str) -> None:
        fetch(1)
        fetch.submit(2).wait()

    @flow(name="named-by-function", flow_run_name=lambda: "computed-name")
    def named_by_function() -> None:
        pass

    named_runs("crm", day="2024-05-01")
    named_by_function()
    run = flow_run_named("named-runs")
    assert run.name == "import-crm-2024-05-01"
    assert sorted(task_run.name for task_run in task_runs_of(run)) == ["fetch-page-1", "fetch-page-2"]
    assert flow_run_named("named-by-function").name == "computed-name"


def test_tags_from_decorators_and_the_tags_block_reach_every_run():
    """Tags select runs in the UI and drive concurrency limits: each run must carry all that apply."""

    @task(tags=["io"])
    def load() -> None:
        pass

    @flow(name="tagged")
    def tagged() -> None:
        load()
        with tags("slow"):
            load()

    with tags("etl", "nightly"):
        tagged()
    run = flow_run_named("tagged")
    assert sorted(run.tags) == ["etl", "nightly"]
    task_runs = task_runs_of(run)
    assert sorted(task_runs[0].tags) == ["etl", "io", "nightly"]
    assert sorted(task_runs[1].tags) == ["etl", "io", "nightly", "slow"]


class HookCalls:
    """Collects hook calls as (hook name, owner name, run id, run name, state name)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def hook(self, label: str):
        def record(owner, run, state) -> None:
            self.calls.append((label, owner.name, run.id, run.name, state.name))

        record.__name__ = label
        return record


def broken_hook(owner, run, state) -> None:
    raise RuntimeError("the pager is down")


@pytest.mark.parametrize(
    ("ending", "hook_kind", "final_name"),
    [
        ("return", "on_completion", "Completed"),
        ("raise", "on_failure", "Failed"),
        ("interrupt", "on_crashed", "Crashed"),
        ("cancel", "on_cancellation", "Cancelled"),
    ],
)
def test_flow_hooks_are_called_with_flow_run_and_state(ending, hook_kind, final_name):
    """Hooks are called as hook(flow, flow_run, state) for the state the run ended in, and only those."""
    calls = HookCalls()
    hooks = {kind: [calls.hook(kind)] for kind in ("on_completion", "on_failure", "on_cancellation", "on_crashed")}

    @flow(name=f"hooked-{ending}", **hooks)
    def hooked():
        if ending == "raise":
            raise ValueError("no")
        if ending == "interrupt":
            raise KeyboardInterrupt
        if ending == "cancel":
            return Cancelled(message="stopped by the flow itself")
        return "fine"

    if ending == "interrupt":
        with pytest.raises(KeyboardInterrupt):
            hooked()
    else:
        hooked(return_state=True)
    run = flow_run_named(f"hooked-{ending}")
    assert run.state_name == final_name
    assert calls.calls == [(hook_kind, f"hooked-{ending}", str(run.id), run.name, final_name)]


def test_a_raising_hook_is_logged_and_changes_nothing():
    """A broken notification hook must not turn a good run bad, nor stop the hooks after it."""
    calls = HookCalls()

    @flow(name="hook-raises", on_completion=[broken_hook, calls.hook("after")])
    def hook_raises() -> int:
        return 1

    state = hook_raises(return_state=True)
    run = flow_run_named("hook-raises")
    assert (state.name, run.state_name, history(run)) == ("Completed", "Completed", ["Pending", "Running", "Completed"])
    assert [call[0] for call in calls.calls] == ["after"]
    assert any(
        "An error was encountered while running hook 'broken_hook'" in line and "the pager is down" in line
        for line in log_messages(flow_run=run)
    )


def test_a_flow_returning_a_state_ends_in_that_state():
    """As in Prefect, a flow may choose its final state by returning one (with its message)."""

    @flow(name="chooses-state")
    def chooses_state():
        return Completed(message="nothing to do today")

    state = chooses_state(return_state=True)
    run = flow_run_named("chooses-state")
    assert (state.name, run.state_name, run.state_message) == ("Completed", "Completed", "nothing to do today")


def test_task_run_name_records_the_task_key_and_default_names():
    """Without a template a task run is named after its task and call index, unique within the flow run."""

    @task
    def extract() -> None:
        pass

    @flow(name="default-task-names")
    def default_task_names() -> None:
        extract()
        extract()

    default_task_names()
    run = flow_run_named("default-task-names")
    first = task_run_named(run, "extract-0")
    assert first.task_key.endswith("extract")
    assert task_run_named(run, "extract-1").task_key == first.task_key
