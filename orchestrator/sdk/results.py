"""Results: kept in memory for the run that made them, and persisted to storage when asked or needed.

A persisted result is a file in the result storage (a local path; `ORCHESTRATOR_HOME/storage` by default),
written with a serializer ("pickle" or "json"). The state's `data` holds the reference
{"storage": "local", "path": ..., "serializer": ...}, so another process (a cache hit, the UI) can load it.
"""

from __future__ import annotations

import json
import os
import pickle
import uuid
from pathlib import Path
from typing import Any

from orchestrator import config
from orchestrator.sdk.exceptions import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    MissingResult,
    ResultPersistenceError,
    UpstreamTaskError,
)
from orchestrator.states import State, StateType, register_result_reader

SERIALIZERS = ("pickle", "json")


def default_storage_path() -> Path:
    return config.home() / "storage"


class ResultStore:
    """Writes and reads result files under one directory."""

    def __init__(self, storage: str | os.PathLike | None = None, serializer: str = "pickle"):
        if serializer not in SERIALIZERS:
            raise ValueError(f"unknown result serializer {serializer!r}; use one of {', '.join(SERIALIZERS)}")
        self.path = Path(storage).expanduser() if storage else default_storage_path()
        self.serializer = serializer

    def persist(self, value: Any) -> dict[str, Any]:
        try:
            if self.serializer == "json":
                blob = json.dumps(value).encode()
            else:
                blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (TypeError, ValueError, pickle.PicklingError, AttributeError, RecursionError) as exc:
            raise ResultPersistenceError(f"the result could not be serialized with {self.serializer!r}: {exc}") from exc
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / uuid.uuid4().hex
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.replace(target)
        return {"storage": "local", "path": str(target), "serializer": self.serializer}


def load_result(reference: dict[str, Any]) -> Any:
    path = Path(reference["path"])
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise MissingResult(f"the persisted result at {path} cannot be read: {exc}") from exc
    if reference.get("serializer") == "json":
        return json.loads(blob)
    return pickle.loads(blob)


def is_result_reference(data: Any) -> bool:
    return isinstance(data, dict) and data.get("storage") == "local" and "path" in data


_NO_VALUE = object()


def attach(state: State, *, value: Any = _NO_VALUE, exception: BaseException | None = None) -> State:
    """Keep the in-memory value or exception on the state object (never sent to the server)."""
    if value is not _NO_VALUE:
        state._value = value  # type: ignore[attr-defined]
    if exception is not None:
        state._exception = exception  # type: ignore[attr-defined]
    return state


def state_result(state: State, *, raise_on_failure: bool = True) -> Any:
    exception = getattr(state, "_exception", None)
    if state.type in (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED) or state.name == "NotReady":
        if exception is None:
            kind = {
                StateType.CRASHED: CrashedRun,
                StateType.CANCELLED: CancelledRun,
                StateType.PENDING: UpstreamTaskError,
            }.get(state.type, FailedRun)
            exception = kind(state.message or f"the run ended {state.name}")
        if raise_on_failure:
            raise exception
        return exception
    if hasattr(state, "_value"):
        return state._value
    if is_result_reference(state.data):
        return load_result(state.data)
    if state.type == StateType.COMPLETED and state.data is None:
        raise MissingResult(
            f"the {state.name} state holds no result: it was not persisted (set persist_result=True to keep it)"
        )
    if state.type != StateType.COMPLETED:
        raise MissingResult(f"the run is {state.name}; it has no result yet")
    return state.data


register_result_reader(lambda state, raise_on_failure: state_result(state, raise_on_failure=raise_on_failure))
