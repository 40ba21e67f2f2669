"""Run contexts: which flow run and task run the current code belongs to (context variables, thread-aware)."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from orchestrator.client import RunInfo


@dataclass
class FlowRunContext:
    flow: Any
    flow_run: RunInfo
    client: Any
    task_runner: Any
    result_store: Any
    log_prints: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)
    # id(value) -> (value, task run id) for results of task runs, to record edges when they are passed on.
    result_ids: dict[int, tuple[Any, str]] = field(default_factory=dict)
    # Whether simple task runs are run first and recorded in the background (see TaskRunEngine.setup): not
    # when the flow run was executed before, whose task runs may already exist under the same keys.
    records_task_runs: bool = True
    # Completed subflows whose results were persisted, by call (see FlowRunEngine.reusable_subflow_state): a retry
    # of this flow run takes their states instead of running them again. Kept across attempts.
    completed_subflows: dict[str, Any] = field(default_factory=dict)
    # How often each subflow call (name and parameters) was made in the current attempt.
    subflow_calls: dict[str, int] = field(default_factory=dict)
    _dynamic_keys: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_dynamic_key(self, task_key: str) -> str:
        with self._lock:
            index = self._dynamic_keys.get(task_key, 0)
            self._dynamic_keys[task_key] = index + 1
        return str(index)


@dataclass
class TaskRunContext:
    task: Any
    # None only in the context a task's cache_key_fn receives: the key is computed before the run exists.
    task_run: RunInfo | None
    parameters: dict[str, Any]
    log_prints: bool = False


flow_run_context: contextvars.ContextVar[FlowRunContext | None] = contextvars.ContextVar(
    "orchestrator_flow_run", default=None
)
task_run_context: contextvars.ContextVar[TaskRunContext | None] = contextvars.ContextVar(
    "orchestrator_task_run", default=None
)
_tags: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("orchestrator_tags", default=())


@contextlib.contextmanager
def tags(*new_tags: str) -> Iterator[set[str]]:
    """Add tags to every flow run and task run created inside the block: `with tags("etl", "nightly"):`."""
    current = _tags.get()
    combined = tuple(dict.fromkeys([*current, *new_tags]))
    token = _tags.set(combined)
    try:
        yield set(combined)
    finally:
        _tags.reset(token)


def current_tags() -> list[str]:
    return list(_tags.get())


def get_run_context() -> TaskRunContext | FlowRunContext | None:
    return task_run_context.get() or flow_run_context.get()
