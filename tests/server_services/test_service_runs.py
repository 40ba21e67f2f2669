"""Running a service by name and recording it (ServiceRun), as the Celery task and the CLI both do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.errors import NotFound
from apps.runs.models import FlowRun
from apps.server_services.models import ServiceRun
from apps.server_services.services import service_run
from apps.server_services.tasks import run_service

pytestmark = pytest.mark.django_db


def test_a_run_records_when_how_long_and_what_the_service_returned() -> None:
    """`services ls` and the admin answer "is the scheduler alive?" from these records."""
    record = service_run(name="pause_timeouts")

    assert (record.service, record.trigger, record.result, record.error) == ("pause_timeouts", "celery", 0, None)
    assert record.started_at <= record.finished_at
    assert 0 <= record.duration_seconds < 5
    assert ServiceRun.objects.get() == record


def test_a_failing_service_is_recorded_with_its_error_and_traceback_not_raised(settings) -> None:
    """A broken service must not kill the worker; its error has to be visible where operators look."""
    settings.RETENTION_DAYS = "thirty"

    record = service_run(name="retention", trigger=ServiceRun.Trigger.CLI)

    assert record.result is None and record.trigger == "cli"
    assert record.error.startswith("TypeError: ")
    assert "retention.py" in record.traceback


def test_the_celery_task_runs_the_service_named_in_its_message() -> None:
    """Beat's messages carry only a name: the task looks the service up and records its run."""
    run_service.apply(args=["retention"]).get()

    assert ServiceRun.objects.get().service == "retention"


def test_an_unknown_service_name_is_refused_with_the_known_names() -> None:
    """A typo in `services run` or a stale Beat entry should say what exists instead."""
    with pytest.raises(NotFound, match="unknown service 'sheduler'; services: scheduler, late_runs"):
        service_run(name="sheduler")
    assert not ServiceRun.objects.exists()


def test_only_the_newest_records_of_each_service_are_kept(settings) -> None:
    """Services run every few seconds: keeping every record would grow the table by thousands a day."""
    settings.SERVICE_RUN_HISTORY = 3
    for _ in range(5):
        service_run(name="pause_timeouts")
    service_run(name="retention")

    assert ServiceRun.objects.filter(service="pause_timeouts").count() == 3
    assert ServiceRun.objects.filter(service="retention").count() == 1


def test_the_scheduler_service_creates_the_missing_upcoming_runs_once(api) -> None:
    """Deployments get their runs from this service: runs missing (deleted, or past the horizon) must reappear,
    and a second pass must not duplicate them."""
    flow = api.post("/api/flows/", {"name": "etl"}, format="json").json()
    deployment = api.post(
        "/api/deployments/",
        {
            "flow": flow["id"],
            "name": "hourly",
            "entrypoint": "etl.py:etl",
            "schedules": [{"schedule": {"interval": 3600}}],
        },
        format="json",
    ).json()
    upcoming = FlowRun.objects.filter(deployment_id=deployment["id"], state_type="SCHEDULED")
    expected = upcoming.count()
    assert expected > 0
    upcoming.delete()

    run_service.apply(args=["scheduler"]).get()
    run_service.apply(args=["scheduler"]).get()

    assert [run.result for run in ServiceRun.objects.filter(service="scheduler").order_by("started_at")] == [
        expected,
        0,
    ]
    assert upcoming.count() == expected


def test_the_late_runs_service_marks_overdue_scheduled_runs_late(api) -> None:
    """A run nobody picked up must show as Late in the UI and API, not look like it is still on time."""
    flow = api.post("/api/flows/", {"name": "etl"}, format="json").json()
    overdue = (timezone.now() - timedelta(minutes=5)).isoformat()
    run = api.post(
        "/api/flow_runs/",
        {"flow": flow["id"], "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": overdue}}},
        format="json",
    ).json()

    run_service.apply(args=["late_runs"]).get()

    assert ServiceRun.objects.get(service="late_runs").result == 1
    assert FlowRun.objects.get(id=run["id"]).state_name == "Late"
