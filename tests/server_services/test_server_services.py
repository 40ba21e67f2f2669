"""End to end: `orchestrator server start` runs the services itself (a Celery worker with Beat on a thread, inside
server worker 1, embedded broker)."""

from __future__ import annotations

import re
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.test_server_start import alive, child_pids, command_line
from tests.server_services.helpers import REPOSITORY, wait_for
from tests.support.cli import run_orchestrator
from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.e2e

SHORT_INTERVALS = {"DJANGO_SETTINGS_MODULE": "tests.server_services.settings", "PYTHONPATH": str(REPOSITORY)}


def command_lines(pids: list[int]) -> list[str]:
    return [line for line in map(command_line, pids) if line]


def pause_timeouts_ran(server: RunningServer) -> bool:
    listing = run_orchestrator("server", "services", "ls", env=server.env)
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.startswith("pause_timeouts"))
    return re.search(r"\(\d+s ago\)\s+\S+\s+ok: 0", row) is not None


def test_server_start_runs_the_services_within_seconds_and_stops_them_on_ctrl_c(tmp_path: Path) -> None:
    """`make run` is the whole product on one machine: scheduling must work with no broker installed."""
    with start_server(home=tmp_path / "home", settings=SHORT_INTERVALS) as server:
        banner = (
            "services: scheduler, late_runs, zombies, cancellation_cleanup, celery_dispatch, pause_timeouts, "
            "notifications, concurrency_leases, retention"
            " (a Celery worker with Beat on a thread, in server worker 1, embedded broker)"
        )
        assert banner in server.output()
        api = server.api_client()
        flow = api.post("flows/", json={"name": "etl"}).json()
        overdue = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        run = api.post(
            "flow_runs/",
            json={"flow": flow["id"], "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": overdue}}},
        ).json()
        assert run["state_name"] == "Scheduled"

        # late_runs runs every second here (tests/server_services/settings.py): the overdue run turns Late.
        wait_for(
            lambda: api.get(f"flow_runs/{run['id']}/").json()["state_name"] == "Late",
            timeout=30,
            what=f"the late_runs service:\n{server.output()}",
        )
        assert pause_timeouts_ran(server)
        children = child_pids(server.process.pid)
        commands = command_lines(children)
        # The scheduler and the services run inside the server worker (memory: docs/server.md): no Celery process.
        assert len(commands) == 1 and "orchestrator.server worker" in commands[0], commands
        assert " --services " in commands[0], commands
        assert not [command for command in commands if " -m celery " in command], commands

        assert server.stop(signal.SIGINT) == 0
        assert not [pid for pid in children if alive(pid)]
        assert "Traceback" not in server.output()
        assert server.output().rstrip().endswith("server stopped")


def test_server_start_no_services_leaves_beat_and_the_worker_to_separate_processes(tmp_path: Path) -> None:
    """With a broker server, Beat and workers may run elsewhere: the server must then start neither."""
    with start_server(home=tmp_path / "home", args=["--no-services"]) as server:
        assert "services: not started (--no-services)" in server.output()
        commands = command_lines(child_pids(server.process.pid))
        assert len(commands) == 1 and "orchestrator.server worker" in commands[0], commands
