"""Task runners: `from orchestrator.task_runners import ThreadPoolTaskRunner, SequentialTaskRunner`."""

from orchestrator.sdk.task_runners import ConcurrentTaskRunner, SequentialTaskRunner, ThreadPoolTaskRunner

__all__ = ["ConcurrentTaskRunner", "SequentialTaskRunner", "ThreadPoolTaskRunner"]
