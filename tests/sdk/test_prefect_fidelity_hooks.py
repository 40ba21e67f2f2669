"""Prefect 3 fidelity: state-change hooks run as Prefect runs them, and bad hook or retry options are refused at
decoration time with Prefect's messages."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator import flow, task
from orchestrator.states import State
from tests.sdk.helpers import flow_run_named, log_messages, task_run_named


def add(a: int, b: int) -> int:
    return a + b


def hook(owner, run, state) -> None:
    pass


@pytest.mark.parametrize(
    ("decorator", "options", "error", "words"),
    [
        (task, {"on_completion": hook}, TypeError, "Expected iterable for 'on_completion'"),
        (task, {"on_failure": 3}, TypeError, "Expected iterable for 'on_failure'"),
        (task, {"on_failure": [hook, "not callable"]}, TypeError, "Expected callables in 'on_failure'"),
        (task, {"on_completion": "hook"}, TypeError, "Expected callables in 'on_completion'"),
        (flow, {"on_completion": [1]}, TypeError, "Expected callables in 'on_completion'"),
        (flow, {"on_failure": hook}, TypeError, "Expected iterable for 'on_failure'"),
        (flow, {"on_cancellation": None.__class__}, TypeError, "Expected iterable for 'on_cancellation'"),
        (flow, {"on_crashed": [None]}, TypeError, "Expected callables in 'on_crashed'"),
        (task, {"retry_jitter_factor": -0.1}, ValueError, "`retry_jitter_factor` must be >= 0"),
        (task, {"retries": 60, "retry_delay_seconds": [1] * 51}, ValueError, "more than 50 retry delays"),
    ],
)
def test_bad_hooks_and_retry_options_are_refused_with_prefects_messages(decorator, options, error, words):
    """A Prefect user sees the message Prefect would give, on import of the flow file."""
    with pytest.raises(error, match=words):
        decorator(**options)(add)


def test_fifty_retry_delays_and_hook_tuples_are_accepted():
    """The limits are Prefect's: 50 custom delays are fine, and any iterable of callables holds hooks."""
    accepted = task(retries=50, retry_delay_seconds=[1] * 50, on_completion=(hook,), on_failure=iter([hook]))(add)
    assert (len(accepted.retry_delay_seconds), accepted.on_completion, accepted.on_failure) == (50, [hook], [hook])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["called", "submitted", "async"])
def test_task_hooks_run_in_order_with_the_final_state_and_survive_a_failing_hook(how):
    """Every hook runs, in order, with (task, task_run, final state): sync and async hooks, hooks with extra
    default arguments, and the ones after a hook that raised; for called, submitted and async tasks."""
    calls: list[tuple] = []

    def first(task_, task_run, state) -> None:
        calls.append(("first", task_.name, task_run.name, state.name))

    def broken(task_, task_run, state) -> None:
        raise RuntimeError("the pager is down")

    async def asynchronous(task_, task_run, state) -> None:
        await asyncio.sleep(0)
        calls.append(("async", state.name, state.is_final()))

    def with_defaults(task_, task_run, state, suffix: str = "!") -> None:
        calls.append(("defaults", state.name + suffix))

    hooks = [first, broken, asynchronous, with_defaults]

    @task(retries=1, on_completion=hooks, on_failure=hooks)
    def flaky(fail: bool) -> str:
        if fail:
            raise ValueError("no")
        return "yes"

    @task(on_completion=hooks, on_failure=hooks)
    async def flaky_async(fail: bool) -> str:
        if fail:
            raise ValueError("no")
        return "yes"

    @flow(name=f"task-hooks-{how}")
    def sync_parent() -> None:
        for fail in (False, True):
            if how == "called":
                flaky(fail, return_state=True)
            else:
                flaky.submit(fail).wait()

    @flow(name=f"task-hooks-{how}")
    async def async_parent() -> None:
        for fail in (False, True):
            await flaky_async(fail, return_state=True)

    if how == "async":
        asyncio.run(async_parent())
    else:
        sync_parent()
    name = "flaky_async" if how == "async" else "flaky"
    assert calls == [
        ("first", name, f"{name}-0", "Completed"),
        ("async", "Completed", True),
        ("defaults", "Completed!"),
        ("first", name, f"{name}-1", "Failed"),
        ("async", "Failed", True),
        ("defaults", "Failed!"),
    ]
    run = task_run_named(flow_run_named(f"task-hooks-{how}"), f"{name}-1")
    assert any("the pager is down" in line for line in log_messages(task_run=run))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("ending", ["completed", "failed"])
def test_flow_hooks_run_in_order_with_the_final_state_and_survive_a_failing_hook(ending):
    """Flow hooks get (flow, flow_run, final state) in order; a raising hook does not stop the next ones;
    an async hook of a sync flow works, and so does a hook with extra default arguments."""
    calls: list[tuple] = []

    def broken(flow_, flow_run, state) -> None:
        raise RuntimeError("the pager is down")

    async def asynchronous(flow_, flow_run, state) -> None:
        await asyncio.sleep(0)
        calls.append(("async", flow_.name, flow_run.name, state.name))

    def with_defaults(flow_, flow_run, state: State, prefix: str = "saw ") -> None:
        calls.append(("defaults", prefix + state.name))

    hooks = [broken, asynchronous, with_defaults]

    @flow(name=f"flow-hooks-{ending}", retries=1, on_completion=hooks, on_failure=hooks)
    def hooked() -> str:
        if ending == "failed":
            raise ValueError("no")
        return "yes"

    state = hooked(return_state=True)
    run = flow_run_named(f"flow-hooks-{ending}")
    expected = "Completed" if ending == "completed" else "Failed"
    assert state.name == expected
    assert calls == [("async", f"flow-hooks-{ending}", run.name, expected), ("defaults", f"saw {expected}")]
