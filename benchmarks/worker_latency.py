"""Pickup latency of a work pool's worker against a real `orchestrator server start` on loopback.

For each pool type: create the pool and a deployment of a flow that does nothing, start one worker, create
`--runs` runs due now, spaced `--spacing` seconds apart (so it measures pickup, not a burst queueing on a
small machine), wait until all are Completed, then read each run's state history and print p50/p95/max of
    Running - expected start    (the claim, the subprocess start, the flow's first state change)
    Completed - expected start
plus what a run's subprocess costs to start (interpreter + imports of `orchestrator.workers.execute`).

    .venv/bin/python benchmarks/worker_latency.py [--databases sqlite,postgresql] [--pools process,celery] [--runs 50]

A run created to start now waits for the worker's next poll: half of ORCHESTRATOR_WORKER_POLL_SECONDS (1 s)
on average. Runs scheduled ahead are prefetched and held until their time, so they do not pay that wait.
A celery pool's run waits for no poll: the server sends it to the pool's Celery queue (Redis, --broker-url) as it
is created, and the Celery worker (default concurrency) claims it and forks its process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ORCHESTRATOR, database, environment, percentiles, profile_api_key, server  # noqa: E402

FLOW_FILE = textwrap.dedent(
    """
    from orchestrator import flow


    @flow
    def noop():
        return None
    """
)


def _seconds(later: str, earlier: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


def subprocess_start_seconds(repeat: int = 5) -> float:
    """Median wall time of `python -c "import orchestrator.workers.execute, orchestrator.sdk.engine"`: what each
    run's subprocess pays before its first request."""
    code = "import orchestrator.workers.execute, orchestrator.sdk.engine, orchestrator.client, httpx"
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def run_process_pool(api_url: str, env: dict[str, str], runs: int, spacing: float) -> list[dict]:
    """Start one `orchestrator worker start` on a new process pool and time `runs` runs due now."""
    pool = f"bench-process-{uuid.uuid4().hex[:6]}"
    return _time_pool(api_url, pool, "process", {**env, "ORCHESTRATOR_API_URL": api_url}, runs, spacing)


def run_celery_pool(api_url: str, env: dict[str, str], runs: int, spacing: float) -> list[dict]:
    """The celery pool variant: `orchestrator worker start --pool P` is a Celery worker on the pool's queue, with
    the server's database and broker in `env`; the server sends each run to the queue as it is created."""
    pool = f"bench-celery-{uuid.uuid4().hex[:6]}"
    try:
        return _time_pool(api_url, pool, "celery", env, runs, spacing)
    finally:
        _remove_celery_queue(env["ORCHESTRATOR_BROKER_URL"], f"pool-{pool}")


