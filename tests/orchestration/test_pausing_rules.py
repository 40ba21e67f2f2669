"""Pausing and cancelling rules (apps/orchestration/rules/pausing.py), through `engine.propose_state`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.core.errors import InvalidInput
from apps.runs import services
from apps.runs.models import FlowRun
from orchestrator.states import (
    Cancelled,
    Cancelling,
    Completed,
    Paused,
    Pending,
    Running,
    Scheduled,
    Suspended,
    utcnow,
)
from tests.orchestration.helpers import check_proposal, flow_run_in, task_run_in

pytestmark = pytest.mark.django_db

TERMINAL = ["Completed", "Failed", "Cancelled", "Crashed"]


def _paused_until(offset_seconds: float | None) -> list:
    """The road to a Paused flow run whose pause times out `offset_seconds` from now (None: never)."""
    if offset_seconds is None:
        return [Pending, Running, Paused]
    return [Pending, Running, lambda: Paused(pause_timeout=utcnow() + timedelta(seconds=offset_seconds))]


class TestOnlyPauseRunningRuns:
    @pytest.mark.parametrize(
        ("initial", "proposal", "status", "stored"),
        [
            ("Running", Paused, "ACCEPT", "Paused"),
            ("Running", Suspended, "ACCEPT", "Suspended"),
            ("Paused", Suspended, "ACCEPT", "Suspended"),
            ("Pending", Paused, "REJECT", "Pending"),
            ("Scheduled", Paused, "REJECT", "Scheduled"),
            ("Scheduled", Suspended, "REJECT", "Scheduled"),
            ("Cancelling", Paused, "REJECT", "Cancelling"),
            *[(name, Paused, "REJECT", name) for name in TERMINAL],
        ],
    )
    def test_only_a_running_flow_run_can_pause(self, flow, initial, proposal, status, stored):
        """A pause waits for input in the middle of a run; a run that is not running has nothing to pause."""
        run = flow_run_in(flow, initial)

        check_proposal(run, proposal(), status, stored)

    def test_a_flow_run_cannot_be_created_paused(self, flow):
        """The initial state goes through the same policy, so a new run cannot start out Paused (and is not made)."""
        with pytest.raises(InvalidInput, match="only a running run can pause"):
            services.flow_run_create(flow=flow, state=Paused())

        assert not FlowRun.objects.filter(flow=flow).exists()


class TestFailExpiredPauses:
    @pytest.mark.parametrize(
        ("pause_timeout", "proposal", "status", "stored"),
        [
            (-1, Running, "REJECT", "Failed"),
            (-1, Pending, "REJECT", "Failed"),
            (-1, Scheduled, "REJECT", "Failed"),
            (-1, Cancelling, "REJECT", "Cancelled"),
            (-1, Completed, "ACCEPT", "Completed"),
            (3600, Running, "ACCEPT", "Running"),
            (3600, Pending, "ACCEPT", "Pending"),
            (3600, Scheduled, "ACCEPT", "Scheduled"),
            (None, Running, "ACCEPT", "Running"),
        ],
    )
    def test_a_run_resumed_after_its_pause_timeout_fails(self, flow, pause_timeout, proposal, status, stored):
        """Nobody answered in time, so resuming now would act on input that was never given."""
        run = flow_run_in(flow, _paused_until(pause_timeout))

        result = check_proposal(run, proposal(), status, stored)

        if stored == "Failed":
            assert result.state.message == "Pause timed out"
            assert run.end_time is not None


class TestCancelRunsNotStarted:
    @pytest.mark.parametrize(
        ("initial", "status", "stored"),
        [
            ("Scheduled", "REJECT", "Cancelled"),
            ("Paused", "REJECT", "Cancelled"),
            ("Pending", "ACCEPT", "Cancelling"),
            ("Running", "ACCEPT", "Cancelling"),
            ("Cancelling", "ACCEPT", "Cancelling"),
        ],
    )
    def test_a_run_nothing_executes_is_cancelled_at_once(self, flow, initial, status, stored):
        """No process would ever finish a Cancelling run that is not executing, so it ends Cancelled directly."""
        run = flow_run_in(flow, initial)

        result = check_proposal(run, Cancelling(message="stop it"), status, stored)

        if stored == "Cancelled":
            assert result.state.message == "stop it"
            assert run.end_time is not None

    def test_a_flow_run_created_cancelling_is_cancelled(self, flow):
        """The same holds for a run's very first state."""
        run, _ = services.flow_run_create(flow=flow, state=Cancelling())

        run.refresh_from_db()
        assert run.state_name == "Cancelled"
        assert run.state.message == "Cancelled before it started"
        assert list(run.states.values_list("name", flat=True)) == ["Cancelled"]


class TestCancellingOnlyActiveRuns:
    @pytest.mark.parametrize(
        ("initial", "status", "stored"),
        [
            *[(name, "REJECT", name) for name in TERMINAL],
            ("Running", "ACCEPT", "Cancelling"),
            ("Pending", "ACCEPT", "Cancelling"),
        ],
    )
    @pytest.mark.parametrize("kind", ["flow_run", "task_run"])
    def test_a_finished_run_cannot_be_cancelled(self, flow, kind, initial, status, stored):
        """Cancelling a run that already ended would rewrite its outcome."""
        run = flow_run_in(flow, initial) if kind == "flow_run" else task_run_in(None, initial)

        result = check_proposal(run, Cancelling(), status, stored)

        if status == "REJECT":
            assert "nothing to cancel" in result.reason

    def test_a_cancelled_run_is_not_cancelled_twice(self, flow):
        """A second cancel request (a double click) leaves the first outcome and its history alone."""
        run = flow_run_in(flow, "Scheduled")
        check_proposal(run, Cancelling(), "REJECT", "Cancelled")

        check_proposal(run, Cancelling(), "REJECT", "Cancelled")
        check_proposal(run, Cancelled(), "REJECT", "Cancelled")

        assert list(run.states.values_list("name", flat=True)) == ["Scheduled", "Cancelled"]
