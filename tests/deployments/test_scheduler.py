"""The scheduler's two services: upcoming runs (idempotent, replaced when a deployment changes) and Late runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.deployments import schedules, services
from apps.deployments.models import Deployment
from apps.events.models import Event
from apps.orchestration import engine
from apps.runs.models import FlowRun, FlowRunState
from orchestrator.states import Completed, Pending, Running, Scheduled
from tests.deployments.conftest import scheduled_runs

pytestmark = pytest.mark.django_db


def deploy(flow, *, name="nightly", schedule_list=({"interval": 3600},), **values) -> Deployment:
    items = [{"schedule": schedules.normalize(item), "active": True} for item in schedule_list]
    return services.deployment_upsert(flow=flow, name=name, values=values, schedules=items)[0]


def keys(deployment) -> list[str]:
    return [run.idempotency_key for run in scheduled_runs(deployment.id)]


def test_runs_are_created_on_the_schedule_up_to_the_horizon_through_the_engine(flow, settings) -> None:
    """Each run is Scheduled for its time with a history row and an outbox event, like any engine change."""
    settings.ORCHESTRATOR_SCHEDULER_HORIZON_SECONDS = 6 * 3600
    anchor = timezone.now().replace(minute=0, second=0, microsecond=0)
    deployment = deploy(flow, schedule_list=[{"interval": 1800, "anchor_date": anchor.isoformat()}], tags=["t"])
    runs = scheduled_runs(deployment.id)
    assert 12 <= len(runs) <= 13
    for run in runs:
        assert run.state_name == "Scheduled" and run.auto_scheduled and run.tags == ["t"]
        assert run.expected_start_time == run.next_scheduled_start_time == run.state.scheduled_time
        assert ((run.expected_start_time - anchor).total_seconds()) % 1800 == 0
        assert run.expected_start_time >= timezone.now() - timedelta(minutes=1)
    assert FlowRunState.objects.filter(flow_run__in=runs, name="Scheduled").count() == len(runs)
    assert Event.objects.filter(resource_id__in=[run.id for run in runs], name="flow_run.state_changed").count() == len(
        runs
    )


def test_a_second_pass_creates_nothing(flow) -> None:
    """The idempotency key makes the scheduler safe to run as often as Beat likes."""
    deployment = deploy(flow)
    before = keys(deployment)
    assert services.schedule_upcoming_runs() == 0
    assert keys(deployment) == before
    assert len(set(before)) == len(before)


def test_min_runs_are_kept_ahead_and_max_runs_caps_fast_schedules(flow, settings) -> None:
    """A weekly schedule still shows its next runs; an every-second one does not flood the database."""
    settings.ORCHESTRATOR_SCHEDULER_MIN_RUNS = 3
    settings.ORCHESTRATOR_SCHEDULER_MAX_RUNS = 40
    weekly = deploy(flow, name="weekly", schedule_list=[{"cron": "0 3 * * 1"}])
    fast = deploy(flow, name="fast", schedule_list=[{"interval": 1}])
    assert len(scheduled_runs(weekly.id)) == 3
    assert len(scheduled_runs(fast.id)) == 40


def test_redeploy_with_a_changed_schedule_replaces_future_runs_without_doubling(flow) -> None:
    """Old future runs are gone, the new schedule's runs exist, and no time has two runs."""
    deployment = deploy(flow, schedule_list=[{"cron": "0 * * * *"}])
    old = {run.id for run in scheduled_runs(deployment.id)}
    claimed = scheduled_runs(deployment.id)[0]
    engine.propose_state(kind=engine.FLOW_RUN, run_id=claimed.id, state=Pending())  # a worker took this one
    deploy(flow, schedule_list=[{"cron": "30 * * * *"}])
    runs = scheduled_runs(deployment.id)
    assert runs and not ({run.id for run in runs} & old)
    assert all(run.expected_start_time.minute == 30 for run in runs)
    assert len({run.expected_start_time for run in runs}) == len(runs)
    assert FlowRun.objects.get(pk=claimed.id).state_name == "Pending"  # a claimed run is never deleted


def test_redeploy_with_the_same_schedule_keeps_the_runs(flow) -> None:
    """Deploying again unchanged must not churn the runs workers may be looking at."""
    deployment = deploy(flow, parameters={"a": 1})
    before = [run.id for run in scheduled_runs(deployment.id)]
    deploy(flow, parameters={"a": 1})
    assert [run.id for run in scheduled_runs(deployment.id)] == before


def test_redeploy_with_new_parameters_recreates_runs_with_them(flow) -> None:
    """Runs carry the deployment's parameters: changed defaults mean the waiting runs are replaced."""
    deployment = deploy(flow, parameters={"a": 1})
    deploy(flow, parameters={"a": 2})
    runs = scheduled_runs(deployment.id)
    assert runs and {str(run.parameters) for run in runs} == {"{'a': 2}"}
    assert len({run.expected_start_time for run in runs}) == len(runs)


def test_removing_one_of_two_schedules_keeps_the_other_schedules_runs(flow) -> None:
    """Only the runs of the schedule that went away are deleted."""
    deployment = deploy(flow, schedule_list=[{"cron": "0 * * * *"}, {"cron": "15 * * * *"}])
    kept = {run.id for run in scheduled_runs(deployment.id) if run.expected_start_time.minute == 0}
    deploy(flow, schedule_list=[{"cron": "0 * * * *"}])
    assert {run.id for run in scheduled_runs(deployment.id)} == kept


