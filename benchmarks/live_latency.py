"""Live update latency: from the API's 2xx answer to a state change to the websocket message that shows it, against
a real `orchestrator server start --workers 2 --no-services` (SQLite by default).

Logs in through the admin (the session the live pages use) and opens `--sockets` connections to /ws/flow-runs/
(with two workers sharing the listening socket, they land on both). One API client then makes `--transitions`
state changes, one every `--interval` seconds: a flow run created (Pending), Running, Completed, and the next run.
For each change it notes when the 2xx arrived and the new state's id; every socket notes when the flow_run message
with that state id arrived. A change made in one worker reaches the other worker's sockets through its event
runner's poll (ORCHESTRATOR_EVENTS_POLL_SECONDS); its own, woken by the commit. Prints p50 / p95 / p99 / max over
every (change, socket) pair, and how many were missed (a change followed within the same publisher batch by the
next one is sent once, as the later state: the interval keeps that rare).

    .venv/bin/python benchmarks/live_latency.py [--database sqlite|postgresql] [--transitions 100] [--sockets 4]
        [--redis-url redis://127.0.0.1:6379/13]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import database, percentiles  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from tests.live.realtime import admin_credentials, admin_session_cookie, websocket_url  # noqa: E402
from tests.support.server import start_server  # noqa: E402


def make_changes(
    api_url: str,
    headers: dict[str, str],
    transitions: int,
    interval: float,
    changed: dict[str, float],
    done: threading.Event,
):
    """Create runs and move them Running then Completed; note each new state's id with the time of the 2xx."""
    with httpx.Client(base_url=api_url, timeout=30, headers=headers) as api:
        flow_id = api.post("/flows/", json={"name": "bench-live"}).json()["id"]
        made = 0
        run_id = None
        next_at = time.monotonic()
        while made < transitions:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            if run_id is None:
                answer = api.post("/flow_runs/", json={"flow": flow_id})
                at = time.monotonic()
                run = answer.json()
                run_id, state_id = run["id"], run["state"]["id"]
                step = 0
            else:
                step += 1
                state_type = ("RUNNING", "COMPLETED")[step - 1]
                answer = api.post(f"/flow_runs/{run_id}/set_state/", json={"state": {"type": state_type}})
                at = time.monotonic()
                state_id = answer.json()["state"]["id"]
                if state_type == "COMPLETED":
                    run_id = None
            if answer.status_code >= 300:
                raise RuntimeError(f"{answer.status_code}: {answer.text[:200]}")
            changed[state_id] = at
            made += 1
    done.set()


async def watch(url: str, cookie: str, arrived: dict[str, float], ready: asyncio.Event, done: threading.Event):
    async with connect(url, additional_headers={"Cookie": cookie}) as socket:
        ready.set()
        while True:
            try:
                text = await asyncio.wait_for(socket.recv(), 2.0)
            except TimeoutError:
                if done.is_set():
                    return
                continue
            now = time.monotonic()
            message = json.loads(text)
            if message["type"] == "flow_run":
                arrived[message["data"]["state"]["id"]] = now


async def measure(
    base_url: str, api_url: str, headers: dict[str, str], cookie: str, options: argparse.Namespace
) -> None:
    changed: dict[str, float] = {}
    done = threading.Event()
    arrivals: list[dict[str, float]] = [{} for _ in range(options.sockets)]
    readies = [asyncio.Event() for _ in range(options.sockets)]
    url = websocket_url(base_url, "/ws/flow-runs/")
    watchers = [
        asyncio.create_task(watch(url, cookie, arrived, ready, done))
        for arrived, ready in zip(arrivals, readies, strict=True)
    ]
    await asyncio.gather(*(ready.wait() for ready in readies))
    changer = threading.Thread(
        target=make_changes, args=(api_url, headers, options.transitions, options.interval, changed, done), daemon=True
    )
    changer.start()
    await asyncio.gather(*watchers)
    latencies = []
    missed = 0
    early = 0
    for arrived in arrivals:
        for state_id, at in changed.items():
            if state_id not in arrived:
                missed += 1
                continue
            latency = arrived[state_id] - at
            early += latency < 0  # the message came before the HTTP answer was read
            latencies.append(max(0.0, latency))
    figures = percentiles(latencies)
    label = options.database + (" + Redis" if options.redis_url else "")
    print(
        f"{label}: {len(changed)} state changes x {options.sockets} sockets, {len(latencies)} messages"
        f" ({missed} missed, {early} before the 2xx); 2xx-to-message p50 {figures['p50']:.1f} ms"
        f"  p95 {figures['p95']:.1f} ms  p99 {figures['p99']:.1f} ms  max {max(latencies, default=0) * 1000:.1f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--transitions", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between two state changes")
    parser.add_argument("--sockets", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--redis-url", help="use the Redis channel layer (ORCHESTRATOR_REDIS_URL), e.g. redis://127.0.0.1:6379/13"
    )
    options = parser.parse_args()
    with database(options.database) as (home, database_url):
        with start_server(
            home=home,
            database_url=database_url,
            args=["--workers", str(options.workers), "--no-services"],
            settings={"ORCHESTRATOR_REDIS_URL": options.redis_url} if options.redis_url else {},
        ) as running:
            cookie = admin_session_cookie(running.base_url, *admin_credentials(running.output()))
            asyncio.run(measure(running.base_url, running.api_url, running.headers, cookie, options))


if __name__ == "__main__":
    main()
