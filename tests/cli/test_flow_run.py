"""`orchestrator flow-run ls|inspect` on runs created through a real server's API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.cli import run_orchestrator
from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.e2e


class Runs:
    """The runs made through the API for this module, by role."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        api = httpx.Client(base_url=server.api_url, timeout=10, headers=server.headers)
        etl = api.post("/flows/", json={"name": "etl"}).json()["id"]
        other = api.post("/flows/", json={"name": "other-flow"}).json()["id"]
        self.completed = api.post("/flow_runs/", json={"flow": etl, "name": "finished-run"}).json()
        for state_type in ("RUNNING", "COMPLETED"):
            response = api.post(f"/flow_runs/{self.completed['id']}/set_state/", json={"state": {"type": state_type}})
            assert response.json()["status"] == "ACCEPT", response.text
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        self.scheduled = api.post(
            "/flow_runs/",
            json={
                "flow": etl,
                "name": "tomorrow-run",
                "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": later}},
            },
        ).json()
        self.other = api.post("/flow_runs/", json={"flow": other, "name": "other-run"}).json()
        api.close()

    def cli(self, *args: str):
        return run_orchestrator("flow-run", *args, env=self.server.env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    with start_server(home=tmp_path_factory.mktemp("flow-run-cli")) as server:
        yield Runs(server)


def listed_names(stdout: str) -> list[str]:
    names = []
    for line in stdout.splitlines():
        cells = line.split()
        if cells and len(cells[0]) == 36 and cells[0].count("-") == 4:
            names.append(cells[1])
    return names


def test_ls_lists_runs_newest_first_with_aligned_columns(runs: Runs) -> None:
    """The list is where users look first: every run, its flow and state, newest at the top."""
    result = runs.cli("ls")
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0]
    for column in ("id", "name", "flow", "state", "expected start (UTC)", "start (UTC)", "duration"):
        assert column in header
    # Recent activity first; a run scheduled for later is listed by --upcoming instead (a hundred of them from
    # the scheduler must not hide the run you just made).
    assert listed_names(result.stdout) == ["other-run", "finished-run"]
    assert listed_names(runs.cli("ls", "--upcoming").stdout) == ["tomorrow-run"]
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if runs.completed["id"] in line}
    assert "etl" in rows["finished-run"] and "Completed" in rows["finished-run"]
    # Aligned: each run's id starts in the same column and its name too.
    lines = [line for line in result.stdout.splitlines() if line.split() and len(line.split()[0]) == 36]
    assert len({line.index(line.split()[1], 36) for line in lines}) == 1


def test_ls_filters_by_state_type_state_name_and_flow(runs: Runs) -> None:
    """--state and --flow narrow the list the way the API filters do."""
    assert listed_names(runs.cli("ls", "--state", "completed").stdout) == ["finished-run"]
    assert listed_names(runs.cli("ls", "--state", "Scheduled", "--state", "PENDING").stdout) == ["other-run"]
    assert listed_names(runs.cli("ls", "--upcoming", "--state", "Scheduled").stdout) == ["tomorrow-run"]
    assert listed_names(runs.cli("ls", "--flow", "etl", "--limit", "1").stdout) == ["finished-run"]
    assert listed_names(runs.cli("ls", "--flow", "other_flow").stdout) == ["other-run"]  # the function's name
    empty = runs.cli("ls", "--state", "late")
    assert empty.returncode == 0 and empty.stdout.splitlines()[0] == "no flow runs"


def test_ls_unknown_state_is_one_line_error(runs: Runs) -> None:
    """A misspelt state must not silently list nothing."""
    result = runs.cli("ls", "--state", "finished")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown state 'finished'")


def test_inspect_shows_fields_and_state_history_oldest_first(runs: Runs) -> None:
    """Inspect answers "what happened to this run": its details and every state it went through."""
    result = runs.cli("inspect", runs.completed["id"])
    assert result.returncode == 0, result.stderr
    fields = {}
    for line in result.stdout.splitlines():
        if "  " in line.strip():
            key, value = line.strip().split("  ", 1)
            fields[key] = value.strip()
    assert fields["id"] == runs.completed["id"]
    assert fields["name"] == "finished-run"
    assert fields["state"] == "Completed"
    assert fields["flow"].startswith("etl (")
    history = result.stdout.split("state history (oldest first)", 1)[1]
    names = [line.split()[3] for line in history.splitlines() if line.strip()[:2] == "20"]
    assert names == ["Pending", "Running", "Completed"]


def test_inspect_unknown_id_is_one_line_error(runs: Runs) -> None:
    """A run id that does not exist must say so, with a non-zero exit for scripts."""
    missing = str(uuid.uuid4())
    result = runs.cli("inspect", missing)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: no flow run with id {missing}"]


def test_inspect_malformed_id_is_one_line_error(runs: Runs) -> None:
    """A truncated or mistyped id is refused before any lookup."""
    result = runs.cli("inspect", "finished-run")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: 'finished-run' is not a flow run id (ids are UUIDs)"]
