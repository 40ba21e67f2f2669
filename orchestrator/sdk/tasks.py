"""The @task decorator."""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import pickle
import sys
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from orchestrator.sdk import options
from orchestrator.sdk.futures import MappedItem, TaskRunFuture


class unmapped:  # noqa: N801  (the public name users know)
    """Wrap an argument of `task.map(...)` that is passed whole to every mapped run."""

    def __init__(self, value: Any):
        self.value = value


class Task(options.BindsAsMethod):
    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        tags: Iterable[str] | None = None,
        retries: int | None = 0,
        retry_delay_seconds: float | list[float] | None = 0,
        retry_jitter_factor: float | None = None,
        timeout_seconds: float | None = None,
        cache_key_fn: Callable[..., Any] | None = None,
        cache_expiration: timedelta | None = None,
        refresh_cache: bool | None = None,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: str | None = None,
        log_prints: bool | None = None,
        task_run_name: str | Callable[..., Any] | None = None,
        on_completion: list[Callable[..., Any]] | None = None,
        on_failure: list[Callable[..., Any]] | None = None,
    ):
        if not callable(fn):
            raise TypeError("@task must decorate a function")
        if cache_key_fn is not None and not callable(cache_key_fn):
            raise TypeError(f"cache_key_fn must be callable, got {cache_key_fn!r}")
        self.fn = fn
        self.name = name or fn.__name__
        self.description = description or inspect.getdoc(fn)
        self.version = version
        self.tags = options.check_tags(tags)
        self.retries = options.check_retries(retries)
        self.retry_delay_seconds = options.check_retry_delay(retry_delay_seconds)
        self.retry_jitter_factor = options.check_jitter(retry_jitter_factor)
        self.timeout_seconds = options.check_timeout(timeout_seconds)
        self.cache_key_fn = cache_key_fn
        self.cache_expiration = options.check_expiration(cache_expiration)
        self.refresh_cache = refresh_cache
        self.persist_result = persist_result
        self.result_storage = options.check_storage(result_storage)
        self.result_serializer = options.check_serializer(result_serializer)
        self.log_prints = log_prints
        self.task_run_name = task_run_name
        self.on_completion = options.check_hooks("on_completion", on_completion)
        self.on_failure = options.check_hooks("on_failure", on_failure)
        self.task_key = f"{module_key(fn)}.{getattr(fn, '__qualname__', self.name)}"
        # The instance or class a task defined in a class was read from (see __get__): its first argument.
        self.bound_to: tuple[Any, ...] = ()
        self.__doc__ = fn.__doc__
        self.__name__ = self.name
        self.__wrapped__ = fn

    def with_options(self, **changes: Any) -> Task:
        """A copy of this task with other options (same function)."""
        current = {key: getattr(self, key) for key in _TASK_OPTIONS}
        unknown = set(changes) - set(_TASK_OPTIONS)
        if unknown:
            raise TypeError(f"with_options() got unknown option(s): {', '.join(sorted(unknown))}")
        current.update(changes)
        clone = copy.copy(self)
        Task.__init__(clone, self.fn, **current)
        clone.bound_to = self.bound_to
        return clone

    def __call__(self, *args: Any, return_state: bool = False, wait_for: list[Any] | None = None, **kwargs: Any) -> Any:
        from orchestrator.sdk.engine import call_task

        return call_task(self, (*self.bound_to, *args), kwargs, return_state=return_state, wait_for=wait_for)

    def submit(self, *args: Any, wait_for: list[Any] | None = None, **kwargs: Any) -> TaskRunFuture:
        """Run the task on the flow's task runner; returns a future at once."""
        from orchestrator.sdk.engine import submit_task

        return submit_task(self, (*self.bound_to, *args), kwargs, wait_for=wait_for)

    def map(self, *args: Any, wait_for: list[Any] | None = None, **kwargs: Any) -> list[TaskRunFuture]:
        """Submit one run per item of the iterable arguments (zipped); `unmapped(x)` passes x whole."""
        from orchestrator.sdk.engine import producer_of, submit_task

        parameters = _bind_for_map(self.fn, (*self.bound_to, *args), kwargs)
        if self.bound_to:  # self or cls is passed whole to every run
            first = next(iter(parameters))
            parameters[first] = unmapped(parameters[first])
        iterables: dict[str, list[Any]] = {}
        static: dict[str, Any] = {}
        for name, value in parameters.items():
            if isinstance(value, unmapped):
                static[name] = value.value
            elif isinstance(value, TaskRunFuture):
                iterables[name] = [MappedItem(item, value.task_run_id) for item in value.result()]
            elif isinstance(value, str | bytes | dict) or not isinstance(value, Iterable):
                static[name] = value
            else:
                producer = producer_of(value)
                iterables[name] = [MappedItem(item, producer) if producer else item for item in value]
        if not iterables:
            raise ValueError(f"{self.name}.map() needs at least one iterable argument (wrap constants in unmapped())")
        lengths = {name: len(items) for name, items in iterables.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{self.name}.map() got iterables of different lengths: {lengths}")
        count = next(iter(lengths.values()))
        return [
            submit_task(
                self,
                (),
                {**static, **{name: items[index] for name, items in iterables.items()}},
                wait_for=wait_for,
            )
            for index in range(count)
        ]

    def __repr__(self) -> str:
        return f"Task({self.name!r})"


_TASK_OPTIONS = (
    "name description version tags retries retry_delay_seconds retry_jitter_factor timeout_seconds cache_key_fn "
    "cache_expiration refresh_cache persist_result result_storage result_serializer log_prints task_run_name "
    "on_completion on_failure"
).split()


def _bind_for_map(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    signature = inspect.signature(fn)
    bound = signature.bind_partial(*args, **kwargs)
    return dict(bound.arguments)


def task(fn: Callable[..., Any] | None = None, **options_: Any) -> Any:
    """Decorate a function as a task: `@task` or `@task(retries=3, ...)`."""
    if fn is None:
        return lambda function: Task(function, **options_)
    return Task(fn, **options_)


# Modules a worker loads from a deployment's entrypoint are named with this prefix and a random suffix
# (orchestrator/workers/loading.py): such a name says nothing about the code.
LOADED_MODULE_PREFIX = "orchestrator_flow_"


def module_key(fn: Callable[..., Any]) -> str:
    """Where a task's code lives, the same in every process: the module's import name; for a script
    (`python etl.py`) or a flow file a worker loaded from an entrypoint, the file's path relative to the working
    directory (a worker runs a deployment's runs in its `path`, where `deploy` ran), as dotted words. So a task
    keeps its `task_key`, and the caches keyed by it (`task_input_hash`) hit, across runs, processes and loaders."""
    name = getattr(fn, "__module__", None) or "task"
    if name != "__main__" and not name.startswith(LOADED_MODULE_PREFIX):
        return name
    file = getattr(sys.modules.get(name), "__file__", None) or getattr(
        getattr(fn, "__code__", None), "co_filename", None
    )
    if not file:
        return name
    resolved = Path(file).resolve()
    try:
        relative = resolved.relative_to(Path.cwd().resolve())
    except ValueError:
        relative = Path(resolved.name)
    return ".".join(relative.with_suffix("").parts)


def task_input_hash(context: Any, arguments: dict[str, Any]) -> str | None:
    """A cache key from the task and its inputs: the same task called with equal inputs gets the same key."""
    task_ = getattr(context, "task", None)
    try:
        blob = pickle.dumps((getattr(task_, "task_key", None), _stable(arguments)), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return None
    return hashlib.sha256(blob).hexdigest()


def inputs_hash(*parts: Any) -> str | None:
    """A digest of `parts` (dicts and sets in a stable order); None when they cannot be pickled."""
    try:
        blob = pickle.dumps(_stable(parts), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return None
    return hashlib.sha256(blob).hexdigest()


@functools.lru_cache(maxsize=1024)
def source_hash(fn: Callable[..., Any]) -> str:
    """A digest of a function's source code (of its compiled code when the source is not available)."""
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        text = repr((code.co_code, code.co_consts, code.co_names)) if code is not None else repr(fn)
    return hashlib.sha256(text.encode()).hexdigest()


def default_cache_key(task_: Task, arguments: dict[str, Any], flow_run_id: str) -> str | None:
    """Prefect 3's default cache policy, used when a task's result is persisted and it has no cache_key_fn: the task,
    its source code, its inputs and the flow run. So a repeated call in the same flow run (or in a retry of it) is
    answered from the cache, and a changed task body is not."""
    return inputs_hash("default-policy", task_.task_key, source_hash(task_.fn), arguments, str(flow_run_id))


def _stable(value: Any) -> Any:
    """Sort dict and set contents so equal inputs hash equally."""
    if isinstance(value, dict):
        return tuple(sorted((repr(key), _stable(item)) for key, item in value.items()))
    if isinstance(value, set | frozenset):
        return tuple(sorted(repr(_stable(item)) for item in value))
    if isinstance(value, list | tuple):
        return tuple(_stable(item) for item in value)
    return value
