"""`orchestrator flow-run logs ID [--follow]`, reading the database directly and through the API."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.cli import orchestrator_executable, run_orchestrator
from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(home=tmp_path_factory.mktemp("flow-run-logs")) as running:
        yield running


@pytest.fixture(scope="module")
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.api_url, timeout=10, headers=server.headers) as client:
        yield client


def new_run(api: httpx.Client) -> str:
    flow = api.post("/flows/", json={"name": "logging-flow"}).json()["id"]
    return api.post("/flow_runs/", json={"flow": flow}).json()["id"]


def http_env(server: RunningServer) -> dict[str, str]:
    """A client that knows only the API URL (no database settings)."""
    env = {key: value for key, value in server.env.items() if key != "ORCHESTRATOR_DATABASE_URL"}
    return {**env, "ORCHESTRATOR_API_URL": server.api_url}


@pytest.mark.parametrize("mode", ["database", "api"])
def test_logs_prints_every_line_in_time_order_with_its_level(server, api, mode):
    """Reading a run's logs is how users debug it: all lines, oldest first, levels named."""
    run_id = new_run(api)
    start = datetime.now(UTC)
    lines = [
        {
            "flow_run": run_id,
            "level": 40,
            "message": "second: it broke",
            "timestamp": (start + timedelta(seconds=1)).isoformat(),
        },
        {"flow_run": run_id, "level": 20, "message": "first: starting", "timestamp": start.isoformat()},
    ]
    assert api.post("/logs/", json=lines).status_code == 201

    env = server.env if mode == "database" else http_env(server)
    result = run_orchestrator("flow-run", "logs", run_id, env=env)

    assert result.returncode == 0, result.stderr
    output = result.stdout.splitlines()
    assert [line.split(" | ")[1].strip() for line in output] == ["INFO", "ERROR"]
    assert output[0].endswith("first: starting") and output[1].endswith("second: it broke")


def test_each_line_names_the_task_run_that_wrote_it(server, api):
    """Five tasks logging "Finished in state Completed()" must be told apart: each line names its task run."""
    run_id = new_run(api)
    run_name = api.get(f"/flow_runs/{run_id}/").json()["name"]
    now = datetime.now(UTC)
    lines = [{"flow_run": run_id, "level": 20, "message": "flow starts", "timestamp": now.isoformat()}]
    for index in range(2):
        task = api.post("/task_runs/", json={"flow_run": run_id, "task_key": "t", "dynamic_key": str(index),
                                              "name": f"double-{index}"}).json()  # fmt: skip
        lines.append({"flow_run": run_id, "task_run": task["id"], "level": 20, "message": "Finished",
                      "timestamp": (now + timedelta(seconds=index + 1)).isoformat()})  # fmt: skip
    assert api.post("/logs/", json=lines).status_code == 201
    result = run_orchestrator("flow-run", "logs", run_id, env=server.env)
    assert result.returncode == 0, result.stderr
    assert [line.split(" | ")[2] for line in result.stdout.splitlines()] == [run_name, "double-0", "double-1"]


def test_logs_of_an_unknown_run_is_one_line_and_a_non_zero_exit(server):
    """A typo in an id must say so, not print an empty log."""
    result = run_orchestrator("flow-run", "logs", "00000000-0000-0000-0000-000000000000", env=server.env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["error: no flow run with id 00000000-0000-0000-0000-000000000000"]


def test_follow_prints_new_lines_until_the_run_ends(server, api):
    """--follow is `tail -f` for a run: lines appear as they are shipped and it stops when the run is final."""
    run_id = new_run(api)
    api.post(f"/flow_runs/{run_id}/set_state/", json={"state": {"type": "RUNNING"}})
    follower = subprocess.Popen(
        [orchestrator_executable(), "flow-run", "logs", run_id, "--follow"],
        env=http_env(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        assert follower.poll() is None, "--follow stopped while the run was still running"
        api.post("/logs/", json=[{"flow_run": run_id, "message": "late line"}])
        api.post(f"/flow_runs/{run_id}/set_state/", json={"state": {"type": "COMPLETED"}})
        stdout, stderr = follower.communicate(timeout=20)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, stderr
    assert stdout.strip().endswith("late line")
