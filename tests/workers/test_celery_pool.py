"""The celery pool type end to end: a real server (with its services) sending runs through a real Redis to real
`orchestrator worker start --pool P` Celery workers, flow files on disk. Each test says which promise of
docs/workers.md ("Celery pools") it holds the celery pool to.

Every key this module's processes write to Redis starts with a prefix of its own (tests/workers/celery_settings.py),
so parallel runs of the suite, and other suites on the same Redis, never take each other's messages.
"""

from __future__ import annotations

import signal
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run_orchestrator
from tests.support.server import start_server
from tests.workers.conftest import FLOWS, WORKER_SETTINGS, Cluster, Worker, pid_of, process_gone, wait_until

pytestmark = pytest.mark.e2e

REPOSITORY = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/12"


def redis_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
        return True
    except OSError:
        return False


class CeleryCluster(Cluster):
    """The module's server (services on, broker Redis) and celery pools with Celery workers against it."""

    def pool(self, *, concurrency_limit: int | None = None, paused: bool = False, queues: dict | None = None) -> str:
        name = f"celery-{uuid.uuid4().hex[:8]}"
        body: dict[str, Any] = {"name": name, "type": "celery", "paused": paused}
        if concurrency_limit is not None:
            body["concurrency_limit"] = concurrency_limit
        self.call("POST", "work_pools/", json=body)
        return name

    def worker_env(self, **settings: str) -> dict[str, str]:
        """A Celery worker has what the server has (its database, its broker), not the API."""
        return {**self.server.env, **WORKER_SETTINGS, **settings}

    def start_celery_worker(self, pool: str, *args: str) -> Worker:
        worker = self.start_worker("--pool", pool, *args, wait=False)
        worker.wait_for_output("ready", timeout=30)
        return worker

    def history(self, run_id: str) -> dict[str, str]:
        """The first timestamp of each state type the run went through."""
        found: dict[str, str] = {}
        for state in sorted(self.states(run_id), key=lambda state: state["timestamp"]):
            found.setdefault(state["type"], state["timestamp"])
        return found


@pytest.fixture(scope="module")
def celery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryCluster]:
    assert redis_reachable(), "Redis is not running on 127.0.0.1:6379 (the celery pool tests need it)"
    root = tmp_path_factory.mktemp("celery-pool")
    flows_dir = root / "flows"
    flows_dir.mkdir()
    (flows_dir / "flows.py").write_text(FLOWS)
    prefix = f"orchestrator-test-{uuid.uuid4().hex[:12]}:"
    settings = {
        "ORCHESTRATOR_BROKER_URL": REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "tests.workers.celery_settings",
        "PYTHONPATH": str(REPOSITORY),
        "CELERY_POOL_TEST_PREFIX": prefix,
    }
    try:
        with start_server(home=root / "server", settings=settings) as server:
            cluster = CeleryCluster(server, flows_dir, root)
            try:
                yield cluster
            finally:
                cluster.stop_workers()
                cluster.api.close()
    finally:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="module")
def shared_pool(celery: CeleryCluster) -> Iterator[str]:
    """A celery pool with one Celery worker (4 processes) kept for the module's tests that need nothing else."""
    pool = celery.pool()
    worker = celery.start_celery_worker(pool, "--limit", "4")
    yield pool
    if worker.process.poll() is None:
        worker.stop(signal.SIGTERM)


