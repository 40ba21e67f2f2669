"""Keys end to end, with a real server: a fresh home works with no key step, `api-key` manages keys, a read key
cannot deploy, and the messages are one line each."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import orchestrator_env, run_orchestrator
from tests.support.server import RunningServer, sqlite_pass_only, start_server, throwaway_database

pytestmark = pytest.mark.e2e

FLOW = """
from orchestrator import flow, task

@task
def double(x):
    return 2 * x

@flow(name="keys-check")
def main():
    return double(21)

print(main())
"""


def one_line(text: str) -> str:
    assert text.endswith("\n") and text.count("\n") == 1, text
    return text.strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with start_server(home=tmp_path_factory.mktemp("keys") / "server") as running:
        yield running


@sqlite_pass_only
def test_a_fresh_home_gets_an_admin_key_that_the_cli_and_sdk_use_with_no_step(server: RunningServer, tmp_path: Path):
    output = server.output()
    assert "API keys are required: created an admin key for this machine in profile 'default'" in output
    assert server.api_key not in output  # never printed: it is in the profile, readable by its owner only
    assert stat.S_IMODE((server.home / "profiles.toml").stat().st_mode) == 0o600
    env = {**server.env, "ORCHESTRATOR_API_URL": server.api_url}
    listed = run_orchestrator("work-pool", "ls", env=env)
    assert listed.returncode == 0, listed.stderr
    script = tmp_path / "flow.py"
    script.write_text(FLOW)
    ran = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout.strip().endswith("42"), ran.stderr
    runs = server.api_client().get("flow_runs/", params={"flow_name": "keys-check"}).json()["results"]
    assert [run["state"]["type"] for run in runs] == ["COMPLETED"]


@sqlite_pass_only
def test_api_key_create_prints_the_key_last_and_a_read_key_cannot_deploy(server: RunningServer, tmp_path: Path):
    admin_env = {**server.env, "ORCHESTRATOR_API_URL": server.api_url}
    created = run_orchestrator("api-key", "create", "dashboard", "--scope", "read", env=admin_env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("orch_") and "not shown again" in created.stdout
    listed = run_orchestrator("api-key", "ls", env=admin_env)
    assert "dashboard" in listed.stdout and key[:12] in listed.stdout and key not in listed.stdout

    elsewhere = orchestrator_env(tmp_path / "laptop", ORCHESTRATOR_API_URL=server.api_url, ORCHESTRATOR_API_KEY=key)
    assert run_orchestrator("flow-run", "ls", env=elsewhere).returncode == 0
    (tmp_path / "flows.py").write_text(FLOW.replace("print(main())", ""))
    deployed = run_orchestrator(
        "deploy", "flows.py:main", "--name", "nightly", "--pool", "local", env=elsewhere, cwd=tmp_path
    )
    assert deployed.returncode == 1
    assert one_line(deployed.stderr).endswith("API key 'dashboard' has scope read; POST /api/deployments/ needs write")
    assert run_orchestrator("api-key", "create", "mine", "--scope", "admin", env=elsewhere).returncode == 1

    revoked = run_orchestrator("api-key", "revoke", "dashboard", env=admin_env)
    assert revoked.stdout.strip() == "Revoked API key 'dashboard': it no longer works."
    refused = run_orchestrator("flow-run", "ls", env=elsewhere)
    assert refused.returncode == 1 and one_line(refused.stderr).endswith("the API key 'dashboard' was revoked")


@sqlite_pass_only
def test_a_client_without_a_key_is_told_how_to_get_one(server: RunningServer, tmp_path: Path):
    env = orchestrator_env(tmp_path / "other", ORCHESTRATOR_API_URL=server.api_url)
    refused = run_orchestrator("work-pool", "ls", env=env)
    assert refused.returncode == 1
    assert "this API needs a key" in one_line(refused.stderr) and "ORCHESTRATOR_API_KEY" in refused.stderr


def test_a_reset_database_takes_the_profile_key_again(tmp_path: Path):
    home = tmp_path / "server"
    with throwaway_database(home) as database_url:
        with start_server(home=home, database_url=database_url) as first:
            key = first.api_key
        env = orchestrator_env(home, ORCHESTRATOR_DATABASE_URL=database_url)
        reset = run_orchestrator("server", "database", "reset", "--yes", env=env)
        assert reset.returncode == 0, reset.stderr
        with start_server(home=home, database_url=database_url) as second:
            assert "registered profile 'default''s key as this database's admin key" in second.output()
            assert second.api_key == key
            assert second.api_client().get("flows/").status_code == 200


@sqlite_pass_only
def test_checking_off_warns_at_start_and_refuses_to_listen_beyond_loopback(tmp_path: Path):
    env = orchestrator_env(tmp_path / "home", ORCHESTRATOR_API_AUTH="off")
    refused = run_orchestrator("server", "start", "--host", "0.0.0.0", "--port", "0", env=env)
    assert refused.returncode == 1
    assert "ORCHESTRATOR_API_AUTH is off and --host 0.0.0.0 is reachable from other machines" in refused.stderr
    with start_server(home=tmp_path / "open", settings={"ORCHESTRATOR_API_AUTH": "off"}) as server:
        assert "warning: ORCHESTRATOR_API_AUTH is off" in server.output()
        import httpx

        assert httpx.post(f"{server.api_url}/flows/", json={"name": "open"}).status_code == 201


@sqlite_pass_only
def test_a_worker_on_the_servers_machine_runs_a_deployment_with_no_key_step(server: RunningServer, tmp_path: Path):
    """deploy, worker start and deployment run from the server's home, with only ORCHESTRATOR_API_URL set."""
    env = {**server.env, "ORCHESTRATOR_API_URL": server.api_url, "ORCHESTRATOR_WORKER_POLL_SECONDS": "0.2"}
    (tmp_path / "flows.py").write_text(FLOW.replace("print(main())", ""))
    deployed = run_orchestrator("deploy", "flows.py:main", "--name", "keyless", "--pool", "home", env=env, cwd=tmp_path)
    assert deployed.returncode == 0, deployed.stderr
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("orchestrator")), "worker", "start", "--pool", "home"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ran = run_orchestrator("deployment", "run", "keys-check/keyless", "--watch", env=env, timeout=90)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "Completed" in ran.stdout
    finally:
        worker.terminate()
        worker.wait(timeout=30)
