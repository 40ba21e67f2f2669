"""Prefect 3 fidelity: futures, states and return values behave as a Prefect user's flow file expects."""

from __future__ import annotations

import asyncio
import time

import pytest

from orchestrator import State, flow, task, unmapped
from orchestrator.sdk.exceptions import UpstreamTaskError
from orchestrator.states import Completed, Failed
from tests.sdk.helpers import flow_run_named, flow_runs_of, history, task_run_named, task_runs_of

pytestmark = pytest.mark.django_db(transaction=True)


@task
def double(x: int) -> int:
    return 2 * x


@task
def explode(x: int = 0) -> int:
    raise ValueError(f"cannot handle {x}")


@task
async def double_async(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@task
async def explode_async(x: int = 0) -> int:
    raise ValueError(f"cannot handle {x} asynchronously")


def test_future_state_after_wait_is_the_final_state_on_every_path():
    """future.wait() then future.state is a State (never the raw value) for plain, cached, retried and hooked runs."""
    attempts: list[int] = []
    hooked: list[str] = []

    @task(cache_key_fn=lambda context, arguments: "fidelity-constant")
    def cached(x: int) -> int:
        return x

    @task(retries=1)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return "second attempt"

    @task(on_completion=[lambda task_, task_run, state: hooked.append(state.name)])
    def with_hook() -> int:
        return 7

    seen: dict[str, State] = {}

    @flow(name="future-states")
    def future_states() -> None:
        futures = {
            "plain": double.submit(1),
            "first-cached": cached.submit(3),
            "retried": flaky.submit(),
            "hooked": with_hook.submit(),
            "failed": explode.submit(2),
        }
        for future in futures.values():
            future.wait()
        futures["cached"] = cached.submit(4)
        futures["cached"].wait()
        seen.update({key: future.state for key, future in futures.items()})

    future_states()
    assert all(isinstance(state, State) for state in seen.values()), seen
    assert {key: state.name for key, state in seen.items()} == {
        "plain": "Completed",
        "first-cached": "Completed",
        "retried": "Completed",
        "hooked": "Completed",
        "failed": "Failed",
        "cached": "Cached",
    }
    assert (seen["plain"].result(), seen["cached"].result(), seen["retried"].result()) == (2, 3, "second attempt")
    assert hooked == ["Completed"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_return_state_gives_a_state_for_tasks_and_flows_on_every_path(kind):
    """return_state=True hands back a State whatever happened: completed, failed, cached, not ready, subflow."""
    good_task, bad_task = (double, explode) if kind == "sync" else (double_async, explode_async)
    states: dict[str, object] = {}

    @task(cache_key_fn=lambda context, arguments: f"fidelity-return-state-{kind}")
    def cached() -> int:
        return 1

    def child_sync_body() -> None:
        raise RuntimeError("child fails")

    async def child_async_body() -> None:
        raise RuntimeError("child fails")

    child_sync = flow(name=f"child-{kind}")(child_sync_body)
    child_async = flow(name=f"child-{kind}")(child_async_body)

    def sync_body() -> str:
        states["completed"] = good_task(1, return_state=True)
        states["failed"] = bad_task(1, return_state=True)
        cached(return_state=True)
        states["cached"] = cached(return_state=True)
        states["not-ready"] = double(explode.submit(5), return_state=True)
        states["subflow"] = child_sync(return_state=True)
        return "done"

    async def async_body() -> str:
        states["completed"] = await good_task(1, return_state=True)
        states["failed"] = await bad_task(1, return_state=True)
        cached(return_state=True)
        states["cached"] = cached(return_state=True)
        states["not-ready"] = double(explode.submit(5), return_state=True)
        states["subflow"] = await child_async(return_state=True)
        return "done"

    parent = flow(name=f"return-state-{kind}")(sync_body if kind == "sync" else async_body)
    outcome = parent(return_state=True)
    final = asyncio.run(outcome) if kind == "async" else outcome
    assert all(isinstance(state, State) for state in states.values()), states
    assert {key: state.name for key, state in states.items()} == {  # type: ignore[attr-defined]
        "completed": "Completed",
        "failed": "Failed",
        "cached": "Cached",
        "not-ready": "NotReady",
        "subflow": "Failed",
    }
    assert isinstance(final, State)
    assert (final.name, final.result()) == ("Completed", "done")

    failing = flow(name=f"failing-{kind}")(child_sync_body if kind == "sync" else child_async_body)
    outcome = failing(return_state=True)
    failed = asyncio.run(outcome) if kind == "async" else outcome
    assert isinstance(failed, State) and failed.name == "Failed"
    with pytest.raises(RuntimeError, match="child fails"):
        failed.result()


def test_a_flow_returning_a_state_gets_it_back_as_is():
    """A returned State is the flow's final state, with its type, name and message; a Failed one fails the flow."""

    @flow(name="returns-failed-state")
    def returns_failed_state():
        return Failed(message="the upstream system said no")

    @flow(name="returns-completed-state")
    def returns_completed_state():
        return Completed(message="nothing to do")

    failed = returns_failed_state(return_state=True)
    completed = returns_completed_state(return_state=True)
    assert (failed.type, failed.name, failed.message) == ("FAILED", "Failed", "the upstream system said no")
    assert (completed.name, completed.message) == ("Completed", "nothing to do")
    assert flow_run_named("returns-failed-state").state_message == "the upstream system said no"


@pytest.mark.parametrize(
    ("shape", "expected_name", "expected_message"),
    [
        ("dict", "Failed", "1/3 states failed"),
        ("nested", "Failed", "2/4 states failed"),
        ("all-good", "Completed", None),
    ],
)
def test_futures_nested_in_a_returned_value_decide_the_flow_state(shape, expected_name, expected_message):
    """Futures in returned lists, tuples and dicts (at any depth) are resolved; their states decide the flow's."""

    @flow(name=f"nested-{shape}")
    def nested():
        if shape == "dict":
            return {"good": double.submit(1), "bad": explode.submit(1), "also": double.submit(2)}
        if shape == "nested":
            return {"left": [double.submit(1), explode.submit(1)], "right": (double.submit(2), explode.submit(2))}
        return {"values": [double.submit(1), (double.submit(2),)], "constant": 3}

    state = nested(return_state=True)
    assert (state.name, state.message) == (expected_name, expected_message)
    if shape == "all-good":
        assert state.result() == {"values": [2, (4,)], "constant": 3}


def test_an_unawaited_failed_submitted_task_does_not_fail_the_flow():
    """Prefect 3: a flow's state comes from its return value; a failed future nobody returned or waited on for
    its result does not fail it (the task run itself is recorded Failed)."""

    @flow(name="unawaited-failure")
    def unawaited_failure() -> str:
        explode.submit(3)
        double.submit(1)
        return "done"

    state = unawaited_failure(return_state=True)
    assert (state.name, state.result()) == ("Completed", "done")
    run = flow_run_named("unawaited-failure")
    assert run.state_name == "Completed"
    assert task_run_named(run, "explode-0").state_name == "Failed"


def test_downstream_of_a_failed_upstream_ends_not_ready_without_running():
    """Data or wait_for on a failed upstream: the task or subflow never runs; its Pending state named NotReady
    names the upstream, and return_state=True hands that state back."""
    ran: list[str] = []

    @task
    def consume(value: int | None = None) -> None:
        ran.append("task")

    @flow(name="downstream-subflow")
    def downstream_subflow(value: int | None = None) -> None:
        ran.append("subflow")

    states: dict[str, State] = {}

    @flow(name="not-ready-paths")
    def not_ready_paths() -> str:
        upstream = explode.submit(1)
        states["data"] = consume(upstream, return_state=True)
        states["wait_for"] = consume(wait_for=[upstream], return_state=True)
        submitted = consume.submit(upstream)
        submitted.wait()
        states["submitted"] = submitted.state
        states["subflow-data"] = downstream_subflow(upstream, return_state=True)
        states["subflow-wait_for"] = downstream_subflow(wait_for=[upstream], return_state=True)
        return "handled"

    assert not_ready_paths() == "handled"
    assert ran == []
    run = flow_run_named("not-ready-paths")
    upstream_id = str(task_run_named(run, "explode-0").id)
    for path, state in states.items():
        assert isinstance(state, State), path
        assert (state.type, state.name) == ("PENDING", "NotReady"), path
        assert upstream_id in (state.message or ""), path
        with pytest.raises(UpstreamTaskError):
            state.result()
    consumed = task_run_named(run, "consume-0")
    assert (consumed.state_name, history(consumed)) == ("NotReady", ["NotReady"])
    assert flow_runs_of("downstream-subflow") == []


def test_subflows_take_wait_for_like_tasks():
    """A subflow called with wait_for= starts only after those futures are final."""
    order: list[str] = []

    @task
    def slow_first() -> None:
        time.sleep(0.1)
        order.append("task")

    @flow(name="waits-for-task")
    def waits_for_task() -> None:
        order.append("subflow")

    @flow(name="parent-waits")
    def parent_waits() -> None:
        upstream = slow_first.submit()
        waits_for_task(wait_for=[upstream])

    parent_waits()
    assert order == ["task", "subflow"]
    child = flow_run_named("waits-for-task")
    assert child.state_name == "Completed"
    link = child.parent_task_run
    assert [edge["id"] for edge in link.task_inputs["__wait_for"]] == [
        str(task_run_named(flow_run_named("parent-waits"), "slow_first-0").id)
    ]


def test_map_takes_keyword_iterables_unmapped_and_constants_and_a_failure_stays_in_its_child():
    """map() zips keyword iterables, passes unmapped() and plain constants whole, and one failing child fails
    only itself; a flow returning the mapped futures gets their states."""

    @task
    def combine(a: int, b: int, scale: int, offsets: list[int]) -> int:
        if a == 2:
            raise ValueError("two is refused")
        return (a + b) * scale + sum(offsets)

    values: dict[str, object] = {}

    @flow(name="keyword-map")
    def keyword_map():
        good = combine.map(a=[1, 3], b=[10, 20], scale=2, offsets=unmapped([1, 1]))
        values["good"] = [future.result() for future in good]
        return combine.map([1, 2, 3], b=[0, 0, 0], scale=unmapped(1), offsets=unmapped([]))

    state = keyword_map(return_state=True)
    assert values["good"] == [24, 48]
    assert (state.name, state.message) == ("Failed", "1/3 states failed")
    run = flow_run_named("keyword-map")
    names = {task_run.name: task_run.state_name for task_run in task_runs_of(run)}
    assert names == {
        "combine-0": "Completed",
        "combine-1": "Completed",
        "combine-2": "Completed",
        "combine-3": "Failed",
        "combine-4": "Completed",
    }
