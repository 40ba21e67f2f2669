"""kill -9 of the whole server (every process of it) while 16 clients write and SDK flows run: after a restart on
the same address and database, every acknowledged write is there with its last acknowledged state, the flows finish
and are fully recorded from their backlog, and no run (flow or task) is executed twice (docs/faults.md)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.faults.conftest import Writers, figures, free_port, kill_tree, wait_until
from tests.support.server import start_server, throwaway_database

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

CLIENTS = 16
FLOWS = 3
TASKS = 40

# Each task appends "flow-run-id task-number" to the ledger file when it executes: a line seen twice is a task
# executed twice. The flow prints its run's id first, so the test can find it.
FLOW_SCRIPT = textwrap.dedent(
    f"""
    import sys
    import time

    from orchestrator import flow, get_run_logger, task
    from orchestrator.sdk.context import get_run_context

    LEDGER = sys.argv[1]


    @task
    def step(number: int) -> int:
        time.sleep(0.1)
        with open(LEDGER, "a") as handle:
            handle.write(f"{{get_run_context().task_run.flow_run_id}} {{number}}\\n")
        get_run_logger().warning("step %s done", number)
        return number


    @flow(name="survivor")
    def survivor() -> int:
        print("RUN", get_run_context().flow_run.id, flush=True)
        return sum(step(number) for number in range({TASKS}))


    if __name__ == "__main__":
        print("RESULT", survivor(), flush=True)
    """
)


def test_acknowledged_writes_and_sdk_flows_survive_a_kill_9_of_the_whole_server(tmp_path: Path) -> None:
    """A crash (OOM killer, power cut) must lose nothing the server said it kept, and must not run work twice."""
    home = tmp_path / "server"
    port = free_port()
    args = ["--port", str(port), "--workers", "2"]
    script = tmp_path / "survivor.py"
    script.write_text(FLOW_SCRIPT)
    ledger = tmp_path / "executed.txt"
    with throwaway_database(home) as database_url:
        with start_server(home=home, database_url=database_url, args=args) as server:
            api = server.api_client(timeout=10)
            flow_id = api.post("flows/", json={"name": "writes"}).json()["id"]
            env = server.client_env(tmp_path / "client", ORCHESTRATOR_LOGGING_LEVEL="WARNING")
            flows = [
                subprocess.Popen(
                    [sys.executable, str(script), str(ledger)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                for _ in range(FLOWS)
            ]
            writers = Writers(server.api_url, server.headers, flow_id, CLIENTS).__enter__()
            try:
                executed = lambda: len(ledger.read_text().splitlines()) if ledger.exists() else 0  # noqa: E731
                wait_until(lambda: executed() >= FLOWS * 5, 60, "the flows did not start their tasks")
                wait_until(lambda: writers.ledger.acknowledged >= 200, 60, "the writers got no answers")
                killed = kill_tree(server.process.pid)
                killed_at = time.monotonic()
                executed_at_kill = executed()
                acknowledged_before = writers.ledger.acknowledged
                server.process.wait()
                time.sleep(1.0)  # clients meet a closed port for a while
            except BaseException:
                writers.stop()
                raise
            api.close()
        with start_server(home=home, database_url=database_url, args=args) as server:
            restarted_in = time.monotonic() - killed_at
            time.sleep(2.0)  # writes go on against the restarted server
            writers.stop()
            outputs = []
            for process in flows:
                output, _ = process.communicate(timeout=120)
                outputs.append(output)
                assert process.returncode == 0, output
            api = server.api_client(timeout=10)
            acknowledged, found = writers.verify(api)
            run_ids = [line.split()[1] for output in outputs for line in output.splitlines() if line.startswith("RUN")]
            assert len(run_ids) == FLOWS, outputs
            recorded_tasks = recorded_logs = doubled_logs = 0
            for run_id in run_ids:
                run = api.get(f"flow_runs/{run_id}/").json()
                assert run["state_type"] == "COMPLETED", run
                tasks = api.get("task_runs/", params={"flow_run": run_id, "limit": 200}).json()["results"]
                assert sorted(task["state_type"] for task in tasks) == ["COMPLETED"] * TASKS, tasks
                recorded_tasks += len(tasks)
                logs = api.get("logs/", params={"flow_run": run_id, "limit": 1000}).json()["results"]
                steps = Counter(log["message"] for log in logs if log["message"].startswith("step "))
                # Every line arrives once: a batch whose answer the kill cut off is sent again under its key.
                assert len(steps) == TASKS, steps
                recorded_logs += len(steps)
                doubled_logs += sum(steps.values()) - len(steps)
            survivors = api.get("flow_runs/", params={"flow_name": "survivor", "limit": 50}).json()["results"]
            assert sorted(run["id"] for run in survivors) == sorted(run_ids), "a flow run was created twice"
            executions = Counter(ledger.read_text().splitlines())
            twice = [line for line, count in executions.items() if count > 1]
            assert not twice and len(executions) == FLOWS * TASKS, twice or len(executions)
            assert doubled_logs == 0, f"{doubled_logs} log line(s) stored twice"
            assert executed_at_kill < FLOWS * TASKS, "the flows were done before the kill: nothing was proven"
            statuses = writers.ledger.statuses
            assert not any(status >= 500 and status != 503 for status in statuses), statuses
            api.close()
    figures(
        "server kill -9",
        processes_killed=killed,
        writes_acknowledged=writers.ledger.acknowledged,
        acknowledged_before_kill=acknowledged_before,
        created_acknowledged=acknowledged,
        created_found=found,
        updates_checked=len(writers.ledger.acknowledged_counter),
        flows_completed=len(run_ids),
        task_runs_recorded=recorded_tasks,
        step_logs_recorded=recorded_logs,
        step_logs_doubled=doubled_logs,
        tasks_executed_at_kill=executed_at_kill,
        task_executions=sum(executions.values()),
        executed_twice=len(twice),
        restart_seconds=f"{restarted_in:.1f}",
        answers=dict(sorted(statuses.items())),
    )
