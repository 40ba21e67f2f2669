"""`orchestrator work-pool ...`, `work-queue ...`, `deploy` to a new pool and `flow-run cancel`, as real
subprocesses against a real server: on its database directly, and over HTTP with ORCHESTRATOR_API_URL."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.cli import run_orchestrator
from tests.support.server import RunningServer, sqlite_pass_only, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(home=tmp_path_factory.mktemp("work-pool-cli")) as running:
        yield running


@pytest.fixture(scope="module")
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with server.api_client() as client:
        yield client


def database(server: RunningServer, *args: str):
    """The CLI on the server's database (no API URL)."""
    return run_orchestrator(*args, env=server.env)


def http(server: RunningServer, *args: str):
    """The CLI through the server's API."""
    return run_orchestrator(*args, env={**server.env, "ORCHESTRATOR_API_URL": server.api_url})


def table(stdout: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in stdout.splitlines()[2:] if line.split()}


@pytest.mark.parametrize("cli", [database, http], ids=["database", "http"])
def test_pools_and_queues_are_managed_from_the_cli(server, api, cli):
    """The whole life of a pool from a terminal, the same on the database and over the API."""
    pool = f"pool-{cli.__name__}"
    created = cli(server, "work-pool", "create", pool, "--type", "process", "--concurrency-limit", "2")
    assert created.returncode == 0, created.stderr
    assert created.stdout == (
        f"Created work pool {pool!r} (type process) with its default queue\n"
        f"Start a worker: orchestrator worker start --pool {pool}\n"
    )
    queue = cli(server, "work-queue", "create", "urgent", "--pool", pool, "--priority", "1", "--concurrency-limit", "1")
    assert queue.returncode == 0, queue.stderr
    api.post(f"work_pools/{pool}/get_scheduled_flow_runs/", json={"worker_name": "w1"}).raise_for_status()

    listed = table(cli(server, "work-pool", "ls").stdout)
    assert listed[pool] == [pool, "process", "2", "no", "2", "1"]
    assert cli(server, "work-pool", "pause", pool).stdout == f"Work pool {pool!r} paused\n"
    assert api.get(f"work_pools/{pool}/").json()["paused"] is True
    assert cli(server, "work-pool", "resume", pool).stdout == f"Work pool {pool!r} resumed\n"
    assert cli(server, "work-queue", "pause", "urgent", "--pool", pool).returncode == 0
    queues = table(cli(server, "work-queue", "ls", "--pool", pool).stdout.split("\n", 1)[1])
    assert queues["urgent"] == ["urgent", "1", "1", "yes"] and queues["default"] == ["default", "1", "-", "no"]

    # Heartbeat again: on a loaded machine the calls above can outlast the heartbeat timeout.
    api.post(f"work_pools/{pool}/get_scheduled_flow_runs/", json={"worker_name": "w1"}).raise_for_status()
    inspected = cli(server, "work-pool", "inspect", pool)
    assert inspected.returncode == 0, inspected.stderr
    assert f"orchestrator worker start --pool {pool}" in inspected.stdout
    assert "w1" in inspected.stdout and "online" in inspected.stdout

    assert cli(server, "work-pool", "delete", pool).stdout == f"Deleted work pool {pool!r}\n"
    assert api.get(f"work_pools/{pool}/").status_code == 404


