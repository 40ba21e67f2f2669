"""Soak: concurrent SDK flow runs with tasks and logs against a real server, for minutes, on SQLite or PostgreSQL.

Starts `orchestrator server start` (services on) on an empty database, then `--processes` client processes of
`--threads` threads each (50 concurrent flow runs by default), each thread running flows back to back until
`--minutes` have passed: a flow of `--tasks` tasks, every task and the flow writing log lines. Samples the
server's memory (RSS of all its processes) every 10 seconds. Prints flow runs, state transitions per second
(counted in the database), p50/p95/p99 latencies of a flow run and of an API probe (a list of runs read every
half second), errors (flows that did not complete; client exceptions, with the SDK's retries off by default so
that a 5xx or a dropped connection counts; tracebacks in the server's output), "database is locked"
occurrences, and the memory growth after the first minute (under 10% expected).

    .venv/bin/python benchmarks/soak.py [--database sqlite|postgresql] [--minutes 10] [--processes 5] [--threads 10]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ORCHESTRATOR, _children, database, environment, percentiles, profile_api_key  # noqa: E402

MEMORY_SAMPLE_SECONDS = 10.0
MEMORY_GROWTH_LIMIT = 0.10

CLIENT = """
import json, sys, threading, time, traceback
from orchestrator import flow, task, get_run_logger

TASKS = int(sys.argv[2])

@task
def step(index: int) -> int:
    get_run_logger().info("step %s: processed %s records", index, index * 100)
    return index * 2

@flow
def soak(tasks: int) -> int:
    logger = get_run_logger()
    logger.info("starting %s steps", tasks)
    total = sum(step(index) for index in range(tasks))
    logger.info("done: %s", total)
    return total

deadline = time.monotonic() + float(sys.argv[1])
lock = threading.Lock()
flow_seconds, errors = [], []

def loop():
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            state = soak(TASKS, return_state=True)
            if not state.is_completed():
                errors.append(f"flow run ended {state.name}: {state.message}")
        except Exception as exc:
            errors.append("".join(traceback.format_exception_only(exc)).strip())
        with lock:
            flow_seconds.append(time.perf_counter() - started)

