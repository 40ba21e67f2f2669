"""Workflow orchestration for Python teams.

This package is also the SDK's public surface: `from orchestrator import flow, task, get_run_logger, ...`.
Importing it stays cheap: it never imports Django; the server side loads only when a run is recorded
in-process or a server command starts.
"""

from apps.orchestration.states import State
from orchestrator.sdk.context import tags
from orchestrator.sdk.flows import Flow, flow
from orchestrator.sdk.futures import TaskRunFuture, wait
from orchestrator.sdk.logging import get_run_logger
from orchestrator.sdk.tasks import Task, task, unmapped

__version__ = "0.1.0"
API_VERSION = "0.1.0"

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
