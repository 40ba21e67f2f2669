"""`async def` flows and tasks work as sync ones do: await, gather, submit, map, subflows, hooks, failures."""

from __future__ import annotations

import asyncio

import pytest

from apps.runs.selectors import flow_run_graph
from orchestrator import flow, get_run_logger, task
from orchestrator.task_runners import SequentialTaskRunner
from tests.sdk.helpers import flow_run_named, history, log_messages, task_runs_of

pytestmark = pytest.mark.django_db(transaction=True)


@task
async def fetch(page: int) -> list[int]:
    await asyncio.sleep(0.01)
    return [page * 10 + item for item in range(3)]


@task
def total(rows: list[int]) -> int:
    return sum(rows)


def test_async_flow_awaits_gathers_and_submits_tasks():
    """Awaited async tasks, gathered ones, sync tasks and submitted async tasks all run and are recorded."""

    @flow(name="async-etl")
    async def async_etl() -> int:
        get_run_logger().info("start")
        first = await fetch(1)
        second, third = await asyncio.gather(fetch(2), fetch(3))
        submitted = fetch.submit(4)
        return total(first + second + third) + total(submitted)

    assert asyncio.run(async_etl()) == sum([10, 11, 12, 20, 21, 22, 30, 31, 32]) + sum([40, 41, 42])
    run = flow_run_named("async-etl")
    assert history(run) == ["Pending", "Running", "Completed"]
    task_runs = task_runs_of(run)
    assert sorted(task_run.name for task_run in task_runs) == [
        "fetch-0",
        "fetch-1",
        "fetch-2",
        "fetch-3",
        "total-0",
        "total-1",
    ]
    assert all(history(task_run) == ["Pending", "Running", "Completed"] for task_run in task_runs)
    assert "start" in log_messages(flow_run=run)
    # The submitted async task's future became an edge into the second total.
    graph = flow_run_graph(run=run)
    ids = {node["name"]: node["id"] for node in graph["nodes"]}
    assert {"from": ids["fetch-3"], "to": ids["total-1"], "argument": "rows"} in graph["edges"]


def test_gathered_async_tasks_run_concurrently():
    """Gathering async tasks overlaps their waits (the client calls do not block the event loop for long)."""
    active = {"now": 0, "most": 0}

    @task
    async def overlapping(index: int) -> int:
        active["now"] += 1
        active["most"] = max(active["most"], active["now"])
        await asyncio.sleep(0.1)
        active["now"] -= 1
        return index

    @flow(name="async-gather")
    async def async_gather() -> list[int]:
        return list(await asyncio.gather(*(overlapping(index) for index in range(5))))

    assert asyncio.run(async_gather()) == [0, 1, 2, 3, 4]
    assert active["most"] > 1


def test_async_task_failure_and_retries():
    """An async task's retries and final failure behave as a sync task's."""
    attempts: list[int] = []

    @task(retries=1, retry_delay_seconds=0.05)
    async def unstable() -> None:
        attempts.append(1)
        raise ConnectionError("still down")

    @flow(name="async-failure")
    async def async_failure():
        return await unstable(return_state=True)

    state = asyncio.run(async_failure(return_state=True))
    assert len(attempts) == 2
    assert state.name == "Failed"
    task_run = task_runs_of(flow_run_named("async-failure"))[0]
    assert history(task_run) == ["Pending", "Running", "AwaitingRetry", "Retrying", "Failed"]
    with pytest.raises(ConnectionError, match="still down"):
        state.result()


def test_async_subflows_and_map():
    """An async flow can call async subflows and map tasks; the children are linked to the parent."""

    @task
    def square(x: int) -> int:
        return x * x

    @flow(name="async-child")
    async def async_child(n: int) -> int:
        return sum(future.result() for future in square.map(range(n)))

    @flow(name="async-parent")
    async def async_parent() -> list[int]:
        return list(await asyncio.gather(async_child(3), async_child(4)))

    assert asyncio.run(async_parent()) == [5, 14]
    parent = flow_run_named("async-parent")
    links = task_runs_of(parent)
    assert len(links) == 2
    assert all(link.state_name == "Completed" for link in links)
    assert {link.subflow_runs.get().parameters["n"] for link in links} == {3, 4}


def test_async_hooks_are_awaited():
    """An `async def` hook is awaited with the same arguments as a sync one."""
    called: list[tuple] = []

    async def notify(owner, run, state) -> None:
        await asyncio.sleep(0)
        called.append((owner.name, run.id, state.name))

    @flow(name="async-hooks", on_completion=[notify])
    async def async_hooks() -> None:
        pass

    @flow(name="sync-with-async-hook", on_completion=[notify])
    def sync_with_async_hook() -> None:
        pass

    asyncio.run(async_hooks())
    sync_with_async_hook()
    assert called == [
        ("async-hooks", str(flow_run_named("async-hooks").id), "Completed"),
        ("sync-with-async-hook", str(flow_run_named("sync-with-async-hook").id), "Completed"),
    ]


def test_sync_subflow_inside_an_async_flow_records_its_runs():
    """A sync flow called from an async one runs in the loop's thread; its database calls must still work."""

    @flow(name="sync-child")
    def sync_child() -> int:
        return total([1, 2, 3])

    @flow(name="async-host")
    async def async_host() -> int:
        return sync_child()

    assert asyncio.run(async_host()) == 6
    assert flow_run_named("sync-child").state_name == "Completed"
    assert flow_run_named("async-host").state_name == "Completed"


def test_async_tasks_submitted_to_the_sequential_runner_of_an_async_flow():
    """The sequential runner runs submitted work in the flow's thread, whose event loop is busy: async tasks
    (and their run logger) must still work there."""

    @task
    async def logged(x: int) -> int:
        get_run_logger().info("handling %s", x)
        await asyncio.sleep(0)
        return x

    @flow(name="async-sequential", task_runner=SequentialTaskRunner())
    async def async_sequential() -> int:
        return logged.submit(1).result() + sum(future.result() for future in logged.map([2, 3]))

    assert asyncio.run(async_sequential()) == 6
    task_runs = task_runs_of(flow_run_named("async-sequential"))
    assert [task_run.state_name for task_run in task_runs] == ["Completed"] * 3
    assert log_messages(task_run=task_runs[0])[0] == "handling 1"
