"""Run details the engine keeps on every stored state (apps/orchestration/rules/bookkeeping.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.states import (
    AwaitingRetry,
    Completed,
    Failed,
    Paused,
    Pending,
    Running,
    Scheduled,
    StateType,
    utcnow,
)
from tests.orchestration.helpers import check_proposal, flow_run_in, propose, task_run_in, walk

pytestmark = pytest.mark.django_db


def _history(run) -> list:
    return list(run.states.order_by("timestamp", "created"))


def _time_spent_running(run) -> float:
    """Seconds between each RUNNING state in the history and the state that followed it."""
    history = _history(run)
    return sum(
        (after.timestamp - before.timestamp).total_seconds()
        for before, after in zip(history, history[1:], strict=False)
        if before.type == StateType.RUNNING
    )


def _first_running(run):
    return next(row for row in _history(run) if row.type == StateType.RUNNING)


@pytest.mark.parametrize("kind", ["flow_run", "task_run"])
class TestRunDetails:
    def _run(self, flow, kind, initial="Pending", **kwargs):
        return flow_run_in(flow, initial, **kwargs) if kind == "flow_run" else task_run_in(None, initial, **kwargs)

    def test_start_time_is_the_first_start_and_never_moves(self, flow, kind):
        """Retries and resumes must not hide when the run really began."""
        run = self._run(flow, kind, empirical_policy={"retries": 1})
        walk(run, Running())
        first_start = run.start_time

        check_proposal(run, Failed(), "REJECT", "AwaitingRetry")
        walk(run, Running(), Completed())

        assert first_start == _first_running(run).timestamp
        assert run.start_time == first_start

    @pytest.mark.parametrize(
        ("road", "run_count"),
        [
            ([], 0),
            ([Running], 1),
            ([Running, lambda: Running(name="Retrying")], 1),
            ([Running, Paused, Running], 2),
            ([Running, Failed], 1),
            ([Running, lambda: AwaitingRetry(), Running, Completed], 2),
        ],
        ids=["never-ran", "ran", "running-again-is-not-a-new-entry", "resumed", "failed", "retried"],
    )
    def test_run_count_counts_entries_into_running(self, flow, kind, road, run_count):
        """run_count is the attempt number the retry rule relies on: one per entry into RUNNING."""
        run = self._run(flow, kind)

        walk(run, *(factory() for factory in road))

        assert run.run_count == run_count

    def test_total_run_time_adds_up_every_running_stretch(self, flow, kind):
        """Total run time is what the run cost over all its attempts, not just the last one."""
        run = self._run(flow, kind, empirical_policy={"retries": 2})
        walk(run, Running(), Running(name="Retrying"), Paused(), Running())
        check_proposal(run, Failed(), "REJECT", "AwaitingRetry")
        walk(run, Running(), Completed())

        assert run.total_run_time == pytest.approx(_time_spent_running(run), abs=1e-6)
        assert run.total_run_time > 0

    def test_end_time_is_set_on_a_terminal_state_and_cleared_on_leaving_it(self, flow, kind):
        """A run that was retried or forced back to life is not finished, so it has no end time."""
        run = self._run(flow, kind, initial="Running")

        walk(run, Failed())
        assert run.end_time == _history(run)[-1].timestamp

        propose(run, Running(), force=True)
        run.refresh_from_db()
        assert run.end_time is None

        walk(run, Completed())
        assert run.end_time == _history(run)[-1].timestamp

    def test_lateness_is_measured_from_the_scheduled_time_to_the_start(self, flow, kind):
        """A run started two minutes after its scheduled time reports two minutes of lateness."""
        scheduled_time = utcnow() - timedelta(minutes=2)
        run = self._run(flow, kind, initial=[lambda: Scheduled(scheduled_time=scheduled_time)])

        walk(run, Pending(), Running())

        assert run.expected_start_time == scheduled_time
        assert run.estimated_start_time_delta == pytest.approx(
            (run.start_time - scheduled_time).total_seconds(), abs=1e-6
        )
        assert run.estimated_start_time_delta >= 120

    def test_a_run_started_early_is_not_late(self, flow, kind):
        """Lateness is never negative: a forced early start is simply on time."""
        run = self._run(flow, kind, initial=[lambda: Scheduled(scheduled_time=utcnow() + timedelta(hours=1))])

        propose(run, Running(), force=True)
        run.refresh_from_db()

        assert run.estimated_start_time_delta == 0

    def test_expected_start_time_comes_from_the_first_scheduled_state(self, flow, kind):
        """Later reschedules (retries) move the next start, not the time the run was expected."""
        first = utcnow() - timedelta(seconds=30)
        run = self._run(flow, kind, initial=[lambda: Scheduled(scheduled_time=first)], empirical_policy={"retries": 1})
        walk(run, Pending(), Running())
        assert run.next_scheduled_start_time is None

        result = check_proposal(run, Failed(), "REJECT", "AwaitingRetry")

        assert run.expected_start_time == first
        assert run.next_scheduled_start_time == result.state.scheduled_time

    def test_a_run_created_pending_is_expected_when_it_was_created(self, flow, kind):
        """Without a schedule, a run is expected to start as soon as it exists."""
        run = self._run(flow, kind)

        assert run.expected_start_time == _history(run)[0].timestamp


def test_a_task_run_remembers_which_flow_attempt_ran_it(flow):
    """The terminal-task rule tells a flow retry's re-run from a stale proposal by this number."""
    flow_run = flow_run_in(flow, "Running", empirical_policy={"retries": 1})
    check_proposal(flow_run, Failed(), "REJECT", "AwaitingRetry")
    walk(flow_run, Running())

    task_run = task_run_in(flow_run, "Running")

    assert task_run.flow_run_run_count == 2
