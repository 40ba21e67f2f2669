"""Futures returned by `task.submit()` and `task.map()`: `.result(timeout=)`, `.wait()`, `.state`."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.sdk.results import attach
from orchestrator.states import Failed, Pending, State


class TaskRunFuture:
    """The eventual final state of one task run."""

    def __init__(self, future: concurrent.futures.Future[State], task_run_id_holder: dict[str, Any], name: str):
        self._future = future
        self._holder = task_run_id_holder
        self.name = name

    @property
    def task_run_id(self) -> str | None:
        return self._holder.get("task_run_id")

    def wait(self, timeout: float | None = None) -> None:
        """Block until the task run is final (or `timeout` seconds pass)."""
        concurrent.futures.wait([self._future], timeout=timeout)

    def done(self) -> bool:
        return self._future.done()

    @property
    def state(self) -> State:
        """The final state when done, else the latest state this process saw."""
        if self._future.done():
            return self.final_state()
        return self._holder.get("state") or Pending()

    def final_state(self, timeout: float | None = None) -> State:
        try:
            return self._future.result(timeout=timeout)
        except concurrent.futures.TimeoutError as exc:
            raise TimeoutError(f"task run {self.name!r} did not finish within {timeout} second(s)") from exc
        except Exception as exc:
            # The run could not even start (a bad run name template, a cache_key_fn that raised, the API gone):
            # a Failed state carrying the error, so the flow ends Failed instead of stopping half-recorded.
            failed = Failed(message=f"Task run {self.name!r} could not run: {type(exc).__name__}: {exc}")
            return attach(failed, exception=exc)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        """The task's return value; raises its exception if it failed (unless raise_on_failure=False)."""
        return self.final_state(timeout).result(raise_on_failure=raise_on_failure)

    def add_done_callback(self, callback: Callable[[TaskRunFuture], object]) -> None:
        self._future.add_done_callback(lambda _: callback(self))

    def __repr__(self) -> str:
        return f"TaskRunFuture({self.name!r}, done={self._future.done()})"


class MappedItem:
    """One item of a task run's iterable result, handed to one run of `task.map(...)`: it carries the id of
    the run that produced it, so the mapped run records that run as its upstream."""

    __slots__ = ("task_run_id", "value")

    def __init__(self, value: Any, task_run_id: str | None):
        self.value = value
        self.task_run_id = task_run_id


def wait(futures: Iterable[TaskRunFuture], timeout: float | None = None) -> None:
    """Block until all futures are final."""
    concurrent.futures.wait([future._future for future in futures], timeout=timeout)
