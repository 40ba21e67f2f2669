"""Task helpers users import by name: `from orchestrator.tasks import task_input_hash`."""

from orchestrator.sdk.tasks import Task, task, task_input_hash

__all__ = ["Task", "task", "task_input_hash"]
