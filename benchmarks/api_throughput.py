"""API throughput and latency against a real `orchestrator server start` on loopback.

For SQLite and PostgreSQL, with 1 and 16 concurrent clients:
- reads: GET /api/flow_runs/?state_type=COMPLETED&tags=bench&limit=10 over 10,000 runs;
- writes: create a flow run (Pending) and move it to RUNNING then COMPLETED (3 state transitions).
Prints requests/s, state transitions/s, errors, p50/p95/p99, and the server's resident memory afterwards.
Clients are threads with one keep-alive connection each (common.LoadClient, on http.client: the load generator
shares the machine's cores with the server, so it must cost little).

    .venv/bin/python benchmarks/api_throughput.py [--databases sqlite,postgresql] [--seconds 10] [--server-workers 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LoadClient, database, environment, percentiles, server  # noqa: E402

SEED_RUNS = 10_000


def _load(api_url: str, api_key: str, clients: int, seconds: float, work) -> dict:
    latencies: list[float] = []
    errors = [0]
    transitions = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client_loop() -> None:
        local: list[float] = []
        local_errors = 0
        local_transitions = 0
        with LoadClient(api_url, api_key) as client:
            while time.monotonic() < stop_at:
                try:
                    done = work(client, local)
                    local_transitions += done
                except Exception:
                    local_errors += 1
        with lock:
            latencies.extend(local)
            errors[0] += local_errors
            transitions[0] += local_transitions

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {
        "requests_per_second": len(latencies) / elapsed,
        "transitions_per_second": transitions[0] / elapsed,
        "errors": errors[0],
        "requests": len(latencies),
        **percentiles(latencies),
    }


def _timed(client: LoadClient, samples: list[float], method: str, path: str, **kwargs) -> dict:
    started = time.perf_counter()
    response = client.request(method, path, **kwargs)
    samples.append(time.perf_counter() - started)
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:200]}")
    return response.json()


def read_work(client: LoadClient, samples: list[float]) -> int:
    _timed(client, samples, "GET", "flow_runs/", params={"state_type": "COMPLETED", "tags": "bench", "limit": 10})
    return 0


def make_write_work(flow_id: str):
    def write_work(client: LoadClient, samples: list[float]) -> int:
        run = _timed(client, samples, "POST", "flow_runs/", json={"flow": flow_id})
        for state_type in ("RUNNING", "COMPLETED"):
            answer = _timed(
                client, samples, "POST", f"flow_runs/{run['id']}/set_state/", json={"state": {"type": state_type}}
            )
            if answer["status"] != "ACCEPT":
                raise RuntimeError(f"{state_type} was {answer['status']}: {answer['details']}")
        return 3

    return write_work


def run_database(kind: str, seconds: float, server_args: list[str]) -> None:
    with database(kind) as (home, database_url):
        with server(home, database_url, *server_args) as running:
            subprocess.run(
                [sys.executable, str(Path(__file__).with_name("seed_runs.py")), str(SEED_RUNS)],
                env=environment(home, database_url),
                check=True,
            )
            flow_id = httpx.post(
                f"{running.api_url}/flows/", json={"name": "bench-writes"}, headers=running.headers
            ).json()["id"]
            # Warm up connections, caches and the query planner.
            _load(running.api_url, running.api_key, 2, 1.0, read_work)
            for label, work in (("read", read_work), ("write", make_write_work(flow_id))):
                for clients in (1, 16):
                    figures = _load(running.api_url, running.api_key, clients, seconds, work)
                    extra = f"  transitions/s {figures['transitions_per_second']:7.1f}" if label == "write" else ""
                    print(
                        f"{kind:10} {label:5} clients={clients:2}  req/s {figures['requests_per_second']:7.1f}"
                        f"{extra}  errors {figures['errors']}  p50 {figures['p50']:6.2f} ms"
                        f"  p95 {figures['p95']:6.2f} ms  p99 {figures['p99']:6.2f} ms",
                        flush=True,
                    )
            print(f"{kind:10} server resident memory after the benchmark: {running.rss_megabytes():.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each measurement")
    parser.add_argument("--server-workers", type=int, default=1, help="Daphne processes (server start --workers)")
    options = parser.parse_args()
    # The API server alone: the scheduler services (Celery) are separate processes with their own memory.
    server_args = ["--workers", str(options.server_workers), "--no-services"]
    for kind in options.databases.split(","):
        run_database(kind.strip(), options.seconds, server_args)


if __name__ == "__main__":
    main()
