"""The typed answers of the client's hot path (what the SDK's run engine reads), built from the API's JSON."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from orchestrator.states import State


@dataclass
class RunInfo:
    """What the SDK knows about a flow run or task run (also what hooks receive as `flow_run` / `task_run`)."""

    id: str
    name: str
    state: State | None
    run_count: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    flow_id: str | None = None
    flow_run_id: str | None = None
    deployment_id: str | None = None
    parent_task_run_id: str | None = None
    task_key: str | None = None
    empirical_policy: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> RunInfo:
        return cls(
            id=payload["id"],
            name=payload["name"],
            state=State.from_json(payload["state"]) if payload.get("state") else None,
            run_count=payload.get("run_count", 0),
            parameters=payload.get("parameters") or {},
            tags=payload.get("tags") or [],
            flow_id=payload.get("flow"),
            flow_run_id=payload.get("flow_run"),
            deployment_id=payload.get("deployment"),
            parent_task_run_id=payload.get("parent_task_run"),
            task_key=payload.get("task_key"),
            empirical_policy=payload.get("empirical_policy") or {},
        )


@dataclass
class StateResult:
    """The engine's answer to a proposal."""

    status: str
    state: State | None
    reason: str | None = None
    delay_seconds: float = 0.0

    @classmethod
    def from_json(cls, payload: dict[str, Any], proposed: State) -> StateResult:
        result = cls(
            payload["status"],
            State.from_json(payload["state"]) if payload.get("state") else None,
            (payload.get("details") or {}).get("reason"),
            float((payload.get("details") or {}).get("delay_seconds") or 0),
        )
        # A retried request that the server had already applied comes back REJECTed as a duplicate: it was accepted.
        if (
            result.status == "REJECT"
            and result.state is not None
            and result.state.state_details.get("transition_id") == proposed.state_details.get("transition_id")
        ):
            return cls("ACCEPT", result.state, None, 0.0)
        return result


def with_transition_id(state: State) -> State:
    """Every proposal carries a transition id, so a retried request that was applied is recognised, not doubled."""
    state.state_details.setdefault("transition_id", uuid.uuid4().hex)
    return state


def state_body(state: State) -> dict[str, Any]:
    """A proposed state: the server dates it."""
    body = with_transition_id(state).to_json()
    body.pop("id", None)
    body.pop("timestamp", None)
    return body


def recorded_state_body(state: State) -> dict[str, Any]:
    """A state the client already took a run through: with its timestamp (and a transition id, so a batch sent
    twice is recorded once)."""
    body = with_transition_id(state).to_json()
    body.pop("id", None)
    return body
