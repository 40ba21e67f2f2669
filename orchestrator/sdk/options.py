"""Checks of decorator arguments, run at decoration time so mistakes show where they are made."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Self

from orchestrator.sdk.results import SERIALIZERS

# As in Prefect: a task may be given at most this many custom retry delays.
MAX_RETRY_DELAYS = 50


def check_hooks(name: str, hooks: Any) -> list[Callable]:
    """Any iterable of callables (the messages begin as Prefect's do, so a Prefect user recognises them)."""
    if hooks is None:
        return []
    if not isinstance(hooks, Iterable):
        raise TypeError(
            f"Expected iterable for {name!r}; got {type(hooks).__name__}: pass a list of hooks, e.g. {name}=[notify]"
        )
    hooks = list(hooks)
    for hook in hooks:
        if not callable(hook):
            raise TypeError(
                f"Expected callables in {name!r}; got {type(hook).__name__} ({hook!r}): each hook is a function "
                "called with (task or flow, run, state)"
            )
    return hooks


def check_retries(retries: Any) -> int:
    if retries is None:
        return 0
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
    return retries


def check_retry_delay(delay: Any) -> float | list[float]:
    if delay is None:
        return 0
    values = delay if isinstance(delay, list | tuple) else [delay]
    if len(values) > MAX_RETRY_DELAYS:
        raise ValueError(
            f"retry_delay_seconds: more than {MAX_RETRY_DELAYS} retry delays cannot be configured per task "
            f"(got {len(values)})"
        )
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"retry_delay_seconds must be a number or a list of numbers, got {delay!r}")
        if value < 0:
            raise ValueError(f"retry_delay_seconds must not be negative, got {delay!r}")
    return [float(value) for value in values] if isinstance(delay, list | tuple) else float(delay)


def check_jitter(jitter: Any) -> float | None:
    if jitter is None:
        return None
    if isinstance(jitter, bool) or not isinstance(jitter, int | float):
        raise TypeError(f"retry_jitter_factor must be a number, got {jitter!r}")
    if jitter < 0:
        raise ValueError(f"`retry_jitter_factor` must be >= 0, got {jitter!r}")
    return float(jitter)


def check_timeout(timeout: Any) -> float | None:
    """Seconds, or None for no timeout; 0 also means no timeout, as in Prefect (`with_options(timeout_seconds=0)`
    removes one)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout_seconds must be a number of seconds, got {timeout!r}")
    if timeout < 0:
        raise ValueError(f"timeout_seconds must not be negative (0 means no timeout), got {timeout!r}")
    return float(timeout) or None


def check_expiration(expiration: Any) -> timedelta | None:
    if expiration is None:
        return None
    if not isinstance(expiration, timedelta):
        raise TypeError(f"cache_expiration must be a datetime.timedelta, got {expiration!r}")
    return expiration


def check_serializer(serializer: Any) -> str | None:
    if serializer is not None and serializer not in SERIALIZERS:
        raise ValueError(f"result_serializer must be one of {', '.join(SERIALIZERS)}, got {serializer!r}")
    return serializer


def check_storage(storage: Any) -> Any:
    """A local path, a storage block's `"type/name"` slug (checked when a result is written: the block may not
    exist yet), or a file-system block instance. A block made in code must be saved first, so that another process
    can load it by name; a `LocalFileSystem` that was not saved is its folder."""
    if storage is None:
        return None
    if isinstance(storage, str | os.PathLike):
        return os.fspath(storage)
    if hasattr(storage, "write_path"):  # only a block has it; importing orchestrator.blocks here is not free
        from orchestrator.blocks import FileSystem, LocalFileSystem

        if isinstance(storage, FileSystem):
            if storage.block_slug is not None:
                return storage
            if isinstance(storage, LocalFileSystem):
                return storage.basepath
            raise ValueError(
                f"result_storage: save the {type(storage).__name__} block first (.save(NAME)) and pass it or its "
                f"slug '{storage.slug}/NAME', so that other processes can load it"
            )
    raise TypeError(
        f"result_storage must be a local path, a 'local-file-system/NAME' or 'remote-file-system/NAME' slug, or a "
        f"file-system block, got {storage!r}"
    )


def check_tags(tags: Any) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags):
        raise TypeError(f"tags must be a list of strings, got {tags!r}")
    return list(tags)


class BindsAsMethod:
    """A flow or task defined in a class is a method: read from an instance (or, under @classmethod, from the
    class) it is a copy bound to it, which passes it as the first argument (`self` or `cls`)."""

    bound_to: tuple[Any, ...] = ()

    def __get__(self, instance: Any, owner: type | None = None) -> Self:
        if instance is None:
            return self
        bound = copy.copy(self)
        bound.bound_to = (instance,)
        return bound