@pytest.mark.parametrize("cli", [database, http], ids=["database", "http"])
def test_pools_and_queues_are_updated_and_a_pool_in_use_is_deleted_only_with_force(server, api, cli, tmp_path):
    """`deploy` creates the pool, so its limit is set afterwards with `update`; deleting a pool that an active
    deployment uses is refused, naming it, unless --force pauses the deployment first."""
    pool = f"upd-{cli.__name__}"
    body = {"flow_name": "etl", "name": f"d-{cli.__name__}", "entrypoint": "etl.py:etl", "work_pool_name": pool}
    api.post("deployments/", json=body).raise_for_status()

    updated = cli(server, "work-pool", "update", pool, "--concurrency-limit", "4", "--description", "team pool")
    assert updated.returncode == 0, updated.stderr
    assert api.get(f"work_pools/{pool}/").json()["concurrency_limit"] == 4
    assert cli(server, "work-pool", "update", pool, "--concurrency-limit", "none").returncode == 0
    assert api.get(f"work_pools/{pool}/").json()["concurrency_limit"] is None
    assert api.get(f"work_pools/{pool}/").json()["description"] == "team pool"
    nothing = cli(server, "work-pool", "update", pool)
    assert nothing.returncode != 0 and "nothing to change" in nothing.stderr

    queue = cli(
        server, "work-queue", "update", "default", "--pool", pool, "--priority", "3", "--concurrency-limit", "2"
    )
    assert queue.returncode == 0, queue.stderr
    default = api.get(f"work_pools/{pool}/queues/default/").json()
    assert (default["priority"], default["concurrency_limit"]) == (3, 2)

    refused = cli(server, "work-pool", "delete", pool)
    assert refused.returncode != 0 and f"etl/d-{cli.__name__}" in refused.stderr and "--force" in refused.stderr
    forced = cli(server, "work-pool", "delete", pool, "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"Paused deployment etl/d-{cli.__name__}" in forced.stdout
    assert api.get(f"work_pools/{pool}/").status_code == 404


@pytest.mark.parametrize("cli", [database, http], ids=["database", "http"])
@sqlite_pass_only
def test_mistakes_are_one_error_line_and_a_non_zero_exit(server, cli):
    """A script calling the CLI must be able to tell failure from success, and a person to read why."""
    cli(server, "work-pool", "create", f"taken-{cli.__name__}")
    cases = [
        (("work-pool", "create", f"taken-{cli.__name__}"), "already exists"),
        (("work-pool", "create", "x", "--concurrency-limit", "-1"), "concurrency_limit"),
        (("work-queue", "pause", "nope", "--pool", f"taken-{cli.__name__}"), "no work queue named 'nope'"),
    ]
    for args, message in cases:
        result = cli(server, *args)
        assert result.returncode != 0, args
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert message in result.stderr


@sqlite_pass_only
def test_bad_arguments_and_unknown_pools_are_one_error_line(server):
    result = database(server, "work-pool", "create", "x", "--type", "kubernetes")
    assert result.returncode == 2
    assert result.stderr.startswith("error: argument --type: invalid choice: 'kubernetes'")

    result = http(server, "work-queue", "create", "q", "--pool", "nope")
    # The client's one line names the request and the API's message.
    expected = f"error: POST {server.api_url}/work_pools/nope/queues/: no work pool named 'nope'\n"
    assert (result.returncode, result.stderr) == (1, expected)


def test_deploying_to_a_pool_that_does_not_exist_creates_it(server, api, tmp_path: Path):
    """`deploy --pool new` must leave something a worker can poll, and say that it made it."""
    flow_file = tmp_path / "hello.py"
    flow_file.write_text(
        textwrap.dedent(
            """
            from orchestrator import flow

            @flow
            def hello():
                return 1
            """
        )
    )

    deployed = http(server, "deploy", f"{flow_file}:hello", "--name", "d", "--pool", "fresh-pool")

    assert deployed.returncode == 0, deployed.stderr
    assert "Created work pool 'fresh-pool' (type process, with its default queue)" in deployed.stdout
    assert "Start a worker: orchestrator worker start --pool fresh-pool" in deployed.stdout
    pool = api.get("work_pools/fresh-pool/").json()
    assert pool["type"] == "process"
    again = database(server, "deploy", f"{flow_file}:hello", "--name", "d", "--pool", "fresh-pool")
    assert again.returncode == 0 and "Created work pool" not in again.stdout


def _run(api: httpx.Client, flow_id: str, *states: str, scheduled: bool = False) -> str:
    # A run of a pool: cancellation_cleanup leaves its Cancelling state to its worker for the heartbeat timeout.
    body: dict = {"flow": flow_id, "work_pool_name": "some-pool"}
    if scheduled:
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        body["state"] = {"type": "SCHEDULED", "state_details": {"scheduled_time": later}}
    run = api.post("flow_runs/", json=body).json()
    for state in states:
        answer = api.post(f"flow_runs/{run['id']}/set_state/", json={"state": {"type": state}}).json()
        assert answer["status"] == "ACCEPT", answer
    return run["id"]


@pytest.mark.parametrize("cli", [database, http], ids=["database", "http"])
def test_flow_run_cancel(server, api, cli):
    """A run not started ends Cancelled at once; a running one waits for its worker; a finished one cannot be."""
    flow_id = api.post("flows/", json={"name": "cancel-me"}).json()["id"]
    scheduled = _run(api, flow_id, scheduled=True)
    running = _run(api, flow_id, "RUNNING")
    finished = _run(api, flow_id, "RUNNING", "COMPLETED")

    result = cli(server, "flow-run", "cancel", scheduled)
    assert (result.returncode, result.stdout) == (0, f"Flow run {scheduled} cancelled: Cancelled\n"), result.stderr
    result = cli(server, "flow-run", "cancel", running)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Flow run {running} is Cancelling: its worker stops its process")
    assert api.get(f"flow_runs/{running}/").json()["state_type"] == "CANCELLING"

    result = cli(server, "flow-run", "cancel", finished)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: flow run {finished} cannot be cancelled: the run is already Completed; there is nothing to cancel\n"
    )
    missing = "6d1f6f1c-0000-4000-8000-000000000000"
    assert cli(server, "flow-run", "cancel", missing).stderr == f"error: no flow run with id {missing}\n"


