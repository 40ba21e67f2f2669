"""Workflow orchestration for Python teams.

This package is also the SDK's public surface: `from orchestrator import flow, task, get_run_logger, ...`.
Importing it stays cheap: the SDK's names load on first use (PEP 562), so the server, which imports
`orchestrator.settings` and `orchestrator.states`, never loads the SDK, and a flow file never loads Django
until a run is recorded in-process.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
API_VERSION = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "Flow": "orchestrator.sdk.flows",
    "flow": "orchestrator.sdk.flows",
    "State": "orchestrator.states",
    "Task": "orchestrator.sdk.tasks",
    "task": "orchestrator.sdk.tasks",
    "unmapped": "orchestrator.sdk.tasks",
    "TaskRunFuture": "orchestrator.sdk.futures",
    "wait": "orchestrator.sdk.futures",
    "get_run_logger": "orchestrator.sdk.logging",
    "tags": "orchestrator.sdk.context",
    "concurrency": "orchestrator.sdk.concurrency",
    "rate_limit": "orchestrator.sdk.concurrency",
}

__all__ = [
    "Flow",
    "State",
    "Task",
    "TaskRunFuture",
    "concurrency",
    "flow",
    "get_run_logger",
    "rate_limit",
    "tags",
    "task",
    "unmapped",
    "wait",
]

if TYPE_CHECKING:
    from orchestrator.sdk.concurrency import concurrency, rate_limit
    from orchestrator.sdk.context import tags
    from orchestrator.sdk.flows import Flow, flow
    from orchestrator.sdk.futures import TaskRunFuture, wait
    from orchestrator.sdk.logging import get_run_logger
    from orchestrator.sdk.tasks import Task, task, unmapped
    from orchestrator.states import State


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