def test_deployment_run_completes_on_the_celery_worker_exactly_once(
    celery: CeleryCluster, shared_pool: str, tmp_path: Path
) -> None:
    """`deployment run` on a celery pool: the run is sent to the pool's queue after commit and executed once."""
    log = tmp_path / "executions.log"
    deployment = celery.deployment(shared_pool, "flows.py:record")
    name = celery.call("GET", f"deployments/{deployment}/")["name"]
    command = ["deployment", "run", f"record/{name}", "--param", f"log={log}", "--watch", "--timeout", "30"]
    result = run_orchestrator(*command, env=celery.server.env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Completed" in result.stdout, result.stdout
    runs = celery.call("GET", "flow_runs/", params={"deployment_id": deployment})
    run = (runs["results"] if isinstance(runs, dict) else runs)[0]
    assert run["state_name"] == "Completed", run["state"]
    assert run["worker_name"].startswith("celery-") and run["infrastructure_pid"], run
    time.sleep(1.5)  # a second delivery (a re-send by celery_dispatch) must not run it again
    assert log.read_text().split() == [run["id"]]
    workers = celery.call("GET", f"work_pools/{shared_pool}/workers/")
    names = [worker["name"] for worker in (workers["results"] if isinstance(workers, dict) else workers)]
    assert run["worker_name"] in names


def test_a_deployment_with_code_storage_runs_on_the_celery_worker_from_its_cache(
    celery: CeleryCluster, shared_pool: str, tmp_path: Path
) -> None:
    """The celery pool's run process fetches a stored deployment's code as the process pool does (a folder block
    here; S3 is tests/workers/test_code_storage.py) and runs it with the original folder gone."""
    import shutil

    from orchestrator.blocks import LocalFileSystem
    from orchestrator.sdk.code_storage import code_upload

    project = tmp_path / "project"
    project.mkdir()
    (project / "flows.py").write_text(FLOWS)
    store = tmp_path / "store"
    prefix = code_upload(block=LocalFileSystem(basepath=str(store)), folder=project).prefix
    shutil.rmtree(project)
    name = f"stored-{uuid.uuid4().hex[:6]}"
    data = {"basepath": str(store)}
    celery.call("POST", "block_documents/", json={"block_type": "local-file-system", "name": name, "data": data})
    body = {
        "flow_name": "record",
        "name": name,
        "entrypoint": "flows.py:record",
        "work_pool_name": shared_pool,
        "storage_block": f"local-file-system/{name}",
        "storage_path": prefix,
    }
    deployment = celery.call("POST", "deployments/", json=body)["id"]
    log = tmp_path / "executions.log"
    run = celery.create_run(deployment, log=str(log))
    [finished] = celery.wait_final([run["id"]], timeout=20)
    assert finished["state_name"] == "Completed", (finished["state"], celery.worker_output())
    assert log.read_text().split() == [run["id"]]
    assert (celery.server.home / "code" / prefix / "flows.py").read_text() == FLOWS


def test_a_scheduled_run_starts_within_a_second_of_its_time(celery: CeleryCluster, shared_pool: str) -> None:
    """The message's ETA is the run's start time: a run due in 2 s is Running within 1 s of it, never before."""
    deployment = celery.deployment(shared_pool, "flows.py:nap")
    due = datetime.now(UTC) + timedelta(seconds=2)
    body = {"parameters": {"seconds": 0}, "scheduled_time": due.isoformat()}
    run = celery.call("POST", f"deployments/{deployment}/create_flow_run/", json=body)
    finished = celery.wait_final([run["id"]], timeout=15)[0]
    assert finished["state_name"] == "Completed", finished["state"]
    expected = datetime.fromisoformat(finished["expected_start_time"])
    running = datetime.fromisoformat(celery.history(run["id"])["RUNNING"])
    assert timedelta(seconds=-0.05) <= running - expected < timedelta(seconds=1), (expected, running)


def test_two_celery_workers_run_each_of_20_runs_exactly_once(celery: CeleryCluster, tmp_path: Path) -> None:
    """Runs sent before any worker listens wait in the queue (the server's own services worker never takes
    them); two Celery workers then share them, each run executed exactly once."""
    log = tmp_path / "executions.log"
    pool = celery.pool()
    deployment = celery.deployment(pool, "flows.py:record")
    run_ids = [celery.create_run(deployment, log=str(log), seconds=0.2)["id"] for _ in range(20)]
    time.sleep(1.5)
    assert {celery.run(run_id)["state_name"] for run_id in run_ids} == {"Scheduled"}
    first = celery.start_celery_worker(pool, "--limit", "2")
    second = celery.start_celery_worker(pool, "--limit", "2")
    runs = celery.wait_final(run_ids, timeout=60)
    assert {run["state_name"] for run in runs} == {"Completed"}, [run["state"] for run in runs]
    time.sleep(1.5)  # late duplicates, if any, would have run by now
    assert sorted(log.read_text().split()) == sorted(run_ids)  # each run once: none twice, none missing
    assert {run["worker_name"] for run in runs} <= {
        line.split("'")[1] for worker in (first, second) for line in worker.lines if "ready" in line
    }
    for worker in (first, second):
        assert worker.process.poll() is None, worker.output()


def test_runs_of_a_paused_celery_pool_wait_for_its_resume(celery: CeleryCluster, tmp_path: Path) -> None:
    """A paused pool's runs are not executed, even with a worker listening; after `work-pool resume` the
    celery_dispatch service sends them again and they run."""
    log = tmp_path / "executions.log"
    pool = celery.pool(paused=True)
    deployment = celery.deployment(pool, "flows.py:record")
    celery.start_celery_worker(pool, "--limit", "2")
    run_ids = [celery.create_run(deployment, log=str(log))["id"] for _ in range(3)]
    time.sleep(2.5)  # several passes of celery_dispatch (every second in these tests)
    assert {celery.run(run_id)["state_name"] for run_id in run_ids} == {"Scheduled"}
    assert not log.exists()
    result = run_orchestrator("work-pool", "resume", pool, env=celery.server.env)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = celery.wait_final(run_ids, timeout=20)
    assert {run["state_name"] for run in runs} == {"Completed"}, [run["state"] for run in runs]
    assert sorted(log.read_text().split()) == sorted(run_ids)


def test_a_broken_entrypoint_fails_the_run_and_the_worker_goes_on(
    celery: CeleryCluster, shared_pool: str, tmp_path: Path
) -> None:
    """A missing file fails its run naming the entrypoint; a flow that kills its process crashes its run with the
    exit code; the Celery worker survives both and runs the next run."""
    missing = celery.create_run(celery.deployment(shared_pool, "missing.py:nope"))
    dies = celery.create_run(celery.deployment(shared_pool, "flows.py:die"), code=3)
    failed, crashed = celery.wait_final([missing["id"], dies["id"]], timeout=20)
    assert failed["state_name"] == "Failed", failed["state"]
    assert "'missing.py:nope'" in failed["state"]["message"] and "FileNotFoundError" in failed["state"]["message"]
    assert crashed["state_name"] == "Crashed", crashed["state"]
    assert "exited with code 3" in crashed["state"]["message"]
    log = tmp_path / "executions.log"
    good = celery.create_run(celery.deployment(shared_pool, "flows.py:record"), log=str(log))
    assert celery.wait_final([good["id"]], timeout=15)[0]["state_name"] == "Completed"
    assert all(worker.process.poll() is None for worker in celery.workers), celery.worker_output()


def test_cancelling_a_running_celery_run_stops_it_within_10_seconds(celery: CeleryCluster, shared_pool: str) -> None:
    """A Cancelling run of a celery pool ends Cancelled and its process stops: the task watching it sees the
    cancellation at its next look (every heartbeat), kills the run's process group and proposes Cancelled."""
    run = celery.create_run(celery.deployment(shared_pool, "flows.py:nap"), seconds=60)
    running = celery.wait_for([run["id"]], lambda r: r["state_type"] == "RUNNING" and r["infrastructure_pid"])[0]
    child = pid_of(running)
    assert not process_gone(child)
    asked = time.monotonic()
    result = run_orchestrator("flow-run", "cancel", run["id"], env=celery.server.env)
    assert result.returncode == 0, result.stdout + result.stderr
    cancelled = celery.wait_final([run["id"]], timeout=10)[0]
    assert cancelled["state_name"] == "Cancelled", cancelled["state"]
    assert time.monotonic() - asked < 10
    assert "Celery worker" in cancelled["state"]["message"]
    wait_until(lambda: process_gone(child), 2, f"the cancelled run's process {child} still runs")
    assert all(worker.process.poll() is None for worker in celery.workers), celery.worker_output()


def test_a_pool_concurrency_limit_holds_on_celery_workers(celery: CeleryCluster) -> None:
    """A pool limit of 1 with a Celery worker of 3 processes: the claims over the limit WAIT and their tasks come
    back later, so the runs execute one at a time and all complete."""
    pool = celery.pool(concurrency_limit=1)
    deployment = celery.deployment(pool, "flows.py:nap")
    celery.start_celery_worker(pool, "--limit", "3")
    run_ids = [celery.create_run(deployment, seconds=0.5)["id"] for _ in range(3)]
    runs = celery.wait_final(run_ids, timeout=30)
    assert {run["state_name"] for run in runs} == {"Completed"}, [run["state"] for run in runs]
    spans = sorted((celery.history(run_id)["PENDING"], celery.history(run_id)["COMPLETED"]) for run_id in run_ids)
    for (_, first_end), (second_start, _) in zip(spans, spans[1:], strict=False):
        assert first_end <= second_start, spans  # never two active at once


def test_worker_start_on_a_celery_pool_refuses_what_does_not_apply(celery: CeleryCluster) -> None:
    """One line, not a Celery worker consuming nothing: a celery pool has one queue, and --limit is a count."""
    pool = celery.pool()
    queue = run_orchestrator("worker", "start", "--pool", pool, "--queue", "urgent", env=celery.worker_env())
    assert queue.returncode == 1 and "--queue applies to process pools only" in queue.stderr, queue.stderr
    limit = run_orchestrator("worker", "start", "--pool", pool, "--limit", "0", env=celery.worker_env())
    assert limit.returncode == 1 and "--limit must be at least 1" in limit.stderr, limit.stderr
