"""RetryFailedRuns (apps/orchestration/rules/retries.py): failures with retries left become AwaitingRetry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.states import Crashed, Failed, Pending, Running, TimedOut
from tests.orchestration.helpers import check_proposal, flow_run_in, history_names, task_run_in, walk

pytestmark = pytest.mark.django_db


def _running(flow, kind: str, policy: dict, flow_run=None):
    if kind == "flow_run":
        return flow_run_in(flow, "Running", empirical_policy=policy)
    return task_run_in(flow_run, "Running", empirical_policy=policy)


def _fail_and_rerun(run, times: int) -> None:
    """Fail `times` times, each one turned into a retry, and start the next attempt."""
    for _ in range(times):
        check_proposal(run, Failed(), "REJECT", "AwaitingRetry")
        walk(run, Running())


def _delay_of(result) -> float:
    """The delay the stored AwaitingRetry state schedules, measured from when it was stored."""
    return (result.state.scheduled_time - result.state.timestamp).total_seconds()


@pytest.mark.parametrize("kind", ["flow_run", "task_run"])
class TestRetryFailedRuns:
    @pytest.mark.parametrize(
        ("retries", "failures_before", "status", "stored"),
        [
            (0, 0, "ACCEPT", "Failed"),
            (1, 0, "REJECT", "AwaitingRetry"),
            (1, 1, "ACCEPT", "Failed"),
            (3, 2, "REJECT", "AwaitingRetry"),
            (3, 3, "ACCEPT", "Failed"),
        ],
    )
    def test_a_failure_with_retries_left_is_retried(self, flow, kind, retries, failures_before, status, stored):
        """A run gets exactly `retries` more attempts after its first one, then its failure is final."""
        run = _running(flow, kind, {"retries": retries})
        _fail_and_rerun(run, failures_before)

        check_proposal(run, Failed(message="boom"), status, stored)

        assert run.run_count == failures_before + 1
        assert run.state.message == "boom"

    @pytest.mark.parametrize(
        ("initial", "proposal", "flow_run_gets", "task_run_gets"),
        [
            ("Running", TimedOut, ("REJECT", "AwaitingRetry"), ("REJECT", "AwaitingRetry")),
            ("Running", Crashed, ("REJECT", "AwaitingRetry"), ("ACCEPT", "Crashed")),
            ("Pending", Crashed, ("ACCEPT", "Crashed"), ("ACCEPT", "Crashed")),
            ("Pending", Failed, ("ACCEPT", "Failed"), ("ACCEPT", "Failed")),
            ("Scheduled", Failed, ("ACCEPT", "Failed"), ("ACCEPT", "Failed")),
        ],
    )
    def test_only_a_failure_or_a_flow_run_crash_while_running_is_retried(
        self, flow, kind, initial, proposal, flow_run_gets, task_run_gets
    ):
        """A failure before starting is not an attempt. A flow run whose process or worker died is retried (a
        worker picks the retry up); a task run crashes with its flow run, whose retry runs it again."""
        status, stored = flow_run_gets if kind == "flow_run" else task_run_gets
        policy = {"retries": 2}
        run = (
            flow_run_in(flow, initial, empirical_policy=policy)
            if kind == "flow_run"
            else task_run_in(None, initial, empirical_policy=policy)
        )

        check_proposal(run, proposal(), status, stored)

    def test_a_number_delay_schedules_the_retry_and_makes_the_restart_wait(self, flow, kind):
        """The retry must not start before its delay: the next Running proposal is told to wait."""
        run = _running(flow, kind, {"retries": 2, "retry_delay": 30})

        result = check_proposal(run, Failed(), "REJECT", "AwaitingRetry")

        assert result.delay_seconds == 30
        assert result.to_json()["details"]["delay_seconds"] == 30
        assert _delay_of(result) == pytest.approx(30, abs=0.01)
        assert run.next_scheduled_start_time == result.state.scheduled_time
        waited = check_proposal(run, Running(), "WAIT", "AwaitingRetry")
        assert waited.delay_seconds == pytest.approx(30, abs=2)

    def test_a_list_of_delays_is_used_per_attempt_and_its_last_value_repeats(self, flow, kind):
        """retry_delay=[a, b, c] waits a, then b, then c for every later retry."""
        run = _running(flow, kind, {"retries": 4, "retry_delay": [0.25, 0.5, 0.75]})

        delays = []
        for _ in range(4):
            result = check_proposal(run, Failed(), "REJECT", "AwaitingRetry")
            delays.append(result.delay_seconds)
            assert _delay_of(result) == pytest.approx(result.delay_seconds, abs=0.01)
            walk(run, Running())

        assert delays == [0.25, 0.5, 0.75, 0.75]
        check_proposal(run, Failed(), "ACCEPT", "Failed")
        assert history_names(run).count("AwaitingRetry") == 4

    def test_jitter_stays_within_its_bounds(self, flow, kind):
        """Jitter spreads retries of many runs over [delay, delay * (1 + factor)], never below the delay."""
        policy = {"retries": 1, "retry_delay": 10, "retry_jitter_factor": 0.5}
        delays = []
        for _ in range(25):
            run = _running(flow, kind, policy)
            result = check_proposal(run, Failed(), "REJECT", "AwaitingRetry")
            assert _delay_of(result) == pytest.approx(result.delay_seconds, abs=0.01)
            delays.append(result.delay_seconds)

        assert all(10 <= delay <= 15 for delay in delays), delays
        assert len(set(delays)) > 1, "jitter should vary the delays"

    def test_a_retry_keeps_the_failure_history(self, flow, kind):
        """Every attempt and every retry stays visible in the run's history, in order."""
        run = _running(flow, kind, {"retries": 1})

        _fail_and_rerun(run, 1)
        check_proposal(run, Failed(), "ACCEPT", "Failed")

        assert history_names(run) == ["Pending", "Running", "AwaitingRetry", "Running", "Failed"]