threads = [threading.Thread(target=loop) for _ in range(int(sys.argv[3]))]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"flow_seconds": flow_seconds, "errors": errors}))
"""


def rss_megabytes(pid: int) -> float:
    total_kb = 0
    for member in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def server_start(home: Path, url: str, log: Path) -> tuple[subprocess.Popen, str]:
    output = log.open("w")
    process = subprocess.Popen(
        [ORCHESTRATOR, "server", "start", "--port", "0"],
        env=environment(home, url, ORCHESTRATOR_LOGGING_LEVEL="WARNING"),
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        match = re.search(r"ORCHESTRATOR_API_URL=(http://\S+/api)", log.read_text(errors="replace"))
        if match:
            api_url = match.group(1)
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{api_url}/health/").status_code == 200:
                        return process, api_url
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the server did not start:\n{log.read_text(errors='replace')[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--threads", type=int, default=10, help="concurrent flow runs per client process")
    parser.add_argument("--tasks", type=int, default=5, help="tasks per flow run")
    parser.add_argument(
        "--client-retries",
        type=int,
        default=0,
        help="the SDK's retries of a 5xx or a transport error (0: every one counts as an error here)",
    )
    options = parser.parse_args()
    seconds = options.minutes * 60

    with database(options.database) as (home, url), tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "server.log"
        server, api_url = server_start(home, url, log)
        try:
            key = profile_api_key(home)
            headers = {"Authorization": f"Bearer {key}"}
            client_script = Path(folder) / "soak_client.py"
            client_script.write_text(CLIENT)
            client_env = environment(
                Path(folder) / "client-home", url, ORCHESTRATOR_API_URL=api_url, ORCHESTRATOR_API_KEY=key
            )
            client_env.pop("ORCHESTRATOR_DATABASE_URL")
            client_env["ORCHESTRATOR_CLIENT_RETRIES"] = str(options.client_retries)

            memory: list[tuple[float, float]] = []
            probe_seconds: list[float] = []
            probe_errors: list[str] = []
            stop = threading.Event()
            started = time.monotonic()

            def sample_memory() -> None:
                while True:
                    memory.append((time.monotonic() - started, rss_megabytes(server.pid)))
                    if stop.wait(MEMORY_SAMPLE_SECONDS):
                        return

            def probe() -> None:
                with httpx.Client(base_url=api_url + "/", headers=headers, timeout=30) as client:
                    while not stop.wait(0.5):
                        began = time.perf_counter()
                        try:
                            response = client.get("flow_runs/", params={"limit": 10})
                            if response.status_code >= 400:
                                probe_errors.append(f"{response.status_code}: {response.text[:200]}")
                        except httpx.HTTPError as exc:
                            probe_errors.append(repr(exc))
                        probe_seconds.append(time.perf_counter() - began)

            watchers = [threading.Thread(target=sample_memory), threading.Thread(target=probe)]
            for watcher in watchers:
                watcher.start()
            clients = [
                subprocess.Popen(
                    [sys.executable, str(client_script), str(seconds), str(options.tasks), str(options.threads)],
                    env=client_env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(options.processes)
            ]
            flow_seconds: list[float] = []
            errors: list[str] = []
            for client in clients:
                out, err = client.communicate()
                try:
                    result = json.loads(out.strip().splitlines()[-1])
                except (IndexError, json.JSONDecodeError):
                    errors.append(f"client exited {client.returncode}: {err[-500:]}")
                    continue
                flow_seconds += result["flow_seconds"]
                errors += result["errors"]
                errors += [line for line in err.splitlines() if "Traceback" in line]
            elapsed = time.monotonic() - started
            stop.set()
            for watcher in watchers:
                watcher.join()
            counts = counts_read(home, url)
        finally:
            server.send_signal(2)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        server_output = log.read_text(errors="replace")

    locked = server_output.count("database is locked") + sum("database is locked" in error for error in errors)
    server_errors = [line for line in server_output.splitlines() if re.search(r"Traceback|\b5\d\d\b.*HTTP|ERROR", line)]
    after_first_minute = [rss for at, rss in memory if at >= 60.0]
    baseline = after_first_minute[0] if after_first_minute else memory[0][1]
    growth = (memory[-1][1] - baseline) / baseline
    flows = percentiles(flow_seconds)
    probes = percentiles(probe_seconds)
    print(
        f"soak on {options.database}: {elapsed:.0f} s, {options.processes * options.threads} concurrent flow runs "
        f"of {options.tasks} tasks"
    )
    print(
        f"flow runs: {len(flow_seconds)} ({len(flow_seconds) / elapsed:.1f}/s); task runs: {counts['task_runs']}; "
        f"log lines: {counts['logs']}; state transitions: {counts['transitions']} "
        f"({counts['transitions'] / elapsed:.0f}/s)"
    )
    print(
        f"latency p50/p95/p99: flow run {flows['p50']:.0f}/{flows['p95']:.0f}/{flows['p99']:.0f} ms; "
        f"API probe (list of flow runs) {probes['p50']:.0f}/{probes['p95']:.0f}/{probes['p99']:.0f} ms"
    )
    print(
        f"errors: {len(errors)} in clients, {len(probe_errors)} in probes, {len(server_errors)} in the server's "
        f'output; "database is locked": {locked}'
    )
    for line in (errors + probe_errors + server_errors)[:10]:
        print(f"  {line[:300]}")
    print(
        "server memory (MB) every 10 s: " + " ".join(f"{rss:.0f}" for _, rss in memory) + f"; growth after the "
        f"first minute: {growth:+.1%} (limit {MEMORY_GROWTH_LIMIT:.0%})"
    )
    ok = not errors and not probe_errors and not server_errors and not locked and growth < MEMORY_GROWTH_LIMIT
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def counts_read(home: Path, url: str) -> dict[str, int]:
    """Rows written during the soak, read directly from the database (a fresh process: Django reads the URL once)."""
    code = (
        "import django, json; django.setup(); "
        "from apps.runs.models import FlowRunState, TaskRun, TaskRunState; from apps.logs.models import Log; "
        "print(json.dumps({'transitions': FlowRunState.objects.count() + TaskRunState.objects.count(), "
        "'task_runs': TaskRun.objects.count(), 'logs': Log.objects.count()}))"
    )
    env = environment(
        home, url, DJANGO_SETTINGS_MODULE="orchestrator.settings", PYTHONPATH=str(Path(__file__).parent.parent)
    )
    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
