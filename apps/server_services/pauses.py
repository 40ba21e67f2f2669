"""The pause_timeouts service: a paused flow run not resumed before its pause timeout fails."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from apps.orchestration.engine import FLOW_RUN, propose_state
from apps.runs.models import FlowRun
from orchestrator.states import Failed, StateType

PAUSE_TIMED_OUT = "Pause timed out"


def _deadline(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def paused_flow_runs_fail_expired(*, now: datetime | None = None) -> int:
    """Propose Failed for every PAUSED flow run whose state_details.pause_timeout has passed; return how many failed.

    Each proposal carries the time the paused state was read (`proposed_at`), so a run resumed in between is
    left alone (the engine rejects the proposal as stale). A second pass finds nothing to do.
    """
    now = now or timezone.now()
    paused = FlowRun.objects.filter(state_type=StateType.PAUSED).values_list("id", "state_details", "state_timestamp")
    failed = 0
    for run_id, details, paused_at in paused.iterator():
        deadline = _deadline((details or {}).get("pause_timeout"))
        if deadline is None or deadline > now:
            continue
        result = propose_state(
            kind=FLOW_RUN,
            run_id=run_id,
            state=Failed(message=PAUSE_TIMED_OUT),
            proposed_at=paused_at,
        )
        if result.accepted:
            failed += 1
    return failed
