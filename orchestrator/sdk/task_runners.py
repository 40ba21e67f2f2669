"""Task runners: where `task.submit()` executes. Threads by default; sequential for debugging."""

from __future__ import annotations

import concurrent.futures
import contextvars
import os
from collections.abc import Callable
from typing import Any


class ThreadPoolTaskRunner:
    """Runs submitted tasks concurrently in a thread pool (the default)."""

    def __init__(self, max_workers: int | None = None):
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 8)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def start(self) -> ThreadPoolTaskRunner:
        runner = type(self)(self.max_workers)
        runner._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.max_workers, thread_name_prefix="orchestrator-task"
        )
        return runner

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        if self._executor is None:
            raise RuntimeError("the task runner was not started (use it through a flow run)")
        context = contextvars.copy_context()
        return self._executor.submit(context.run, fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=not wait)

    def __repr__(self) -> str:
        return f"ThreadPoolTaskRunner(max_workers={self.max_workers})"


ConcurrentTaskRunner = ThreadPoolTaskRunner


class SequentialTaskRunner:
    """Runs each submitted task at once, in the calling thread: one at a time, in submission order."""

    def start(self) -> SequentialTaskRunner:
        return self

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # surfaced through future.result()
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass

    def __repr__(self) -> str:
        return "SequentialTaskRunner()"
