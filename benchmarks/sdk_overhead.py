"""SDK overhead, in-process (ephemeral) and through a real server (HTTP):

- a flow of 1,000 sequential trivial tasks (overhead per task = flow time / 1,000);
- a flow mapping a trivial task over 1,000 items;
- `import orchestrator` (fresh interpreter, median of 5);
- the cold time of `python flow.py` for an empty flow (median of 3).

    .venv/bin/python benchmarks/sdk_overhead.py [--database sqlite|postgresql] [--tasks 1000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import database, environment, server  # noqa: E402

WORKLOAD = """
import sys, time
from orchestrator import flow, task

@task
def noop(i):
    return i

@flow
def sequential(n: int):
    for i in range(n):
        noop(i)

@flow
def mapped(n: int):
    return noop.map(range(n))

n = int(sys.argv[1])
sequential(5)  # warm up: schema check, client, flow ids
started = time.perf_counter(); sequential(n); sequential_seconds = time.perf_counter() - started
started = time.perf_counter(); mapped(n); map_seconds = time.perf_counter() - started
print(f"{sequential_seconds} {map_seconds}")
"""

EMPTY_FLOW = """
from orchestrator import flow

@flow
def empty():
    return None

empty()
"""


def _median_seconds(command: list[str], env: dict, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def measure(mode: str, env: dict, tasks: int, folder: Path) -> None:
    workload = folder / "workload.py"
    workload.write_text(WORKLOAD)
    empty = folder / "empty_flow.py"
    empty.write_text(EMPTY_FLOW)
    env = {**env, "ORCHESTRATOR_LOGGING_LEVEL": "WARNING"}
    output = subprocess.run(
        [sys.executable, str(workload), str(tasks)], env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    sequential_seconds, map_seconds = float(output[-2]), float(output[-1])
    subprocess.run([sys.executable, str(empty)], env=env, check=True, capture_output=True)  # schema, flow row
    cold = _median_seconds([sys.executable, str(empty)], env, 3)
    print(
        f"{mode:10} {tasks} sequential tasks {sequential_seconds:6.2f} s"
        f" = {sequential_seconds / tasks * 1000:5.2f} ms/task"
        f"   map over {tasks} {map_seconds:5.2f} s   cold `python flow.py` (empty flow) {cold:5.2f} s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--tasks", type=int, default=1000)
    options = parser.parse_args()

    import_seconds = _median_seconds([sys.executable, "-c", "import orchestrator"], {}, 5)
    baseline = _median_seconds([sys.executable, "-c", "pass"], {}, 5)
    print(f"import orchestrator: {import_seconds - baseline:.3f} s (interpreter start {baseline:.3f} s excluded)")

    with tempfile.TemporaryDirectory() as folder:
        with database(options.database) as (home, database_url):
            measure("ephemeral", environment(home, database_url), options.tasks, Path(folder))
        with database(options.database) as (home, database_url):
            with server(home, database_url, "--no-services") as running:
                client_home = Path(folder) / "client-home"
                env = environment(
                    client_home,
                    database_url,
                    ORCHESTRATOR_API_URL=running.api_url,
                    ORCHESTRATOR_API_KEY=running.api_key,
                )
                env.pop("ORCHESTRATOR_DATABASE_URL")
                measure("http", env, options.tasks, Path(folder))


if __name__ == "__main__":
    main()
