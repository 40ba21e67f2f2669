"""Results: kept in memory for the run that made them, and persisted to storage when asked or needed.

A persisted result is a file in the result storage, written with a serializer ("pickle", through cloudpickle when
it is installed so local classes and lambdas work, or "json"). The storage is a local path
(`ORCHESTRATOR_HOME/storage` by default) or a file-system block (`local-file-system` / `remote-file-system`, given
as an instance or as its `"type/name"` slug). The state's `data` holds the reference, so another process (a cache
hit, the UI, `state.result()` elsewhere) can load it:

    {"storage": "local", "path": "/home/.../storage/3f2a...", "serializer": "pickle"}
    {"storage": "block", "block": "remote-file-system/lake", "path": "3f2a...", "serializer": "cloudpickle"}

A block's path is relative to its basepath. The reference is made only once the write has succeeded (a local file
is written under a temporary name and renamed), so a storage that fails fails the run and records nothing.
"""

from __future__ import annotations

import json
import os
import pickle
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import config
from orchestrator.sdk.exceptions import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    MissingResult,
    OrchestratorSDKError,
    ResultPersistenceError,
    UpstreamTaskError,
)
from orchestrator.states import State, StateType, register_result_reader

if TYPE_CHECKING:
    from orchestrator.blocks import FileSystem

SERIALIZERS = ("pickle", "json")
# The block types a result can be stored in, as `result_storage="local-file-system/NAME"` names them.
STORAGE_BLOCK_TYPES = ("local-file-system", "remote-file-system")


def default_storage_path() -> Path:
    return config.home() / "storage"


def storage_block_slug(storage: Any) -> str | None:
    """`storage` when it is a storage block's `"type/name"` slug (e.g. `"remote-file-system/lake"`), else None."""
    if not isinstance(storage, str):
        return None
    block_type, _, name = storage.partition("/")
    if block_type in STORAGE_BLOCK_TYPES and name and "/" not in name:
        return storage
    return None


def _serialize(value: Any, serializer: str) -> tuple[bytes, str]:
    """The bytes of `value` and the serializer to record ("pickle" becomes "cloudpickle" when it is installed)."""
    try:
        if serializer == "json":
            return json.dumps(value).encode(), "json"
        try:
            import cloudpickle
        except ImportError:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), "pickle"
        return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), "cloudpickle"
    except (TypeError, ValueError, pickle.PicklingError, AttributeError, RecursionError) as exc:
        raise ResultPersistenceError(f"the result could not be serialized with {serializer!r}: {exc}") from exc


def _deserialize(blob: bytes, serializer: str | None, where: str) -> Any:
    if serializer == "json":
        return json.loads(blob)
    if serializer == "cloudpickle":
        try:
            import cloudpickle  # noqa: F401  (its pickles refer to its functions)
        except ImportError:
            raise MissingResult(f"the result at {where} was written with cloudpickle: install it to read it") from None
    return pickle.loads(blob)


class ResultStore:
    """Writes result files to one storage: a local directory or a file-system block."""

    def __init__(self, storage: str | os.PathLike | FileSystem | None = None, serializer: str = "pickle"):
        if serializer not in SERIALIZERS:
            raise ValueError(f"unknown result serializer {serializer!r}; use one of {', '.join(SERIALIZERS)}")
        self.serializer = serializer
        self.block: FileSystem | None = None
        self.block_slug = storage_block_slug(storage)
        self.path: Path | None = None
        if storage is None or storage == "":
            self.path = default_storage_path()
        elif isinstance(storage, str | os.PathLike):
            if self.block_slug is None:
                self.path = Path(storage).expanduser()
        else:
            self.block = storage
            self.block_slug = storage.block_slug

    def persist(self, value: Any) -> dict[str, Any]:
        blob, serializer = _serialize(value, self.serializer)
        if self.path is None:
            return self._persist_to_block(blob, serializer)
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / uuid.uuid4().hex
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.replace(target)
        return {"storage": "local", "path": str(target), "serializer": serializer}

    def _persist_to_block(self, blob: bytes, serializer: str) -> dict[str, Any]:
        from orchestrator.client import ClientError

        key = uuid.uuid4().hex
        try:
            block = self.block or _load_storage_block(str(self.block_slug))
            block.write_path(key, blob)
        except (OrchestratorSDKError, ClientError) as exc:
            raise ResultPersistenceError(f"the result could not be stored in block '{self.block_slug}': {exc}") from exc
        return {"storage": "block", "block": self.block_slug, "path": key, "serializer": serializer}


def _load_storage_block(slug: str) -> FileSystem:
    from orchestrator.blocks import FileSystem, block_load

    block = block_load(slug)
    if not isinstance(block, FileSystem):  # block_load only knows slugs; storage_block_slug already checked them
        raise ResultPersistenceError(f"block '{slug}' is not a file system")
    return block


def load_result(reference: dict[str, Any]) -> Any:
    if reference.get("storage") == "block":
        from orchestrator.client import ClientError

        slug, key = str(reference["block"]), str(reference["path"])
        where = f"{key} in block '{slug}'"
        try:
            blob = _load_storage_block(slug).read_path(key)
        except (OrchestratorSDKError, ClientError) as exc:
            raise MissingResult(f"the persisted result {where} cannot be read: {exc}") from exc
        return _deserialize(blob, reference.get("serializer"), where)
    path = Path(reference["path"])
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise MissingResult(f"the persisted result at {path} cannot be read: {exc}") from exc
    return _deserialize(blob, reference.get("serializer"), str(path))


def is_result_reference(data: Any) -> bool:
    if not isinstance(data, dict) or "path" not in data:
        return False
    return data.get("storage") == "local" or (data.get("storage") == "block" and "block" in data)


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
