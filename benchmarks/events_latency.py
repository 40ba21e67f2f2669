"""Event stream latency: from a state change to its event in a consumer, against a real
`orchestrator server start --workers 2 --no-services`.

Client threads create flow runs and move them to RUNNING and COMPLETED through the API at a steady rate; in this
process a consumer on the same stream reader code (apps.events.runner.EventRunner, a per-process consumer from the
stream's tail, polling every ORCHESTRATOR_EVENTS_POLL_SECONDS) records, for every event, the time from the event's
`occurred` (taken by the engine inside the transaction, just before its commit) to the moment the handler got it.
A consumer in another process than the writer is only woken by its poll: this is the slower path (a server
process's own commits wake its runner at once). Prints p50 / p95 / p99 and how many events arrived.

    .venv/bin/python benchmarks/events_latency.py [--database sqlite|postgresql] [--seconds 10] [--rate 100]
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

from common import LoadClient, database, environment, percentiles, server  # noqa: E402


def client_loop(api_url: str, api_key: str, flow_id: str, interval: float, stop_at: float, errors: list[int]) -> None:
    """Three transitions per run (Pending at creation, Running, Completed), one every `interval` seconds."""
    next_at = time.monotonic()
    with LoadClient(api_url, api_key) as client:
        while time.monotonic() < stop_at:
            try:
                run = client.request("POST", "flow_runs/", json={"flow": flow_id}).json()
                time.sleep(max(0.0, next_at + interval - time.monotonic()))
                next_at += interval
                for state_type in ("RUNNING", "COMPLETED"):
                    client.request("POST", f"flow_runs/{run['id']}/set_state/", json={"state": {"type": state_type}})
                    time.sleep(max(0.0, next_at + interval - time.monotonic()))
                    next_at += interval
            except Exception:
                errors[0] += 1
            next_at = max(next_at, time.monotonic() - interval)


def measure(kind: str, seconds: float, rate: float, clients: int) -> None:
    with database(kind) as (home, database_url):
        with server(home, database_url, "--workers", "2", "--no-services") as running:
            # This process reads the same database with the server's settings (its own Django).
            os.environ.update(environment(home, database_url))
            os.environ["DJANGO_SETTINGS_MODULE"] = "orchestrator.settings"
            import django

            django.setup()
            from django.conf import settings
            from django.utils import timezone

            from apps.events.consumers import Consumer
            from apps.events.runner import EventRunner

            latencies: list[float] = []

            def record(events) -> None:
                now = timezone.now()
                latencies.extend((now - event.occurred).total_seconds() for event in events)

            runner = EventRunner([Consumer(name="latency-probe", handler=record, durable=False)])
            runner.run_once()  # starts at the tail
            runner.start()
            flow_id = httpx.post(
                f"{running.api_url}/flows/", json={"name": "bench-events"}, headers=running.headers
            ).json()["id"]
            errors = [0]
            stop_at = time.monotonic() + seconds
            interval = clients / rate
            threads = [
                threading.Thread(
                    target=client_loop, args=(running.api_url, running.api_key, flow_id, interval, stop_at, errors)
                )
                for _ in range(clients)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            time.sleep(1.0)  # the last events arrive
            runner.stop()
            figures = percentiles(latencies)
            print(
                f"{kind:10} events {len(latencies):6d}  ({len(latencies) / seconds:5.1f}/s, poll"
                f" {settings.ORCHESTRATOR_EVENTS_POLL_SECONDS * 1000:.0f} ms, client errors {errors[0]})"
                f"  commit-to-consumer p50 {figures['p50']:6.1f} ms  p95 {figures['p95']:6.1f} ms"
                f"  p99 {figures['p99']:6.1f} ms",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0, help="state transitions per second, all clients")
    parser.add_argument("--clients", type=int, default=4)
    options = parser.parse_args()
    measure(options.database, options.seconds, options.rate, options.clients)


if __name__ == "__main__":
    main()
