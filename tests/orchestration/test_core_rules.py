"""The rules every run obeys (apps/orchestration/rules/core.py), each through `engine.propose_state` on real rows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.states import (
    AwaitingRetry,
    Completed,
    Crashed,
    Failed,
    Pending,
    Running,
    Scheduled,
    utcnow,
)
from tests.orchestration.helpers import PATHS, check_proposal, flow_run_in, task_run_in, walk

pytestmark = pytest.mark.django_db

TERMINAL = ["Completed", "Failed", "Cancelled", "Crashed"]


def _running_with_transition(transition_id: str) -> list:
    return [Pending, lambda: Running(state_details={"transition_id": transition_id})]


class TestRejectDuplicateTransitions:
    @pytest.mark.parametrize(
        ("proposal", "status", "stored"),
        [
            (lambda: Running(state_details={"transition_id": "t-1"}), "REJECT", "Running"),
            (lambda: Completed(state_details={"transition_id": "t-1"}), "REJECT", "Running"),
            (lambda: Completed(state_details={"transition_id": "t-2"}), "ACCEPT", "Completed"),
            (Completed, "ACCEPT", "Completed"),
        ],
        ids=["same-id-running", "same-id-completed", "new-id", "no-id"],
    )
    @pytest.mark.parametrize("kind", ["flow_run", "task_run"])
    def test_a_repeated_transition_id_is_not_applied_twice(self, flow, kind, proposal, status, stored):
        """A client that resends a request after a timeout must not record the same change twice."""
        road = _running_with_transition("t-1")
        run = flow_run_in(flow, road) if kind == "flow_run" else task_run_in(None, road)

        check_proposal(run, proposal(), status, stored)

    def test_the_duplicate_answer_carries_the_stored_state(self, flow):
        """The resending client learns the state its first request stored, with the reason."""
        run = flow_run_in(flow, _running_with_transition("t-1"))

        result = check_proposal(run, Running(state_details={"transition_id": "t-1"}), "REJECT", "Running")

        assert result.state.id == run.state_id
        assert "transition_id" in result.reason


class TestRejectStaleProposals:
    @pytest.mark.parametrize(
        ("offset_seconds", "status", "stored"),
        [
            (-30, "REJECT", "Running"),
            (-0.001, "REJECT", "Running"),
            (0, "ACCEPT", "Completed"),
            (5, "ACCEPT", "Completed"),
        ],
    )
    @pytest.mark.parametrize("kind", ["flow_run", "task_run"])
    def test_a_proposal_older_than_the_current_state_is_rejected(self, flow, kind, offset_seconds, status, stored):
        """A client whose view of the run is behind must not overwrite a newer state."""
        run = flow_run_in(flow, "Running") if kind == "flow_run" else task_run_in(None, "Running")
        proposed_at = run.state_timestamp + timedelta(seconds=offset_seconds)

        result = check_proposal(run, Completed(), status, stored, proposed_at=proposed_at)

        if status == "REJECT":
            assert "stale" in result.reason

    def test_a_proposal_without_a_time_is_judged_on_its_own(self, flow):
        """Clients that do not send a timestamp are not refused for it."""
        run = flow_run_in(flow, "Running")

        check_proposal(run, Completed(), "ACCEPT", "Completed", proposed_at=None)


class TestAbortSecondClaim:
    @pytest.mark.parametrize(
        ("initial", "status", "stored"),
        [
            ("Scheduled", "ACCEPT", "Pending"),
            ("Paused", "ACCEPT", "Pending"),
            ("Pending", "ABORT", "Pending"),
            ("Running", "ABORT", "Running"),
            ("Cancelling", "ABORT", "Cancelling"),
            *[(name, "ABORT", name) for name in TERMINAL],
        ],
    )
    def test_only_one_client_moves_a_flow_run_to_pending(self, flow, initial, status, stored):
        """Two workers polling one pool must never both run the same flow run."""
        run = flow_run_in(flow, initial)

        result = check_proposal(run, Pending(), status, stored)

        if status == "ABORT":
            assert "another client claimed it" in result.reason


class TestPreventLeavingTerminalFlowRuns:
    @pytest.mark.parametrize(
        ("initial", "proposal", "status", "stored"),
        [
            ("Completed", Running, "REJECT", "Completed"),
            ("Completed", Failed, "REJECT", "Completed"),
            ("Completed", Scheduled, "REJECT", "Completed"),
            ("Completed", AwaitingRetry, "REJECT", "Completed"),
            ("Completed", Pending, "ABORT", "Completed"),
            ("Failed", Running, "REJECT", "Failed"),
            ("Failed", Completed, "REJECT", "Failed"),
            ("Failed", Scheduled, "REJECT", "Failed"),
            ("Failed", Crashed, "REJECT", "Failed"),
            ("Failed", AwaitingRetry, "ACCEPT", "AwaitingRetry"),
            ("Crashed", AwaitingRetry, "ACCEPT", "AwaitingRetry"),
            ("Cancelled", AwaitingRetry, "ACCEPT", "AwaitingRetry"),
            ("Cancelled", Running, "REJECT", "Cancelled"),
            ("Crashed", Completed, "REJECT", "Crashed"),
        ],
    )
    def test_terminal_flow_runs_stay_final_unless_retried(self, flow, initial, proposal, status, stored):
        """A finished run's outcome is history; only an explicit retry of an unsuccessful run reopens it."""
        run = flow_run_in(flow, initial)

        check_proposal(run, proposal(), status, stored)

    def test_a_retried_flow_run_runs_again(self, flow):
        """After a manual retry the run can be claimed and started like a new one."""
        run = flow_run_in(flow, "Crashed")

        walk(run, AwaitingRetry(), Pending(), Running())

        assert run.state_name == "Running"
        assert run.end_time is None