def _time_pool(api_url: str, pool: str, pool_type: str, worker_env: dict[str, str], runs: int, spacing: float):
    """Create the pool and a deployment of a flow that does nothing, start one worker, time `runs` runs."""
    key = profile_api_key(Path(worker_env["ORCHESTRATOR_HOME"]))
    api = httpx.Client(base_url=api_url + "/", timeout=30, headers={"Authorization": f"Bearer {key}"})
    api.post("work_pools/", json={"name": pool, "type": pool_type}).raise_for_status()
    code_dir = Path(tempfile.mkdtemp(prefix="orch-bench-flows-"))
    (code_dir / "bench_flows.py").write_text(FLOW_FILE)
    deployment = api.post(
        "deployments/",
        json={
            "flow_name": "noop",
            "name": "latency",
            "entrypoint": "bench_flows.py:noop",
            "path": str(code_dir),
            "work_pool_name": pool,
        },
    )
    deployment.raise_for_status()
    worker = subprocess.Popen(
        [ORCHESTRATOR, "worker", "start", "--pool", pool],
        env=worker_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_worker(api, pool)  # its first poll (a Celery worker: its first heartbeat) records it
        return _time_runs(api, deployment.json()["id"], runs, spacing)
    finally:
        worker.send_signal(2)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        api.close()


def _remove_celery_queue(broker_url: str, name: str) -> None:
    """Leave the shared broker as it was: the pool's queue, exchange and bindings go."""
    if broker_url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(broker_url)
        keys = list(client.scan_iter(match=f"*{name}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        return
    from kombu import Connection, Exchange, Queue

    with Connection(broker_url) as broker:
        channel = broker.channel()
        Queue(name, Exchange(name), routing_key=name)(channel).delete()
        Exchange(name)(channel).delete()


POOLS: dict[str, Callable[[str, dict[str, str], int, float], list[dict]]] = {
    "process": run_process_pool,
    "celery": run_celery_pool,
}


def _wait_for_worker(api: httpx.Client, pool: str, timeout: float = 60.0) -> None:
    """Wait until the pool's worker has polled once (its first poll records it), so runs measure pickup only."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = api.get(f"work_pools/{pool}/workers/").json()
        if answer["results"] if isinstance(answer, dict) else answer:
            return
        time.sleep(0.1)
    raise RuntimeError(f"no worker of pool {pool!r} polled within {timeout:.0f} s")


def _time_runs(api: httpx.Client, deployment_id: str, runs: int, spacing: float) -> list[dict]:
    """Create the runs (due now) `spacing` seconds apart, wait for them all to finish, return their histories."""
    run_ids = []
    for _ in range(runs):
        answer = api.post(f"deployments/{deployment_id}/create_flow_run/", json={})
        answer.raise_for_status()
        run_ids.append(answer.json()["id"])
        time.sleep(spacing)
    deadline = time.monotonic() + 120
    finished: dict[str, dict] = {}
    while len(finished) < len(run_ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(finished)} of {len(run_ids)} runs finished within 120 s")
        for run_id in run_ids:
            if run_id not in finished:
                run = api.get(f"flow_runs/{run_id}/").json()
                if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                    finished[run_id] = run
        time.sleep(0.2)
    histories = []
    for run_id in run_ids:
        states = api.get(f"flow_runs/{run_id}/states/").json()
        states = states["results"] if isinstance(states, dict) else states
        histories.append({"run": finished[run_id], "states": states})
    return histories


def summarise(label: str, histories: list[dict]) -> None:
    to_pending, pending_to_running, to_running, to_completed, failed = [], [], [], [], 0
    for history in histories:
        run = history["run"]
        if run["state_type"] != "COMPLETED":
            failed += 1
            continue
        by_type = {state["type"]: state["timestamp"] for state in history["states"]}
        to_pending.append(_seconds(by_type["PENDING"], run["expected_start_time"]))
        pending_to_running.append(_seconds(by_type["RUNNING"], by_type["PENDING"]))
        to_running.append(_seconds(by_type["RUNNING"], run["expected_start_time"]))
        to_completed.append(_seconds(by_type["COMPLETED"], run["expected_start_time"]))
    for name, samples in (
        ("Pending - expected start", to_pending),  # the wait for a poll, then the claim
        ("Running - Pending", pending_to_running),  # the run's process starting
        ("Running - expected start", to_running),
        ("Completed - expected start", to_completed),
    ):
        figures = percentiles(samples)
        print(
            f"{label:24} {name:27} p50 {figures['p50']:7.0f} ms  p95 {figures['p95']:7.0f} ms"
            f"  max {max(samples, default=0) * 1000:7.0f} ms  ({len(samples)} runs, {failed} not Completed)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--pools", default="process", help="comma-separated pool types: process, celery")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--spacing", type=float, default=0.1, help="seconds between the creation of two runs")
    parser.add_argument(
        "--broker-url", default="redis://127.0.0.1:6379/11", help="the Celery broker of the celery pool (Redis)"
    )
    options = parser.parse_args()
    print(
        f"{options.runs} runs due now, created {options.spacing * 1000:.0f} ms apart (pickup, not a burst); "
        f"one worker with the default poll interval (1 s)",
        flush=True,
    )
    print(
        f"a fresh interpreter importing what a run's process needs: {subprocess_start_seconds() * 1000:.0f} ms "
        "(the worker's launcher forks runs from a process that did this once)",
        flush=True,
    )
    for kind in options.databases.split(","):
        with database(kind.strip()) as (home, database_url):
            # The server sends a celery pool's runs to the broker, and the Celery worker needs it too.
            broker = {"ORCHESTRATOR_BROKER_URL": options.broker_url} if "celery" in options.pools else {}
            with server(home, database_url, "--no-services", **broker) as running:
                env = environment(home, database_url, **broker)
                for pool_type in options.pools.split(","):
                    histories = POOLS[pool_type.strip()](running.api_url, env, options.runs, options.spacing)
                    summarise(f"{kind} {pool_type} pool", histories)


if __name__ == "__main__":
    main()
