"""What a rule sees and can do: the transition context, the proposal's status and the Rule base class."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, cast

from orchestrator.states import ALL_TYPES, State, StateType


class RunKind(StrEnum):
    """What the engine orchestrates: flow runs and task runs (each with its model and policy, see engine.py)."""

    FLOW_RUN = "flow_run"
    TASK_RUN = "task_run"


class OrchestratedRun(Protocol):
    """What the engine and its rules read and write on a run row (apps.runs' FlowRun and TaskRun have it all;
    fields only one kind has, such as a flow run's `deployment_id`, are read with getattr)."""

    id: Any
    pk: Any
    name: str
    tags: list[str]
    state_id: Any
    state_type: str | None
    state_name: str | None
    state_timestamp: datetime | None
    state_message: str | None
    state_details: dict[str, Any]
    state_data: Any
    run_count: int
    expected_start_time: datetime | None
    next_scheduled_start_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    total_run_time: float
    estimated_start_time_delta: float
    empirical_policy: dict[str, Any]

    @property
    def state(self) -> State | None: ...


class OrchestratedFlowRun(OrchestratedRun, Protocol):
    """What flow-run rules read besides the common fields."""

    deployment_id: Any
    work_pool_name: str | None
    work_queue_name: str | None
    dispatched_at: datetime | None


class OrchestratedTaskRun(OrchestratedRun, Protocol):
    """What task-run rules read besides the common fields."""

    flow_run: Any
    flow_run_id: Any
    flow_run_run_count: int
    cache_key: str | None
    cache_expiration: datetime | None


class Status(StrEnum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    WAIT = "WAIT"
    ABORT = "ABORT"


@dataclass
class TransitionContext:
    """One proposal under evaluation. `run` is the locked row; rules read it and bookkeeping writes it."""

    run: OrchestratedRun
    kind: RunKind
    initial_state: State | None
    proposed_state: State
    now: datetime
    force: bool = False
    # When the client made the proposal (its clock), if it said; used to refuse stale proposals.
    proposed_at: datetime | None = None
    status: Status = Status.ACCEPT
    reason: str | None = None
    delay_seconds: float = 0.0
    # The state that will be stored: the proposal, a rule's replacement, or None (nothing is written).
    validated_state: State | None = None
    # Changed run fields to save with the state; bookkeeping rules add to it.
    changed_fields: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.validated_state = self.proposed_state

    @property
    def from_state(self) -> State:
        """The run's state before the transition, for rules that guard transitions out of a state (FROM_STATES
        without None) and for hooks of runs that had one."""
        if self.initial_state is None:
            raise RuntimeError("the run has no state yet")
        return self.initial_state

    @property
    def to_state(self) -> State:
        """The state to be stored: what bookkeeping and state-stored hooks see (they run only when one is)."""
        if self.validated_state is None:
            raise RuntimeError("no state is stored for this proposal")
        return self.validated_state

    @property
    def flow_run(self) -> OrchestratedFlowRun:
        """The run, for rules listed only in the flow run policy."""
        if self.kind != RunKind.FLOW_RUN:
            raise TypeError(f"a {self.kind} is not a flow run")
        return cast(OrchestratedFlowRun, self.run)

    @property
    def task_run(self) -> OrchestratedTaskRun:
        """The run, for rules listed only in the task run policy."""
        if self.kind != RunKind.TASK_RUN:
            raise TypeError(f"a {self.kind} is not a task run")
        return cast(OrchestratedTaskRun, self.run)

    @property
    def initial_type(self) -> StateType | None:
        return self.initial_state.type if self.initial_state else None

    @property
    def proposed_type(self) -> StateType:
        return self.proposed_state.type

    @property
    def validated_type(self) -> StateType | None:
        return self.validated_state.type if self.validated_state else None

    def reject(self, reason: str, *, state: State | None = None) -> None:
        """Refuse the proposal; with `state`, store that state instead (e.g. AwaitingRetry for Failed)."""
        self.status = Status.REJECT
        self.reason = reason
        self.validated_state = state

    def wait(self, delay_seconds: float, reason: str) -> None:
        """Tell the client to propose again after `delay_seconds`; nothing is stored."""
        self.status = Status.WAIT
        self.reason = reason
        self.delay_seconds = max(0.0, delay_seconds)
        self.validated_state = None

    def abort(self, reason: str) -> None:
        """Tell the client to stop working on this run; nothing is stored."""
        self.status = Status.ABORT
        self.reason = reason
        self.validated_state = None

    def set_run_field(self, name: str, value: Any) -> None:
        setattr(self.run, name, value)
        self.changed_fields.add(name)


class Rule:
    """Guards the transitions FROM_STATES -> TO_STATES (None in FROM_STATES: a run with no state yet).

    `before_transition` may accept (do nothing), reject, wait or abort. `after_transition` runs once the
    state is stored, in the same transaction. `cleanup` undoes a rule's effect when a later rule refused
    the proposal it had allowed.
    """

    FROM_STATES: ClassVar[frozenset[StateType | None]] = ALL_TYPES | {None}
    TO_STATES: ClassVar[frozenset[StateType]] = ALL_TYPES

    def applies(self, context: TransitionContext) -> bool:
        return context.initial_type in self.FROM_STATES and context.proposed_type in self.TO_STATES

    def before_transition(self, context: TransitionContext) -> None:
        """Decide on the proposal (default: accept)."""

    def after_transition(self, context: TransitionContext) -> None:
        """React to the stored state (default: nothing)."""

    def cleanup(self, context: TransitionContext) -> None:
        """Undo what before_transition did when the proposal was refused later (default: nothing)."""