class TestResetRetriesOfTasksRerunByFlow:
    @pytest.mark.parametrize(
        ("flow_retried", "initial", "proposal", "status", "stored", "run_count"),
        [
            (True, "Failed", Running, "ACCEPT", "Running", 1),
            (True, "Failed", Pending, "ACCEPT", "Pending", 0),
            (True, "Crashed", Running, "ACCEPT", "Running", 1),
            (True, "Completed", Running, "REJECT", "Completed", 1),
            (False, "Failed", Running, "REJECT", "Failed", 1),
        ],
    )
    def test_a_task_rerun_by_its_flow_starts_counting_attempts_again(
        self, flow, flow_retried, initial, proposal, status, stored, run_count
    ):
        """Only a re-run started by a flow retry resets the count; a refused proposal changes nothing."""
        flow_run = flow_run_in(flow, "Running", empirical_policy={"retries": 1})
        task_run = task_run_in(flow_run, initial)
        if flow_retried:
            check_proposal(flow_run, Failed(), "REJECT", "AwaitingRetry")
            walk(flow_run, Running())

        check_proposal(task_run, proposal(), status, stored)

        assert task_run.run_count == run_count

    def test_a_task_rerun_by_a_retried_flow_gets_its_retries_again(self, flow):
        """Task retries count per flow attempt, as in Prefect: each flow attempt gives a failed task its retries."""
        flow_run = flow_run_in(flow, "Running", empirical_policy={"retries": 1})
        task_run = task_run_in(flow_run, "Running", empirical_policy={"retries": 1})
        _fail_and_rerun(task_run, 1)
        check_proposal(task_run, Failed(), "ACCEPT", "Failed")
        check_proposal(flow_run, Failed(), "REJECT", "AwaitingRetry")
        walk(flow_run, Running())

        walk(task_run, Pending(), Running())

        check_proposal(task_run, Failed(), "REJECT", "AwaitingRetry")
        walk(task_run, Running())
        check_proposal(task_run, Failed(), "ACCEPT", "Failed")
        assert task_run.run_count == 2


def test_a_retried_flow_run_waits_for_its_retry_time_before_running_again(flow):
    """A flow run's retry goes through the same scheduling as any run: claimable at once, startable on time."""
    run = flow_run_in(flow, "Running", empirical_policy={"retries": 1, "retry_delay": 120})
    result = check_proposal(run, Failed(), "REJECT", "AwaitingRetry")

    check_proposal(run, Pending(), "ACCEPT", "Pending")
    waited = check_proposal(run, Running(), "WAIT", "Pending")

    assert waited.delay_seconds == pytest.approx(120, abs=2)
    assert result.state.scheduled_time - result.state.timestamp == timedelta(seconds=120)