def _retrying_flow_run(flow):
    """A flow run on its second attempt (run_count 2) whose first attempt ran its tasks."""
    return flow_run_in(flow, "Running", empirical_policy={"retries": 1})


def _fail_and_retry(flow_run):
    check_proposal(flow_run, Failed(), "REJECT", "AwaitingRetry")
    walk(flow_run, Running())
    assert (flow_run.state_name, flow_run.run_count) == ("Running", 2)


class TestPreventLeavingTerminalTaskRuns:
    @pytest.mark.parametrize(
        ("flow_retried", "initial", "proposal", "status", "stored"),
        [
            (False, "Completed", Running, "REJECT", "Completed"),
            (False, "Completed", Pending, "REJECT", "Completed"),
            (False, "Failed", Running, "REJECT", "Failed"),
            (False, "Failed", Pending, "REJECT", "Failed"),
            (False, "Crashed", Running, "REJECT", "Crashed"),
            (False, "Cancelled", Completed, "REJECT", "Cancelled"),
            (False, "Failed", AwaitingRetry, "REJECT", "Failed"),
            (True, "Failed", Pending, "ACCEPT", "Pending"),
            (True, "Failed", Running, "ACCEPT", "Running"),
            (True, "Crashed", Running, "ACCEPT", "Running"),
            (True, "Cancelled", Pending, "ACCEPT", "Pending"),
            (True, "Completed", Running, "REJECT", "Completed"),
            (True, "Failed", Scheduled, "REJECT", "Failed"),
            (True, "Failed", Completed, "REJECT", "Failed"),
        ],
    )
    def test_terminal_task_runs_stay_final_unless_their_flow_retries(
        self, flow, flow_retried, initial, proposal, status, stored
    ):
        """A retried flow re-runs its unsuccessful tasks, and nothing else reopens a finished task run."""
        flow_run = _retrying_flow_run(flow)
        task_run = task_run_in(flow_run, initial)
        if flow_retried:
            _fail_and_retry(flow_run)

        check_proposal(task_run, proposal(), status, stored)

    def test_a_task_run_rerun_by_its_flow_is_final_again_once_it_ends(self, flow):
        """The exception holds for one flow attempt: the re-run's own outcome is final again."""
        flow_run = _retrying_flow_run(flow)
        task_run = task_run_in(flow_run, "Failed")
        _fail_and_retry(flow_run)
        walk(task_run, Running(), Failed())

        check_proposal(task_run, Running(), "REJECT", "Failed")

    def test_a_task_run_without_a_flow_run_stays_final(self):
        """A standalone task run has no flow that could retry it."""
        task_run = task_run_in(None, "Failed")

        check_proposal(task_run, Running(), "REJECT", "Failed")


class TestWaitForScheduledTime:
    @pytest.mark.parametrize(
        ("schedule_offset", "proposal", "status", "stored", "delay"),
        [
            (3600, Running, "WAIT", "Scheduled", 3600),
            (60, Running, "WAIT", "Scheduled", 60),
            (0.5, Running, "ACCEPT", "Running", 0),
            (-60, Running, "ACCEPT", "Running", 0),
            (3600, Pending, "ACCEPT", "Pending", 0),
            (3600, Completed, "ACCEPT", "Completed", 0),
        ],
    )
    @pytest.mark.parametrize("kind", ["flow_run", "task_run"])
    def test_a_scheduled_run_does_not_start_early(self, flow, kind, schedule_offset, proposal, status, stored, delay):
        """A run scheduled for later is told how long to wait instead of starting now."""
        road = [lambda: Scheduled(scheduled_time=utcnow() + timedelta(seconds=schedule_offset))]
        run = flow_run_in(flow, road) if kind == "flow_run" else task_run_in(None, road)

        result = check_proposal(run, proposal(), status, stored)

        assert result.delay_seconds == pytest.approx(delay, abs=2)

    @pytest.mark.parametrize(
        ("schedule_offset", "status", "stored"), [(3600, "WAIT", "Pending"), (-5, "ACCEPT", "Running")]
    )
    def test_a_claimed_run_still_waits_for_its_scheduled_time(self, flow, schedule_offset, status, stored):
        """A worker may claim a run early (SCHEDULED -> PENDING) but may not start it early."""
        scheduled_time = utcnow() + timedelta(seconds=schedule_offset)
        run = flow_run_in(flow, [lambda: Scheduled(scheduled_time=scheduled_time), Pending])

        result = check_proposal(run, Running(), status, stored)

        if status == "WAIT":
            assert result.delay_seconds == pytest.approx(schedule_offset, abs=2)
            assert scheduled_time.isoformat() in result.reason

    def test_a_run_created_pending_starts_at_once(self, flow):
        """A run with no schedule has nothing to wait for."""
        run = flow_run_in(flow, "Pending")

        check_proposal(run, Running(), "ACCEPT", "Running")


@pytest.mark.parametrize("initial", sorted(PATHS))
def test_every_starting_state_in_the_tables_is_reachable(flow, initial):
    """The tables above start from real states built through the engine, not from rows written by hand."""
    run = flow_run_in(flow, initial)

    assert run.state_name == initial
    assert run.states.count() == len(PATHS[initial])
