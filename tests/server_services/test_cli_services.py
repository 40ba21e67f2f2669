"""`orchestrator server services ls` and `orchestrator server services run NAME [--once]`."""

from __future__ import annotations

import re
import signal
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from apps.server_services.models import ServiceRun
from apps.server_services.services import periodic_task_name, service_run, service_schedules_sync
from tests.server_services.helpers import services_env, wait_for
from tests.support.cli import orchestrator_env, orchestrator_executable, run_orchestrator


def orchestrator(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def rows(listing: str) -> dict[str, list[str]]:
    """The table's rows by service name, cells split on runs of two or more spaces."""
    lines = listing.splitlines()
    return {line.split()[0]: re.split(r"\s{2,}", line.strip()) for line in lines[2:] if line.strip()}


@pytest.mark.django_db
def test_ls_shows_every_service_with_its_interval_last_run_and_result(settings) -> None:
    """One look must tell an operator whether each service runs, how often, and whether it works."""
    service_schedules_sync()
    task = PeriodicTask.objects.get(name=periodic_task_name("retention"))
    task.enabled = False
    task.save()
    service_run(name="pause_timeouts")
    settings.RETENTION_DAYS = "thirty"
    service_run(name="retention")

    listing = orchestrator("server", "services", "ls")

    assert listing.splitlines()[0].split() == ["SERVICE", "EVERY", "LAST", "RUN", "TOOK", "LAST", "RESULT"]
    table = rows(listing)
    assert list(table) == [
        "scheduler",
        "late_runs",
        "zombies",
        "cancellation_cleanup",
        "celery_dispatch",
        "pause_timeouts",
        "notifications",
        "concurrency_leases",
        "retention",
    ]
    assert table["late_runs"] == ["late_runs", "5s", "never"]
    assert table["pause_timeouts"][:2] == ["pause_timeouts", "10s"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\ds ago\)", table["pause_timeouts"][2])
    assert table["pause_timeouts"][4] == "ok: 0"
    assert table["retention"][1] == "1h (disabled)"
    assert table["retention"][4].startswith("error: TypeError: ")


@pytest.mark.django_db
def test_run_once_runs_the_service_in_the_foreground_and_records_it() -> None:
    """Debugging a service means running it by hand, now, and seeing what it did."""
    output = orchestrator("server", "services", "run", "pause_timeouts", "--once")

    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d pause_timeouts: ok: 0 \(\d+\.\d{3}s\)\n", output)
    assert ServiceRun.objects.get().trigger == ServiceRun.Trigger.CLI


@pytest.mark.django_db
def test_run_once_of_a_failing_service_exits_non_zero_with_its_error(settings) -> None:
    """Scripts and operators must be able to tell a failed run from a good one by the exit code."""
    settings.RETENTION_DAYS = "thirty"

    with pytest.raises(CommandError, match="^retention failed: TypeError: "):
        orchestrator("server", "services", "run", "retention", "--once")


def test_run_of_an_unknown_service_is_one_error_line(tmp_path: Path) -> None:
    """A typo must name the services that exist, not print a traceback."""
    result = run_orchestrator("server", "services", "run", "sheduler", "--once", env=orchestrator_env(tmp_path))

    assert result.returncode == 1
    assert result.stderr == (
        "error: unknown service 'sheduler'; "
        "services: scheduler, late_runs, zombies, cancellation_cleanup, celery_dispatch, pause_timeouts, "
        "notifications, concurrency_leases, retention\n"
    )


def test_run_loops_at_the_interval_until_ctrl_c(transactional_db, tmp_path: Path) -> None:
    """Without --once the command is a one-service server: it keeps running until stopped, then exits cleanly."""
    process = subprocess.Popen(
        [orchestrator_executable(), "server", "services", "run", "pause_timeouts"],
        env=services_env(tmp_path),  # tests/server_services/settings.py: every second
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        assert all(re.fullmatch(r"\S+ \S+ pause_timeouts: ok: 0 \(\d+\.\d{3}s\)\n", line) for line in lines), lines
        wait_for(lambda: ServiceRun.objects.filter(service="pause_timeouts").count() >= 3, what="three records")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        assert process.stdout.read() == "pause_timeouts: stopped\n"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
