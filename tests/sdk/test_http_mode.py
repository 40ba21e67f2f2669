"""HTTP mode: the same flow file, run with ORCHESTRATOR_API_URL pointing at a real `orchestrator server start`,
records the same runs as with no server, and everything is visible through the REST API."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sdk.tutorial import EXPECTED_RUNS, EXPECTED_SUMMARY, records_from_api, records_from_sqlite, run_script
from tests.support.cli import orchestrator_env
from tests.support.server import RunningServer


@pytest.mark.e2e
def test_the_same_flow_file_gives_the_same_runs_with_and_without_a_server(
    orchestrator_server_process: RunningServer, tmp_path: Path
):
    """Pointing a flow file at a server changes where runs are recorded, never how they end."""
    client_home = tmp_path / "client-home"
    http_env = orchestrator_server_process.client_env(client_home)
    http_summary = run_script(http_env, server=orchestrator_server_process)
    ephemeral_home = tmp_path / "ephemeral-home"
    ephemeral_summary = run_script(orchestrator_env(ephemeral_home))

    assert http_summary == ephemeral_summary == EXPECTED_SUMMARY
    over_http = records_from_api(orchestrator_server_process.api_url, orchestrator_server_process.api_key)
    in_process = records_from_sqlite(ephemeral_home / "orchestrator.db")
    assert over_http == in_process == EXPECTED_RUNS
    # The client in HTTP mode wrote nothing locally: no database in its home.
    assert not (client_home / "orchestrator.db").exists()


@pytest.mark.e2e
def test_http_mode_run_details_through_the_api(orchestrator_server_process: RunningServer, tmp_path: Path):
    """Runs made over HTTP carry their parameters, run counts and times, and their logs are filterable by run."""
    env = orchestrator_server_process.client_env(tmp_path / "home")
    run_script(env, server=orchestrator_server_process)
    api = orchestrator_server_process.api_client()
    etl = api.get("flow_runs/", params={"flow_name": "tutorial-etl"}).json()["results"]
    assert len(etl) == 1
    run = etl[0]
    assert run["parameters"] == {"source": "crm", "rate": 1.5}
    assert (run["state_type"], run["run_count"]) == ("COMPLETED", 1)
    assert run["start_time"] and run["end_time"] and run["total_run_time"] > 0
    extract = api.get("task_runs/", params={"flow_run": run["id"], "name": "extract-0"}).json()["results"][0]
    assert (extract["state_name"], extract["run_count"]) == ("Completed", 2)
    logs = api.get("logs/", params={"flow_run": run["id"], "limit": 1000}).json()["results"]
    messages = [line["message"] for line in logs]
    assert "transformed 4 records from crm" in messages
    retried = "Task run encountered an exception ConnectionError: crm did not answer"
    assert any(line.startswith(retried) for line in messages)
    load = api.get("task_runs/", params={"flow_run": run["id"], "name": "load-0"}).json()["results"][0]
    load_logs = [line["message"] for line in api.get("logs/", params={"task_run": load["id"]}).json()["results"]]
    assert load_logs == ["loaded 4 records", "Finished in state Completed()"]
    gate = api.get("flow_runs/", params={"flow_name": "tutorial-quality-gate"}).json()["results"][0]
    assert (gate["state_name"], gate["state"]["message"]) == ("Failed", "2/2 states failed")


RESTART_FLOW = """
import sys, time
from pathlib import Path
from orchestrator import flow, task, get_run_logger

signals = Path(sys.argv[1])


def wait_for(name):
    while not (signals / name).exists():
        time.sleep(0.05)


@task
def measure(x: int) -> int:
    get_run_logger().info(f"measured {x}")
    return x * 2


@flow(name="outlives-a-restart")
def outlives() -> int:
    (signals / "started").touch()
    wait_for("server-down")
    value = measure(21)  # recorded in the background while the server is down
    (signals / "task-done").touch()
    wait_for("server-up")
    return value


print("result", outlives())
"""


@pytest.mark.e2e
def test_task_runs_finished_while_the_server_restarts_are_recorded_when_it_is_back(tmp_path: Path):
    """Task runs recorded in the background must survive a server restart (an upgrade) in the middle of a flow."""
    import socket
    import subprocess
    import sys
    import time

    from tests.support.server import start_server, throwaway_database

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["--no-services", "--port", str(port)]
    signals = tmp_path / "signals"
    signals.mkdir()
    script = tmp_path / "restart_flow.py"
    script.write_text(RESTART_FLOW)
    home = tmp_path / "server"

    def wait_for(name: str) -> None:
        deadline = time.monotonic() + 30
        while not (signals / name).exists():
            assert time.monotonic() < deadline, f"the flow never got to {name}"
            time.sleep(0.05)

    with throwaway_database(home) as database_url:
        with start_server(home=home, database_url=database_url, args=args) as server:
            env = server.client_env(tmp_path / "client")
            flow = subprocess.Popen(
                [sys.executable, str(script), str(signals)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            wait_for("started")
        (signals / "server-down").touch()
        wait_for("task-done")
        time.sleep(4)  # the shipper's own retries (a few seconds) run out: the records wait in its backlog
        with start_server(home=home, database_url=database_url, args=args) as server:
            (signals / "server-up").touch()
            output = flow.communicate(timeout=60)[0].decode()
            assert flow.returncode == 0, output
            assert "result 42" in output
            api = server.api_client()
            run = api.get("flow_runs/", params={"flow_name": "outlives-a-restart"}).json()["results"][0]
            assert run["state_name"] == "Completed"
            (task_run,) = api.get("task_runs/", params={"flow_run": run["id"]}).json()["results"]
            assert (task_run["name"], task_run["state_name"]) == ("measure-0", "Completed")
            states = [state["name"] for state in api.get(f"task_runs/{task_run['id']}/states/").json()]
            assert states == ["Pending", "Running", "Completed"]
            logs = api.get("logs/", params={"task_run": task_run["id"]}).json()["results"]
            assert [line["message"] for line in logs] == ["measured 21", "Finished in state Completed()"]
