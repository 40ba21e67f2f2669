"""Prefect 3 fidelity: a flow retry reuses what an earlier attempt of the same flow run completed (persisted
results) and runs again only what failed."""

from __future__ import annotations

import pytest

from orchestrator import flow, task
from tests.sdk.helpers import flow_run_named, flow_runs_of, history, task_runs_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_flow_retry_reuses_completed_tasks_and_subflows_and_reruns_the_failed(kind):
    """With persisted results, the second attempt takes the completed task's and child flow's results from the
    first and runs only the task that failed."""
    calls: list[str] = []

    @task
    def prepare(x: int) -> int:
        calls.append("prepare")
        return x

    @task
    def publish() -> int:
        calls.append("publish")
        if calls.count("publish") == 1:
            raise OSError("disk full")
        return 100

    @flow(name=f"reused-child-{kind}", persist_result=True)
    def child(x: int) -> int:
        calls.append("child")
        return x * 10

    def body() -> int:
        return prepare(1) + child(2) + publish()

    async def async_body() -> int:
        return prepare(1) + child(2) + publish()

    parent = flow(name=f"retried-persisted-{kind}", retries=1, persist_result=True)(
        body if kind == "sync" else async_body
    )
    if kind == "sync":
        assert parent() == 121
    else:
        import asyncio

        assert asyncio.run(parent()) == 121
    assert calls == ["prepare", "child", "publish", "publish"]
    run = flow_run_named(f"retried-persisted-{kind}")
    assert history(run) == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    by_name = {
        task_run.name: task_run.state_name for task_run in task_runs_of(run) if task_run.name != f"reused-child-{kind}"
    }
    assert by_name == {"prepare-0": "Completed", "publish-0": "Failed", "prepare-1": "Cached", "publish-1": "Completed"}
    assert [child_run.state_name for child_run in flow_runs_of(f"reused-child-{kind}")] == ["Completed"]


def test_a_flow_retry_without_persisted_results_runs_everything_again():
    """Without persistence there is nothing to reuse: every task and child flow runs in each attempt."""
    calls: list[str] = []

    @task
    def fails_once() -> int:
        calls.append("task")
        if calls.count("task") == 1:
            raise OSError("disk full")
        return 1

    @flow(name="plain-child")
    def plain_child() -> int:
        calls.append("child")
        return 1

    @flow(name="retried-plain", retries=1)
    def retried_plain() -> int:
        return plain_child() + fails_once()

    assert retried_plain() == 2
    assert calls == ["child", "task", "child", "task"]
    assert len(flow_runs_of("plain-child")) == 2
