"""Workflow orchestration for Python teams.

This package is also the SDK's public surface: `from orchestrator import flow, task, get_run_logger, ...`.
Importing it stays cheap: the SDK's modules load on first use of one of its names (PEP 562), so the server's
processes (the supervisor, the Daphne workers, the services), which import `orchestrator.settings` and never
run a flow, do not carry the SDK (about 10 MB each); it never imports Django.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
API_VERSION = "0.1.0"

# Each public name and the module that defines it.
_PUBLIC_NAMES = {
    "Flow": "orchestrator.sdk.flows",
    "State": "apps.orchestration.states",
    "Task": "orchestrator.sdk.tasks",
    "TaskRunFuture": "orchestrator.sdk.futures",
    "flow": "orchestrator.sdk.flows",
    "get_run_logger": "orchestrator.sdk.logging",
    "tags": "orchestrator.sdk.context",
    "task": "orchestrator.sdk.tasks",
    "unmapped": "orchestrator.sdk.tasks",
    "wait": "orchestrator.sdk.futures",
}

__all__ = [
    "Flow",
    "State",
    "Task",
    "TaskRunFuture",
    "flow",
    "get_run_logger",
    "tags",
    "task",
    "unmapped",
    "wait",
]

if TYPE_CHECKING:
    from apps.orchestration.states import State
    from orchestrator.sdk.context import tags
    from orchestrator.sdk.flows import Flow, flow
    from orchestrator.sdk.futures import TaskRunFuture, wait
    from orchestrator.sdk.logging import get_run_logger
    from orchestrator.sdk.tasks import Task, task, unmapped


def __getattr__(name: str) -> Any:
    module = _PUBLIC_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC_NAMES])
