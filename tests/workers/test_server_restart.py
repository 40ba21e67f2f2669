"""A worker outlives its server: while the API is down it says so once and keeps trying; when the server is back
(same address, same database) it picks up runs again without a restart of its own."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.cli import orchestrator_executable
from tests.support.server import start_server, throwaway_database
from tests.workers.conftest import FLOWS, SERVER_SETTINGS, WORKER_SETTINGS, Worker

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_to_completion(api: httpx.Client, deployment: str, timeout: float = 20.0) -> dict:
    run = api.post(f"deployments/{deployment}/create_flow_run/", json={"parameters": {"seconds": 0}}).json()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api.get(f"flow_runs/{run['id']}/").json()
        if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run['id']} is still {run['state_name']} after {timeout}s")


def test_the_worker_survives_a_server_restart(tmp_path: Path) -> None:
    """Servers restart for upgrades; the workers on other machines must not need a restart too."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "flows.py").write_text(FLOWS)
    home = tmp_path / "server"
    port = free_port()
    args = ["--no-services", "--port", str(port)]
    with throwaway_database(home) as database_url:
        with start_server(home=home, database_url=database_url, args=args, settings=SERVER_SETTINGS) as server:
            api = server.api_client(timeout=10)
            api.post("work_pools/", json={"name": "local", "type": "process"}).raise_for_status()
            deployment = api.post(
                "deployments/",
                json={
                    "flow_name": "nap",
                    "name": "d",
                    "entrypoint": "flows.py:nap",
                    "path": str(flows),
                    "work_pool_name": "local",
                },
            ).json()["id"]
            env = server.client_env(tmp_path / "worker", **WORKER_SETTINGS)
            worker = Worker(
                subprocess.Popen(
                    [orchestrator_executable(), "worker", "start", "--pool", "local"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
            try:
                assert run_to_completion(api, deployment)["state_name"] == "Completed"
                server.stop()
                worker.wait_for_output("retrying every")
                time.sleep(1.0)  # several failed polls: still one line
                assert worker.output().count("retrying every") == 1, worker.output()
                api.close()
                with start_server(home=home, database_url=database_url, args=args, settings=SERVER_SETTINGS):
                    api = server.api_client(timeout=10)
                    assert run_to_completion(api, deployment)["state_name"] == "Completed"
                    worker.wait_for_output("The API answers again")
                    assert worker.process.poll() is None
            finally:
                worker.stop()
                api.close()
