"""Retention's bounds (rows per transaction, time per pass), what else it covers, and `server database vacuum`."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.flows.services import flow_get_or_create
from apps.logs.models import Log
from apps.runs.models import FlowRun, TaskRun
from apps.server_services.retention import RETENTION_ENTRIES, UNFINISHED, retention_delete_expired
from apps.work_pools.models import Worker, WorkPool
from orchestrator.states import Completed
from tests.orchestration.helpers import flow_run_in, task_run_in, walk


@pytest.fixture
def flow():
    return flow_get_or_create(name="retention-tests")[0]


@pytest.mark.django_db
def test_a_pass_stops_at_its_time_bound_and_the_next_pass_goes_on(flow, settings) -> None:
    """One pass must never hold the services' worker (or SQLite's lock) for minutes after a long outage."""
    settings.RETENTION_DAYS, settings.RETENTION_BATCH_SIZE, settings.RETENTION_PASS_SECONDS = 1, 2, 0
    Log.objects.bulk_create(Log(message=f"line {n}", timestamp=timezone.now() - timedelta(days=2)) for n in range(5))

    first = retention_delete_expired()
    assert (first["logs"], first[UNFINISHED]) == (2, 1)  # one batch, then the bound
    assert "flow_runs" not in first

    passes = 1
    while UNFINISHED in retention_delete_expired():
        passes += 1
    assert not Log.objects.exists() and passes == 3


@pytest.mark.django_db
def test_task_runs_of_expired_flow_runs_go_in_their_own_batches_and_kept_runs_keep_their_history(
    flow, settings
) -> None:
    """Small transactions: a flow run's tree is not deleted in one; a run still kept keeps all its states."""
    settings.RETENTION_DAYS = 30
    finished = flow_run_in(flow, "Running")
    tasks = [task_run_in(finished, "Completed", task_key=f"task-{n}") for n in range(3)]
    walk(finished, Completed())
    running = flow_run_in(flow, "Running")
    task_of_running = task_run_in(running, "Completed")

    deleted = retention_delete_expired(now=timezone.now() + timedelta(days=31))

    assert (deleted["task_runs"], deleted["flow_runs"]) == (len(tasks), 1)
    assert list(TaskRun.objects.values_list("id", flat=True)) == [task_of_running.id]
    assert list(FlowRun.objects.values_list("id", flat=True)) == [running.id]
    assert running.states.count() == 2  # Pending, Running: history of a kept run is kept


@pytest.mark.django_db
def test_workers_not_heard_from_for_the_whole_period_are_forgotten(settings) -> None:
    """A worker per container restart would otherwise leave one row each, forever."""
    settings.RETENTION_DAYS = 30
    pool = WorkPool.objects.create(name="retention-pool", type="process")
    Worker.objects.create(pool=pool, name="gone", last_heartbeat_at=timezone.now() - timedelta(days=31))
    Worker.objects.create(pool=pool, name="alive")

    assert retention_delete_expired()["workers"] == 1
    assert list(Worker.objects.values_list("name", flat=True)) == ["alive"]


def test_the_entries_name_every_kind_of_row_that_grows() -> None:
    """Adding a table that grows means one entry: this list is the whole policy."""
    assert [entry.name for entry in RETENTION_ENTRIES] == [
        "logs",
        "events",
        "task_runs",
        "flow_runs",
        "service_runs",
        "workers",
        "cache_entries",
        "notification_deliveries",
    ]


@pytest.mark.django_db(transaction=True)
def test_vacuum_gives_back_the_space_of_deleted_rows_and_prints_the_sizes() -> None:
    """Deleting rows leaves free pages in the file: an operator must be able to shrink it after retention."""
    Log.objects.bulk_create(Log(message="x" * 2000) for _ in range(3000))
    Log.objects.all().delete()
    output = StringIO()

    call_command("server", "database", "vacuum", stdout=output)

    text = output.getvalue()
    assert text.startswith("database vacuumed: ") and " MB -> " in text and "reclaimed" in text
    before, after = (float(part.split(" MB")[0]) for part in text.split(": ")[-1].split(" -> "))
    assert after <= before