def test_pause_deletes_waiting_runs_and_resume_recreates_them(flow) -> None:
    """A paused deployment has nothing for workers to pick up; resuming schedules again from now."""
    deployment = deploy(flow)
    services.deployment_pause(deployment=deployment)
    assert scheduled_runs(deployment.id) == []
    assert services.schedule_upcoming_runs() == 0
    services.deployment_resume(deployment=deployment)
    assert len(scheduled_runs(deployment.id)) >= 24


def test_past_runs_are_not_touched_by_a_change(flow) -> None:
    """History stays: only future runs that are still waiting are replaced."""
    deployment = deploy(flow, schedule_list=[{"interval": 60}])
    past = scheduled_runs(deployment.id)[0]
    FlowRun.objects.filter(pk=past.id).update(expected_start_time=timezone.now() - timedelta(hours=1))
    deploy(flow, schedule_list=[{"interval": 120}])
    assert FlowRun.objects.filter(pk=past.id).exists()


def test_mark_late_runs_marks_overdue_scheduled_runs_late(flow, settings) -> None:
    """A Scheduled run past its time plus the grace period is Late (still SCHEDULED), through the engine."""
    settings.ORCHESTRATOR_LATE_RUNS_GRACE_SECONDS = 15
    deployment = deploy(flow, schedule_list=[])
    now = timezone.now()
    overdue = services.deployment_create_flow_run(deployment=deployment, scheduled_time=now - timedelta(seconds=60))[0]
    within_grace = services.deployment_create_flow_run(
        deployment=deployment, scheduled_time=now - timedelta(seconds=5)
    )[0]
    future = services.deployment_create_flow_run(deployment=deployment, scheduled_time=now + timedelta(hours=1))[0]
    running = services.deployment_create_flow_run(deployment=deployment, scheduled_time=now - timedelta(hours=1))[0]
    engine.propose_state(kind=engine.FLOW_RUN, run_id=running.id, state=Pending())
    engine.propose_state(kind=engine.FLOW_RUN, run_id=running.id, state=Running())
    assert services.mark_late_runs() == 1
    states = {run.id: (run.state_type, run.state_name) for run in FlowRun.objects.all()}
    assert states[overdue.id] == ("SCHEDULED", "Late")
    assert states[within_grace.id] == ("SCHEDULED", "Scheduled")
    assert states[future.id] == ("SCHEDULED", "Scheduled")
    assert states[running.id] == ("RUNNING", "Running")
    late = FlowRun.objects.get(pk=overdue.id)
    assert late.state.scheduled_time == overdue.state.scheduled_time
    assert [row.name for row in late.states.order_by("timestamp")] == ["Scheduled", "Late"]
    assert services.mark_late_runs() == 0  # Late runs stay Late, nothing twice


def test_mark_late_runs_leaves_a_run_claimed_after_it_was_read(flow) -> None:
    """The Late proposal carries the state time it saw: a run claimed since is not pulled back."""
    deployment = deploy(flow, schedule_list=[])
    run = services.deployment_create_flow_run(
        deployment=deployment, scheduled_time=timezone.now() - timedelta(minutes=5)
    )[0]
    seen_at = FlowRun.objects.get(pk=run.id).state_timestamp
    engine.propose_state(kind=engine.FLOW_RUN, run_id=run.id, state=Pending())
    late = Scheduled(scheduled_time=timezone.now(), name="Late")
    result = engine.propose_state(kind=engine.FLOW_RUN, run_id=run.id, state=late, proposed_at=seen_at)
    assert result.status.value == "REJECT"
    assert FlowRun.objects.get(pk=run.id).state_name == "Pending"


@pytest.mark.parametrize(
    ("strategy", "expected"), [("ENQUEUE", ("WAIT", "Scheduled")), ("CANCEL_NEW", ("REJECT", "Cancelled"))]
)
def test_a_deployment_concurrency_limit_holds_back_or_cancels_the_extra_claim(flow, strategy, expected) -> None:
    """With its limit of runs active, another claim waits (ENQUEUE) or the run is cancelled (CANCEL_NEW)."""
    deployment = deploy(flow, schedule_list=[], concurrency_limit=1, collision_strategy=strategy)
    first, second = (services.deployment_create_flow_run(deployment=deployment)[0] for _ in range(2))
    assert engine.propose_state(kind=engine.FLOW_RUN, run_id=first.id, state=Pending()).accepted
    result = engine.propose_state(kind=engine.FLOW_RUN, run_id=second.id, state=Pending())
    assert (result.status.value, FlowRun.objects.get(pk=second.id).state_name) == expected
    assert "concurrency limit" in result.reason
    if strategy == "ENQUEUE":  # the slot frees when the first run ends
        engine.propose_state(kind=engine.FLOW_RUN, run_id=first.id, state=Running())
        engine.propose_state(kind=engine.FLOW_RUN, run_id=first.id, state=Completed())
        assert engine.propose_state(kind=engine.FLOW_RUN, run_id=second.id, state=Pending()).accepted
