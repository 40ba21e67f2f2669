"""State types, names and constructors: `from orchestrator.states import Completed, Failed, ...`.

Plain Python, shared by the server (the engine, the API) and the SDK: this module imports neither Django, nor
the server's apps, nor the SDK (an import-linter contract in pyproject.toml keeps it so). Reading a state's
result needs the SDK's result storage, which registers itself here (`register_result_reader`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class StateType(StrEnum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"


TERMINAL_TYPES = frozenset({StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED})
ALL_TYPES = frozenset(StateType)

DEFAULT_NAMES = {
    StateType.SCHEDULED: "Scheduled",
    StateType.PENDING: "Pending",
    StateType.RUNNING: "Running",
    StateType.PAUSED: "Paused",
    StateType.CANCELLING: "Cancelling",
    StateType.COMPLETED: "Completed",
    StateType.FAILED: "Failed",
    StateType.CANCELLED: "Cancelled",
    StateType.CRASHED: "Crashed",
}

# Every name the product gives a state, and the type it belongs to.
NAMED_STATES = {
    "Scheduled": StateType.SCHEDULED,
    "Late": StateType.SCHEDULED,
    "AwaitingRetry": StateType.SCHEDULED,
    "Pending": StateType.PENDING,
    "NotReady": StateType.PENDING,
    "Running": StateType.RUNNING,
    "Retrying": StateType.RUNNING,
    "Paused": StateType.PAUSED,
    "Suspended": StateType.PAUSED,
    "Cancelling": StateType.CANCELLING,
    "Completed": StateType.COMPLETED,
    "Cached": StateType.COMPLETED,
    "Failed": StateType.FAILED,
    "TimedOut": StateType.FAILED,
    "Cancelled": StateType.CANCELLED,
    "Crashed": StateType.CRASHED,
}


# Reads a state's result (the SDK's result storage); set by orchestrator.sdk.results when it is imported.
_result_reader: Callable[[State, bool], Any] | None = None


def register_result_reader(reader: Callable[[State, bool], Any]) -> None:
    """Make `State.result()` read results with `reader(state, raise_on_failure)` (the SDK does, on import)."""
    global _result_reader
    _result_reader = reader


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class State:
    """A state as proposed or stored: type, name, time, message, details and an optional result reference."""

    type: StateType
    name: str | None = None
    timestamp: datetime = field(default_factory=utcnow)
    message: str | None = None
    state_details: dict[str, Any] = field(default_factory=dict)
    data: Any = None
    id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        self.type = StateType(self.type)
        if not self.name:
            self.name = DEFAULT_NAMES[self.type]

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_TYPES

    def is_final(self) -> bool:
        """Whether the run is over (a method, as in Prefect: `state.is_final()`)."""
        return self.is_terminal

    def is_scheduled(self) -> bool:
        return self.type == StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type == StateType.PENDING

    def is_running(self) -> bool:
        return self.type == StateType.RUNNING

    def is_paused(self) -> bool:
        return self.type == StateType.PAUSED

    def is_completed(self) -> bool:
        return self.type == StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type == StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type == StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type == StateType.CANCELLED

    def is_cancelling(self) -> bool:
        return self.type == StateType.CANCELLING

    def result(self, raise_on_failure: bool = True) -> Any:
        """The run's return value; for a failed, crashed or cancelled state, raise its exception."""
        if _result_reader is None:
            raise RuntimeError("reading a state's result needs the SDK: import orchestrator.sdk.results first")
        return _result_reader(self, raise_on_failure)

    @property
    def scheduled_time(self) -> datetime | None:
        value = self.state_details.get("scheduled_time")
        if isinstance(value, str):
            return datetime.fromisoformat(value)
        return value

    def to_json(self) -> dict[str, Any]:
        details = {
            key: (value.isoformat() if isinstance(value, datetime) else value)
            for key, value in self.state_details.items()
        }
        return {
            "id": str(self.id) if self.id else None,
            "type": self.type.value,
            "name": self.name,
            "timestamp": self.timestamp.isoformat(),
            "message": self.message,
            "state_details": details,
            "data": self.data,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> State:
        timestamp = payload.get("timestamp")
        return cls(
            type=StateType(payload["type"]),
            name=payload.get("name"),
            timestamp=datetime.fromisoformat(timestamp) if isinstance(timestamp, str) else (timestamp or utcnow()),
            message=payload.get("message"),
            state_details=dict(payload.get("state_details") or {}),
            data=payload.get("data"),
            id=uuid.UUID(str(payload["id"])) if payload.get("id") else None,
        )

    def __repr__(self) -> str:
        return f"{self.name}({self.type.value}{', ' + repr(self.message) if self.message else ''})"


def _state(state_type: StateType, name: str | None = None, **kwargs: Any) -> State:
    details = dict(kwargs.pop("state_details", None) or {})
    for key in ("scheduled_time", "cache_key", "cache_expiration", "pause_timeout", "pause_reschedule"):
        if key in kwargs:
            value = kwargs.pop(key)
            if value is not None:
                details[key] = value.isoformat() if isinstance(value, datetime) else value
    return State(type=state_type, name=name, state_details=details, **kwargs)


def Scheduled(scheduled_time: datetime | None = None, **kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.SCHEDULED, kwargs.pop("name", None), scheduled_time=scheduled_time or utcnow(), **kwargs)


def Late(scheduled_time: datetime | None = None, **kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.SCHEDULED, "Late", scheduled_time=scheduled_time or utcnow(), **kwargs)


def AwaitingRetry(scheduled_time: datetime | None = None, **kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.SCHEDULED, "AwaitingRetry", scheduled_time=scheduled_time or utcnow(), **kwargs)


def Pending(**kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.PENDING, kwargs.pop("name", None), **kwargs)


def NotReady(**kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.PENDING, "NotReady", **kwargs)


def Running(**kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.RUNNING, kwargs.pop("name", None), **kwargs)


def Retrying(**kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.RUNNING, "Retrying", **kwargs)


def Paused(**kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.PAUSED, kwargs.pop("name", None), **kwargs)


def Suspended(**kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.PAUSED, "Suspended", **kwargs)


def Cancelling(**kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.CANCELLING, kwargs.pop("name", None), **kwargs)


def Completed(**kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.COMPLETED, kwargs.pop("name", None), **kwargs)


def Cached(**kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.COMPLETED, "Cached", **kwargs)


def Failed(**kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.FAILED, kwargs.pop("name", None), **kwargs)


def TimedOut(**kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.FAILED, "TimedOut", **kwargs)


def Cancelled(**kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.CANCELLED, kwargs.pop("name", None), **kwargs)


def Crashed(**kwargs: Any) -> State:  # noqa: N802
    return _state(StateType.CRASHED, kwargs.pop("name", None), **kwargs)
