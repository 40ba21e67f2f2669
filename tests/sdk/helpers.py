"""Shared readers for the SDK tests.

Flows run for real, in-process (ephemeral mode): the SDK's client goes through the same services and
engine as the server, on this test process's Django connections, so every run lands in the test database
and is read back here through the models and selectors. Modules that run flows mark themselves
`django_db(transaction=True)`: the SDK writes from its own threads, which must see committed data.
"""

from __future__ import annotations

import asyncio
import time

from apps.logs.models import Log
from apps.runs.models import FlowRun, TaskRun
from apps.runs.selectors import flow_run_states, task_run_states


def flow_run_named(flow_name: str) -> FlowRun:
    """The one run of the flow called `flow_name` (each test starts from an empty database)."""
    return FlowRun.objects.get(flow__name=flow_name)


def flow_runs_of(flow_name: str) -> list[FlowRun]:
    return list(FlowRun.objects.filter(flow__name=flow_name).order_by("created"))


def task_runs_of(flow_run: FlowRun) -> list[TaskRun]:
    return list(TaskRun.objects.filter(flow_run=flow_run).order_by("created"))


def task_run_named(flow_run: FlowRun, name: str) -> TaskRun:
    return TaskRun.objects.get(flow_run=flow_run, name=name)


def history(run: FlowRun | TaskRun) -> list[str]:
    """The names of the run's stored states, oldest first."""
    rows = flow_run_states(run=run) if isinstance(run, FlowRun) else task_run_states(run=run)
    return [row.name for row in rows]


def log_messages(*, flow_run: FlowRun | None = None, task_run: TaskRun | None = None) -> list[str]:
    """Log lines stored for a flow run (its own lines only) or for a task run."""
    if task_run is not None:
        rows = Log.objects.filter(task_run=task_run)
    else:
        rows = Log.objects.filter(flow_run=flow_run, task_run__isnull=True)
    return list(rows.order_by("timestamp", "created").values_list("message", flat=True))


def seconds_running(run: FlowRun | TaskRun) -> float:
    """Seconds between the run's first Running state and its final state, as the engine stored them."""
    rows = list(run.states.order_by("timestamp", "created"))
    started = next(row.timestamp for row in rows if row.type == "RUNNING")
    return (rows[-1].timestamp - started).total_seconds()


class SlowBody:
    """The body of a flow or task that would run for seconds in small steps, counting them: a stopped body
    stops counting at once, whatever the machine's load."""

    STEPS, STEP_SECONDS = 300, 0.01

    def __init__(self) -> None:
        self.steps = 0

    def run(self) -> None:
        for _ in range(self.STEPS):
            time.sleep(self.STEP_SECONDS)
            self.steps += 1

    async def run_async(self) -> None:
        for _ in range(self.STEPS):
            await asyncio.sleep(self.STEP_SECONDS)
            self.steps += 1

    def assert_stopped(self) -> None:
        time.sleep(0.05)  # a step already past its sleep may still count
        seen = self.steps
        time.sleep(0.15)
        assert self.steps == seen < self.STEPS, "the timed-out body kept running"
