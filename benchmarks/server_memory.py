"""Memory of the default `orchestrator server start` (services on, SQLite) after a realistic load.

Starts the server in a fresh ORCHESTRATOR_HOME, sends `--requests` requests (10,000 by default) from a few
keep-alive clients, in cycles that look like a flow run with one task seen from its client and its worker:
create a flow run, Running, create a task run, Running, Completed, send two log lines, flow run Completed, read
the run, list finished runs, and a worker's poll of its pool. Then it lets the services run a few cycles
(`--settle` seconds) and prints, for every process of the server's tree (the supervisor, the Daphne workers,
the services), its resident memory (RSS from /proc/PID/status) and its proportional share (PSS from
/proc/PID/smaps_rollup: shared pages divided among the processes sharing them), and the totals.

    .venv/bin/python benchmarks/server_memory.py [--requests 10000] [--clients 4] [--settle 15]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LoadClient, Reply, _children, database, server  # noqa: E402

POOL = "bench-memory"


def _ok(reply: Reply, what: str) -> dict:
    if reply.status_code >= 400:
        raise RuntimeError(f"{what}: {reply.status_code} {reply.text[:200]}")
    return reply.json()


def _set_state(client: LoadClient, kind: str, run_id: str, state_type: str) -> None:
    answer = _ok(client.request("POST", f"{kind}/{run_id}/set_state/", json={"state": {"type": state_type}}), kind)
    if answer["status"] != "ACCEPT":
        raise RuntimeError(f"{kind} {state_type} was {answer['status']}: {answer['details']}")


def one_cycle(client: LoadClient, flow_id: str, number: int) -> int:
    """Ten requests, as a flow run with one task, its logs, a reader and a polling worker would send them."""
    run = _ok(client.request("POST", "flow_runs/", json={"flow": flow_id, "tags": ["bench"]}), "create flow run")
    _set_state(client, "flow_runs", run["id"], "RUNNING")
    task_run = _ok(
        client.request(
            "POST", "task_runs/", json={"flow_run": run["id"], "task_key": "bench.step", "dynamic_key": str(number)}
        ),
        "create task run",
    )
    _set_state(client, "task_runs", task_run["id"], "RUNNING")
    _set_state(client, "task_runs", task_run["id"], "COMPLETED")
    lines = [{"flow_run": run["id"], "task_run": task_run["id"], "message": f"step {number} line {i}"} for i in (1, 2)]
    _ok(client.request("POST", "logs/", json=lines), "send logs")
    _set_state(client, "flow_runs", run["id"], "COMPLETED")
    _ok(client.request("GET", f"flow_runs/{run['id']}/"), "read flow run")
    _ok(client.request("GET", "flow_runs/", params={"state_type": "COMPLETED", "limit": 10}), "list flow runs")
    _ok(
        client.request("POST", f"work_pools/{POOL}/get_scheduled_flow_runs/", json={"worker_name": "bench"}),
        "worker poll",
    )
    return 10


def send_load(api_url: str, api_key: str, requests: int, clients: int) -> tuple[int, int, float]:
    """Send about `requests` requests over `clients` connections; return (sent, errors, seconds)."""
    with LoadClient(api_url, api_key) as client:
        flow_id = _ok(client.request("POST", "flows/", json={"name": "bench-memory"}), "create flow")["id"]
        _ok(client.request("POST", "work_pools/", json={"name": POOL, "type": "process"}), "create pool")
    cycles = requests // 10
    counter = iter(range(cycles))
    lock = threading.Lock()
    sent = [0]
    errors = [0]

    def client_loop() -> None:
        with LoadClient(api_url, api_key) as client:
            while True:
                with lock:
                    number = next(counter, None)
                if number is None:
                    return
                try:
                    done = one_cycle(client, flow_id, number)
                except Exception as exc:
                    with lock:
                        errors[0] += 1
                        if errors[0] <= 3:
                            print(f"error: {exc}", file=sys.stderr)
                    continue
                with lock:
                    sent[0] += done

    started = time.monotonic()
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent[0], errors[0], time.monotonic() - started


def _kilobytes(path: Path, field: str) -> int:
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _describe(pid: int) -> str:
    with contextlib.suppress(OSError):
        words = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        words = [Path(words[0]).name, *words[1:]] if words else words
        return " ".join(word for word in words if word)[:90]
    return "?"


def memory_report(root_pid: int) -> tuple[float, float]:
    """Print RSS and PSS of every process in the tree under root_pid; return the totals in MB."""
    total_rss = total_pss = 0
    print(f"{'pid':>7}  {'RSS MB':>7}  {'PSS MB':>7}  command")
    for pid in [root_pid, *_children(root_pid)]:
        rss = _kilobytes(Path(f"/proc/{pid}/status"), "VmRSS")
        pss = _kilobytes(Path(f"/proc/{pid}/smaps_rollup"), "Pss")
        total_rss += rss
        total_pss += pss
        print(f"{pid:>7}  {rss / 1024:7.1f}  {pss / 1024:7.1f}  {_describe(pid)}")
    print(f"{'total':>7}  {total_rss / 1024:7.1f}  {total_pss / 1024:7.1f}")
    return total_rss / 1024, total_pss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent keep-alive connections")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds the services run after the load")
    options = parser.parse_args()
    with database("sqlite") as (home, database_url):
        with server(home, database_url) as running:
            sent, errors, seconds = send_load(running.api_url, running.api_key, options.requests, options.clients)
            print(f"sent {sent} requests in {seconds:.1f} s ({sent / seconds:.0f}/s), {errors} failed cycles")
            time.sleep(options.settle)
            memory_report(running.process.pid)


if __name__ == "__main__":
    main()
