"""End to end: `flow.serve()` in its own process, and the `deploy` / `deployment` CLI against a real server."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.cli import orchestrator_env, run_orchestrator
from tests.support.server import sqlite_pass_only, start_server

pytestmark = pytest.mark.e2e

FLOW_FILE = textwrap.dedent(
    """
    import sys

    from orchestrator import flow, get_run_logger


    @flow(name="greeter")
    def greet(name: str = "world", times: int = 1) -> str:
        get_run_logger().info(f"hello {name} x{times}")
        return f"hello {name}"


    if __name__ == "__main__":
        greet.serve(name=sys.argv[1], interval=float(sys.argv[2]), parameters={"name": "served"})
    """
)


class Serving:
    """A `python flows.py NAME INTERVAL` process running `greet.serve(...)`, its output collected by line."""

    def __init__(self, directory: Path, env: dict[str, str], name: str, interval: float) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "flows.py", name, str(interval)],
            cwd=directory,
            env={**env, "ORCHESTRATOR_SERVE_POLL_SECONDS": "0.3"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if text in line:
                return line
        raise AssertionError(f"{text!r} not printed in {timeout}s:\n{''.join(self.output)}")

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"serve did not stop on Ctrl+C:\n{''.join(self.output)}") from None


@pytest.fixture
def flow_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / "flows.py").write_text(FLOW_FILE)
    return directory


@sqlite_pass_only
def test_serve_runs_its_scheduled_runs_until_ctrl_c(flow_dir: Path, tmp_path: Path) -> None:
    """With no server and no Beat, `serve` registers the deployment, runs each due run, and stops cleanly."""
    env = orchestrator_env(tmp_path / "home")
    serving = Serving(flow_dir, env, "every-2s", 2)
    try:
        serving.wait_for("Serving deployment greeter/every-2s")
        first = serving.wait_for("finished in state Completed")
        serving.wait_for("finished in state Completed")  # a second scheduled run, two seconds later
    finally:
        code = serving.interrupt()
    assert code == 0, "".join(serving.output)
    assert "Stopped." in "".join(serving.output)
    run_name = first.split("'")[1]
    listed = run_orchestrator("flow-run", "ls", "--state", "completed", env=env)
    assert run_name in listed.stdout, listed.stdout + listed.stderr


def test_cli_deploy_and_deployment_run_watch_against_a_server(tmp_path: Path, flow_dir: Path) -> None:
    """`orchestrator deploy` registers a flow from its file on the server it is pointed at (bad input is one
    line naming the field); `deployment run --watch` prints each state as a serving process runs it."""
    with start_server(home=tmp_path / "server") as server:
        env = {**server.env, "ORCHESTRATOR_API_URL": server.api_url}
        deploy = ("deploy", "flows.py:greet", "--name", "nightly", "--pool", "local")
        deployed = run_orchestrator(
            *deploy, "--cron", "30 2 * * *", "--timezone", "Europe/Berlin", "--param", "times=3", env=env, cwd=flow_dir
        )
        assert deployed.returncode == 0, deployed.stderr
        assert "Deployment 'greeter/nightly' created" in deployed.stdout
        body = httpx.get(f"{server.api_url}/deployments/", params={"name": "nightly"}, headers=server.headers).json()[
            "results"
        ][0]
        assert body["entrypoint"] == "flows.py:greet" and body["parameters"] == {"times": 3}
        assert body["parameter_openapi_schema"]["properties"]["times"]["type"] == "integer"
        assert body["schedules"][0]["schedule"] == {"cron": "30 2 * * *", "timezone": "Europe/Berlin", "day_or": True}
        upcoming = httpx.get(
            f"{server.api_url}/flow_runs/", params={"deployment": body["id"]}, headers=server.headers
        ).json()["results"]
        assert len(upcoming) >= 3

        bad = run_orchestrator(*deploy, "--cron", "99 * * * *", env=env, cwd=flow_dir)
        assert bad.returncode == 1
        assert bad.stderr.count("\n") == 1 and "schedules[0].schedule.cron" in bad.stderr, bad.stderr
        wrong_param = run_orchestrator(*deploy, "--param", "times=lots", env=env, cwd=flow_dir)
        assert wrong_param.returncode == 1 and "parameters.times" in wrong_param.stderr, wrong_param.stderr

        assert run_orchestrator("deployment", "pause", "greeter/nightly", env=env).returncode == 0
        listed = run_orchestrator("deployment", "ls", env=env)
        row = next(line for line in listed.stdout.splitlines() if "greeter/nightly" in line)
        assert "cron 30 2 * * * (Europe/Berlin)" in row and row.split()[-1] == "yes", listed.stdout

        serving = Serving(flow_dir, env, "on-demand", 3600)
        try:
            serving.wait_for("Serving deployment greeter/on-demand")
            watched = run_orchestrator(
                "deployment", "run", "greeter/on-demand", "--param", "times=2", "--watch", "--timeout", "60", env=env
            )
        finally:
            code = serving.interrupt()
        assert watched.returncode == 0, watched.stdout + watched.stderr
        lines = watched.stdout.splitlines()
        assert lines[0].startswith("Created flow run") and lines[0].endswith("Scheduled")
        states = [line.split("  ", 1)[1] for line in lines[1:-1] if not line.startswith("waiting: ")]
        assert states == ["Pending: Claimed by flow.serve()", "Running", "Completed"], watched.stdout
        assert lines[-1].endswith("finished: Completed")
        assert code == 0
        missing = run_orchestrator("deployment", "run", "greeter/absent", env=env)
        assert missing.returncode == 1 and "no deployment 'greeter/absent'" in missing.stderr


@sqlite_pass_only
def test_cli_deploy_and_run_on_the_local_database(tmp_path: Path, flow_dir: Path) -> None:
    """Without ORCHESTRATOR_API_URL the CLI writes the configured database directly, with the same checks."""
    env = orchestrator_env(tmp_path / "home")
    assert run_orchestrator("server", "database", "upgrade", env=env).returncode == 0
    deployed = run_orchestrator(
        "deploy", "flows.py:greet", "--name", "hourly", "--pool", "local", "--interval", "3600", env=env, cwd=flow_dir
    )
    assert deployed.returncode == 0, deployed.stderr
    assert "Deployment 'greeter/hourly' created" in deployed.stdout and "every 3600s" in deployed.stdout
    assert deployed.stdout.count("next run:") == 3
    started = run_orchestrator("deployment", "run", "greeter/hourly", "--param", "times=x", env=env)
    assert started.returncode == 1 and started.stderr.strip() == "error: parameters.times: 'x' is not of type 'integer'"
    started = run_orchestrator("deployment", "run", "greeter/hourly", "--param", "name=ada", env=env)
    assert started.returncode == 0 and started.stdout.startswith("Created flow run"), started.stderr
    inspected = run_orchestrator("deployment", "inspect", "greeter/hourly", env=env)
    assert "every 3600s" in inspected.stdout and inspected.stdout.count("Scheduled") >= 3, inspected.stdout
