"""Concurrency slot wake latency: from a release to the waiting acquire's answer, against a real
`orchestrator server start --workers 1 --no-services` on SQLite.

Same process: the release is a request to the server whose thread is waiting (a notification wakes it).
Across processes: this process releases by writing the server's database directly (an in-process client), so
the server's waiting acquire only sees it by re-reading every ORCHESTRATOR_CONCURRENCY_ACQUIRE_POLL_SECONDS.
Prints p50 / p95 / p99 of each. Targets (issue 15): p95 < 250 ms same process, < 1 s across processes.

    .venv/bin/python benchmarks/concurrency.py [--samples 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import database, environment, percentiles, server  # noqa: E402


def sample(http: httpx.Client, take, release) -> float:
    lease = take()
    woke: list[float] = []

    def wait() -> None:
        answer = http.post("global_concurrency_limits/bench/acquire/", json={"timeout_seconds": 9})
        woke.append(time.monotonic())
        answer.raise_for_status()
        http.post(f"concurrency_leases/{answer.json()['id']}/release/").raise_for_status()

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.2)  # the acquire is waiting on the server
    released = time.monotonic()
    release(lease)
    waiter.join()
    return woke[0] - released


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    with database("sqlite") as (home, database_url):
        with server(home, database_url, "--workers", "1", "--no-services") as running:
            headers = {"Authorization": f"Bearer {running.api_key}"}
            with httpx.Client(base_url=running.api_url + "/", headers=headers, timeout=30) as http:
                http.post("global_concurrency_limits/", json={"name": "bench", "limit": 1}).raise_for_status()

                def take_by_api():
                    return http.post("global_concurrency_limits/bench/acquire/", json={}).json()["id"]

                def release_by_api(lease_id: str) -> None:
                    http.post(f"concurrency_leases/{lease_id}/release/").raise_for_status()

                same = [sample(http, take_by_api, release_by_api) for _ in range(args.samples)]

                os.environ.update(environment(home, database_url))
                os.environ.pop("ORCHESTRATOR_API_URL", None)
                from orchestrator.client import OrchestratorClient

                local = OrchestratorClient(None)

                def take_locally():
                    return local.acquire_concurrency_slots("bench", 1, timeout_seconds=10)["id"]

                def release_locally(lease_id: str) -> None:
                    local.release_concurrency_lease(lease_id)

                across = [sample(http, take_locally, release_locally) for _ in range(args.samples)]
    for name, samples in (("same process", same), ("across processes", across)):
        figures = percentiles(samples)
        print(
            f"concurrency wake, {name}: p50 {figures['p50']:.0f} ms, p95 {figures['p95']:.0f} ms, "
            f"p99 {figures['p99']:.0f} ms ({len(samples)} releases)"
        )


if __name__ == "__main__":
    main()
