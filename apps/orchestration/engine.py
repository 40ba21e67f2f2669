"""The orchestration engine: the ONLY code that writes a run's state.

`propose_state` locks the run, applies the policy's rules in order, stores the resulting state with its
history row, run details and outbox event, all in one transaction, and answers with the status
(ACCEPT, REJECT, WAIT, ABORT), the run's state afterwards and the reason.

Concurrent proposals on one run are serialised: `SELECT ... FOR UPDATE` on PostgreSQL; on SQLite every
transaction starts with BEGIN IMMEDIATE (see settings), which takes the database's write lock up front.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.db import transaction
from django.utils import timezone

from apps.core.db import execute_together, fetch_row, insert_rows, insert_statement, mark_saved, update_statement
from apps.events.models import Event
from apps.events.stream import wake_on_commit
from apps.orchestration.policies import POLICIES, RUN_MODELS, resolve_policy, state_stored_hooks
from apps.orchestration.rules.base import OrchestratedRun, Rule, RunKind, Status, TransitionContext
from apps.orchestration.rules.bookkeeping import update_run_details
from orchestrator.states import State

FLOW_RUN = RunKind.FLOW_RUN
TASK_RUN = RunKind.TASK_RUN


@dataclass(frozen=True)
class RunKindSpec:
    """A kind of run as the engine writes it: its model, its history model, the history's link to the run, and
    the policy that decides its transitions."""

    model: Any
    state_model: Any
    run_field: str
    policy: list[type[Rule]]


@functools.cache
def run_kind_spec(kind: RunKind | str) -> RunKindSpec:
    """The models and policy of a run kind, resolved once from apps/orchestration/policies.py (the engine names
    the run models by app label, as Django names swappable models, so it imports no other app)."""
    kind = RunKind(kind)
    model_label, state_model_label, run_field = RUN_MODELS[kind]
    return RunKindSpec(
        model=apps.get_model(model_label),
        state_model=apps.get_model(state_model_label),
        run_field=run_field,
        policy=resolve_policy(POLICIES[kind]),
    )


@dataclass
class OrchestrationResult:
    status: Status
    state: State | None
    reason: str | None = None
    delay_seconds: float = 0.0
    run: Any = None

    @property
    def accepted(self) -> bool:
        return self.status == Status.ACCEPT

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "state": self.state.to_json() if self.state else None,
            "details": {"reason": self.reason, "delay_seconds": round(self.delay_seconds, 3)},
        }


def propose_state(
    *,
    kind: RunKind,
    run_id: uuid.UUID | str,
    state: State,
    force: bool = False,
    proposed_at: datetime | None = None,
    occurred_at: datetime | None = None,
) -> OrchestrationResult:
    """Propose `state` for the run; the policy decides. `force=True` skips the policy, never the record.
    `occurred_at` records a transition a client already made (see `_recorded_time`)."""
    spec = run_kind_spec(kind)
    with transaction.atomic():
        run = fetch_row(spec.model, run_id, for_update=True)
        if run is None:
            return OrchestrationResult(Status.ABORT, None, "the run does not exist (it may have been deleted)")
        return _orchestrate(spec, kind, run, state, force=force, proposed_at=proposed_at, occurred_at=occurred_at)


def set_initial_state(*, kind: RunKind, run: Any, state: State) -> OrchestrationResult:
    """Give a new run (not saved yet, or created in the current transaction) its first state, through the
    same policy; an unsaved run is inserted together with that state."""
    spec = run_kind_spec(kind)
    return _orchestrate(spec, kind, run, state, force=False, proposed_at=None)


def set_initial_states(*, kind: RunKind, run: Any, states: list[State]) -> OrchestrationResult:
    """Give a new, unsaved run its first states in order (e.g. Pending, then Running), each through the
    policy, and write the run, its history rows and events in one transaction: a client that starts a run at
    once needs one round trip instead of two. Evaluation stops at the first state the policy does not accept
    as proposed (a WAIT leaves the run in its previous state; a replacement such as Cached is stored).
    Nothing is written when the first state is refused."""
    return set_initial_histories_in_bulk(kind=kind, runs=[run], histories=[[(state, None) for state in states]])[0]


# How far back a client's recorded transition may be dated (see `_recorded_time`).
RECORDED_TIME_MAX_AGE = timedelta(days=1)

# Rows per INSERT statement when writing runs in bulk (well under every database's bound-parameter limit).
BULK_BATCH_SIZE = 500


def set_initial_states_in_bulk(*, kind: RunKind, runs: list[Any], states: list[State]) -> list[OrchestrationResult]:
    """Give many new, unsaved runs their first state through the same policy, then write the runs, their
    history rows and outbox events with one multi-row INSERT per table (the scheduler creates thousands of
    Scheduled runs per pass). Runs whose first state is refused are not written. Atomic: all or nothing."""
    histories: list[list[tuple[State, datetime | None]]] = [[(state, None)] for state in states]
    return set_initial_histories_in_bulk(kind=kind, runs=runs, histories=histories)


def set_initial_histories_in_bulk(
    *, kind: RunKind, runs: list[Any], histories: list[list[tuple[State, datetime | None]]]
) -> list[OrchestrationResult]:
    """Give new, unsaved runs their first states, each (state, when) in order through the policy (`when`: the
    client's time of a transition it already made, or None for now), stopping at the first state not accepted
    as proposed; then write all the runs, history rows and events together. A run whose first state is
    refused is not written."""
    spec = run_kind_spec(kind)
    results: list[OrchestrationResult] = []
    stored: list[tuple[TransitionContext, list[Rule], Any, Event]] = []
    written: list[Any] = []
    for run, history in zip(runs, histories, strict=True):
        if not _is_new(run):
            raise ValueError("only a run that is not saved yet can be given its first states")
        if not history:
            raise ValueError("every run needs at least one state")
        decision: TransitionContext | None = None
        for state, occurred_at in history:
            decision, applied = _decide(spec, kind, run, state, force=False, proposed_at=None, occurred_at=occurred_at)
            if decision.validated_state is None:
                break
            state_row, event = _prepare_rows(spec, decision)
            stored.append((decision, applied, state_row, event))
            if decision.status != Status.ACCEPT:
                break
        if decision is None:
            raise ValueError("every run needs at least one state")
        if run.state_id is not None:
            written.append(run)
        results.append(OrchestrationResult(decision.status, run.state, decision.reason, decision.delay_seconds, run))
    if written:
        _write_new_runs(spec, written, stored)
    return results


def _write_new_runs(
    spec: RunKindSpec, runs: list[Any], stored: list[tuple[TransitionContext, list[Rule], Any, Event]]
) -> None:
    """Insert new runs with their decided states' history rows and events, then run the after-hooks."""
    # Callers usually hold a transaction already (flow_run_create): no savepoint, which would cost two round
    # trips per new run; an error here rolls back the caller's transaction with it.
    with transaction.atomic(savepoint=False):
        state_rows = [row for *_, row, _ in stored]
        events = [event for *_, event in stored]
        if len(runs) == 1:  # one API request's run: its few rows in one round trip (COPY costs two per table)
            rows = [*runs, *state_rows, *events]
            execute_together([insert_statement(row) for row in rows])
            mark_saved(rows)
        else:
            insert_rows(spec.model, runs, batch_size=BULK_BATCH_SIZE)
            insert_rows(spec.state_model, state_rows, batch_size=BULK_BATCH_SIZE)
            insert_rows(Event, events, batch_size=BULK_BATCH_SIZE)
        wake_on_commit()
        for context, applied, state_row, _ in stored:
            for rule in applied:
                rule.after_transition(context)
            _after_state_stored(context, state_row)


def _decide(
    spec: RunKindSpec,
    kind: RunKind,
    run: Any,
    state: State,
    *,
    force: bool,
    proposed_at: datetime | None,
    occurred_at: datetime | None = None,
) -> tuple[TransitionContext, list[Rule]]:
    """Apply the policy's rules in order; the first refusal ends the evaluation."""
    context = TransitionContext(
        run=run,
        kind=RunKind(kind),
        initial_state=run.state,
        proposed_state=state,
        now=_recorded_time(run, occurred_at),
        force=force,
        proposed_at=proposed_at,
    )
    applied: list[Rule] = []
    for rule_class in [] if force else spec.policy:
        rule = rule_class()
        if not rule.applies(context):
            continue
        rule.before_transition(context)
        applied.append(rule)
        if context.status != Status.ACCEPT:
            break

    if context.status != Status.ACCEPT:
        for rule in reversed(applied[:-1]):
            rule.cleanup(context)
    return context, applied


def _recorded_time(run: Any, occurred_at: datetime | None) -> datetime:
    """When a transition happened: now, or for a client recording what already happened (task runs it ran
    without waiting for the server), the client's time, kept between the run's current state and now."""
    now: datetime = timezone.now()
    if occurred_at is None:
        return now
    earliest: datetime = now - RECORDED_TIME_MAX_AGE  # a wrong clock must not give a run a start in year 1
    if run.state_timestamp is not None:
        earliest = max(earliest, run.state_timestamp)
    return min(max(occurred_at, earliest), now)


def _orchestrate(
    spec: RunKindSpec,
    kind: RunKind,
    run: Any,
    state: State,
    *,
    force: bool,
    proposed_at: datetime | None,
    occurred_at: datetime | None = None,
) -> OrchestrationResult:
    context, applied = _decide(spec, kind, run, state, force=force, proposed_at=proposed_at, occurred_at=occurred_at)
    if context.validated_state is None:
        return OrchestrationResult(context.status, run.state, context.reason, context.delay_seconds, run)

    state_row = _store(spec, context)
    for rule in applied:
        rule.after_transition(context)
    _after_state_stored(context, state_row)
    return OrchestrationResult(context.status, run.state, context.reason, context.delay_seconds, run)


def _store(spec: RunKindSpec, context: TransitionContext) -> Any:
    """Write the history row, the run's current state and details, and the outbox event."""
    run = context.run
    state_row, event = _prepare_rows(spec, context)
    if _is_new(run):  # a new run gets its first state in the same INSERT
        run_statement = insert_statement(run)
    else:
        run_statement = update_statement(
            run,
            [
                "state_id",
                "state_type",
                "state_name",
                "state_timestamp",
                "state_message",
                "state_details",
                "state_data",
                "updated",
                *context.changed_fields,
            ],
        )
    # One round trip on PostgreSQL for the three writes of a transition.
    execute_together([run_statement, insert_statement(state_row), insert_statement(event)])
    mark_saved([run, state_row, event])
    wake_on_commit()
    return state_row


def _prepare_rows(spec: RunKindSpec, context: TransitionContext) -> tuple[Any, Event]:
    """Set the run's current state and details from the validated state; build its history row and event."""
    run = context.run
    state = context.to_state
    if context.force and context.status == Status.ACCEPT:
        # A copy: the caller's State object stays as it was proposed.
        state = dataclasses.replace(state, state_details={**state.state_details, "forced": True})
        context.validated_state = state
    update_run_details(context)
    state_row = spec.state_model(
        **{spec.run_field: run},
        type=state.type.value,
        name=state.name,
        timestamp=context.now,
        message=state.message,
        state_details=_jsonable(state.state_details),
        data=state.data,
    )
    run.state_id = state_row.id
    run.state_type = state.type.value
    run.state_name = state.name
    run.state_timestamp = context.now
    run.state_message = state.message
    run.state_details = state_row.state_details
    run.state_data = state.data
    event = Event(
        name=f"{context.kind}.state_changed",
        resource_type=context.kind,
        resource_id=run.id,
        occurred=context.now,
        payload={
            "run_id": str(run.id),
            "flow_run_id": str(run.id if context.kind == FLOW_RUN else getattr(run, "flow_run_id", None) or "") or None,
            "initial_state_type": context.initial_type.value if context.initial_type else None,
            "state": _stored_state(run).to_json(),
            "forced": context.force,
        },
    )
    return state_row, event


def _is_new(run: Any) -> bool:
    """Whether the run row is not in the database yet (Django's own flag for unsaved instances)."""
    return bool(run._state.adding)


def _stored_state(run: OrchestratedRun) -> State:
    state = run.state
    if state is None:
        raise RuntimeError(f"run {run.id} has no state after one was stored")
    return state


def _after_state_stored(context: TransitionContext, state_row: Any) -> None:
    """Effects of every stored state, forced ones included, in the same transaction (policies.py lists them)."""
    for hook in state_stored_hooks():
        hook(context, state_row)


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in details.items()}
