"""Prefect 3 fidelity: flows and tasks as methods, option values Prefect accepts, subflow parameters and timeouts."""

from __future__ import annotations

import asyncio
import time

import pytest

from orchestrator import State, flow, task
from orchestrator.sdk.exceptions import ParameterValidationError
from tests.sdk.helpers import flow_run_named, flow_runs_of, task_runs_of

pytestmark = pytest.mark.django_db(transaction=True)


class Pipeline:
    """Flows and tasks defined on a class, as Prefect users write them."""

    factor = 10

    def __init__(self, offset: int):
        self.offset = offset

    @task
    def shift(self, x: int) -> int:
        return x + self.offset

    @classmethod
    @task
    def scale(cls, x: int) -> int:
        return x * cls.factor

    @staticmethod
    @task
    def negate(x: int) -> int:
        return -x

    @flow(name="method-flow")
    def run(self, x: int) -> list[int]:
        futures = self.shift.map([x, x + 1])
        return [self.shift(x), self.scale(x), self.negate(x), self.scale.submit(x).result(), *futures]

    @classmethod
    @flow(name="classmethod-flow")
    def build(cls, x: int) -> int:
        return cls.scale(x)

    @staticmethod
    @flow(name="staticmethod-flow")
    def constant(x: int) -> int:
        return Pipeline.negate(x)


def test_flows_and_tasks_work_as_instance_class_and_static_methods():
    """The decorators bind self or cls like functions do: called, submitted, mapped and as flows."""
    pipeline = Pipeline(offset=1)
    assert pipeline.run(2) == [3, 20, -2, 20, 3, 4]
    assert Pipeline.build(3) == 30
    assert pipeline.build(3) == 30
    assert Pipeline.constant(4) == -4
    assert pipeline.run.fn is Pipeline.run.fn
    run = flow_run_named("method-flow")
    assert run.state_name == "Completed"
    assert run.parameters["x"] == 2
    assert sorted(task_run.name for task_run in task_runs_of(run)) == [
        "negate-0",
        "scale-0",
        "scale-1",
        "shift-0",
        "shift-1",
        "shift-2",
    ]


def test_timeout_seconds_zero_removes_the_timeout():
    """As in Prefect, timeout_seconds=0 means no timeout, in the decorator and in with_options()."""

    @task(timeout_seconds=0.05)
    def sleepy() -> str:
        time.sleep(0.15)
        return "slept"

    @flow(name="untimed", timeout_seconds=0.05)
    def untimed() -> str:
        return sleepy.with_options(timeout_seconds=0)()

    unbounded = untimed.with_options(timeout_seconds=0)
    assert (unbounded.timeout_seconds, task(timeout_seconds=0)(sleepy.fn).timeout_seconds) == (None, None)
    assert unbounded() == "slept"
    assert flow_run_named("untimed").state_name == "Completed"
    with pytest.raises(ValueError, match="timeout_seconds must not be negative"):
        task(timeout_seconds=-1)(sleepy.fn)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_subflow_called_with_invalid_parameters_gives_the_parent_a_failed_state(kind):
    """Bad parameters fail the subflow before it runs; with return_state=True the parent gets that Failed state
    (never an exception), without it our ParameterValidationError (a TypeError) with a readable message."""

    def child_body(count: int) -> int:
        return count

    async def child_async_body(count: int) -> int:
        return count

    child = flow(name=f"picky-child-{kind}")(child_body if kind == "sync" else child_async_body)
    states: list[State] = []
    raised: list[BaseException] = []

    @flow(name=f"tolerant-parent-{kind}")
    def sync_parent() -> str:
        states.append(child("many", return_state=True))
        states.append(child(1, unknown=2, return_state=True))
        states.append(child(return_state=True))
        try:
            child("many")
        except ParameterValidationError as exc:
            raised.append(exc)
        return "carried on"

    @flow(name=f"tolerant-parent-{kind}")
    async def async_parent() -> str:
        states.append(await child("many", return_state=True))
        states.append(await child(1, unknown=2, return_state=True))
        states.append(await child(return_state=True))
        try:
            await child("many")
        except ParameterValidationError as exc:
            raised.append(exc)
        return "carried on"

    result = sync_parent() if kind == "sync" else asyncio.run(async_parent())
    assert result == "carried on"
    assert [type(state) for state in states] == [State, State, State]
    assert [state.name for state in states] == ["Failed", "Failed", "Failed"]
    assert "count" in states[0].message and "unknown" in states[1].message and "count" in states[2].message
    assert len(raised) == 1 and isinstance(raised[0], TypeError)
    assert flow_run_named(f"tolerant-parent-{kind}").state_name == "Completed"


def test_an_async_subflow_timeout_starts_when_the_subflow_starts_executing():
    """The clock of an async subflow's timeout starts when it runs, not when its coroutine was made, nor while
    the parent (or an earlier subflow gathered with it) keeps the event loop busy."""

    @flow(name="timed-child", timeout_seconds=0.5)
    async def timed_child(delay: float) -> str:
        await asyncio.sleep(delay)
        return "in time"

    @flow(name="patient-parent")
    async def patient_parent() -> list[str]:
        later = timed_child(0.2, return_state=True)
        await asyncio.sleep(0.6)
        first = await later
        second = await timed_child(0.2)
        return [first.result(), second]

    assert asyncio.run(patient_parent()) == ["in time", "in time"]
    assert {run.state_name for run in flow_runs_of("timed-child")} == {"Completed"}
