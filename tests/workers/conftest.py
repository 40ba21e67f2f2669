"""What the process worker tests share: one real server per test module (no Celery services: a test runs the
service it needs with `orchestrator server services run`), real `orchestrator worker start` processes with
short intervals, flow files in temporary directories, and deployments, pools and runs made through the API."""

from __future__ import annotations

import signal
import subprocess
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import orchestrator_executable
from tests.support.server import RunningServer, start_server

# Short intervals keep the tests fast: a run due now is picked up within a poll (0.2 s), a cancellation within
# a heartbeat (0.5 s); a worker silent for 3 s is offline.
WORKER_SETTINGS = {
    "ORCHESTRATOR_WORKER_POLL_SECONDS": "0.2",
    "ORCHESTRATOR_WORKER_PREFETCH_SECONDS": "5",
    "ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS": "0.5",
    "ORCHESTRATOR_WORKER_KILL_GRACE_SECONDS": "1",
}
SERVER_SETTINGS = {"ORCHESTRATOR_WORKER_HEARTBEAT_TIMEOUT_SECONDS": "3"}

FINAL_TYPES = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
ACTIVE_TYPES = {"PENDING", "RUNNING", "CANCELLING"}

# The flows the tests deploy. `record` appends the run's id to a file, `nap` sleeps, `die` ends its process
# without a final state, `stubborn` ignores SIGTERM and starts a process of its own, `cached_square` calls a
# task whose result is cached by its inputs.
FLOWS = textwrap.dedent(
    """
    import os
    import time

    from orchestrator import flow, task
    from orchestrator.sdk.context import get_run_context
    from orchestrator.tasks import task_input_hash


    @task(cache_key_fn=task_input_hash)
    def square(x: int) -> int:
        return x * x


    @flow
    def cached_square(x: int = 3):
        return square(x)


    @flow
    def record(log: str, seconds: float = 0.0):
        time.sleep(seconds)
        with open(log, "a") as handle:
            handle.write(get_run_context().flow_run.id + "\\n")
        return "recorded"


    @flow
    def nap(seconds: float = 1.0):
        time.sleep(seconds)
        return seconds


    @flow
    def die(code: int = 3):
        os._exit(code)


    @flow
    def stubborn(pid_file: str):
        import signal
        import subprocess

        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        helper = subprocess.Popen(["sleep", "60"])
        with open(pid_file, "w") as handle:
            handle.write(str(helper.pid))
        time.sleep(60)
    """
)


class Worker:
    """A running `orchestrator worker start ...` process and everything it printed."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_output(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"worker never printed {text!r}:\n{self.output()}")
            time.sleep(0.05)

    def stop(self, sig: int | None = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send `sig` (None: nothing, wait for the exit) and return the exit code."""
        if sig is not None and self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"worker did not stop within {timeout}s:\n{self.output()}") from None


class Cluster:
    """The module's server, and helpers to make pools, deployments and runs and to start workers against it."""

    def __init__(self, server: RunningServer, flows_dir: Path, homes: Path) -> None:
        self.server = server
        self.flows_dir = flows_dir
        self.homes = homes
        self.api = server.api_client()
        self.workers: list[Worker] = []

    # -- the API ------------------------------------------------------------------------------------------
    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.api.request(method, path, **kwargs)
        if response.status_code >= 500:  # the traceback is in the server's log: show its end
            log = self.server.output()[-6000:]
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}\nserver log:\n{log}")
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def pool(self, *, concurrency_limit: int | None = None, paused: bool = False, queues: dict | None = None) -> str:
        """A new process pool (with extra queues: name -> priority); returns its name."""
        name = f"pool-{uuid.uuid4().hex[:8]}"
        body: dict[str, Any] = {"name": name, "type": "process", "paused": paused}
        if concurrency_limit is not None:
            body["concurrency_limit"] = concurrency_limit
        self.call("POST", "work_pools/", json=body)
        for queue, priority in (queues or {}).items():
            self.call("POST", f"work_pools/{name}/queues/", json={"name": queue, "priority": priority})
        return name

    def deployment(self, pool: str, entrypoint: str, *, queue: str | None = None, path: Path | None = None) -> str:
        body = {
            "flow_name": entrypoint.rpartition(":")[2],
            "name": f"deployment-{uuid.uuid4().hex[:8]}",
            "entrypoint": entrypoint,
            "path": str(path or self.flows_dir),
            "work_pool_name": pool,
            "work_queue_name": queue,
        }
        return self.call("POST", "deployments/", json=body)["id"]

    def create_run(self, deployment: str, **parameters: Any) -> dict:
        return self.call("POST", f"deployments/{deployment}/create_flow_run/", json={"parameters": parameters})

    def run(self, run_id: str) -> dict:
        return self.call("GET", f"flow_runs/{run_id}/")

    def states(self, run_id: str) -> list[dict]:
        answer = self.call("GET", f"flow_runs/{run_id}/states/")
        return answer["results"] if isinstance(answer, dict) else answer

    def wait_for(self, run_ids: list[str], done: Callable[[dict], bool], timeout: float = 30.0) -> list[dict]:
        """Poll the runs until `done(run)` holds for each; returns them (fails with their states on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            runs = [self.run(run_id) for run_id in run_ids]
            if all(done(run) for run in runs):
                return runs
            if time.monotonic() > deadline:
                summary = ", ".join(f"{run['id'][:8]}={run['state_name']}" for run in runs)
                raise AssertionError(f"runs not done within {timeout}s: {summary}\n{self.worker_output()}")
            time.sleep(0.1)

    def wait_final(self, run_ids: list[str], timeout: float = 30.0) -> list[dict]:
        return self.wait_for(run_ids, lambda run: run["state_type"] in FINAL_TYPES, timeout)

    # -- workers ------------------------------------------------------------------------------------------
    def worker_env(self, **settings: str) -> dict[str, str]:
        home = self.homes / f"worker-{uuid.uuid4().hex[:8]}"  # its own home: no database, only the API
        return self.server.client_env(home, **{**WORKER_SETTINGS, **settings})

    def start_worker(self, *args: str, verb: str = "worker", wait: bool = True, **settings: str) -> Worker:
        process = subprocess.Popen(
            [orchestrator_executable(), verb, "start", *args],
            env=self.worker_env(**settings),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        worker = Worker(process)
        self.workers.append(worker)
        if wait:
            worker.wait_for_output("started")
        return worker

    def worker_output(self) -> str:
        return "\n".join(f"--- worker {w.process.pid}:\n{w.output()}" for w in self.workers)

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.kill()  # its runs die with it (PR_SET_PDEATHSIG)
                worker.process.wait()
        self.workers.clear()


def process_gone(pid: int) -> bool:
    """True when no process `pid` runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())


def wait_until(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)


def pid_of(run: dict) -> int:
    """The subprocess id the worker recorded on the run (`hostname:pid`)."""
    assert run.get("infrastructure_pid"), run
    return int(run["infrastructure_pid"].rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("workers")
    flows_dir = root / "flows"
    flows_dir.mkdir()
    (flows_dir / "flows.py").write_text(FLOWS)
    with start_server(home=root / "server", args=["--no-services"], settings=SERVER_SETTINGS) as server:
        cluster = Cluster(server, flows_dir, root)
        try:
            yield cluster
        finally:
            cluster.stop_workers()
            cluster.api.close()


@pytest.fixture
def workers(cluster: Cluster) -> Iterator[Cluster]:
    """The module's cluster; the workers a test started are killed after it."""
    try:
        yield cluster
    finally:
        cluster.stop_workers()
