"""Two schedulers at once (Beat firing twice, or two servers) never create a run twice."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.db.models import Count

from apps.deployments import schedules, services
from apps.deployments.models import Deployment, DeploymentSchedule
from apps.flows.services import flow_get_or_create
from apps.runs.models import FlowRun

DEPLOYMENTS = 200


def run_at_once(count: int, target) -> list:
    """Call `target` on `count` threads released together, each with its own database connection."""
    barrier = threading.Barrier(count)
    results: list = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            results.append(target())
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_two_scheduler_passes_at_once_over_200_deployments_create_each_run_once(settings) -> None:
    """Both passes see the same missing runs; the row locks and the idempotency key leave one of each."""
    settings.ORCHESTRATOR_SCHEDULER_HORIZON_SECONDS = 4 * 3600
    flow = flow_get_or_create(name="etl")[0]
    deployments = Deployment.objects.bulk_create(
        [Deployment(flow=flow, name=f"d{index}", work_pool_name="pool") for index in range(DEPLOYMENTS)]
    )
    DeploymentSchedule.objects.bulk_create(
        [DeploymentSchedule(deployment=item, schedule=schedules.normalize({"interval": 1800})) for item in deployments]
    )
    created = run_at_once(2, services.schedule_upcoming_runs)
    runs = FlowRun.objects.filter(auto_scheduled=True)
    assert sum(created) == runs.count()
    assert 8 * DEPLOYMENTS <= runs.count() <= 9 * DEPLOYMENTS
    doubled = runs.values("deployment_id", "expected_start_time").annotate(n=Count("id")).filter(n__gt=1)
    assert list(doubled) == []
    assert runs.values("deployment_id").distinct().count() == DEPLOYMENTS
    assert services.schedule_upcoming_runs() == 0


@pytest.mark.django_db(transaction=True)
def test_a_redeploy_racing_the_scheduler_leaves_only_the_new_schedules_runs(settings) -> None:
    """The scheduler and a redeploy take the deployment's row lock in turn: no run of the old schedule
    survives the redeploy, whichever goes first."""
    settings.ORCHESTRATOR_SCHEDULER_HORIZON_SECONDS = 4 * 3600
    flow = flow_get_or_create(name="etl")[0]
    deployments = Deployment.objects.bulk_create([Deployment(flow=flow, name=f"d{index}") for index in range(50)])
    hourly = schedules.normalize({"cron": "0 * * * *"})
    DeploymentSchedule.objects.bulk_create(
        [DeploymentSchedule(deployment=item, schedule=hourly) for item in deployments]
    )
    new_schedule = [{"schedule": schedules.normalize({"cron": "30 * * * *"}), "active": True}]

    def redeploy_all() -> int:
        for item in deployments:
            services.deployment_upsert(flow=flow, name=item.name, values={}, schedules=new_schedule)
        return 0

    calls = iter([services.schedule_upcoming_runs, redeploy_all])
    lock = threading.Lock()

    def next_call() -> int:
        with lock:
            call = next(calls)
        return call()

    run_at_once(2, next_call)
    services.schedule_upcoming_runs()
    runs = FlowRun.objects.filter(auto_scheduled=True, state_type="SCHEDULED")
    assert runs.exists()
    assert {run.expected_start_time.minute for run in runs} == {30}
    doubled = runs.values("deployment_id", "expected_start_time").annotate(n=Count("id")).filter(n__gt=1)
    assert list(doubled) == []
