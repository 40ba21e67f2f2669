"""The @flow decorator."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.sdk import options
from orchestrator.sdk.task_runners import SequentialTaskRunner, ThreadPoolTaskRunner


class Flow(options.BindsAsMethod):
    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        version: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        retries: int | None = 0,
        retry_delay_seconds: float | None = 0,
        timeout_seconds: float | None = None,
        log_prints: bool = False,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: str | None = None,
        task_runner: Any = None,
        validate_parameters: bool = True,
        flow_run_name: str | Callable[..., Any] | None = None,
        on_completion: list[Callable[..., Any]] | None = None,
        on_failure: list[Callable[..., Any]] | None = None,
        on_cancellation: list[Callable[..., Any]] | None = None,
        on_crashed: list[Callable[..., Any]] | None = None,
    ):
        if not callable(fn):
            raise TypeError("@flow must decorate a function")
        if isinstance(task_runner, type) and issubclass(task_runner, ThreadPoolTaskRunner | SequentialTaskRunner):
            task_runner = task_runner()  # Prefect accepts the class itself
        if task_runner is not None and (isinstance(task_runner, type) or not hasattr(task_runner, "start")):
            raise TypeError(f"task_runner must be a task runner such as ThreadPoolTaskRunner(), got {task_runner!r}")
        self.fn = fn
        self.name = name or fn.__name__.replace("_", "-")
        if "/" in self.name:
            raise ValueError(f"flow name {self.name!r} may not contain '/'")
        self.version = version
        self.description = description or inspect.getdoc(fn)
        self.tags = options.check_tags(tags)
        self.retries = options.check_retries(retries)
        delay = options.check_retry_delay(retry_delay_seconds)
        if isinstance(delay, list):
            raise TypeError("a flow's retry_delay_seconds must be a number")
        self.retry_delay_seconds = delay
        self.timeout_seconds = options.check_timeout(timeout_seconds)
        self.log_prints = bool(log_prints)
        self.persist_result = persist_result
        self.result_storage = options.check_storage(result_storage)
        self.result_serializer = options.check_serializer(result_serializer)
        self.task_runner = task_runner or ThreadPoolTaskRunner()
        self.should_validate_parameters = bool(validate_parameters)
        self.flow_run_name = flow_run_name
        self.on_completion = options.check_hooks("on_completion", on_completion)
        self.on_failure = options.check_hooks("on_failure", on_failure)
        self.on_cancellation = options.check_hooks("on_cancellation", on_cancellation)
        self.on_crashed = options.check_hooks("on_crashed", on_crashed)
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__wrapped__ = fn
        # The instance or class a flow defined in a class was read from (see __get__): its first argument.
        self.bound_to: tuple[Any, ...] = ()

    def with_options(self, **changes: Any) -> Flow:
        """A copy of this flow with other options (same function)."""
        unknown = set(changes) - set(_FLOW_OPTIONS)
        if unknown:
            raise TypeError(f"with_options() got unknown option(s): {', '.join(sorted(unknown))}")
        current = {key: getattr(self, _FLOW_ATTRIBUTES.get(key, key)) for key in _FLOW_OPTIONS}
        current.update(changes)
        clone = copy.copy(self)
        Flow.__init__(clone, self.fn, **current)
        clone.bound_to = self.bound_to
        return clone

    def __call__(self, *args: Any, return_state: bool = False, wait_for: list[Any] | None = None, **kwargs: Any) -> Any:
        """Run the flow; called inside another flow it is a subflow, which (like a task) starts once the futures
        in `wait_for` are final and ends NotReady without running when one of them did not complete."""
        from orchestrator.sdk.engine import run_flow_async, run_flow_sync

        args = (*self.bound_to, *args)
        if inspect.iscoroutinefunction(self.fn):
            return run_flow_async(self, args, kwargs, return_state=return_state, wait_for=wait_for)
        return run_flow_sync(self, args, kwargs, return_state=return_state, wait_for=wait_for)

    def deploy(self, name: str, work_pool_name: str | None = None, **options: Any) -> dict[str, Any]:
        """Register (or update) a deployment of this flow for workers of `work_pool_name`: `cron=`,
        `interval=` or `rrule=` (with `timezone=`) schedule it; `parameters=` are its defaults."""
        from orchestrator.sdk.deployments import deploy

        return deploy(self, name=name, work_pool_name=work_pool_name, **options)

    def serve(self, name: str, **options: Any) -> None:
        """Register a deployment of this flow and run its scheduled and ad hoc runs in this process until
        Ctrl+C: `cron=`, `interval=` or `rrule=` (with `timezone=`), `parameters=`."""
        from orchestrator.sdk.deployments import serve

        serve(self, name=name, **options)

    def __repr__(self) -> str:
        return f"Flow({self.name!r})"


_FLOW_OPTIONS = (
    "name version description tags retries retry_delay_seconds timeout_seconds log_prints persist_result "
    "result_storage result_serializer task_runner validate_parameters flow_run_name on_completion on_failure "
    "on_cancellation on_crashed"
).split()
_FLOW_ATTRIBUTES = {"validate_parameters": "should_validate_parameters"}


def flow(fn: Callable[..., Any] | None = None, **options_: Any) -> Any:
    """Decorate a function as a flow: `@flow` or `@flow(name=..., retries=...)`."""
    if fn is None:
        return lambda function: Flow(function, **options_)
    return Flow(fn, **options_)
