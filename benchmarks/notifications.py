"""Notification latency and volume against a real `orchestrator server start` (the embedded default: SQLite, no
Redis, the default workers and services), with a webhook receiver on loopback in this process.

1. Latency: N flow runs fail one after another (0.1 s apart); for each, the time from the Failed state's
   timestamp (taken by the engine in its transaction) to the webhook's arrival. Target: p95 < 2 s.
2. Volume: 1,000 flow runs created and failed within a minute by 4 API clients at a steady rate; every one must
   be notified, none twice for the policy (the receiver counts Idempotency-Keys), with no cap per tick.

    .venv/bin/python benchmarks/notifications.py [--database sqlite|postgresql] [--latency-runs 50] [--runs 1000]
        [--seconds 60]
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import LoadClient, database, percentiles, server  # noqa: E402

from tests.notifications.receivers import HttpReceiver, http_receiver  # noqa: E402


def fail_one(client: LoadClient, flow_id: str) -> tuple[str, float]:
    """A run created Running, then set Failed: (run id, the Failed state's time in epoch seconds)."""
    run = client.request(
        "POST", "flow_runs/", json={"flow": flow_id, "state": {"type": "RUNNING"}, "idempotency_key": uuid.uuid4().hex}
    ).json()
    answer = client.request(
        "POST", f"flow_runs/{run['id']}/set_state/", json={"state": {"type": "FAILED", "message": "boom"}}
    ).json()
    return run["id"], datetime.fromisoformat(answer["state"]["timestamp"]).timestamp()


def latencies(receiver: HttpReceiver, failed_at: dict[str, float]) -> list[float]:
    return [
        request.at - failed_at[request.body["flow_run"]["id"]]
        for request in list(receiver.requests)
        if request.body["flow_run"]["id"] in failed_at
    ]


def wait_for(receiver: HttpReceiver, count: int, timeout: float) -> float:
    started = time.monotonic()
    while len(receiver.requests) < count and time.monotonic() - started < timeout:
        time.sleep(0.05)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    options = parser.parse_args()

    with http_receiver() as receiver, database(options.database) as (home, database_url):
        with server(home, database_url) as running, LoadClient(running.api_url, running.api_key) as client:
            block = {"block_type": "webhook", "name": "ops", "data": {"url": receiver.url}}
            assert client.request("POST", "block_documents/", json=block).status_code == 201
            policy = {"name": "failures", "state_types": ["FAILED", "CRASHED"], "block": "webhook/ops"}
            assert client.request("POST", "notification_policies/", json=policy).status_code == 201
            flow_id = client.request("POST", "flows/", json={"name": "nightly"}).json()["id"]

            failed_at: dict[str, float] = {}
            for _ in range(options.latency_runs):
                run_id, at = fail_one(client, flow_id)
                failed_at[run_id] = at
                time.sleep(0.1)
            wait_for(receiver, options.latency_runs, 30)
            figures = percentiles(latencies(receiver, failed_at))
            print(
                f"latency ({options.database}, {len(receiver.requests)}/{options.latency_runs} failed runs one after "
                f"another): p50 {figures['p50']:.0f} ms, p95 {figures['p95']:.0f} ms, p99 {figures['p99']:.0f} ms"
            )

            receiver.reset()
            volume: dict[str, float] = {}
            lock = threading.Lock()
            interval = options.seconds / options.runs * 4  # per client
            started = time.monotonic()

            def client_loop(count: int) -> None:
                next_at = time.monotonic()
                with LoadClient(running.api_url, running.api_key) as own:
                    for _ in range(count):
                        run_id, at = fail_one(own, flow_id)
                        with lock:
                            volume[run_id] = at
                        next_at += interval
                        time.sleep(max(0.0, next_at - time.monotonic()))

            threads = [threading.Thread(target=client_loop, args=(options.runs // 4,)) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            created_in = time.monotonic() - started
            wait_for(receiver, len(volume), 120)
            time.sleep(1.0)  # a duplicate would come right behind
            all_in = time.monotonic() - started
            keys = collections.Counter(request.headers["Idempotency-Key"] for request in receiver.requests)
            notified = {request.body["flow_run"]["id"] for request in receiver.requests}
            figures = percentiles(latencies(receiver, volume))
            print(
                f"volume ({options.database}): {len(volume)} runs failed in {created_in:.1f} s; "
                f"{len(notified & set(volume))} notified ({len(receiver.requests)} webhooks, "
                f"{sum(1 for count in keys.values() if count > 1)} keys twice) within {all_in:.1f} s of the first; "
                f"latency p50 {figures['p50']:.0f} ms, p95 {figures['p95']:.0f} ms, p99 {figures['p99']:.0f} ms"
            )


if __name__ == "__main__":
    main()
