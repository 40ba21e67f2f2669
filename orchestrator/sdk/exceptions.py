"""Exceptions the SDK raises to users."""

from __future__ import annotations


class OrchestratorSDKError(Exception):
    """Base class of the SDK's own errors."""


class MissingContextError(OrchestratorSDKError, RuntimeError):
    """A task was called outside a flow, or get_run_logger() outside a run."""


class ParameterValidationError(OrchestratorSDKError, TypeError):
    """A flow was called with parameters that do not match its signature or type hints."""


class UpstreamTaskError(OrchestratorSDKError):
    """A task did not run because a task it depends on did not complete."""


class FailedRun(OrchestratorSDKError):
    """Raised by State.result() for a failed run when the original exception is not available."""


class CrashedRun(OrchestratorSDKError):
    """The run was interrupted by something outside user code (a signal, a dying process)."""


class CancelledRun(OrchestratorSDKError):
    """The run was cancelled."""


class Abort(OrchestratorSDKError):
    """The orchestration engine told this client to stop working on the run (someone else owns it)."""


class RunTimeout(OrchestratorSDKError, TimeoutError):
    """A flow or task ran longer than its timeout_seconds."""


class ResultPersistenceError(OrchestratorSDKError):
    """A result could not be serialized or written to its storage."""


class MissingResult(OrchestratorSDKError):
    """The state has no result to return (it was not persisted and is not held in memory)."""


class BlockError(OrchestratorSDKError):
    """A block could not be saved, loaded or used (one line naming the block and the cause)."""


class BlockNotFound(BlockError, LookupError):
    """No block document has this type and name."""


class BlockStorageError(BlockError, OSError):
    """A file-system block could not read or write a path (the message names the path and the cause)."""


class CodeStorageError(OrchestratorSDKError):
    """A deployment's code could not be uploaded to or fetched from its storage block (one line naming the block
    and the cause)."""
