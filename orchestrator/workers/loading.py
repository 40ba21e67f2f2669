"""Load a deployment's flow object from its code: `path` (a directory) and `entrypoint` (`file.py:function`,
relative to `path`, or an absolute file path). A deployment whose code is in a storage block (`storage_block`,
`storage_path`) has its code fetched into this machine's cache first, and `path` is that folder
(`deployment_flow_load`; orchestrator/sdk/code_storage.py).

The file is imported by path under a unique module name (so two deployments with a `flows.py` never share a
module), with `path` first on `sys.path` so that the file's own imports of its neighbours work. Every failure
is a `FlowLoadError` whose message names the entrypoint and the error, e.g.
"cannot load flow from 'flows/etl.py:etl': FileNotFoundError: ...". Used by the process worker's subprocess
(`orchestrator.workers.execute`) and by any other executor of deployment runs.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class FlowLoadError(Exception):
    """The deployment's flow cannot be loaded; the message is one line naming the entrypoint and the cause."""


@dataclass(frozen=True)
class CodeLocation:
    """Where a deployment's code is: the fields of the deployment that say so."""

    entrypoint: str
    path: str | None = None
    storage_block: str | None = None
    storage_path: str | None = None

    @classmethod
    def of(cls, deployment: dict[str, Any]) -> CodeLocation:
        """From a deployment as the API shows it."""
        return cls(
            entrypoint=deployment.get("entrypoint") or "",
            path=deployment.get("path"),
            storage_block=deployment.get("storage_block"),
            storage_path=deployment.get("storage_path"),
        )


def deployment_flow_load(location: CodeLocation) -> tuple[Any, str | None]:
    """(the flow, the folder to run it in): the code fetched from its storage block when it is stored there (a
    failure is a FlowLoadError naming the block and the cause), then loaded from the entrypoint."""
    path = location.path
    if location.storage_block and location.storage_path:
        from orchestrator.sdk.code_storage import code_fetch
        from orchestrator.sdk.exceptions import CodeStorageError

        try:
            path = str(code_fetch(storage_block=location.storage_block, prefix=location.storage_path))
        except CodeStorageError as exc:
            raise FlowLoadError(str(exc)) from None
    flow = load_flow(location.entrypoint, path)
    folder = os.path.expanduser(path) if path else None
    return flow, folder if folder and os.path.isdir(folder) else None


def entrypoint_file(entrypoint: str, path: str | None) -> tuple[Path, str]:
    """(the file, the attribute name) an entrypoint `file.py:function` names, the file resolved against `path`."""
    file_text, separator, attribute = entrypoint.rpartition(":")
    if not separator or not file_text or not attribute.strip():
        raise FlowLoadError(f"cannot load flow from {entrypoint!r}: the entrypoint is not FILE.py:FUNCTION")
    file = Path(file_text).expanduser()
    if not file.is_absolute() and path:
        file = Path(path).expanduser() / file
    return file, attribute.strip()


def load_flow(entrypoint: str, path: str | None = None) -> Any:
    """The `Flow` the entrypoint names (see the module docstring); raises FlowLoadError."""
    from orchestrator.sdk.flows import Flow
    from orchestrator.sdk.tasks import LOADED_MODULE_PREFIX

    file, attribute = entrypoint_file(entrypoint, path)

    def failure(reason: str) -> FlowLoadError:
        return FlowLoadError(f"cannot load flow from {entrypoint!r}: {reason}")

    if not file.is_file():
        raise failure(f"FileNotFoundError: no such file {str(file)!r}")
    module_name = f"{LOADED_MODULE_PREFIX}{uuid.uuid4().hex[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise failure(f"ImportError: {str(file)!r} cannot be loaded as Python")
    for directory in (str(file.resolve().parent), str(Path(path).expanduser().resolve()) if path else None):
        if directory and directory not in sys.path:
            sys.path.insert(0, directory)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # SyntaxError, ImportError, anything the module's top level raises
        sys.modules.pop(module_name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise failure(_describe(exc)) from exc
    found = getattr(module, attribute, None)
    if found is None:
        raise failure(f"AttributeError: {file.name} has no {attribute!r}")
    if not isinstance(found, Flow):
        raise failure(f"TypeError: {attribute!r} is a {type(found).__name__}, not a flow (decorate it with @flow)")
    return found


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        where = f" ({Path(exc.filename).name}, line {exc.lineno})" if exc.filename else ""
        return f"SyntaxError: {exc.msg}{where}"
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
