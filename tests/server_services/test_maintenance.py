"""The services implemented here: pause_timeouts (through the engine) and retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.events.models import Event
from apps.flows.services import flow_get_or_create
from apps.logs.models import Log
from apps.logs.services import logs_create
from apps.runs.models import FlowRun, FlowRunState, TaskRun
from apps.server_services.pauses import PAUSE_TIMED_OUT, paused_flow_runs_fail_expired
from apps.server_services.retention import retention_delete_expired
from orchestrator.states import Paused, Pending, Running, utcnow
from tests.orchestration.helpers import flow_run_in, task_run_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow():
    return flow_get_or_create(name="services-tests")[0]


def paused(flow, timeout_seconds: float | None) -> FlowRun:
    if timeout_seconds is None:
        return flow_run_in(flow, [Pending, Running, Paused])
    deadline = utcnow() + timedelta(seconds=timeout_seconds)
    return flow_run_in(flow, [Pending, Running, lambda: Paused(pause_timeout=deadline)])


class TestPauseTimeouts:
    def test_a_paused_run_past_its_pause_timeout_fails_through_the_engine(self, flow) -> None:
        """Nobody resumes a forgotten pause: without this service the run would stay Paused forever."""
        run = paused(flow, -1)

        assert paused_flow_runs_fail_expired() == 1

        run.refresh_from_db()
        assert (run.state_type, run.state_name, run.state_message) == ("FAILED", "Failed", PAUSE_TIMED_OUT)
        assert list(run.states.order_by("timestamp").values_list("name", flat=True)) == [
            "Pending",
            "Running",
            "Paused",
            "Failed",
        ]
        assert run.end_time is not None  # the engine's bookkeeping ran: it was a real transition

    def test_pauses_still_within_their_timeout_or_without_one_are_left_alone(self, flow) -> None:
        """A pause is a wait for input: failing it early, or one with no timeout, would lose the run."""
        waiting = paused(flow, 3600)
        open_ended = paused(flow, None)

        assert paused_flow_runs_fail_expired() == 0
        assert paused_flow_runs_fail_expired(now=timezone.now() + timedelta(hours=2)) == 1

        waiting.refresh_from_db()
        open_ended.refresh_from_db()
        assert (waiting.state_name, open_ended.state_name) == ("Failed", "Paused")

    def test_a_second_pass_changes_nothing(self, flow) -> None:
        """Beat may send the service twice (two servers, a slow worker): it must be idempotent."""
        run = paused(flow, -1)
        paused_flow_runs_fail_expired()
        states = FlowRunState.objects.filter(flow_run=run).count()

        assert paused_flow_runs_fail_expired() == 0
        assert FlowRunState.objects.filter(flow_run=run).count() == states


class TestRetention:
    def test_finished_runs_are_kept_for_the_whole_period_then_deleted_with_everything_they_own(
        self, flow, settings
    ) -> None:
        """Old runs, their task runs, states and logs would otherwise fill the database without bound."""
        settings.RETENTION_DAYS = 30
        finished = flow_run_in(flow, "Completed")
        task = task_run_in(finished, "Completed")
        logs_create(entries=[{"flow_run": finished, "task_run": task, "message": "done"}])
        failed = flow_run_in(flow, "Failed")
        lone_task = task_run_in(None, "Failed")

        assert retention_delete_expired(now=timezone.now() + timedelta(days=29))["flow_runs"] == 0
        assert FlowRun.objects.count() == 2

        deleted = retention_delete_expired(now=timezone.now() + timedelta(days=31))

        assert deleted == {
            "logs": 1,
            "events": deleted["events"],
            "task_runs": 2,
            "flow_runs": 2,
            "service_runs": 0,
            "workers": 0,
            "cache_entries": 0,
            "notification_deliveries": 0,
        }
        assert deleted["events"] > 0  # each state change wrote one
        assert not FlowRun.objects.filter(id__in=[finished.id, failed.id]).exists()
        assert not TaskRun.objects.filter(id__in=[task.id, lone_task.id]).exists()
        assert not FlowRunState.objects.exists() and not Log.objects.exists() and not Event.objects.exists()

    def test_runs_not_finished_are_kept_but_their_old_logs_go(self, flow, settings) -> None:
        """A long-running or stuck run must never disappear under its worker; its log lines can."""
        settings.RETENTION_DAYS = 30
        running = flow_run_in(flow, "Running")
        paused_run = paused(flow, None)
        logs_create(entries=[{"flow_run": running, "message": "old"}])
        logs_create(entries=[{"flow_run": running, "message": "new", "timestamp": timezone.now() + timedelta(days=40)}])

        deleted = retention_delete_expired(now=timezone.now() + timedelta(days=31))

        assert (deleted["flow_runs"], deleted["logs"]) == (0, 1)
        assert set(FlowRun.objects.values_list("id", flat=True)) == {running.id, paused_run.id}
        assert list(Log.objects.values_list("message", flat=True)) == ["new"]

    def test_zero_days_keeps_everything(self, flow, settings) -> None:
        """Retention is a policy choice: an installation that must keep all history can turn it off."""
        settings.RETENTION_DAYS = 0
        flow_run_in(flow, "Completed")

        assert retention_delete_expired(now=timezone.now() + timedelta(days=3650)) == {}
        assert FlowRun.objects.count() == 1