def test_deployment_run_watch_says_what_the_run_waits_for(server, api):
    """`--watch` used to wait silently forever when no worker served the pool: it now says so, with the command
    that starts one, and a paused pool is named too."""
    pool = "nobody-home"
    body = {"flow_name": "etl", "name": "unwatched", "entrypoint": "etl.py:etl", "work_pool_name": pool}
    api.post("deployments/", json=body).raise_for_status()
    api.patch(f"work_pools/{pool}/", json={"paused": True}).raise_for_status()

    watched = database(server, "deployment", "run", "etl/unwatched", "--watch", "--timeout", "6")

    assert watched.returncode != 0 and "still Scheduled after 6 s" in watched.stderr
    waiting = [line for line in watched.stdout.splitlines() if line.startswith("waiting: ")]
    assert waiting, watched.stdout
    assert f"work pool '{pool}' is paused" in waiting[0]
    assert (
        f"no online worker for work pool '{pool}': start one with `orchestrator worker start --pool {pool}`"
        in (waiting[0])
    )


def test_flow_run_inspect_says_why_a_run_waits(server, api):
    """`flow-run inspect` of a run that has not started ends with what holds it, one reason a line with its
    code; a finished run shows no such part."""
    pool = "inspected-pool"
    body = {"flow_name": "etl", "name": "inspected", "entrypoint": "etl.py:etl", "work_pool_name": pool}
    deployment = api.post("deployments/", json=body).json()
    api.patch(f"work_pools/{pool}/", json={"paused": True}).raise_for_status()
    run = api.post(f"deployments/{deployment['id']}/create_flow_run/", json={}).json()

    inspected = http(server, "flow-run", "inspect", run["id"])
    assert inspected.returncode == 0, inspected.stderr
    why = inspected.stdout.split("why it is waiting:\n", 1)[1].splitlines()
    assert why[0] == f"  - [pool_paused] work pool '{pool}' is paused: `orchestrator work-pool resume {pool}`"
    assert why[1].startswith(f"  - [no_online_worker] no online worker for work pool '{pool}'")

    api.post(f"flow_runs/{run['id']}/set_state/", json={"state": {"type": "CANCELLED"}}).raise_for_status()
    assert "why it is waiting" not in http(server, "flow-run", "inspect", run["id"]).stdout
